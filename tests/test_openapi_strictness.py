"""The OpenAPI document is as strict as the API: a body the document refuses is refused
(422), and one it allows is taken. Each case is judged twice, by a JSON Schema validator
reading the served document and by the running platform, and the two must agree.

tests/test_fuzz.py holds the whole document to this with schemathesis; these cases pin
the rules that were once looser in the document than in the validation."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema_rs import Draft202012Validator

from tests.api import Answer, Api, Tenant

OPENAPI = "/api/v1/openapi.json"
PROBLEM = "application/problem+json"
LOCATION = "{location}"


@pytest.fixture(scope="module")
async def document(api: Api) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get(OPENAPI)).body
    return body


def document_allows(document: dict[str, Any], component: str, body: Any) -> bool:
    """What a JSON Schema validator reading the document says of `body`."""
    root = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    validator = Draft202012Validator(root, validate_formats=True)
    return validator.is_valid(body)


def filled(body: Any, location_id: str) -> Any:
    """`body` with the test's location id wherever it says LOCATION."""
    if isinstance(body, dict):
        return {name: filled(value, location_id) for name, value in body.items()}
    if isinstance(body, list):
        return [filled(item, location_id) for item in body]
    return location_id if body == LOCATION else body


def location(timezone: Any) -> dict[str, Any]:
    return {"name": "Main Street", "timezone": timezone}


def service(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Haircut",
        "duration_minutes": 30,
        "price_amount": 2500,
        "currency": "EUR",
        "location_ids": [LOCATION],
    } | fields


def endpoint(url: str, events: list[str] | None = None) -> dict[str, Any]:
    # Disabled, in a business without bookings: nothing is ever sent to these URLs.
    body: dict[str, Any] = {"url": url, "enabled": False}
    return body | ({"events": events} if events is not None else {})


def business(**fields: Any) -> dict[str, Any]:
    return {"name": "Shop"} | fields


def staff(email: str) -> dict[str, Any]:
    return {"name": "Alex", "email": email, "location_ids": [LOCATION]}


def custom_field(kind: str, options: list[str]) -> dict[str, Any]:
    return {"key": "colour", "label": "Colour", "type": kind, "options": options}


# (collection, the document's schema of the body, body, whether both take it)
CASES = [
    ("locations", "LocationFields", location(""), False),
    ("locations", "LocationFields", location("Mars/Olympus_Mons"), False),
    ("locations", "LocationFields", location("localtime"), False),
    ("locations", "LocationFields", location("Pacific/Chatham"), True),
    ("services", "ServiceFields", service(currency=""), False),
    ("services", "ServiceFields", service(currency="XYZ"), False),
    ("services", "ServiceFields", service(currency="Eur"), False),
    ("services", "ServiceFields", service(currency="eur"), True),
    ("services", "ServiceFields", service(duration_minutes=45.0), True),
    ("services", "ServiceFields", service(duration_minutes=45.5), False),
    ("services", "ServiceFields", service(location_ids=[LOCATION, LOCATION]), False),
    ("webhook-endpoints", "EndpointFields", endpoint("0"), False),
    ("webhook-endpoints", "EndpointFields", endpoint("/hooks"), False),
    ("webhook-endpoints", "EndpointFields", endpoint("http://127.0.0.1:99999/hooks"), False),
    ("webhook-endpoints", "EndpointFields", endpoint("http://127.0.0.1:9/hooks"), True),
    (
        "webhook-endpoints",
        "EndpointFields",
        endpoint("http://127.0.0.1:9/a", ["booking.created", "booking.created"]),
        False,
    ),
    (
        "webhook-endpoints",
        "EndpointFields",
        endpoint("http://127.0.0.1:9/a", ["*", "booking.created"]),
        False,
    ),
    (
        "webhook-endpoints",
        "EndpointFields",
        endpoint("http://127.0.0.1:9/a", ["booking.created", "booking.cancelled"]),
        True,
    ),
    ("businesses", "BusinessFields", business(success_url="/booked"), False),
    ("businesses", "BusinessFields", business(cancel_url="shop.example/back"), False),
    (
        "businesses",
        "BusinessFields",
        business(success_url="https://shop.example/ok?s={CHECKOUT_SESSION_ID}"),
        True,
    ),
    (
        "businesses",
        "BusinessFields",
        business(allowed_origins=["https://shop.example", "https://shop.example"]),
        False,
    ),
    ("businesses", "BusinessFields", business(allowed_origins=["https://:443"]), False),
    (
        "businesses",
        "BusinessFields",
        business(allowed_origins=["https://Shop.Example:443", "https://shop.example"]),
        True,
    ),
    ("staff", "StaffFields", staff("alex@salon.test"), False),
    ("staff", "StaffFields", staff("Alex <alex@salon.example>"), False),
    ("staff", "StaffFields", staff("alex@salon.example"), True),
    ("custom-fields", "CustomFieldFields", custom_field("select", []), False),
    ("custom-fields", "CustomFieldFields", custom_field("text", ["red"]), False),
    ("custom-fields", "CustomFieldFields", custom_field("select", ["red", "red"]), False),
    ("custom-fields", "CustomFieldFields", custom_field("select", ["red", "blue"]), True),
    ("locations", "LocationFields", location("Europe/London\u0000"), False),
    (
        "locations",
        "LocationFields",
        location("Europe/London")
        | {"opening_hours": {"monday": [{"opens": "9:00", "closes": "17:00"}]}},
        False,
    ),
]


@pytest.mark.parametrize(
    ("collection", "component", "body", "taken"),
    CASES,
    ids=[f"{case[0]}-{index}" for index, case in enumerate(CASES)],
)
async def test_the_document_and_the_api_agree_on_a_body(
    api: Api,
    tenant: Tenant,
    document: dict[str, Any],
    collection: str,
    component: str,
    body: dict[str, Any],
    taken: bool,
) -> None:
    where = await tenant.location()
    sent = filled(body, where["id"])
    assert document_allows(document, component, sent) is taken
    key = tenant.hub_key if collection == "businesses" else tenant.business_key
    answer = await api.post(f"/api/v1/{collection}", key, sent)
    assert answer.status == (201 if taken else 422), answer.body


async def test_differently_written_origins_are_kept_once(tenant: Tenant) -> None:
    answer = await tenant.api.patch(
        f"/api/v1/businesses/{tenant.business_id}",
        tenant.business_key,
        {"allowed_origins": ["https://Shop.Example:443", "https://shop.example"]},
    )
    assert answer.status == 200, answer.body
    assert answer.body["allowed_origins"] == ["https://shop.example"]


def assert_invalid_json(answer: Answer) -> None:
    assert answer.status == 422, answer.body
    assert answer.content_type == PROBLEM
    assert answer.body["errors"] == {"body": "invalid JSON"}


@pytest.mark.parametrize("path", ["/api/v1/api-keys", "/api/v1/sessions"])
@pytest.mark.parametrize("whitespace", [b"\t", b" ", b"\r\n"])
async def test_a_body_of_whitespace_is_not_json(
    api: Api, tenant: Tenant, path: str, whitespace: bytes
) -> None:
    headers = {"Calendence-Business": tenant.business_id, "Content-Type": "application/json"}
    answer = await api.post(path, tenant.hub_key, data=whitespace, headers=headers)
    assert_invalid_json(answer)


async def test_a_business_key_request_without_a_body_is_made(api: Api, tenant: Tenant) -> None:
    answer = await api.post(
        "/api/v1/api-keys", tenant.hub_key, headers={"Calendence-Business": tenant.business_id}
    )
    assert answer.status == 201, answer.body


@pytest.mark.parametrize("cursor", ["M.Q", "%%", "a" * 65])
async def test_a_cursor_outside_the_documented_alphabet_is_refused(
    api: Api, tenant: Tenant, document: dict[str, Any], cursor: str
) -> None:
    parameters = document["paths"]["/api/v1/locations"]["get"]["parameters"]
    (schema,) = [p["schema"] for p in parameters if p["name"] == "cursor"]
    assert not Draft202012Validator(schema).is_valid(cursor)
    answer = await api.get("/api/v1/locations", tenant.business_key, params={"cursor": cursor})
    assert answer.status == 422, answer.body
    assert "cursor" in answer.body["errors"]

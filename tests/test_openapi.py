"""The OpenAPI document: served publicly, valid OpenAPI 3.1, built from the route table
and the schemas requests are checked with, carrying the Bookings page's examples; and
the /docs page that renders it with Swagger UI served by the gateway itself."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from calendence.schemas.holds import HoldRequest
from calendence.schemas.webhooks import EndpointFields, RedeliverRequest
from calendence.settings import GatewaySettings
from gateway.openapi import NOT_DOCUMENTED
from gateway.routes.docs import swagger_ui_files
from gateway.server import build_app
from notify_service import deliveries as notify_deliveries
from notify_service import endpoints as notify_endpoints
from openapi_spec_validator import validate

from tests.api import Api, Tenant

OPENAPI = "/api/v1/openapi.json"
METHODS = ("get", "post", "patch", "put", "delete")

# The Bookings page's examples as it prints them ("uuid" stands for an id).
PAGE_HOLD_REQUEST = {
    "service_id": "uuid",
    "location_id": "uuid",
    "starts_at": "2026-03-25T14:00:00+00:00",
}
PAGE_HOLD_RESPONSE = {
    "hold_id": "uuid",
    "service_id": "uuid",
    "location_id": "uuid",
    "starts_at": "2026-03-25T14:00:00+00:00",
    "ends_at": "2026-03-25T14:30:00+00:00",
    "expires_at": "2026-03-25T13:10:00+00:00",
}
PAGE_BOOKING_REQUEST = {
    "hold_id": "uuid",
    "client": {
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "jane@example.com",
        "phone": "+15551234567",
    },
    "notes": "Please use the side entrance",
}


@pytest.fixture(scope="module")
async def document(api: Api) -> dict[str, Any]:
    answer = await api.get(OPENAPI)
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def same_as_page(example: Any, page: Any) -> bool:
    """The example is the page's, with a real id wherever the page writes "uuid"."""
    if isinstance(page, dict):
        return (
            isinstance(example, dict)
            and example.keys() == page.keys()
            and all(same_as_page(example[k], page[k]) for k in page)
        )
    if page == "uuid":
        return isinstance(example, str) and uuid.UUID(example) is not None
    return bool(example == page)


def examples_of(content: dict[str, Any]) -> list[Any]:
    return [example["value"] for example in content["application/json"]["examples"].values()]


async def test_the_document_is_served_without_a_key(api: Api) -> None:
    answer = await api.get(OPENAPI)
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert answer.body["openapi"] == "3.1.0"
    assert answer.headers["X-Request-Id"]


def test_the_document_passes_openapi_spec_validator(document: dict[str, Any]) -> None:
    validate(document)


def test_every_served_route_is_in_the_document(document: dict[str, Any]) -> None:
    app = build_app(GatewaySettings())
    served = {
        (route.method.lower(), resource.canonical)
        for resource in app.router.resources()
        if resource.canonical not in NOT_DOCUMENTED and not resource.canonical.startswith("/docs")
        for route in resource
    }
    documented = {(method, path) for method, path, _ in operations(document)}
    assert served == documented


def test_the_document_lists_the_bookings_routes_first(document: dict[str, Any]) -> None:
    assert document["tags"][0]["name"] == "Bookings"
    bookings = {(m, p) for m, p, op in operations(document) if op["tags"] == ["Bookings"]}
    assert {
        ("post", "/api/v1/bookings/hold"),
        ("delete", "/api/v1/bookings/hold/{hold_id}"),
        ("get", "/api/v1/availability"),
        ("post", "/api/v1/bookings"),
        ("get", "/api/v1/bookings/{booking_id}"),
        ("patch", "/api/v1/bookings/{booking_id}"),
        ("delete", "/api/v1/bookings/{booking_id}"),
        ("get", "/api/v1/bookings"),
    } == bookings


VERB_NOUN = re.compile(
    r"^(create|list|get|update|delete|cancel|release|revoke|rotate|redeliver|reschedule"
    r"|receive|check)_[a-z]+(_[a-z]+)*$"
)


def test_every_operation_id_is_a_verb_noun_name(document: dict[str, Any]) -> None:
    names = [op["operationId"] for _, _, op in operations(document)]
    assert [name for name in names if not VERB_NOUN.match(name)] == []
    assert len(set(names)) == len(names)


def test_operation_ids_name_what_each_route_does(document: dict[str, Any]) -> None:
    named = {(method, path): op["operationId"] for method, path, op in operations(document)}
    expected = {
        ("post", "/api/v1/bookings/hold"): "create_hold",
        ("delete", "/api/v1/bookings/hold/{hold_id}"): "release_hold",
        ("get", "/api/v1/availability"): "get_availability",
        ("post", "/api/v1/bookings"): "create_booking",
        ("get", "/api/v1/bookings"): "list_bookings",
        ("get", "/api/v1/bookings/{booking_id}"): "get_booking",
        ("patch", "/api/v1/bookings/{booking_id}"): "update_booking",
        ("delete", "/api/v1/bookings/{booking_id}"): "cancel_booking",
        ("post", "/api/v1/staff"): "create_staff_member",
        ("get", "/api/v1/staff"): "list_staff",
        ("delete", "/api/v1/custom-fields/{id}"): "delete_custom_field",
        ("delete", "/api/v1/api-keys/{key_id}"): "revoke_api_key",
        ("post", "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): (
            "rotate_webhook_endpoint_secret"
        ),
        ("post", "/api/v1/manage/{token}/reschedule"): "reschedule_managed_booking",
    }
    assert {route: named[route] for route in expected} == expected


def test_the_hold_examples_are_the_bookings_pages(document: dict[str, Any]) -> None:
    hold = document["paths"]["/api/v1/bookings/hold"]["post"]
    assert any(
        same_as_page(e, PAGE_HOLD_REQUEST) for e in examples_of(hold["requestBody"]["content"])
    )
    assert any(
        same_as_page(e, PAGE_HOLD_RESPONSE)
        for e in examples_of(hold["responses"]["201"]["content"])
    )


def test_the_booking_request_example_is_the_bookings_pages(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/v1/bookings"]["post"]
    examples = examples_of(create["requestBody"]["content"])
    assert any(same_as_page(e, PAGE_BOOKING_REQUEST) for e in examples)


def test_the_booking_answer_examples_show_a_deposit_redirect(document: dict[str, Any]) -> None:
    answer = document["paths"]["/api/v1/bookings"]["post"]["responses"]["201"]["content"]
    redirects = [e["redirect_url"] for e in examples_of(answer)]
    assert None in redirects
    assert any(url and url.startswith("https://checkout.stripe.com/") for url in redirects)


def test_request_bodies_are_the_schemas_the_gateway_checks_with(document: dict[str, Any]) -> None:
    hold = document["paths"]["/api/v1/bookings/hold"]["post"]["requestBody"]
    assert hold["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HoldRequest"
    }
    own = HoldRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert document["components"]["schemas"]["HoldRequest"] == own


def test_the_webhook_schemas_are_the_ones_notify_service_validates_with() -> None:
    # notify-service checks these bodies with the very classes the document is built from.
    assert vars(notify_endpoints)["EndpointFields"] is EndpointFields
    assert vars(notify_deliveries)["RedeliverRequest"] is RedeliverRequest


def test_each_operation_names_the_key_kinds_that_may_call_it(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        public = op["security"] == []
        assert public == (op["x-key-kinds"] == []), (method, path)
        # Manage links and calendar feeds: the secret in the path is the proof.
        assert public == (
            path in ("/api/v1/openapi.json", "/healthz", "/readyz", "/webhooks/stripe")
            or "token}" in path
        ), (method, path)


async def test_each_operation_refuses_the_key_kinds_it_does_not_name(
    api: Api, tenant: Tenant, document: dict[str, Any]
) -> None:
    session = await tenant.session_token()
    keys = {"business": tenant.business_key, "session": session}
    for method, path, op in operations(document):
        url = re.sub(r"\{\w+\}", str(uuid.uuid4()), path)
        for kind, key in keys.items():
            if op["x-key-kinds"] and kind not in op["x-key-kinds"]:
                answer = await api.call(method.upper(), url, key, json={})
                assert answer.status == 403, (method, path, kind, answer.body)


async def test_the_docs_page_renders_the_document_with_swagger_ui(api: Api) -> None:
    page = await api.get("/docs")
    assert page.status == 200
    assert page.content_type == "text/html"
    assert OPENAPI in page.body
    assert "SwaggerUIBundle" in page.body


async def test_the_docs_page_loads_nothing_from_another_site(api: Api) -> None:
    page = (await api.get("/docs")).body
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    for asset in assets:
        assert asset.startswith("/docs/"), asset
        async with api.session.get(api.base_url + asset) as answer:
            assert answer.status == 200, asset
            assert await answer.read(), asset


def test_the_docs_renderer_reads_openapi_3_1() -> None:
    files = swagger_ui_files()
    assert files is not None, "flask-swagger-ui is not installed"
    # Swagger UI renders OpenAPI 3.1 from version 5 on.
    version = (files / "VERSION").read_text().strip().lstrip("v")
    assert int(version.split(".")[0]) >= 5

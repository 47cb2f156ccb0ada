"""CORS for booking widgets: a business lists its widget's origins; answers to its session
tokens from those origins carry Access-Control-Allow-Origin; preflights are answered for
any origin (they carry no key); business and hub keys, server secrets, never get it."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api import Answer, Api, Tenant, created, new_tenant, tomorrow_at
from tests.booking_helpers import open_salon

SHOP = "https://shop.example"
ELSEWHERE = "https://elsewhere.example"
ALLOW_ORIGIN = "Access-Control-Allow-Origin"


def business_path(tenant: Tenant) -> str:
    return f"/api/v1/businesses/{tenant.business_id}"


async def allow(tenant: Tenant, *origins: str) -> dict[str, Any]:
    answer = await tenant.api.patch(
        business_path(tenant), tenant.business_key, {"allowed_origins": list(origins)}
    )
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


async def from_origin(tenant: Tenant, key: str, origin: str) -> Answer:
    return await tenant.api.get(f"/api/v1/bookings/{uuid.uuid4()}", key, headers={"Origin": origin})


async def test_a_business_key_sets_its_allowed_origins(tenant: Tenant) -> None:
    changed = await allow(tenant, "https://Shop.Example:443", "http://localhost:3000")
    assert changed["allowed_origins"] == [SHOP, "http://localhost:3000"]
    shown = await tenant.api.get(business_path(tenant), tenant.business_key)
    assert shown.body["allowed_origins"] == [SHOP, "http://localhost:3000"]


async def test_a_patch_keeps_the_fields_it_does_not_name(tenant: Tenant) -> None:
    before = (await tenant.api.get(business_path(tenant), tenant.business_key)).body
    after = await allow(tenant, SHOP)
    assert after["name"] == before["name"]
    assert after["success_url"] == before["success_url"]


async def test_a_hub_key_sets_the_origins_of_one_of_its_businesses(tenant: Tenant) -> None:
    answer = await tenant.api.patch(
        business_path(tenant), tenant.hub_key, {"allowed_origins": [SHOP]}
    )
    assert answer.status == 200
    assert answer.body["allowed_origins"] == [SHOP]


async def test_a_business_key_cannot_see_another_business(
    tenant: Tenant, api: Api, hub: dict[str, str]
) -> None:
    other = await new_tenant(api, hub["key"])
    answer = await api.patch(business_path(other), tenant.business_key, {"allowed_origins": []})
    assert answer.status == 404
    assert (await api.get(business_path(other), tenant.business_key)).status == 404


async def test_a_session_token_may_not_change_its_business(tenant: Tenant) -> None:
    token = await tenant.session_token()
    answer = await tenant.api.patch(business_path(tenant), token, {"allowed_origins": [SHOP]})
    assert answer.status == 403


async def test_an_origin_with_a_path_is_422_naming_it(tenant: Tenant) -> None:
    answer = await tenant.api.patch(
        business_path(tenant),
        tenant.business_key,
        {"allowed_origins": [SHOP, "https://shop.example/widget"]},
    )
    assert answer.status == 422
    assert set(answer.body["errors"]) == {"allowed_origins.1"}


async def test_a_session_token_from_an_allowed_origin_may_read_the_answer(tenant: Tenant) -> None:
    await allow(tenant, SHOP)
    answer = await from_origin(tenant, await tenant.session_token(), SHOP)
    assert answer.status == 404
    assert answer.headers[ALLOW_ORIGIN] == SHOP
    assert "Origin" in answer.headers["Vary"]
    exposed = answer.headers["Access-Control-Expose-Headers"]
    for header in ("X-Request-Id", "RateLimit-Remaining", "Retry-After"):
        assert header in exposed


async def test_a_session_token_from_another_origin_gets_no_allow_origin(tenant: Tenant) -> None:
    await allow(tenant, SHOP)
    answer = await from_origin(tenant, await tenant.session_token(), ELSEWHERE)
    assert ALLOW_ORIGIN not in answer.headers


async def test_a_business_without_origins_lets_no_page_read(tenant: Tenant) -> None:
    answer = await from_origin(tenant, await tenant.session_token(), SHOP)
    assert ALLOW_ORIGIN not in answer.headers


async def test_a_business_key_never_gets_allow_origin(tenant: Tenant) -> None:
    # A page that embeds a business key (a server secret) cannot read the answers.
    await allow(tenant, SHOP)
    answer = await from_origin(tenant, tenant.business_key, SHOP)
    assert ALLOW_ORIGIN not in answer.headers


async def test_new_origins_apply_at_once_on_the_gateway_that_changed_them(tenant: Tenant) -> None:
    token = await tenant.session_token()
    assert ALLOW_ORIGIN not in (await from_origin(tenant, token, SHOP)).headers
    await allow(tenant, SHOP)
    # The token was cached with the old list; the change dropped it.
    assert (await from_origin(tenant, token, SHOP)).headers[ALLOW_ORIGIN] == SHOP


async def test_a_preflight_is_answered_for_any_origin(api: Api) -> None:
    answer = await api.call(
        "OPTIONS",
        "/api/v1/bookings/hold",
        headers={
            "Origin": ELSEWHERE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert answer.status == 204
    assert answer.headers[ALLOW_ORIGIN] == ELSEWHERE
    assert answer.headers["Access-Control-Allow-Methods"] == "POST"
    allowed = answer.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key"):
        assert header in allowed
    assert int(answer.headers["Access-Control-Max-Age"]) > 0
    assert answer.headers["X-Request-Id"]


async def test_a_preflight_names_the_methods_of_its_path(api: Api) -> None:
    answer = await api.call(
        "OPTIONS",
        f"/api/v1/bookings/{uuid.uuid4()}",
        headers={"Origin": SHOP, "Access-Control-Request-Method": "GET"},
    )
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Methods"] == "DELETE, GET, PATCH"


async def test_a_preflight_of_an_unknown_path_is_a_404_problem(api: Api) -> None:
    answer = await api.call(
        "OPTIONS",
        "/api/v1/nothing-here",
        headers={"Origin": SHOP, "Access-Control-Request-Method": "GET"},
    )
    assert answer.status == 404
    assert answer.content_type == "application/problem+json"
    assert ALLOW_ORIGIN not in answer.headers
    assert answer.headers["X-Request-Id"]


async def test_an_options_request_without_an_origin_lists_the_methods(api: Api) -> None:
    answer = await api.call("OPTIONS", "/api/v1/bookings")
    assert answer.status == 204
    assert answer.headers["Allow"] == "GET, POST"
    assert ALLOW_ORIGIN not in answer.headers


async def test_a_401_is_readable_from_any_origin(api: Api) -> None:
    # A widget must be able to tell that its session token expired.
    answer = await api.get(
        "/api/v1/availability", "cal_ses_" + "x" * 40, headers={"Origin": ELSEWHERE}
    )
    assert answer.status == 401
    assert answer.headers[ALLOW_ORIGIN] == ELSEWHERE


async def test_the_openapi_document_is_readable_from_any_origin(api: Api) -> None:
    answer = await api.get("/api/v1/openapi.json", headers={"Origin": ELSEWHERE})
    assert answer.headers[ALLOW_ORIGIN] == "*"


async def test_a_widget_on_an_allowed_origin_holds_and_books(tenant: Tenant) -> None:
    salon = await open_salon(tenant)
    await allow(tenant, SHOP)
    token = await tenant.session_token()
    origin = {"Origin": SHOP}
    hold = await tenant.api.post(
        "/api/v1/bookings/hold",
        token,
        {
            "service_id": salon.service_id,
            "location_id": salon.location_id,
            "starts_at": tomorrow_at(10).isoformat(),
        },
        headers=origin,
    )
    assert created(hold) and hold.headers[ALLOW_ORIGIN] == SHOP
    booking = await tenant.api.post(
        "/api/v1/bookings",
        token,
        {
            "hold_id": hold.body["hold_id"],
            "client": {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"},
        },
        headers=origin,
    )
    assert created(booking) and booking.headers[ALLOW_ORIGIN] == SHOP

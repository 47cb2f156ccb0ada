"""The OpenAPI document describes time off, the booking policy, versions and no-shows."""

from __future__ import annotations

from typing import Any

from tests.api import Api

OPENAPI = "/api/v1/openapi.json"


async def document(api: Api) -> dict[str, Any]:
    answer = await api.get(OPENAPI)
    assert answer.status == 200
    body: dict[str, Any] = answer.body
    return body


async def test_time_off_routes_are_documented(api: Api) -> None:
    paths = (await document(api))["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/time-off"])
    assert {"get", "delete"} <= set(paths["/api/v1/time-off/{id}"])
    listed = {p["name"] for p in paths["/api/v1/time-off"]["get"]["parameters"]}
    assert {"staff_id", "location_id", "from", "to", "cursor", "limit"} <= listed
    created = paths["/api/v1/time-off"]["post"]["responses"]["201"]
    schema_ref = created["content"]["application/json"]["schema"]["$ref"]
    schemas = (await document(api))["components"]["schemas"]
    assert "conflicting_booking_ids" in schemas[schema_ref.rsplit("/", 1)[1]]["properties"]


async def test_booking_policy_is_documented_on_businesses_and_services(api: Api) -> None:
    schemas = (await document(api))["components"]["schemas"]
    for name in ("Business", "Service"):
        assert "booking_policy" in schemas[name]["properties"], name
    booking = schemas["Booking"]["properties"]
    assert {"policy", "version", "cancellation_reason", "cancelled_by"} <= set(booking)


async def test_booking_changes_document_if_match_etag_and_412(api: Api) -> None:
    item = (await document(api))["paths"]["/api/v1/bookings/{booking_id}"]
    for method in ("patch", "delete"):
        names = {p["name"] for p in item[method]["parameters"]}
        assert "If-Match" in names, method
        assert "412" in item[method]["responses"], method
    for method in ("get", "patch", "delete"):
        assert "ETag" in item[method]["responses"]["200"]["headers"], method


async def test_no_show_is_a_documented_status_and_webhook_event(api: Api) -> None:
    text = str(await document(api))
    assert "no_show" in text
    assert "booking.no_show" in text

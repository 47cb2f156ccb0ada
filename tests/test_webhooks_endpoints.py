"""Managing webhook endpoints through the gateway: business and hub keys only."""

from __future__ import annotations

import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Tenant, new_tenant
from tests.webhook_receiver import ENDPOINTS, allow_private_targets, create_endpoint

# Nothing is ever delivered in these tests (they make no bookings): any URL will do.
URL = "http://127.0.0.1:9/hooks"


@pytest.fixture(autouse=True, scope="module")
def _receivers_on_localhost(stack: LocalStack) -> None:
    allow_private_targets(stack)


async def test_creating_returns_the_endpoint_and_its_secret_once(tenant: Tenant) -> None:
    endpoint = await create_endpoint(tenant, URL, description="Bookings to CRM")
    assert endpoint["object"] == "webhook_endpoint"
    assert endpoint["url"] == URL
    assert endpoint["events"] == ["*"]
    assert endpoint["description"] == "Bookings to CRM"
    assert endpoint["enabled"] is True and endpoint["status"] == "enabled"
    assert endpoint["secret"].startswith("whsec_")
    shown = await tenant.api.get(f"{ENDPOINTS}/{endpoint['id']}", tenant.business_key)
    assert shown.status == 200
    assert "secret" not in shown.body
    assert shown.body == {k: v for k, v in endpoint.items() if k != "secret"}


async def test_endpoints_are_listed_in_cursor_pages(tenant: Tenant) -> None:
    made = [(await create_endpoint(tenant, f"{URL}/{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = ""
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await tenant.api.get(ENDPOINTS, tenant.business_key, params=params)
        assert page.status == 200, page.body
        seen += [e["id"] for e in page.body["data"]]
        assert all("secret" not in e for e in page.body["data"])
        if not page.body["has_more"]:
            break
        cursor = page.body["next_cursor"]
    assert seen == made


async def test_updating_changes_only_the_named_fields(tenant: Tenant) -> None:
    endpoint = await create_endpoint(tenant, URL, description="old")
    path = f"{ENDPOINTS}/{endpoint['id']}"
    answer = await tenant.api.patch(
        path, tenant.business_key, {"events": ["booking.cancelled", "booking.created"]}
    )
    assert answer.status == 200, answer.body
    assert answer.body["events"] == ["booking.cancelled", "booking.created"]
    assert answer.body["description"] == "old"
    assert answer.body["url"] == URL
    answer = await tenant.api.patch(
        path, tenant.business_key, {"url": f"{URL}/new", "description": "new"}
    )
    assert (answer.body["url"], answer.body["description"]) == (f"{URL}/new", "new")


async def test_disabling_and_enabling_by_request(tenant: Tenant) -> None:
    endpoint = await create_endpoint(tenant, URL)
    path = f"{ENDPOINTS}/{endpoint['id']}"
    off = await tenant.api.patch(path, tenant.business_key, {"enabled": False})
    assert off.body["status"] == "disabled"
    assert off.body["disabled_reason"] == "disabled by request"
    assert off.body["disabled_at"]
    on = await tenant.api.patch(path, tenant.business_key, {"enabled": True})
    assert on.body["status"] == "enabled"
    assert on.body["disabled_reason"] is None and on.body["disabled_at"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": URL, "events": ["booking.exploded"]}, "events.0"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["*", "booking.created"]}, "events"),
        ({"url": URL, "colour": "blue"}, "colour"),
        ({}, "url"),
    ],
)
async def test_invalid_endpoints_are_422_naming_the_field(
    tenant: Tenant, body: dict[str, object], field: str
) -> None:
    answer = await tenant.api.post(ENDPOINTS, tenant.business_key, body)
    assert answer.status == 422, answer.body
    assert field in answer.body["errors"], answer.body


async def test_deleting_an_endpoint_makes_it_404(tenant: Tenant) -> None:
    endpoint = await create_endpoint(tenant, URL)
    path = f"{ENDPOINTS}/{endpoint['id']}"
    assert (await tenant.api.delete(path, tenant.business_key)).status == 204
    assert (await tenant.api.get(path, tenant.business_key)).status == 404
    assert (await tenant.api.delete(path, tenant.business_key)).status == 404


async def test_a_hub_key_manages_the_endpoints_of_the_business_it_names(tenant: Tenant) -> None:
    as_hub = {"Calendence-Business": tenant.business_id}
    answer = await tenant.api.post(ENDPOINTS, tenant.hub_key, {"url": URL}, headers=as_hub)
    assert answer.status == 201, answer.body
    listed = await tenant.api.get(ENDPOINTS, tenant.business_key)
    assert [e["id"] for e in listed.body["data"]] == [answer.body["id"]]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("POST", ""),
        ("GET", ""),
        ("GET", "/{id}"),
        ("PATCH", "/{id}"),
        ("DELETE", "/{id}"),
        ("POST", "/{id}/rotate-secret"),
        ("GET", "/{id}/deliveries"),
        ("POST", "/{id}/redeliver"),
    ],
)
async def test_a_session_token_gets_403(tenant: Tenant, method: str, suffix: str) -> None:
    endpoint = await create_endpoint(tenant, URL)
    token = await tenant.session_token()
    path = ENDPOINTS + suffix.format(id=endpoint["id"])
    answer = await tenant.api.call(method, path, token, {"url": URL})
    assert answer.status == 403, answer.body


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-secret"),
        ("GET", "/deliveries"),
        ("POST", "/redeliver"),
    ],
)
async def test_another_business_endpoint_is_404(
    tenant: Tenant, hub: dict[str, str], method: str, suffix: str
) -> None:
    theirs = await create_endpoint(await new_tenant(tenant.api, hub["key"]), URL)
    path = f"{ENDPOINTS}/{theirs['id']}{suffix}"
    answer = await tenant.api.call(
        method, path, tenant.business_key, {"event_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert answer.status == 404, answer.body


async def test_a_malformed_endpoint_id_is_404(tenant: Tenant) -> None:
    answer = await tenant.api.get(f"{ENDPOINTS}/not-an-id", tenant.business_key)
    assert answer.status == 404

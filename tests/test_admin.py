"""The operator's tools: the admin command line and the demo data it loads."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Api, created
from tests.catalogue_helpers import BUSINESS_HEADER, problem


async def admin(stack: LocalStack, *args: str) -> Any:
    return await asyncio.to_thread(stack.admin, *args)


def run_admin(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `calendence-admin` command, as an operator types it."""
    command = Path(sys.executable).parent / "calendence-admin"
    return subprocess.run(
        [str(command), *args], env=stack.env, capture_output=True, text=True, check=False
    )


async def test_admin_creates_a_hub(stack: LocalStack) -> None:
    made = await admin(stack, "create-hub", "--name", "Harbour Hub")
    assert made["name"] == "Harbour Hub"
    uuid.UUID(made["id"])


async def test_admin_hub_key_lists_the_businesses_of_its_hub(api: Api, stack: LocalStack) -> None:
    hub = await admin(stack, "create-hub", "--name", "Listing Hub")
    key = await admin(stack, "create-key", "--kind", "hub", "--hub-id", hub["id"])
    assert key["kind"] == "hub"
    assert key["hub_id"] == hub["id"]
    assert key["business_id"] is None
    business = await admin(stack, "create-business", "--name", "Corner Cafe", "--hub-id", hub["id"])
    assert business["hub_id"] == hub["id"]
    listed = await api.get("/api/v1/businesses", key["token"])
    assert [item["id"] for item in listed.body["data"]] == [business["id"]]


async def test_admin_business_key_works_on_its_business(api: Api, stack: LocalStack) -> None:
    hub = await admin(stack, "create-hub", "--name", "Key Hub")
    business = await admin(stack, "create-business", "--name", "Barber", "--hub-id", hub["id"])
    key = await admin(
        stack, "create-key", "--kind", "business", "--business-id", business["id"], "--name", "pos"
    )
    assert key["token"].startswith("cal_biz_")
    assert (key["kind"], key["business_id"], key["hub_id"]) == (
        "business",
        business["id"],
        hub["id"],
    )
    location = created(
        await api.post("/api/v1/locations", key["token"], {"name": "Shop", "timezone": "UTC"})
    )
    hub_key = await admin(stack, "create-key", "--kind", "hub", "--hub-id", hub["id"])
    seen = await api.get(
        f"/api/v1/locations/{location['id']}",
        hub_key["token"],
        headers={BUSINESS_HEADER: business["id"]},
    )
    assert seen.status == 200


async def test_admin_creates_a_business_in_no_hub(
    api: Api, stack: LocalStack, hub: dict[str, str]
) -> None:
    business = await admin(stack, "create-business", "--name", "Independent")
    assert business["hub_id"] is None
    key = await admin(stack, "create-key", "--kind", "business", "--business-id", business["id"])
    assert (await api.get("/api/v1/locations", key["token"])).status == 200
    # No hub's key reaches it.
    answer = await api.get(
        "/api/v1/locations", hub["key"], headers={BUSINESS_HEADER: business["id"]}
    )
    problem(answer, 404)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create-business", "--name", "X", "--hub-id", "{random}"], "no such hub"),
        (["create-key", "--kind", "hub", "--hub-id", "{random}"], "no such hub"),
        (["create-key", "--kind", "business", "--business-id", "{random}"], "no such business"),
        (["revoke-key", "--key-id", "{random}"], "no such key"),
    ],
    ids=["business-in-unknown-hub", "key-of-unknown-hub", "key-of-unknown-business", "revoke"],
)
async def test_admin_refuses_unknown_ids_in_one_line(
    stack: LocalStack, args: list[str], message: str
) -> None:
    done = await asyncio.to_thread(run_admin, stack, *[a.format(random=uuid.uuid4()) for a in args])
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == f"calendence-admin: {message}"


@pytest.mark.parametrize(
    "args",
    [
        ["create-key", "--kind", "business"],
        ["create-key", "--kind", "hub"],
        ["create-key", "--kind", "session", "--business-id", str(uuid.uuid4())],
        ["create-business", "--name", "X", "--hub-id", "not-a-uuid"],
        ["create-hub"],
    ],
    ids=["business-key-no-business", "hub-key-no-hub", "session-kind", "bad-uuid", "no-name"],
)
async def test_admin_refuses_incomplete_commands_with_usage(
    stack: LocalStack, args: list[str]
) -> None:
    done = await asyncio.to_thread(run_admin, stack, *args)
    assert done.returncode == 2
    assert "usage: calendence-admin" in done.stderr
    assert "Traceback" not in done.stderr


async def test_calendence_admin_is_an_installed_command(stack: LocalStack) -> None:
    done = await asyncio.to_thread(run_admin, stack, "create-hub", "--name", "Installed")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "Installed"


# --- the demo data ---------------------------------------------------------------------------


async def demo_catalogue(api: Api, key: str) -> dict[str, list[dict[str, Any]]]:
    return {
        collection: (await api.get(f"/api/v1/{collection}", key)).body["data"]
        for collection in ("locations", "services", "staff")
    }


async def test_demo_is_a_hub_a_business_a_location_two_services_and_two_staff(
    api: Api, stack: LocalStack
) -> None:
    demo = await admin(stack, "demo")
    catalogue = await demo_catalogue(api, demo["business_key"])
    assert [item["id"] for item in catalogue["locations"]] == [demo["location_id"]]
    services = {item["id"]: item for item in catalogue["services"]}
    assert set(services) == {demo["service_id"], demo["deposit_service_id"]}
    assert services[demo["service_id"]]["deposit_amount"] == 0
    assert services[demo["deposit_service_id"]]["deposit_amount"] > 0
    assert sorted(item["id"] for item in catalogue["staff"]) == sorted(demo["staff_ids"])
    for member in catalogue["staff"]:
        assert member["location_ids"] == [demo["location_id"]]
        assert set(member["service_ids"]) <= set(services)


async def test_demo_keys_have_their_kinds_and_work(api: Api, stack: LocalStack) -> None:
    demo = await admin(stack, "demo")
    assert demo["business_key"].startswith("cal_biz_")
    assert demo["hub_key"].startswith("cal_hub_")
    listed = await api.get("/api/v1/businesses", demo["hub_key"])
    assert [item["id"] for item in listed.body["data"]] == [demo["business_id"]]
    assert listed.body["data"][0]["hub_id"] == demo["hub_id"]
    via_hub = await api.get(
        "/api/v1/services", demo["hub_key"], headers={BUSINESS_HEADER: demo["business_id"]}
    )
    assert len(via_hub.body["data"]) == 2


async def test_running_the_demo_twice_does_not_duplicate_the_catalogue(
    api: Api, stack: LocalStack
) -> None:
    first = await admin(stack, "demo")
    second = await admin(stack, "demo")
    ids = ("hub_id", "business_id", "location_id", "service_id", "deposit_service_id", "staff_ids")
    assert {k: first[k] for k in ids} == {k: second[k] for k in ids}
    # Fresh keys each time; the earlier ones keep working.
    assert first["business_key"] != second["business_key"]
    one = await demo_catalogue(api, first["business_key"])
    assert one == await demo_catalogue(api, second["business_key"])
    assert [len(one[c]) for c in ("locations", "services", "staff")] == [1, 2, 2]


async def test_a_newcomer_session_token_cannot_create_a_service(
    api: Api, stack: LocalStack
) -> None:
    """The walk-through: list with the printed key, make a session, be refused a write."""
    demo = await admin(stack, "demo")
    assert (await api.get("/api/v1/services", demo["business_key"])).status == 200
    assert (await api.get("/api/v1/locations", demo["business_key"])).status == 200
    session = created(await api.post("/api/v1/sessions", demo["business_key"]))
    answer = await api.post(
        "/api/v1/services",
        session["token"],
        {
            "name": "Sneaky",
            "duration_minutes": 30,
            "price_amount": 100,
            "currency": "GBP",
            "location_ids": [demo["location_id"]],
        },
    )
    problem(answer, 403)
    assert len((await api.get("/api/v1/services", demo["business_key"])).body["data"]) == 2

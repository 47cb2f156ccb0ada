"""Keys and tenancy: the three key kinds, who may do what, and revocation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from calendence import events
from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port
from calendence.devstack.stack import LocalStack
from calendence.devstack.stores import RunningStore, start_nats

from tests.api import Api, Tenant, created, new_tenant
from tests.catalogue_helpers import BUSINESS_HEADER, database, problem, status_within

LOCATIONS = "/api/v1/locations"
SESSIONS = "/api/v1/sessions"
KEYS = "/api/v1/api-keys"
# What a revocation must beat: the gateway caches a key this long (tests set 30 s).
REVOCATION_SECONDS = 1.0

# The `db` fixture.
pytest_plugins = ("tests.catalogue_fixtures",)


@dataclass
class Kit:
    """A business with a key of each kind, one location and a spare key to revoke."""

    tenant: Tenant
    session: str
    location_id: str
    spare_key_id: str

    def key(self, kind: str) -> str:
        return {
            "hub": self.tenant.hub_key,
            "business": self.tenant.business_key,
            "session": self.session,
        }[kind]


@pytest.fixture
async def kit(tenant: Tenant) -> Kit:
    location = await tenant.location()
    spare = await business_key(tenant.api, tenant)
    return Kit(tenant, await tenant.session_token(), location["id"], spare["id"])


async def new_hub(stack: LocalStack) -> dict[str, str]:
    """Another hub and its key, made with the admin CLI."""
    made = await asyncio.to_thread(stack.admin, "create-hub", "--name", "Other Hub")
    key = await asyncio.to_thread(
        stack.admin, "create-key", "--kind", "hub", "--hub-id", made["id"]
    )
    return {"id": made["id"], "key": key["token"], "key_id": key["id"]}


async def business_key(api: Api, tenant: Tenant) -> dict[str, Any]:
    """A new business key, made by the tenant's hub key."""
    answer = await api.post(KEYS, tenant.hub_key, headers={BUSINESS_HEADER: tenant.business_id})
    made: dict[str, Any] = created(answer)
    return made


async def refused_within_a_second(gateway: Api, key: str, business_id: str = "") -> None:
    """The key answers 401 within REVOCATION_SECONDS (polled), though its use was cached."""
    headers = {BUSINESS_HEADER: business_id} if business_id else {}
    status, elapsed = await status_within(
        lambda: gateway.get(LOCATIONS, key, headers=headers), 401, REVOCATION_SECONDS
    )
    assert status == 401, f"still {status} after {elapsed:.2f}s"


# A request per route class: (method, path, body). Hub keys add the business header
# where the route acts for one business.
Route = Callable[[Kit], tuple[str, str, Any]]
ROUTES: dict[str, tuple[Route, bool]] = {
    "create-session": (lambda k: ("POST", SESSIONS, None), True),
    "create-business": (lambda k: ("POST", "/api/v1/businesses", {"name": "Shop"}), False),
    "list-businesses": (lambda k: ("GET", "/api/v1/businesses", None), False),
    "create-business-key": (lambda k: ("POST", KEYS, None), True),
    "revoke-key": (lambda k: ("DELETE", f"{KEYS}/{k.spare_key_id}", None), True),
    "create-location": (
        lambda k: ("POST", LOCATIONS, {"name": "New", "timezone": "Europe/Paris"}),
        True,
    ),
    "list-locations": (lambda k: ("GET", LOCATIONS, None), True),
    "show-location": (lambda k: ("GET", f"{LOCATIONS}/{k.location_id}", None), True),
    "update-location": (
        lambda k: ("PATCH", f"{LOCATIONS}/{k.location_id}", {"name": "Renamed"}),
        True,
    ),
    "delete-location": (lambda k: ("DELETE", f"{LOCATIONS}/{k.location_id}", None), True),
}
HUB_ALLOWED = {
    "create-session": 201,
    "create-business": 201,
    "list-businesses": 200,
    "create-business-key": 201,
    "revoke-key": 204,
    "create-location": 201,
    "list-locations": 200,
    "show-location": 200,
    "update-location": 200,
    "delete-location": 204,
}
ALLOWED = {
    "hub": HUB_ALLOWED,
    # Businesses and keys for them are the hub's to make.
    "business": HUB_ALLOWED
    | dict.fromkeys(["create-business", "list-businesses", "create-business-key"], 403),
    "session": dict.fromkeys(ROUTES, 403),
}
MATRIX = [
    (kind, route, status) for kind, table in ALLOWED.items() for route, status in table.items()
]


async def send(api: Api, kit: Kit, route: str, key: str | None, kind: str) -> Any:
    build, acts_for_business = ROUTES[route]
    method, path, body = build(kit)
    headers = (
        {BUSINESS_HEADER: kit.tenant.business_id} if kind == "hub" and acts_for_business else {}
    )
    return await api.call(method, path, key, body, headers=headers)


@pytest.mark.parametrize(
    ("kind", "route", "status"), MATRIX, ids=[f"{k}-{r}-{s}" for k, r, s in MATRIX]
)
async def test_each_key_kind_on_each_route_class(
    api: Api, kit: Kit, kind: str, route: str, status: int
) -> None:
    answer = await send(api, kit, route, kit.key(kind), kind)
    if status == 403:
        problem(answer, 403)
    else:
        assert answer.status == status, (answer.status, answer.body)


async def expired_session(kit: Kit, stack: LocalStack) -> str:
    token = await kit.tenant.session_token()
    async with database(stack) as connection:
        await connection.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_hash = $1",
            hashlib.sha256(token.encode()).digest(),
        )
    return token


async def revoked_business_key(kit: Kit, stack: LocalStack) -> str:
    tenant = kit.tenant
    made = await business_key(tenant.api, tenant)
    assert (await tenant.api.delete(f"{KEYS}/{made['id']}", tenant.hub_key)).status == 204
    return str(made["token"])


async def unknown_key(kit: Kit, stack: LocalStack) -> str:
    return "cal_biz_" + uuid.uuid4().hex + uuid.uuid4().hex


BAD_CREDENTIALS = {
    "unknown": unknown_key,
    "expired": expired_session,
    "revoked": revoked_business_key,
}
BAD_HEADERS = {
    "missing": {},
    "basic-scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "bearer-without-token": {"Authorization": "Bearer "},
    "no-scheme": {"Authorization": "cal_biz_" + "a" * 43},
    "no-prefix": {"Authorization": "Bearer " + "a" * 50},
    "too-short": {"Authorization": "Bearer cal_biz_abc"},
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("credential", list(BAD_HEADERS))
async def test_missing_or_malformed_key_answers_401(
    api: Api, kit: Kit, route: str, credential: str
) -> None:
    build, _ = ROUTES[route]
    method, path, body = build(kit)
    answer = await api.call(method, path, None, body, headers=BAD_HEADERS[credential])
    problem(answer, 401)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("credential", list(BAD_CREDENTIALS))
async def test_unknown_expired_or_revoked_key_answers_401(
    api: Api, stack: LocalStack, kit: Kit, route: str, credential: str
) -> None:
    key = await BAD_CREDENTIALS[credential](kit, stack)
    answer = await send(api, kit, route, key, "business")
    problem(answer, 401)


async def test_a_401_writes_nothing(api: Api, kit: Kit) -> None:
    body = {"name": "Never", "timezone": "UTC"}
    problem(await api.post(LOCATIONS, "cal_biz_" + "x" * 43, body), 401)
    listed = await api.get(LOCATIONS, kit.tenant.business_key)
    assert [item["id"] for item in listed.body["data"]] == [kit.location_id]


# --- what a key looks like and how it is kept -------------------------------------------


async def test_hub_key_made_by_the_admin_cli_starts_cal_hub(stack: LocalStack) -> None:
    assert (await new_hub(stack))["key"].startswith("cal_hub_")


async def test_business_key_made_by_a_hub_key_starts_cal_biz(api: Api, tenant: Tenant) -> None:
    made = await business_key(api, tenant)
    assert made["token"].startswith("cal_biz_")
    assert made["object"] == "api_key"
    assert made["kind"] == "business"
    assert made["business_id"] == tenant.business_id
    assert made["expires_at"] is None


async def test_session_token_starts_cal_ses_and_expires_in_two_hours(
    api: Api, tenant: Tenant
) -> None:
    before = datetime.now(UTC)
    made = created(await api.post(SESSIONS, tenant.business_key))
    after = datetime.now(UTC)
    assert made["token"].startswith("cal_ses_")
    assert made["object"] == "session"
    assert made["kind"] == "session"
    assert made["business_id"] == tenant.business_id
    expires_at = datetime.fromisoformat(made["expires_at"])
    two_hours = timedelta(hours=2)
    assert before + two_hours - timedelta(seconds=1) <= expires_at <= after + two_hours


async def test_keys_carry_at_least_128_random_bits(api: Api, tenant: Tenant) -> None:
    tokens = [created(await api.post(SESSIONS, tenant.business_key))["token"] for _ in range(20)]
    for token in tokens:
        secret = token.removeprefix("cal_ses_")
        # base64url: 6 bits a character.
        assert re.fullmatch(r"[A-Za-z0-9_-]+", secret), token
        assert len(secret) * 6 >= 128
    assert len(set(tokens)) == len(tokens)


async def test_only_the_hash_of_a_key_is_stored(
    api: Api, tenant: Tenant, db: asyncpg.Connection
) -> None:
    made = await business_key(api, tenant)
    token = made["token"]
    row = await db.fetchrow("SELECT * FROM api_keys WHERE id = $1", uuid.UUID(made["id"]))
    assert row is not None
    assert bytes(row["key_hash"]) == hashlib.sha256(token.encode()).digest()
    # Anywhere in the table, in any column, as text or as bytes.
    for (text,) in await db.fetch("SELECT t::text FROM api_keys t"):
        assert token not in text
        assert token.encode().hex() not in text
    assert token.encode() not in bytes(row["key_hash"])


async def test_last_used_at_is_set_when_a_key_is_used(
    api: Api, tenant: Tenant, db: asyncpg.Connection
) -> None:
    made = await business_key(api, tenant)
    key_id = uuid.UUID(made["id"])
    assert await db.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id) is None
    started = datetime.now(UTC)
    assert (await api.get(LOCATIONS, made["token"])).status == 200
    used = await db.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id)
    assert used is not None
    assert used >= started - timedelta(seconds=5)


async def test_expired_session_token_answers_401(api: Api, stack: LocalStack, kit: Kit) -> None:
    token = await expired_session(kit, stack)
    # A live session would get 403 here: the key is refused before its kind is looked at.
    body = problem(await api.get(LOCATIONS, token), 401)
    assert "expired" in body["detail"]


async def test_gateway_refuses_a_cached_session_once_it_expires(
    api: Api, tenant: Tenant, db: asyncpg.Connection
) -> None:
    token = await tenant.session_token()
    await db.execute(
        "UPDATE api_keys SET expires_at = now() + interval '1.5 seconds' WHERE key_hash = $1",
        hashlib.sha256(token.encode()).digest(),
    )
    # Authenticated (and cached for 30 s): a session may not list locations.
    problem(await api.get(LOCATIONS, token), 403)
    await asyncio.sleep(1.7)
    # Well inside the cache's 30 s, yet the gateway itself sees the expiry.
    problem(await api.get(LOCATIONS, token), 401)


# --- sessions ----------------------------------------------------------------------------


async def test_hub_key_makes_a_session_for_a_business_named_in_the_body(
    api: Api, tenant: Tenant
) -> None:
    made = created(await api.post(SESSIONS, tenant.hub_key, {"business_id": tenant.business_id}))
    assert made["business_id"] == tenant.business_id
    assert made["token"].startswith("cal_ses_")


async def test_hub_key_makes_a_session_for_a_business_named_in_the_header(
    api: Api, tenant: Tenant
) -> None:
    answer = await api.post(SESSIONS, tenant.hub_key, headers={BUSINESS_HEADER: tenant.business_id})
    assert created(answer)["business_id"] == tenant.business_id


async def test_hub_key_naming_no_business_cannot_make_a_session(api: Api, tenant: Tenant) -> None:
    answer = await api.post(SESSIONS, tenant.hub_key)
    assert "business_id" in problem(answer, 422)["errors"]


async def test_session_token_cannot_make_another_session(api: Api, kit: Kit) -> None:
    problem(await api.post(SESSIONS, kit.session), 403)


# --- tenants never see each other ------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("collection", ["locations", "services", "staff", "custom-fields"])
async def test_another_business_resource_answers_404(
    api: Api, tenant: Tenant, hub: dict[str, str], method: str, collection: str
) -> None:
    other = await new_tenant(api, hub["key"])
    location = await other.location()
    service = await other.service([location["id"]])
    made = {
        "locations": location,
        "services": service,
        "staff": await other.staff([service["id"]], [location["id"]]),
        "custom-fields": await other.create(
            "custom-fields", {"key": "colour", "label": "Colour", "type": "text"}
        ),
    }[collection]
    path = f"/api/v1/{collection}/{made['id']}"
    body = {"name": "Mine now"} if collection != "custom-fields" else {"label": "Mine now"}
    answer = await api.call(method, path, tenant.business_key, body if method == "PATCH" else None)
    problem(answer, 404)
    # The owner still sees it as it was.
    assert (await api.get(path, other.business_key)).body == made


async def test_unknown_and_malformed_ids_answer_404(api: Api, tenant: Tenant) -> None:
    problem(await api.get(f"{LOCATIONS}/{uuid.uuid4()}", tenant.business_key), 404)
    problem(await api.get(f"{LOCATIONS}/not-an-id", tenant.business_key), 404)


async def test_hub_key_works_on_each_business_of_its_hub(api: Api, hub: dict[str, str]) -> None:
    first, second = await new_tenant(api, hub["key"]), await new_tenant(api, hub["key"])
    for tenant in (first, second):
        answer = await api.post(
            LOCATIONS,
            hub["key"],
            {"name": f"For {tenant.business_id}", "timezone": "UTC"},
            headers={BUSINESS_HEADER: tenant.business_id},
        )
        created(answer)
    for tenant in (first, second):
        listed = await api.get(LOCATIONS, tenant.business_key)
        assert [item["name"] for item in listed.body["data"]] == [f"For {tenant.business_id}"]
        via_hub = await api.get(
            LOCATIONS, hub["key"], headers={BUSINESS_HEADER: tenant.business_id}
        )
        assert via_hub.body["data"] == listed.body["data"]


@pytest.mark.parametrize(
    "route", ["create-session", "create-business-key", "create-location", "list-locations"]
)
async def test_hub_key_on_a_business_outside_its_hub_answers_404(
    api: Api, stack: LocalStack, kit: Kit, route: str
) -> None:
    stranger = await new_hub(stack)
    build, _ = ROUTES[route]
    method, path, body = build(kit)
    answer = await api.call(
        method, path, stranger["key"], body, headers={BUSINESS_HEADER: kit.tenant.business_id}
    )
    problem(answer, 404)


async def test_hub_key_cannot_make_a_session_for_a_business_outside_its_hub(
    api: Api, stack: LocalStack, tenant: Tenant
) -> None:
    stranger = await new_hub(stack)
    problem(await api.post(SESSIONS, stranger["key"], {"business_id": tenant.business_id}), 404)


async def test_hub_lists_only_its_own_businesses(
    api: Api, stack: LocalStack, tenant: Tenant
) -> None:
    stranger = await new_hub(stack)
    mine = created(await api.post("/api/v1/businesses", stranger["key"], {"name": "Mine"}))
    listed = await api.get("/api/v1/businesses", stranger["key"])
    assert [item["id"] for item in listed.body["data"]] == [mine["id"]]
    assert tenant.business_id not in {item["id"] for item in listed.body["data"]}


async def test_a_hub_pages_through_its_businesses_each_once(api: Api, stack: LocalStack) -> None:
    other = await new_hub(stack)
    made = [
        created(await api.post("/api/v1/businesses", other["key"], {"name": f"Shop {i}"}))["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        listed = (await api.get("/api/v1/businesses", other["key"], params=params)).body
        seen += [item["id"] for item in listed["data"]]
        if not listed["has_more"]:
            break
        params["cursor"] = listed["next_cursor"]
    assert seen == made


@pytest.mark.parametrize("route", ["list-locations", "create-session"])
async def test_business_key_naming_another_business_answers_404(
    api: Api, hub: dict[str, str], kit: Kit, route: str
) -> None:
    other = await new_tenant(api, hub["key"])
    build, _ = ROUTES[route]
    method, path, body = build(kit)
    answer = await api.call(
        method, path, kit.tenant.business_key, body, headers={BUSINESS_HEADER: other.business_id}
    )
    problem(answer, 404)


async def test_business_key_cannot_make_a_session_for_another_business(
    api: Api, hub: dict[str, str], tenant: Tenant
) -> None:
    other = await new_tenant(api, hub["key"])
    problem(await api.post(SESSIONS, tenant.business_key, {"business_id": other.business_id}), 404)


async def test_malformed_business_header_answers_422(api: Api, tenant: Tenant) -> None:
    answer = await api.get(LOCATIONS, tenant.hub_key, headers={BUSINESS_HEADER: "shop-1"})
    assert BUSINESS_HEADER in problem(answer, 422)["errors"]


async def test_hub_key_naming_no_business_on_the_catalogue_answers_422(
    api: Api, tenant: Tenant
) -> None:
    answer = await api.get(LOCATIONS, tenant.hub_key)
    assert BUSINESS_HEADER in problem(answer, 422)["errors"]


async def test_revoking_another_business_key_answers_404(
    api: Api, hub: dict[str, str], tenant: Tenant
) -> None:
    other = await new_tenant(api, hub["key"])
    theirs = await business_key(api, other)
    problem(await api.delete(f"{KEYS}/{theirs['id']}", tenant.business_key), 404)
    assert (await api.get(LOCATIONS, theirs["token"])).status == 200


async def test_hub_key_revoking_a_key_outside_its_hub_answers_404(
    api: Api, stack: LocalStack, kit: Kit
) -> None:
    stranger = await new_hub(stack)
    problem(await api.delete(f"{KEYS}/{kit.spare_key_id}", stranger["key"]), 404)


async def test_business_key_cannot_revoke_its_hub_key(
    api: Api, stack: LocalStack, hub: dict[str, str]
) -> None:
    other = await new_hub(stack)
    tenant = await new_tenant(api, other["key"])
    problem(await api.delete(f"{KEYS}/{other['key_id']}", tenant.business_key), 404)
    assert (await api.get("/api/v1/businesses", other["key"])).status == 200


async def test_revoking_an_unknown_or_malformed_key_id_answers_404(
    api: Api, tenant: Tenant
) -> None:
    problem(await api.delete(f"{KEYS}/{uuid.uuid4()}", tenant.business_key), 404)
    problem(await api.delete(f"{KEYS}/not-an-id", tenant.business_key), 404)


# --- revocation --------------------------------------------------------------------------


async def test_revoked_business_key_stops_working_within_a_second(api: Api, tenant: Tenant) -> None:
    made = await business_key(api, tenant)
    # Used once: now the gateway holds it in its cache for 30 s.
    assert (await api.get(LOCATIONS, made["token"])).status == 200
    assert (await api.delete(f"{KEYS}/{made['id']}", tenant.hub_key)).status == 204
    await refused_within_a_second(api, made["token"])


async def test_business_key_revokes_itself(api: Api, tenant: Tenant) -> None:
    made = await business_key(api, tenant)
    assert (await api.get(LOCATIONS, made["token"])).status == 200
    assert (await api.delete(f"{KEYS}/{made['id']}", made["token"])).status == 204
    await refused_within_a_second(api, made["token"])


async def test_revoked_session_token_stops_working_within_a_second(
    api: Api, tenant: Tenant
) -> None:
    made = created(await api.post(SESSIONS, tenant.business_key))
    # Authenticated and cached: a session may not list locations, but it is known.
    problem(await api.get(LOCATIONS, made["token"]), 403)
    assert (await api.delete(f"{KEYS}/{made['id']}", tenant.business_key)).status == 204
    await refused_within_a_second(api, made["token"])


async def test_revoked_hub_key_stops_working_on_every_business_within_a_second(
    api: Api, stack: LocalStack
) -> None:
    other = await new_hub(stack)
    tenants = [await new_tenant(api, other["key"]) for _ in range(2)]
    for tenant in tenants:
        answer = await api.get(
            LOCATIONS, other["key"], headers={BUSINESS_HEADER: tenant.business_id}
        )
        assert answer.status == 200
    assert (await api.delete(f"{KEYS}/{other['key_id']}", other["key"])).status == 204
    for tenant in tenants:
        await refused_within_a_second(api, other["key"], tenant.business_id)
    # The business keys the hub key made are keys of their own and live on.
    assert (await api.get(LOCATIONS, tenants[0].business_key)).status == 200


async def test_key_revoked_with_the_admin_cli_stops_working_within_a_second(
    api: Api, stack: LocalStack, tenant: Tenant
) -> None:
    made = await asyncio.to_thread(
        stack.admin, "create-key", "--kind", "business", "--business-id", tenant.business_id
    )
    assert (await api.get(LOCATIONS, made["token"])).status == 200
    revoked = await asyncio.to_thread(stack.admin, "revoke-key", "--key-id", made["id"])
    assert revoked == {"id": made["id"], "revoked": True}
    await refused_within_a_second(api, made["token"])


@contextlib.contextmanager
def replica(
    stack: LocalStack, log_dir: Path, service: str = "gateway", **env: str
) -> Iterator[str]:
    """Another replica of `service` beside the stack's, as a deployment would scale it.

    Yields its address (the URL of a gateway). Started and stopped here, so a test never
    restarts the processes every other test shares.
    """
    port = free_port()
    module = service.replace("-", "_")
    process = ManagedProcess(
        f"{service}-2",
        [sys.executable, "-m", module],
        log_dir / f"{service}-2.log",
        env={**stack.env, f"{module.upper()}_PORT": str(port), **env},
    )
    try:
        wait_for_port(port, 60, process)
        yield f"http://127.0.0.1:{port}" if service == "gateway" else f"127.0.0.1:{port}"
    finally:
        process.stop()


async def test_revocation_reaches_every_gateway_replica(
    api: Api, stack: LocalStack, tenant: Tenant, tmp_path: Path
) -> None:
    made = await business_key(api, tenant)
    with replica(stack, tmp_path) as url:
        other = Api(api.session, url)
        for gateway in (api, other):
            assert (await gateway.get(LOCATIONS, made["token"])).status == 200
        # Revoked through the first replica; the second learns it over NATS.
        assert (await api.delete(f"{KEYS}/{made['id']}", tenant.hub_key)).status == 204
        await refused_within_a_second(other, made["token"])


async def nats_link_is(gateway: Api, state: str) -> None:
    for _ in range(100):
        if (await gateway.get("/readyz")).body["dependencies"]["gateway.nats"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the gateway's NATS link never became {state}")


@dataclass
class LoneReplica:
    """A gateway replica on a NATS server of its own, which a test can stop and restart."""

    api: Api
    nats: RunningStore
    state_dir: Path

    def stop_nats(self) -> None:
        self.nats.process.stop()

    def restart_nats(self) -> None:
        self.nats = start_nats(self.state_dir, int(self.nats.url.rsplit(":", 1)[1]))


@pytest.fixture
def lone_replica(api: Api, stack: LocalStack, tmp_path: Path) -> Iterator[LoneReplica]:
    lone = LoneReplica(api, start_nats(tmp_path), tmp_path)
    try:
        with replica(stack, tmp_path, NATS_URL=lone.nats.url) as url:
            lone.api = Api(api.session, url)
            yield lone
    finally:
        lone.stop_nats()


async def test_a_gateway_cut_off_from_nats_does_not_trust_its_cache(
    api: Api, tenant: Tenant, lone_replica: LoneReplica
) -> None:
    made = await business_key(api, tenant)
    assert (await lone_replica.api.get(LOCATIONS, made["token"])).status == 200
    # Its NATS fails: the replica cannot hear revocations any more.
    lone_replica.stop_nats()
    await nats_link_is(lone_replica.api, "unavailable")
    assert (await api.delete(f"{KEYS}/{made['id']}", tenant.hub_key)).status == 204
    await refused_within_a_second(lone_replica.api, made["token"])


async def test_a_gateway_drops_its_cache_when_nats_comes_back(
    api: Api, tenant: Tenant, lone_replica: LoneReplica
) -> None:
    made = await business_key(api, tenant)
    assert (await lone_replica.api.get(LOCATIONS, made["token"])).status == 200
    lone_replica.stop_nats()
    # Revoked during the outage, with no request to the replica meanwhile.
    assert (await api.delete(f"{KEYS}/{made['id']}", tenant.hub_key)).status == 204
    lone_replica.restart_nats()
    await nats_link_is(lone_replica.api, "ok")
    problem(await lone_replica.api.get(LOCATIONS, made["token"]), 401)


async def test_an_answer_overtaken_by_its_revocation_is_not_cached(
    api: Api, stack: LocalStack, tenant: Tenant, db: asyncpg.Connection
) -> None:
    """The race a cache invites: the key is checked, revoked, evicted, then cached."""
    made = await business_key(api, tenant)
    key_id = uuid.UUID(made["id"])
    nc = await events.connect(stack.env["NATS_URL"], "test-revocation-race")
    try:
        async with db.transaction():
            # Revoked but not yet committed, with the row locked: the first use reads the
            # key as valid, then waits on the lock to record last_used_at.
            await db.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
            in_flight = asyncio.create_task(api.get(LOCATIONS, made["token"]))
            await asyncio.sleep(0.3)
            # The eviction overtakes that answer, as booking-service's own would.
            await nc.publish(events.KEY_REVOKED_SUBJECT, orjson.dumps({"key_id": str(key_id)}))
            await nc.flush()
            await asyncio.sleep(0.3)
    finally:
        await nc.close()
    assert (await in_flight).status == 200
    problem(await api.get(LOCATIONS, made["token"]), 401)


async def test_session_lifetime_is_configurable(
    api: Api, stack: LocalStack, tenant: Tenant, tmp_path: Path
) -> None:
    with (
        replica(stack, tmp_path, "booking-service", SESSION_TTL_SECONDS="90") as booking,
        replica(stack, tmp_path, BOOKING_SERVICE_ADDR=booking) as url,
    ):
        made = created(await Api(api.session, url).post(SESSIONS, tenant.business_key))
    lifetime = datetime.fromisoformat(made["expires_at"]) - datetime.fromisoformat(
        made["created_at"]
    )
    assert lifetime == timedelta(seconds=90)

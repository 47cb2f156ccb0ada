"""Schemathesis against the live local stack: every documented operation, for each key kind.

The gateway's own OpenAPI document (GET /api/v1/openapi.json) drives the run. Each run
fails on any 5xx, any answer (status, content type, headers, body) the document does not
describe, a request that breaks the document yet is accepted, a wrong answer to an
undocumented method, and every other check schemathesis has. A request the document
allows must not be refused (`positive_data_acceptance`, run as `schema_valid_request_accepted`
in tests/fuzz_hooks.py), except for the reasons listed in ALLOWED_REFUSALS below: rules
that depend on what is stored, on the clock or on earlier requests (an id naming nothing,
a time in the past, a key already used), and the few rules between two values that JSON
Schema cannot state (the document states them in words). Everything else the API checks
(time zones, currencies, URLs, origins, repeated entries, clock times, ...) is in the
document, so a refusal for it fails the run.

Each run has a business of its own with a bookable catalogue and bookings; the hooks in
tests/fuzz_hooks.py point some generated ids at them, so requests reach past 404. The
webhook endpoint routes are fuzzed in a business that has no bookings, so no event is
ever delivered to the URLs schemathesis makes up. Examples are bounded and the seed is
fixed, so a run takes seconds and a failure reproduces.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Api, Tenant, created, new_tenant, tomorrow_at
from tests.booking_helpers import open_salon

HOOKS = Path(__file__).with_name("fuzz_hooks.py")


@dataclass(frozen=True)
class AllowedRefusal:
    """A reason a request the document allows may still be refused, and why no document
    can rule it out. `field` and `reason` are regular expressions; "*" is every operation."""

    operation: str
    field: str
    reason: str
    why: str
    status: int = 422


_EVERY = "*"
_BOOKINGS = "POST /api/v1/bookings"
_HOLD = "POST /api/v1/bookings/hold"
_AVAILABILITY = "GET /api/v1/availability"
_MOVE = "PATCH /api/v1/bookings/{booking_id}"
_CATALOGUE_WRITES = tuple(
    f"{method} /api/v1/{collection}{suffix}"
    for collection in ("locations", "services", "staff", "custom-fields")
    for method, suffix in (("POST", ""), ("PATCH", "/{id}"))
)
_WEBHOOK_WRITES = (
    "POST /api/v1/webhook-endpoints",
    "PATCH /api/v1/webhook-endpoints/{endpoint_id}",
)

ALLOWED_REFUSALS: tuple[AllowedRefusal, ...] = (
    # What is stored.
    AllowedRefusal(_EVERY, "^cursor$", "invalid cursor", "a cursor the API never gave out"),
    *(
        AllowedRefusal(op, r"^(location|service)_ids\.\d+$", "no such", "an id naming nothing")
        for op in _CATALOGUE_WRITES
    ),
    *(
        AllowedRefusal(op, "^key$", "already used", "another custom field has the key")
        for op in ("POST /api/v1/custom-fields", "PATCH /api/v1/custom-fields/{id}")
    ),
    *(
        AllowedRefusal(
            op,
            "^(service|location|staff)_id$",
            "no such|not active|not offered|does not perform",
            "ids naming nothing, or a service not offered there or then",
        )
        for op in (_HOLD, _AVAILABILITY)
    ),
    AllowedRefusal(
        _BOOKINGS, r"^custom_field_values(\.|$)", ".", "the business's custom fields decide"
    ),
    AllowedRefusal(
        "PATCH /api/v1/custom-fields/{id}", "^options$", "select", "the stored field's type"
    ),
    *(
        AllowedRefusal(
            op,
            "^location_ids$",
            "at least 1 item",
            "every location it named was deleted since (a PATCH must leave it one)",
        )
        for op in ("PATCH /api/v1/staff/{id}", "PATCH /api/v1/services/{id}")
    ),
    # A database no pattern can hold (as the time zone database is an enum).
    AllowedRefusal(
        _BOOKINGS, r"^client\.phone$", "numbering plan", "the number's country's numbering plan"
    ),
    *(
        AllowedRefusal(
            op,
            "^(starts_at|ends_at)$",
            "opening hours|staff member|works then",
            "the location's and staff's stored hours",
        )
        for op in (_HOLD, _MOVE)
    ),
    # The clock.
    *(
        AllowedRefusal(op, "^starts_at$", "must be in the future", "a time already past")
        for op in (_HOLD, _MOVE)
    ),
    # Earlier requests.
    AllowedRefusal(
        _EVERY, "^$", "If-Match", "an If-Match naming a version since replaced", status=412
    ),
    AllowedRefusal(
        _EVERY, "^Idempotency-Key$", "already used", "the key went with another request before"
    ),
    # Where a webhook URL points: DNS, and the deployment (https only in production).
    *(
        AllowedRefusal(
            op, "^url$", "address|resolves|this machine|must use https", "where it points"
        )
        for op in _WEBHOOK_WRITES
    ),
    # Stripe's webhook is signed with a secret the document cannot know.
    AllowedRefusal(
        "POST /webhooks/stripe", "^$", "Stripe-Signature", "only Stripe can sign", status=400
    ),
    # Rules between two values, which JSON Schema cannot state (the document says them).
    AllowedRefusal(_AVAILABILITY, "^(to|from)$", "after|days", "`to` after `from`, within 31 days"),
    AllowedRefusal(
        _EVERY, "^ends_at$", "after starts_at", "`ends_at` after `starts_at` (perhaps the stored)"
    ),
    AllowedRefusal(
        _MOVE, "^cancellation_reason$", "cancelled", 'a reason only with `"status": "cancelled"`'
    ),
    *(
        AllowedRefusal(
            op, "^(staff_id|location_id)$", "exactly one", "time off of a staff member or a place"
        )
        for op in ("POST /api/v1/time-off", "PATCH /api/v1/time-off/{id}")
    ),
    *(
        AllowedRefusal(
            op, "^starts_at$", "minute boundary", "a start on the 5-minute grid, offset included"
        )
        for op in (_HOLD, _MOVE)
    ),
    *(
        AllowedRefusal(op, "^deposit_amount$", "exceed", "a deposit no larger than the price")
        for op in ("POST /api/v1/services", "PATCH /api/v1/services/{id}")
    ),
    *(
        AllowedRefusal(
            op,
            r"^(opening_hours|weekly_hours)\.\w+$",
            "closes before it opens|overlap",
            "a day's ranges open before they close and do not overlap",
        )
        for op in (*_CATALOGUE_WRITES, "PATCH /api/v1/staff/{id}")
    ),
)
EXAMPLES_PER_OPERATION = 25
SEED = 20261125
WEBHOOK_ROUTES = r"^/api/v1/webhook-endpoints"
# The business key's run is split in two (catalogue and tenancy; the rest), each well
# within the test timeout on a busy machine.
CATALOGUE_ROUTES = r"^/api/v1/(businesses|api-keys|sessions|locations|services|staff|custom-fields)"
SESSION_REFUSED_ROUTES = (
    r"^/api/v1/(businesses|api-keys|sessions|locations|services|staff|custom-fields"
    r"|webhook-endpoints)"
)
# A run that takes this long is stuck, not slow: the business key's catalogue run takes
# about three minutes alone on two cores, and the suite's other lane runs beside it.
RUN_TIMEOUT_SECONDS = 720
# Each test waits for its own run, which starts with the module (two at a time).
pytestmark = pytest.mark.timeout(RUN_TIMEOUT_SECONDS * 2)


@dataclass
class Fuzzed:
    """Who calls, and the real ids the hooks may put in place of generated ones."""

    headers: dict[str, str]
    ids: Mapping[str, object]


async def catalogue_ids(tenant: Tenant) -> dict[str, object]:
    """A bookable business with a staff member, a custom field, holds and bookings."""
    salon = await open_salon(tenant)
    staff = await tenant.staff([salon.service_id], [salon.location_id])
    field = await tenant.create(
        "custom-fields", {"key": "allergies", "label": "Allergies", "type": "text"}
    )
    bookings = [await salon.booking(tomorrow_at(hour)) for hour in (10, 11)]
    token = await tenant.session_token()
    holds = [created(await salon.hold(token, tomorrow_at(hour))) for hour in (13, 14)]
    services = [salon.service_id, salon.deposit_service_id]
    return {
        "paths": {
            "/api/v1/locations/{id}": {"id": [salon.location_id]},
            "/api/v1/services/{id}": {"id": services},
            "/api/v1/staff/{id}": {"id": [staff["id"]]},
            "/api/v1/custom-fields/{id}": {"id": [field["id"]]},
            "/api/v1/bookings/{booking_id}": {"booking_id": [b["id"] for b in bookings]},
            "/api/v1/bookings/hold/{hold_id}": {"hold_id": [h["hold_id"] for h in holds]},
            "/api/v1/businesses/{business_id}": {"business_id": [tenant.business_id]},
        },
        "fields": {
            "service_id": services,
            "location_id": [salon.location_id],
            "staff_id": [staff["id"]],
            "hold_id": [h["hold_id"] for h in holds],
            "location_ids": [[salon.location_id]],
            "service_ids": [services],
        },
    }


# Every phase: the examples, the coverage phase's boundary and enum cases, random
# draws, and sequences of calls following the document's links.
ALL_PHASES = "examples,coverage,fuzzing,stateful"


def schemathesis_run(
    stack: LocalStack,
    fuzzed: Fuzzed,
    routes: str,
    work_dir: Path,
    *,
    only: bool = False,
    phases: str = ALL_PHASES,
) -> subprocess.CompletedProcess[str]:
    """One schemathesis run over the routes matching `routes` (or all others)."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{stack.gateway_url}/api/v1/openapi.json",
        "--checks",
        "all",
        # Run as schema_valid_request_accepted (tests/fuzz_hooks.py): the same check,
        # with the refusals listed above let through.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--no-color",
        "--phases",
        phases,
        "--include-path-regex" if only else "--exclude-path-regex",
        routes,
    ]
    for name, value in fuzzed.headers.items():
        command += ["--header", f"{name}: {value}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "CALENDENCE_FUZZ_IDS": json.dumps(fuzzed.ids),
        "CALENDENCE_FUZZ_ALLOWED_REFUSALS": json.dumps(
            [
                {"operation": r.operation, "status": r.status, "field": r.field, "reason": r.reason}
                for r in ALLOWED_REFUSALS
            ]
        ),
    }
    return subprocess.run(
        command,
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )


def assert_clean(run: subprocess.CompletedProcess[str]) -> None:
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"schemathesis found problems:\n{report[-20000:]}"
    assert "No API operations found" not in report


async def fuzz(
    stack: LocalStack,
    fuzzed: Fuzzed,
    routes: str,
    work_dir: Path,
    *,
    only: bool = False,
    phases: str = ALL_PHASES,
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        schemathesis_run, stack, fuzzed, routes, work_dir, only=only, phases=phases
    )


async def _catalogue_and_tenancy_run(
    stack: LocalStack, api: Api, hub: dict[str, str], work_dir: Path
) -> subprocess.CompletedProcess[str]:
    tenant = await new_tenant(api, hub["key"])
    ids = await catalogue_ids(tenant)
    headers = {"Authorization": f"Bearer {tenant.business_key}"}
    return await fuzz(stack, Fuzzed(headers, ids), CATALOGUE_ROUTES, work_dir, only=True)


async def _booking_run(
    stack: LocalStack, api: Api, hub: dict[str, str], work_dir: Path
) -> subprocess.CompletedProcess[str]:
    # Every operation but the catalogue's (above) and the webhook endpoints' (below).
    tenant = await new_tenant(api, hub["key"])
    ids = await catalogue_ids(tenant)
    headers = {"Authorization": f"Bearer {tenant.business_key}"}
    return await fuzz(stack, Fuzzed(headers, ids), f"{WEBHOOK_ROUTES}|{CATALOGUE_ROUTES}", work_dir)


async def _hub_key_run(
    stack: LocalStack, api: Api, hub: dict[str, str], work_dir: Path
) -> subprocess.CompletedProcess[str]:
    tenant = await new_tenant(api, hub["key"])
    ids = await catalogue_ids(tenant)
    headers = {
        "Authorization": f"Bearer {tenant.hub_key}",
        "Calendence-Business": tenant.business_id,
    }
    # The coverage phase's cases are fixed by the document, not the key: the business key's
    # run sends them; a hub key's reaches the same checks once it has named the business.
    return await fuzz(
        stack, Fuzzed(headers, ids), WEBHOOK_ROUTES, work_dir, phases="examples,fuzzing,stateful"
    )


async def _session_token_run(
    stack: LocalStack, api: Api, hub: dict[str, str], work_dir: Path
) -> subprocess.CompletedProcess[str]:
    tenant = await new_tenant(api, hub["key"])
    ids = await catalogue_ids(tenant)
    headers = {"Authorization": f"Bearer {await tenant.session_token()}"}
    # Routes a session token may not call answer it 403 before reading anything (tests/
    # test_openapi.py holds every one to that); fuzzing their bodies would only repeat it.
    return await fuzz(stack, Fuzzed(headers, ids), SESSION_REFUSED_ROUTES, work_dir)


async def _webhook_endpoint_run(
    stack: LocalStack, api: Api, hub: dict[str, str], work_dir: Path
) -> subprocess.CompletedProcess[str]:
    # A business without a catalogue can have no bookings, hence no events to deliver.
    empty = await new_tenant(api, hub["key"])
    endpoint = created(
        await api.post(
            "/api/v1/webhook-endpoints",
            empty.business_key,
            {"url": "http://127.0.0.1:9/hooks", "enabled": False},
        )
    )
    one = "/api/v1/webhook-endpoints/{endpoint_id}"
    paths = (one, one + "/rotate-secret", one + "/deliveries", one + "/redeliver")
    ids = {"paths": {path: {"endpoint_id": [endpoint["id"]]} for path in paths}}
    headers = {"Authorization": f"Bearer {empty.business_key}"}
    return await fuzz(stack, Fuzzed(headers, ids), WEBHOOK_ROUTES, work_dir, only=True)


Run = Callable[[LocalStack, Api, dict[str, str], Path], Awaitable[subprocess.CompletedProcess[str]]]
# Each test's run, by the test's name.
RUNS: dict[str, Run] = {
    "test_catalogue_and_tenancy_operations_answer_a_business_key_as_documented": (
        _catalogue_and_tenancy_run
    ),
    "test_booking_operations_answer_a_business_key_as_documented": _booking_run,
    "test_every_operation_answers_a_hub_key_as_documented": _hub_key_run,
    "test_every_operation_answers_a_session_token_as_documented": _session_token_run,
    "test_webhook_endpoint_operations_answer_as_documented": _webhook_endpoint_run,
}
# A run keeps a core busy with schemathesis itself, and the stack answers it on the
# other only part of the time: two runs at once keep both cores of a 2-core machine
# busy, and take little longer each than one alone.
RUNS_AT_ONCE = 2


@pytest.fixture(scope="module")
async def fuzz_runs(
    request: pytest.FixtureRequest,
    stack: LocalStack,
    api: Api,
    hub: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, asyncio.Task[subprocess.CompletedProcess[str]]]]:
    """The runs of the selected tests, started together, RUNS_AT_ONCE at a time, in test
    order: each test waits for its own and checks it (every test still fails alone)."""
    limit = asyncio.Semaphore(RUNS_AT_ONCE)

    async def limited(run: Run, work_dir: Path) -> subprocess.CompletedProcess[str]:
        async with limit:
            return await run(stack, api, hub, work_dir)

    selected = [
        item.originalname
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is sys.modules[__name__]
    ]
    tasks = {
        name: asyncio.create_task(limited(RUNS[name], tmp_path_factory.mktemp("fuzz")))
        for name in selected
        if name in RUNS
    }
    try:
        yield tasks
    finally:
        # A run stopped half-way would leave schemathesis running: each ends by itself,
        # within RUN_TIMEOUT_SECONDS.
        await asyncio.gather(*tasks.values(), return_exceptions=True)


@pytest.fixture
def own_run(
    request: pytest.FixtureRequest,
    fuzz_runs: dict[str, asyncio.Task[subprocess.CompletedProcess[str]]],
) -> asyncio.Task[subprocess.CompletedProcess[str]]:
    """The test's own schemathesis run, under way or done."""
    return fuzz_runs[request.node.originalname]


async def test_catalogue_and_tenancy_operations_answer_a_business_key_as_documented(
    own_run: asyncio.Task[subprocess.CompletedProcess[str]],
) -> None:
    assert_clean(await own_run)


async def test_booking_operations_answer_a_business_key_as_documented(
    own_run: asyncio.Task[subprocess.CompletedProcess[str]],
) -> None:
    assert_clean(await own_run)


async def test_every_operation_answers_a_hub_key_as_documented(
    own_run: asyncio.Task[subprocess.CompletedProcess[str]],
) -> None:
    assert_clean(await own_run)


async def test_every_operation_answers_a_session_token_as_documented(
    own_run: asyncio.Task[subprocess.CompletedProcess[str]],
) -> None:
    assert_clean(await own_run)


async def test_webhook_endpoint_operations_answer_as_documented(
    own_run: asyncio.Task[subprocess.CompletedProcess[str]],
) -> None:
    assert_clean(await own_run)

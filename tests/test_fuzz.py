"""Schemathesis against the live local stack: every documented operation, for each key kind.

The gateway's own OpenAPI document (GET /api/v1/openapi.json) drives the run. Each run
fails on any 5xx, any answer (status, content type, headers, body) the document does not
describe, a request that breaks the document yet is accepted, a wrong answer to an
undocumented method, and the other stateless checks schemathesis has, except
`positive_data_acceptance`: a request can match the document and still be refused for
rules no JSON Schema states (a time in the past or outside opening hours, an unknown
time zone, an id naming nothing), which is what 422 and 404 are for.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from calendence.devstack.stack import LocalStack

from tests.api import Api, Tenant, created, new_tenant, tomorrow_at
from tests.booking_helpers import open_salon

HOOKS = Path(__file__).with_name("fuzz_hooks.py")
EXAMPLES_PER_OPERATION = 25
SEED = 20261125
WEBHOOK_ROUTES = r"^/api/v1/webhook-endpoints"
# Runs without output for this long are stuck, not slow.
RUN_TIMEOUT_SECONDS = 300


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


def schemathesis_run(
    stack: LocalStack, fuzzed: Fuzzed, routes: str, work_dir: Path, *, only: bool = False
) -> subprocess.CompletedProcess[str]:
    """One schemathesis run over the routes matching `routes` (or all others)."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{stack.gateway_url}/api/v1/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--no-color",
        "--include-path-regex" if only else "--exclude-path-regex",
        routes,
    ]
    for name, value in fuzzed.headers.items():
        command += ["--header", f"{name}: {value}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "CALENDENCE_FUZZ_IDS": json.dumps(fuzzed.ids),
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
    stack: LocalStack, fuzzed: Fuzzed, routes: str, work_dir: Path, *, only: bool = False
) -> None:
    run = await asyncio.to_thread(schemathesis_run, stack, fuzzed, routes, work_dir, only=only)
    assert_clean(run)


async def test_every_operation_answers_a_business_key_as_documented(
    stack: LocalStack, tenant: Tenant, tmp_path: Path
) -> None:
    ids = await catalogue_ids(tenant)
    headers = {"Authorization": f"Bearer {tenant.business_key}"}
    await fuzz(stack, Fuzzed(headers, ids), WEBHOOK_ROUTES, tmp_path)


async def test_every_operation_answers_a_hub_key_as_documented(
    stack: LocalStack, tenant: Tenant, tmp_path: Path
) -> None:
    ids = await catalogue_ids(tenant)
    headers = {
        "Authorization": f"Bearer {tenant.hub_key}",
        "Calendence-Business": tenant.business_id,
    }
    await fuzz(stack, Fuzzed(headers, ids), WEBHOOK_ROUTES, tmp_path)


async def test_every_operation_answers_a_session_token_as_documented(
    stack: LocalStack, tenant: Tenant, tmp_path: Path
) -> None:
    ids = await catalogue_ids(tenant)
    headers = {"Authorization": f"Bearer {await tenant.session_token()}"}
    # Webhook endpoints included: a session token gets 403 there, before any body is read.
    await fuzz(stack, Fuzzed(headers, ids), "^$", tmp_path)


async def test_webhook_endpoint_operations_answer_as_documented(
    stack: LocalStack, api: Api, hub: dict[str, str], tmp_path: Path
) -> None:
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
    await fuzz(stack, Fuzzed(headers, ids), WEBHOOK_ROUTES, tmp_path, only=True)

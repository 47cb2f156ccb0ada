"""A Python client generated from the served OpenAPI document (openapi-python-client,
as an SDK user would make one) works: its methods are named for what they do, and
README's walk-through runs through it against the live stack (services, availability,
hold, book, show, reschedule, cancel)."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from tests.api import Api, Tenant, tomorrow_at
from tests.hold_helpers import open_shop

OPENAPI = "/api/v1/openapi.json"
PACKAGE = "calendence_generated_client"
# The generator's defaults, but for enums as literals: the time zone enum has names that
# would share a member name (`GMT0` and `Etc/GMT0` both become `GMT0`).
CONFIG = "literal_enums: true\npost_hooks: []\n"


@pytest.fixture(scope="module")
async def sdk(api: Api, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ModuleType]:
    """The client package generated from the document the gateway serves."""
    folder = tmp_path_factory.mktemp("sdk")
    served = await api.get(OPENAPI)
    assert served.status == 200, served.body
    (folder / "openapi.json").write_bytes(orjson.dumps(served.body))
    (folder / "config.yaml").write_text(CONFIG)
    generator = Path(sys.executable).parent / "openapi-python-client"
    process = await asyncio.create_subprocess_exec(
        str(generator),
        "generate",
        "--path",
        str(folder / "openapi.json"),
        "--output-path",
        str(folder / PACKAGE),
        "--meta",
        "none",
        "--config",
        str(folder / "config.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert b"Warning" not in output, output.decode()
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(sdk: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{sdk.__name__}.{name}")


async def test_generated_client_names_its_methods_for_what_they_do(sdk: ModuleType) -> None:
    bookings = module(sdk, "api.bookings")
    methods = {path.stem for path in Path(bookings.__file__).parent.glob("*.py")}
    assert methods == {
        "__init__",
        "create_hold",
        "release_hold",
        "get_availability",
        "create_booking",
        "list_bookings",
        "get_booking",
        "update_booking",
        "cancel_booking",
    }


async def test_readme_walk_through_runs_through_the_generated_client(
    sdk: ModuleType, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    models = module(sdk, "models")
    client_module = module(sdk, "client")
    business = client_module.AuthenticatedClient(
        base_url=tenant.api.base_url, token=tenant.business_key
    )

    def call(name: str) -> Any:
        return module(sdk, f"api.{name}").asyncio_detailed

    services = await call("services.list_services")(client=business)
    assert services.status_code == 200
    assert [str(service.id) for service in services.parsed.data] == [shop.service_id]

    session = await call("sessions_and_keys.create_session")(client=business)
    assert session.status_code == 201
    widget = client_module.AuthenticatedClient(
        base_url=tenant.api.base_url, token=session.parsed.token
    )

    day = tomorrow_at(0)
    availability = await call("bookings.get_availability")(
        client=business,
        service_id=shop.service_id,
        location_id=shop.location_id,
        from_=day,
        to=day + timedelta(days=1),
    )
    assert availability.status_code == 200
    first, later = availability.parsed.slots[0], availability.parsed.slots[-1]
    assert first.starts_at < later.starts_at

    hold = await call("bookings.create_hold")(
        client=widget,
        body=models.HoldRequest(
            service_id=shop.service_id, location_id=shop.location_id, starts_at=first.starts_at
        ),
    )
    assert hold.status_code == 201, hold.content
    assert hold.parsed.starts_at == first.starts_at

    booked = await call("bookings.create_booking")(
        client=widget,
        body=models.BookingRequest(
            hold_id=hold.parsed.hold_id,
            client=models.Client(
                first_name="Jane", last_name="Doe", email="jane@example.com", phone="+15551234567"
            ),
            notes="Please use the side entrance",
        ),
    )
    assert booked.status_code == 201, booked.content
    booking_id = booked.parsed.id
    assert booked.parsed.status == "confirmed"

    shown = await call("bookings.get_booking")(booking_id, client=widget)
    assert shown.status_code == 200
    assert shown.parsed.id == booking_id
    assert shown.parsed.starts_at == first.starts_at

    moved = await call("bookings.update_booking")(
        booking_id, client=business, body=models.BookingPatch(starts_at=later.starts_at)
    )
    assert moved.status_code == 200, moved.content
    assert moved.parsed.starts_at == later.starts_at

    cancelled = await call("bookings.cancel_booking")(
        booking_id,
        client=business,
        body=models.Cancellation(cancellation_reason="Client phoned"),
    )
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.parsed.status == "cancelled"
    assert cancelled.parsed.cancellation_reason == "Client phoned"

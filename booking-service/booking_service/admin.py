"""`calendence-admin`: create hubs, businesses and keys; revoke keys; load demo data.

Talks to PostgreSQL directly (DATABASE_URL) through the same domain code the service
uses, and prints JSON. Keys are printed once: only their hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from calendence import events, jsonfmt
from calendence.errors import DomainError, NotFound
from calendence.migrations import SchemaBehind
from calendence.principals import KeyKind
from calendence.schemas.catalogue import BusinessFields
from calendence.settings import BookingServiceSettings
from calendence.store_startup import connect_postgres

from booking_service.catalogue import Catalogue
from booking_service.catalogue_repository import CatalogueRepository
from booking_service.catalogue_snapshots import CatalogueSnapshots
from booking_service.domain import build_domain
from booking_service.manage_repository import ManageRepository
from booking_service.tenants import IssuedKey, Tenants

_DEMO_NAMESPACE = UUID("9b4e0c1e-5a8c-4c55-9a1e-6f1d2c3b4a50")


def _key_json(issued: IssuedKey) -> dict[str, Any]:
    return {
        "id": str(issued.key.id),
        "kind": issued.key.kind,
        "token": issued.secret,
        "hub_id": str(issued.key.hub_id) if issued.key.hub_id else None,
        "business_id": str(issued.key.business_id) if issued.key.business_id else None,
    }


async def _open_pool(settings: BookingServiceSettings) -> asyncpg.Pool:
    """A small pool on a database `calendence-migrate` brought to this code's schema;
    an operator's command fails at once rather than waiting for PostgreSQL."""
    return await connect_postgres(
        settings.database_url,
        schema="booking_service",
        min_size=1,
        max_size=2,
        acquire_timeout=3.0,
        attempts=1,
    )


@contextlib.asynccontextmanager
async def _domain(settings: BookingServiceSettings) -> AsyncIterator[tuple[Tenants, Catalogue]]:
    pool = await _open_pool(settings)
    nc = None
    with contextlib.suppress(Exception):
        nc = await asyncio.wait_for(events.connect_service(settings, "calendence-admin"), 3)

    async def announce(subject: str, payload: dict[str, str]) -> None:
        # Without NATS the running services still catch up when their caches expire.
        if nc is not None:
            await nc.publish(subject, orjson.dumps(payload))

    snapshots = None
    if nc is not None:
        client = nc
        with contextlib.suppress(Exception):
            bucket = await asyncio.wait_for(
                events.ensure_catalogue_bucket(client.jetstream(), settings.nats_stream_replicas),
                3,
            )
            snapshots = CatalogueSnapshots(
                CatalogueRepository(pool), bucket, lambda: client.is_connected
            )

    async def publish_snapshot(business_id: UUID) -> None:
        # Without NATS a running booking-service writes it within seconds (its repair).
        if snapshots is not None:
            await snapshots.publish_change(business_id)

    domain = build_domain(pool, settings, announce, publish_snapshot)
    try:
        yield domain.tenants, domain.catalogue
    finally:
        if nc is not None:
            await nc.drain()
        await pool.close()


async def load_demo(tenants: Tenants, catalogue: Catalogue) -> dict[str, Any]:
    """The demo hub, business and catalogue (created once), with fresh keys."""
    hub_id = uuid.uuid5(_DEMO_NAMESPACE, "hub")
    business_id = uuid.uuid5(_DEMO_NAMESPACE, "business")
    if await tenants.repository.get_hub(hub_id) is None:
        await tenants.repository.insert_hub(hub_id, "Demo Hub")
    if await tenants.repository.get_business(business_id) is None:
        await tenants.repository.insert_business(
            business_id,
            hub_id,
            BusinessFields(
                name="Calendence Demo Salon",
                success_url="http://localhost/booking/success",
                cancel_url="http://localhost/booking/cancelled",
            ).model_dump(),
        )
        every_day = {
            day: [{"opens": "08:00", "closes": "20:00"}]
            for day in (
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            )
        }

        async def add(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
            return await catalogue.create(kind, business_id, jsonfmt.dumps(fields))

        location = await add(
            "locations",
            {
                "name": "Demo Salon, Main Street",
                "address": "1 Main Street, London",
                "timezone": "Europe/London",
                "opening_hours": every_day,
            },
        )
        haircut = await add(
            "services",
            {
                "name": "Haircut",
                "duration_minutes": 30,
                "price_amount": 3500,
                "currency": "GBP",
                "location_ids": [location["id"]],
            },
        )
        colour = await add(
            "services",
            {
                "name": "Colour treatment",
                "duration_minutes": 90,
                "price_amount": 12000,
                "currency": "GBP",
                "deposit_amount": 3000,
                "buffer_minutes": 15,
                "location_ids": [location["id"]],
            },
        )
        await add(
            "staff",
            {
                "name": "Alex Morgan",
                "email": "alex@example.com",
                "service_ids": [haircut["id"]],
                "location_ids": [location["id"]],
            },
        )
        await add(
            "staff",
            {
                "name": "Sam Patel",
                "email": "sam@example.com",
                # Both cut hair, so either can cover while the other is away.
                "service_ids": [haircut["id"], colour["id"]],
                "location_ids": [location["id"]],
            },
        )
    snapshot = await catalogue.snapshot(business_id)
    services = {s["name"]: str(s["id"]) for s in snapshot["services"]}
    return {
        "hub_id": str(hub_id),
        "business_id": str(business_id),
        "location_id": str(snapshot["locations"][0]["id"]),
        "service_id": services["Haircut"],
        "deposit_service_id": services["Colour treatment"],
        "staff_ids": [str(s["id"]) for s in snapshot["staff"]],
        "business_key": (
            await tenants.issue_key(
                KeyKind.BUSINESS, hub_id=hub_id, business_id=business_id, name="demo"
            )
        ).secret,
        "hub_key": (await tenants.issue_key(KeyKind.HUB, hub_id=hub_id, name="demo")).secret,
    }


async def rotate_manage_key(settings: BookingServiceSettings, retire_previous: bool) -> Any:
    """A new key signs manage links from now on (services pick it up within a minute);
    links signed before keep working unless the previous keys are retired."""
    pool = await _open_pool(settings)
    try:
        repository = ManageRepository(pool)
        await repository.add_link_key(secrets.token_bytes(32), only_if_none=False)
        retired = await repository.retire_link_keys_but_newest() if retire_previous else 0
        return {"rotated": True, "retired_keys": retired}
    finally:
        await pool.close()


async def run(args: argparse.Namespace) -> Any:
    if args.command == "rotate-manage-key":
        return await rotate_manage_key(BookingServiceSettings(), args.retire_previous)
    async with _domain(BookingServiceSettings()) as (tenants, catalogue):
        if args.command == "create-hub":
            hub = await tenants.create_hub(args.name)
            return {"id": str(hub["id"]), "name": hub["name"]}
        if args.command == "create-business":
            business = await tenants.create_business(args.hub_id, BusinessFields(name=args.name))
            await catalogue.on_change(business["id"])
            return {
                "id": str(business["id"]),
                "name": business["name"],
                "hub_id": str(business["hub_id"]) if business["hub_id"] else None,
            }
        if args.command == "create-key":
            if args.kind == "hub":
                return _key_json(await tenants.create_hub_key(args.hub_id, args.name))
            return _key_json(await tenants.create_business_key(args.business_id, args.name))
        if args.command == "revoke-key":
            key = await tenants.repository.get_key(args.key_id)
            if key is None:
                raise NotFound("no such key")
            await tenants.revoke(key.id, business_id=key.business_id, hub_id=key.hub_id)
            return {"id": str(args.key_id), "revoked": True}
        if args.command == "demo":
            return await load_demo(tenants, catalogue)
    raise AssertionError(args.command)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="calendence-admin", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    hub = commands.add_parser("create-hub", help="create a hub")
    hub.add_argument("--name", required=True)
    business = commands.add_parser("create-business", help="create a business")
    business.add_argument("--name", required=True)
    business.add_argument("--hub-id", type=UUID, help="the hub it belongs to, if any")
    key = commands.add_parser("create-key", help="create a hub or business API key")
    key.add_argument("--kind", choices=["hub", "business"], required=True)
    key.add_argument("--hub-id", type=UUID)
    key.add_argument("--business-id", type=UUID)
    key.add_argument("--name")
    revoke = commands.add_parser("revoke-key", help="revoke a key (takes effect at once)")
    revoke.add_argument("--key-id", type=UUID, required=True)
    commands.add_parser("demo", help="load the demo business and print fresh keys")
    rotate = commands.add_parser(
        "rotate-manage-key", help="sign clients' manage links with a new key from now on"
    )
    rotate.add_argument(
        "--retire-previous",
        action="store_true",
        help="also stop links signed with the older keys from working (within a minute)",
    )
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "create-key" and not (
        args.hub_id if args.kind == "hub" else args.business_id
    ):
        parser().error("--kind hub needs --hub-id; --kind business needs --business-id")
    try:
        result = asyncio.run(run(args))
    except DomainError as error:
        # An operator's mistake (an unknown hub, say) is one line, not a traceback.
        sys.stderr.write(f"calendence-admin: {error.detail}\n")
        raise SystemExit(1) from None
    except SchemaBehind as behind:
        sys.stderr.write(
            f"calendence-admin: the database lacks migrations {behind.missing}: "
            "run calendence-migrate first\n"
        )
        raise SystemExit(1) from None
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


if __name__ == "__main__":
    main()

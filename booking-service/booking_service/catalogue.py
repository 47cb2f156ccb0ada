"""The business catalogue: create, show, list, update and delete, with reference checks."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from uuid import UUID

import asyncpg
from calendence import jsonfmt
from calendence.errors import Conflict, InvalidInput, NotFound
from calendence.pages import oldest_first_page
from calendence.schemas.catalogue import CATALOGUE_FIELDS, WEEKDAYS, merge_patch
from calendence.schemas.common import Schema, parse_json, patch_document
from calendence.schemas.scheduling import BookingPolicyOverride
from calendence.timefmt import utcnow

from booking_service.catalogue_repository import TABLES, CatalogueRepository, SnapshotRows

ChangeListener = Callable[[UUID], Awaitable[None]]

_HIDDEN_COLUMNS = {"seq", "deleted_at", "business_id"}
# Which id lists must name live rows of which table.
_REFERENCES = {"location_ids": "locations", "service_ids": "services"}
_WEEKLY_COLUMNS = ("opening_hours", "weekly_hours")
OBJECT_NAMES = {
    "locations": "location",
    "services": "service",
    "staff": "staff_member",
    "custom_fields": "custom_field",
}


def render(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a catalogue row."""
    document = {"object": OBJECT_NAMES[kind]} | {
        k: v for k, v in row.items() if k not in _HIDDEN_COLUMNS
    }
    if kind == "services":
        # Stored with only the fields set; shown with every field, null: the business's.
        document["booking_policy"] = BookingPolicyOverride.model_validate(
            document.get("booking_policy") or {}
        ).model_dump()
    for column in _WEEKLY_COLUMNS:
        week = document.get(column)
        if isinstance(week, dict):
            # jsonb keeps keys sorted by length; people read a week Monday first.
            document[column] = {day: week.get(day, []) for day in WEEKDAYS}
    return document


def snapshot_document(stored: SnapshotRows) -> dict[str, Any]:
    """Locations, services, staff, the booking policy and the time off still to come of
    a business: the snapshot hold-service checks slots against."""
    document: dict[str, Any] = {
        kind: [render(kind, row) for row in rows] for kind, rows in stored.rows.items()
    }
    document["booking_policy"] = stored.booking_policy
    document["time_off"] = stored.time_off
    return document


@contextlib.contextmanager
def _custom_field_keys_unique() -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError:
        raise InvalidInput(
            "a custom field with this key exists",
            fields={"key": "already used by another custom field"},
        ) from None


class Catalogue:
    def __init__(self, repository: CatalogueRepository, on_change: ChangeListener) -> None:
        self.repository = repository
        self.on_change = on_change

    async def create(self, kind: str, business_id: UUID, body: bytes) -> dict[str, Any]:
        fields = parse_json(CATALOGUE_FIELDS[kind], body)
        values = await self._checked_values(business_id, fields)
        with _custom_field_keys_unique():
            row = await self.repository.insert(TABLES[kind], business_id, uuid.uuid4(), values)
        await self.on_change(business_id)
        return render(kind, row)

    async def get(self, kind: str, business_id: UUID, row_id: UUID) -> dict[str, Any]:
        row = await self.repository.get(TABLES[kind], business_id, row_id)
        if row is None:
            raise NotFound(f"no such {OBJECT_NAMES[kind]}")
        return render(kind, row)

    async def list_page(
        self, kind: str, business_id: UUID, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        rows_after = functools.partial(self.repository.list_page, TABLES[kind], business_id)
        shown, next_cursor = await oldest_first_page(cursor, limit, rows_after)
        return [render(kind, r) for r in shown], next_cursor

    async def update(
        self, kind: str, business_id: UUID, row_id: UUID, patch: bytes
    ) -> dict[str, Any]:
        """Replace the fields `patch` names, then validate the whole merged document."""
        model = CATALOGUE_FIELDS[kind]
        changes = patch_document(patch, model)

        async def merged(current: dict[str, Any]) -> dict[str, Any]:
            editable = {k: current[k] for k in model.model_fields}
            # Through JSON, as a create would be: strict mode takes ids only as JSON strings.
            fields = parse_json(model, jsonfmt.dumps(merge_patch(editable, changes)))
            return await self._checked_values(business_id, fields)

        with _custom_field_keys_unique():
            row = await self.repository.update(TABLES[kind], business_id, row_id, merged)
        if row is None:
            raise NotFound(f"no such {OBJECT_NAMES[kind]}")
        await self.on_change(business_id)
        return render(kind, row)

    async def delete(self, kind: str, business_id: UUID, row_id: UUID) -> None:
        outcome = await self.repository.soft_delete_unless_booked(TABLES[kind], business_id, row_id)
        if outcome == "missing":
            raise NotFound(f"no such {OBJECT_NAMES[kind]}")
        if outcome == "booked":
            raise Conflict("upcoming bookings still use it; cancel or move them first")
        await self.on_change(business_id)

    async def snapshot(self, business_id: UUID) -> dict[str, Any]:
        return snapshot_document(await self.repository.read_snapshot_rows(business_id, utcnow()))

    async def _checked_values(self, business_id: UUID, fields: Schema) -> dict[str, Any]:
        """Column values for `fields`, after checking every id they name is ours."""
        errors: dict[str, str] = {}
        for name, table in _REFERENCES.items():
            ids = getattr(fields, name, None)
            if not ids:
                continue
            found = await self.repository.existing_ids(TABLES[table], business_id, ids)
            for index, item in enumerate(ids):
                if item not in found:
                    errors[f"{name}.{index}"] = f"no such {table.rstrip('s')} in this business"
        if errors:
            raise InvalidInput("the request names unknown resources", fields=errors)
        values = fields.model_dump(mode="python")
        if "booking_policy" in values:
            # Only the fields a service sets: a later change of the business's reaches
            # every field the service leaves to it.
            values["booking_policy"] = {
                k: v for k, v in values["booking_policy"].items() if v is not None
            }
        return values

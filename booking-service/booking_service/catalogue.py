"""The business catalogue: create, show, list, update and delete, with reference checks."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from calendence import jsonfmt
from calendence.errors import Conflict, InvalidInput, NotFound
from calendence.schemas.catalogue import CATALOGUE_FIELDS, merge_patch
from calendence.schemas.common import Schema, parse_json, parse_obj

from booking_service.catalogue_repository import TABLES, CatalogueRepository

ChangeListener = Callable[[UUID], Awaitable[None]]

MAX_PAGE = 100
_HIDDEN_COLUMNS = {"seq", "deleted_at", "business_id"}
# Which id lists must name live rows of which table.
_REFERENCES = {"location_ids": "locations", "service_ids": "services"}


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "the cursor is not one this API gave out", fields={"cursor": "invalid cursor"}
        ) from None


OBJECT_NAMES = {
    "locations": "location",
    "services": "service",
    "staff": "staff_member",
    "custom_fields": "custom_field",
}


def render(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a catalogue row."""
    return {"object": OBJECT_NAMES[kind]} | {
        k: v for k, v in row.items() if k not in _HIDDEN_COLUMNS
    }


class Catalogue:
    def __init__(self, repository: CatalogueRepository, on_change: ChangeListener) -> None:
        self.repository = repository
        self.on_change = on_change

    async def create(self, kind: str, business_id: UUID, body: bytes) -> dict[str, Any]:
        fields = parse_json(CATALOGUE_FIELDS[kind], body)
        values = await self._checked_values(business_id, fields)
        try:
            row = await self.repository.insert(TABLES[kind], business_id, uuid.uuid4(), values)
        except asyncpg.UniqueViolationError:
            raise InvalidInput(
                "a custom field with this key exists",
                fields={"key": "already used by another custom field"},
            ) from None
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
        limit = max(1, min(limit or 20, MAX_PAGE))
        rows = await self.repository.list_page(
            TABLES[kind], business_id, decode_cursor(cursor), limit + 1
        )
        next_cursor = encode_cursor(rows[limit - 1]["seq"]) if len(rows) > limit else ""
        return [render(kind, r) for r in rows[:limit]], next_cursor

    async def update(
        self, kind: str, business_id: UUID, row_id: UUID, patch: bytes
    ) -> dict[str, Any]:
        current = await self.get(kind, business_id, row_id)
        try:
            changes = orjson.loads(patch)
        except orjson.JSONDecodeError:
            raise InvalidInput(
                "the body is not valid JSON", fields={"body": "invalid JSON"}
            ) from None
        if not isinstance(changes, dict):
            raise InvalidInput("the body must be a JSON object", fields={"body": "not an object"})
        model = CATALOGUE_FIELDS[kind]
        unknown = set(changes) - set(model.model_fields)
        if unknown:
            raise InvalidInput(
                "the request has invalid fields",
                fields={name: "unknown field" for name in sorted(unknown)},
            )
        editable = {k: current[k] for k in model.model_fields}
        fields = parse_obj(model, orjson.loads(jsonfmt.dumps(merge_patch(editable, changes))))
        values = await self._checked_values(business_id, fields)
        try:
            row = await self.repository.update(TABLES[kind], business_id, row_id, values)
        except asyncpg.UniqueViolationError:
            raise InvalidInput(
                "a custom field with this key exists",
                fields={"key": "already used by another custom field"},
            ) from None
        if row is None:
            raise NotFound("it was deleted meanwhile")
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
        """Locations, services and staff of a business, as hold-service caches them."""
        return {
            kind: [
                render(kind, row)
                for row in await self.repository.list_all(TABLES[kind], business_id)
            ]
            for kind in ("locations", "services", "staff")
        }

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
        return fields.model_dump(mode="python")

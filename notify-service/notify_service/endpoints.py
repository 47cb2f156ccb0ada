"""Webhook endpoints of a business: create, show, list, update, delete, rotate the secret.

Documents travel as JSON over gRPC (as catalogue resources do); the signing secret is
in the answer only when it is made (create, rotate-secret).
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from calendence import jsonfmt
from calendence.errors import InvalidInput, NotFound
from calendence.pages import oldest_first_page
from calendence.schemas.common import parse_json, patch_document
from calendence.schemas.webhooks import EndpointFields
from calendence.timefmt import to_iso

from notify_service import targets
from notify_service.endpoint_repository import EndpointRepository
from notify_service.signing import new_secret

# How long a rotated-out secret keeps signing beside the new one.
PREVIOUS_SECRET_LIFETIME = timedelta(hours=24)


def _iso(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment is not None else None


def render(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of an endpoint (never its secrets)."""
    return {
        "object": "webhook_endpoint",
        "id": str(row["id"]),
        "url": row["url"],
        "description": row["description"],
        "events": list(row["events"]),
        "enabled": row["enabled"],
        "status": "enabled" if row["enabled"] else "disabled",
        "disabled_reason": row["disabled_reason"],
        "disabled_at": _iso(row["disabled_at"]),
        "failing_since": _iso(row["failing_since"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


class WebhookEndpoints:
    def __init__(self, repository: EndpointRepository, allow_private_targets: bool) -> None:
        self.repository = repository
        self.allow_private_targets = allow_private_targets

    async def _check_url(self, url: str) -> None:
        try:
            await targets.check_on_save(url, self.allow_private_targets)
        except targets.RefusedTarget as refused:
            raise InvalidInput(
                "this URL cannot receive webhooks", fields={"url": str(refused)}
            ) from None

    async def create(self, business_id: UUID, body: bytes) -> dict[str, Any]:
        fields = parse_json(EndpointFields, body)
        await self._check_url(fields.url)
        secret = new_secret()
        row = await self.repository.insert(business_id, uuid.uuid4(), fields.model_dump(), secret)
        return render(row) | {"secret": secret}

    async def get(self, business_id: UUID, endpoint_id: UUID) -> dict[str, Any]:
        return render(await self._row(business_id, endpoint_id))

    async def _row(self, business_id: UUID, endpoint_id: UUID) -> dict[str, Any]:
        row = await self.repository.get(business_id, endpoint_id)
        if row is None:
            raise NotFound("no such webhook endpoint")
        return row

    async def list_page(
        self, business_id: UUID, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        rows_after = functools.partial(self.repository.list_page, business_id)
        shown, next_cursor = await oldest_first_page(cursor, limit, rows_after)
        return [render(r) for r in shown], next_cursor

    async def update(self, business_id: UUID, endpoint_id: UUID, patch: bytes) -> dict[str, Any]:
        """Replace the fields `patch` names, then validate the whole merged document."""
        current = await self._row(business_id, endpoint_id)
        changes = patch_document(patch, EndpointFields)
        editable = {name: current[name] for name in EndpointFields.model_fields}
        merged = parse_json(EndpointFields, jsonfmt.dumps(editable | changes))
        if merged.url != current["url"]:
            await self._check_url(merged.url)
        row = await self.repository.update(business_id, endpoint_id, merged.model_dump())
        if row is None:
            raise NotFound("no such webhook endpoint")
        return render(row)

    async def delete(self, business_id: UUID, endpoint_id: UUID) -> None:
        if not await self.repository.delete(business_id, endpoint_id):
            raise NotFound("no such webhook endpoint")

    async def rotate_secret(self, business_id: UUID, endpoint_id: UUID) -> dict[str, Any]:
        secret = new_secret()
        row = await self.repository.rotate_secret(
            business_id, endpoint_id, secret, PREVIOUS_SECRET_LIFETIME
        )
        if row is None:
            raise NotFound("no such webhook endpoint")
        return render(row) | {
            "secret": secret,
            "previous_secret_expires_at": _iso(row["previous_secret_expires_at"]),
        }

"""Tenants (hubs and their businesses) and their keys: who a bearer token is, and
which business it may act for."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from calendence import jsonfmt
from calendence.errors import NotFound, Unauthenticated
from calendence.principals import KeyKind, Principal
from calendence.schemas.catalogue import BusinessFields, merge_patch
from calendence.schemas.common import parse_json, patch_document
from calendence.timefmt import utcnow

from booking_service.tenant_repository import StoredKey, TenantRepository

PREFIXES = {KeyKind.HUB: "cal_hub_", KeyKind.BUSINESS: "cal_biz_", KeyKind.SESSION: "cal_ses_"}
# 32 random bytes: 256 bits, well above the 128 the platform promises.
_SECRET_BYTES = 32


def hash_secret(secret: str) -> bytes:
    # Keys are long random strings, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).digest()


def kind_of(secret: str) -> KeyKind | None:
    for kind, prefix in PREFIXES.items():
        if secret.startswith(prefix) and len(secret) > len(prefix) + 20:
            return kind
    return None


@dataclass(frozen=True)
class IssuedKey:
    """A key as shown once at creation: the only time the secret exists outside the client."""

    key: StoredKey
    secret: str


class Tenants:
    def __init__(
        self,
        repository: TenantRepository,
        session_ttl: timedelta,
        on_revoke: Callable[[UUID], Awaitable[None]],
    ) -> None:
        self.repository = repository
        self.session_ttl = session_ttl
        # Tells every gateway to drop the key from its cache at once.
        self.on_revoke = on_revoke

    async def issue_key(
        self,
        kind: KeyKind,
        *,
        hub_id: UUID | None = None,
        business_id: UUID | None = None,
        name: str | None = None,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        secret = PREFIXES[kind] + secrets.token_urlsafe(_SECRET_BYTES)
        stored = await self.repository.insert_key(
            key_id=uuid.uuid4(),
            kind=kind.value,
            key_hash=hash_secret(secret),
            display_prefix=secret[: len(PREFIXES[kind]) + 4],
            name=name,
            hub_id=hub_id,
            business_id=business_id,
            expires_at=expires_at,
        )
        return IssuedKey(stored, secret)

    async def authenticate(self, secret: str, business_id: UUID | None = None) -> Principal:
        """Resolve a bearer token; narrow a hub key to `business_id` when one is named."""
        if kind_of(secret) is None:
            raise Unauthenticated("the API key is malformed")
        key = await self.repository.find_and_touch_key(hash_secret(secret))
        if key is None:
            raise Unauthenticated("the API key is not valid")
        if key.revoked_at is not None:
            raise Unauthenticated("the API key has been revoked")
        if key.expires_at is not None and key.expires_at <= utcnow():
            raise Unauthenticated("the API key has expired")
        kind = KeyKind(key.kind)
        resolved, origins = key.business_id, key.allowed_origins
        if business_id is not None and business_id != key.business_id:
            business = await self.repository.get_business(business_id)
            if (
                kind is not KeyKind.HUB
                or business is None
                or key.hub_id is None
                or business["hub_id"] != key.hub_id
            ):
                # Another tenant's business looks exactly like a missing one.
                raise NotFound("no such business")
            resolved, origins = business_id, tuple(business["allowed_origins"])
        return Principal(
            key_id=str(key.id),
            kind=kind,
            hub_id=str(key.hub_id or ""),
            business_id=str(resolved or ""),
            expires_at=key.expires_at,
            allowed_origins=frozenset(origins),
        )

    async def create_session(self, business_id: UUID) -> IssuedKey:
        business = await self.repository.get_business(business_id)
        if business is None:
            raise NotFound("no such business")
        return await self.issue_key(
            KeyKind.SESSION,
            hub_id=business["hub_id"],
            business_id=business_id,
            expires_at=utcnow() + self.session_ttl,
        )

    async def create_hub_key(self, hub_id: UUID, name: str | None) -> IssuedKey:
        if await self.repository.get_hub(hub_id) is None:
            raise NotFound("no such hub")
        return await self.issue_key(KeyKind.HUB, hub_id=hub_id, name=name)

    async def create_business_key(self, business_id: UUID, name: str | None) -> IssuedKey:
        business = await self.repository.get_business(business_id)
        if business is None:
            raise NotFound("no such business")
        return await self.issue_key(
            KeyKind.BUSINESS, hub_id=business["hub_id"], business_id=business_id, name=name
        )

    async def revoke(self, key_id: UUID, *, business_id: UUID | None, hub_id: UUID | None) -> None:
        """Revoke a key the caller's tenant owns; anything else is NotFound."""
        key = await self.repository.get_key(key_id)
        if key is None or not _owned_by(key, business_id, hub_id):
            raise NotFound("no such key")
        await self.repository.revoke_key(key_id)
        await self.on_revoke(key_id)

    async def create_hub(self, name: str) -> dict[str, Any]:
        return await self.repository.insert_hub(uuid.uuid4(), name)

    async def create_business(self, hub_id: UUID | None, fields: BusinessFields) -> dict[str, Any]:
        if hub_id is not None and await self.repository.get_hub(hub_id) is None:
            raise NotFound("no such hub")
        return await self.repository.insert_business(uuid.uuid4(), hub_id, fields.model_dump())

    async def update_business(self, business_id: UUID, patch: bytes) -> dict[str, Any]:
        """Replace the fields `patch` names, then validate the whole merged business."""
        changes = patch_document(patch, BusinessFields)

        def merged(current: dict[str, Any]) -> dict[str, Any]:
            editable = {name: current[name] for name in BusinessFields.model_fields}
            patch_fields = dict(changes)
            policy = changes.get("booking_policy")
            if isinstance(policy, dict):
                # The policy merges one level down: a PATCH naming one rule keeps the rest.
                patch_fields["booking_policy"] = {**editable["booking_policy"], **policy}
            # Through JSON, as a create would be: strict mode reads only JSON types.
            fields = parse_json(BusinessFields, jsonfmt.dumps(merge_patch(editable, patch_fields)))
            return fields.model_dump()

        row = await self.repository.update_business(business_id, merged)
        if row is None:
            raise NotFound("no such business")
        return row

    async def get_business(self, business_id: UUID) -> dict[str, Any]:
        business = await self.repository.get_business(business_id)
        if business is None:
            raise NotFound("no such business")
        return business


def _owned_by(key: StoredKey, business_id: UUID | None, hub_id: UUID | None) -> bool:
    if business_id is not None:
        return key.business_id == business_id
    return hub_id is not None and key.hub_id == hub_id

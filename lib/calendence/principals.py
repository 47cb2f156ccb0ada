"""Who a bearer token is: its key kind and the principal it resolves to, one shape for
booking-service (which resolves tokens) and the gateway (which caches the answers), with
the one mapping to and from the wire (`calendence.auth.v1`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from calendence.auth.v1 import auth_pb2
from calendence.timefmt import from_timestamp, to_timestamp


class KeyKind(StrEnum):
    HUB = "hub"
    BUSINESS = "business"
    SESSION = "session"


PROTO_BY_KIND = {
    KeyKind.HUB: auth_pb2.KEY_KIND_HUB,
    KeyKind.BUSINESS: auth_pb2.KEY_KIND_BUSINESS,
    KeyKind.SESSION: auth_pb2.KEY_KIND_SESSION,
}
KIND_BY_PROTO = {proto: kind for kind, proto in PROTO_BY_KIND.items()}


@dataclass(frozen=True)
class Principal:
    """A verified key, with ids as the wire carries them ("" for none)."""

    key_id: str
    kind: KeyKind
    hub_id: str
    # Empty for a hub key that did not name a business.
    business_id: str
    # None for keys that do not expire.
    expires_at: datetime | None
    # The business's allowed web origins (CORS), cached with the key by the gateway.
    allowed_origins: frozenset[str] = frozenset()


def principal_message(principal: Principal) -> auth_pb2.Principal:
    message = auth_pb2.Principal(
        key_id=principal.key_id,
        kind=PROTO_BY_KIND[principal.kind],
        hub_id=principal.hub_id,
        business_id=principal.business_id,
        allowed_origins=sorted(principal.allowed_origins),
    )
    if principal.expires_at is not None:
        message.expires_at.CopyFrom(to_timestamp(principal.expires_at))
    return message


def principal_from_message(message: auth_pb2.Principal) -> Principal:
    return Principal(
        key_id=message.key_id,
        kind=KIND_BY_PROTO[message.kind],
        hub_id=message.hub_id,
        business_id=message.business_id,
        expires_at=from_timestamp(message.expires_at) if message.HasField("expires_at") else None,
        allowed_origins=frozenset(message.allowed_origins),
    )

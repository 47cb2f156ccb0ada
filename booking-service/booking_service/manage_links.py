"""Manage links: the URL a client uses to view, move or cancel their own booking.

The token is a signed value, so nothing secret is stored per booking and every answer
about the booking can carry the link again: 2 bytes naming the signing key, the
booking id (16 bytes) and 18 bytes (144 bits) of HMAC-SHA256 over the id under that
key, base64url. It names one booking and proves nothing else. A link works while its
booking is live and its appointment not over (`usable`); keys rotate (`calendence-admin
rotate-manage-key`): the newest signs, the others verify until they are retired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from calendence.errors import NotFound
from calendence.schemas.bookings import LIVE_STATUSES
from calendence.timefmt import utcnow

from booking_service.manage_repository import LinkKey, ManageRepository

log = logging.getLogger("booking_service.manage_links")

_KEY_ID_BYTES = 2
_MAC_BYTES = 18
_TOKEN_BYTES = _KEY_ID_BYTES + 16 + _MAC_BYTES
_TOKEN_LENGTH = len(base64.urlsafe_b64encode(bytes(_TOKEN_BYTES)))
_CONTEXT = b"calendence manage link v1:"
# An unknown key id makes us re-read the keys (another replica may have rotated), at
# most this often, so made-up tokens cannot make every request a database query.
_RELOAD_SECONDS = 5.0
DEAD_LINK = "this link does not work: it is wrong, or the booking is over or cancelled"


def usable(row: dict[str, Any], now: datetime) -> bool:
    """Whether a booking's manage link works: live and not over yet."""
    return row["status"] in LIVE_STATUSES and row["ends_at"] > now


class ManageLinks:
    def __init__(
        self,
        repository: ManageRepository,
        base_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repository = repository
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._keys: dict[int, bytes] = {}
        self._newest = 0
        self._loaded_at = 0.0

    async def load(self) -> None:
        """Read the keys (making the first one on a new database)."""
        keys = await self.repository.link_keys()
        if not keys:
            await self.repository.add_link_key(secrets.token_bytes(32), only_if_none=True)
            keys = await self.repository.link_keys()
        self._use(keys)

    def _use(self, keys: list[LinkKey]) -> None:
        self._keys = {key.id: key.secret for key in keys}
        self._newest = max(self._keys, default=0)
        self._loaded_at = time.monotonic()

    def token_for(self, booking_id: UUID) -> str:
        key_id = self._newest.to_bytes(_KEY_ID_BYTES, "big")
        raw = key_id + booking_id.bytes + self._mac(self._keys[self._newest], booking_id)
        return base64.urlsafe_b64encode(raw).decode()

    def url_for(self, row: dict[str, Any]) -> str | None:
        """The booking's manage URL while it works, else None."""
        if not self._keys or not usable(row, self.clock()):
            return None
        return f"{self.base_url}/manage/{self.token_for(row['id'])}"

    async def booking_of(self, token: str) -> UUID:
        """The booking a token names; NotFound unless its signature is good."""
        if len(token) != _TOKEN_LENGTH:
            raise NotFound(DEAD_LINK)
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise NotFound(DEAD_LINK) from None
        key_id = int.from_bytes(raw[:_KEY_ID_BYTES], "big")
        booking_id = UUID(bytes=raw[_KEY_ID_BYTES : _KEY_ID_BYTES + 16])
        secret = self._keys.get(key_id)
        if secret is None and time.monotonic() - self._loaded_at > _RELOAD_SECONDS:
            self._use(await self.repository.link_keys())
            secret = self._keys.get(key_id)
        if secret is None or not hmac.compare_digest(
            raw[_KEY_ID_BYTES + 16 :], self._mac(secret, booking_id)
        ):
            raise NotFound(DEAD_LINK)
        return booking_id

    async def refresh(self) -> None:
        """Pick up rotations and retirements made elsewhere."""
        self._use(await self.repository.link_keys())

    @staticmethod
    def _mac(secret: bytes, booking_id: UUID) -> bytes:
        return hmac.new(secret, _CONTEXT + booking_id.bytes, hashlib.sha256).digest()[:_MAC_BYTES]

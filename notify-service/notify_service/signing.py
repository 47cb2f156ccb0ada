"""Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`.

The key is the base64-decoded part of the secret after `whsec_`. While a rotated-out
secret is still valid the header carries both signatures, space-separated, so a
receiver holding either secret verifies.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def signature_header(
    signing_secrets: Iterable[str], message_id: str, sent_at: datetime, body: bytes
) -> str:
    text = body.decode()
    return " ".join(Webhook(s).sign(message_id, sent_at, text) for s in signing_secrets)


def webhook_headers(
    signing_secrets: Iterable[str], message_id: str, sent_at: datetime, body: bytes
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature_header(signing_secrets, message_id, sent_at, body),
    }

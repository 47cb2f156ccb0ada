"""Session tokens and business keys, as the gateway takes and gives them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from calendence.schemas.common import Answer, Schema


class SessionRequest(Schema):
    """Optional: a business key's session is for its own business."""

    # A hub key names the business here (or in the Calendence-Business header).
    business_id: UUID | None = Field(
        default=None, description="With a hub key: the business the session is for"
    )


class BusinessKeyRequest(Schema):
    name: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="A label to tell keys apart"
    )


class Session(Answer):
    """A session token for a booking widget: shown this once, expires at `expires_at`."""

    object: Literal["session"]
    id: UUID
    kind: Literal["session"]
    token: str = Field(description="The bearer token (`cal_ses_...`); only its hash is kept")
    business_id: UUID
    created_at: datetime
    expires_at: datetime


class ApiKey(Answer):
    """A business API key: shown this once, valid until revoked."""

    object: Literal["api_key"]
    id: UUID
    kind: Literal["business"]
    token: str = Field(description="The bearer token (`cal_biz_...`); only its hash is kept")
    business_id: UUID
    created_at: datetime
    expires_at: None

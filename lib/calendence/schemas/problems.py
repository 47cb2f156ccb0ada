"""RFC 9457 problem details: the one shape of every error answer."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from calendence.schemas.common import Answer


class Problem(Answer):
    """An error (`application/problem+json`). `type` names the kind of problem; for 422,
    `errors` maps each offending field (dotted path, e.g. `client.email`) to the reason."""

    __omittable__: ClassVar[frozenset[str]] = frozenset({"errors"})

    type: str = Field(description="A URI naming the kind of problem")
    title: str = Field(description="A short summary of that kind of problem")
    status: int = Field(ge=400, le=599, description="The HTTP status")
    detail: str = Field(description="What went wrong with this request")
    errors: dict[str, str] | None = Field(
        default=None, description="For 422: each offending field and why"
    )

"""Manage links as a client gets them: from a booking's `manage_url`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.api import Answer, Api


def token_of(booking: dict[str, Any]) -> str:
    url = str(booking["manage_url"])
    assert url, booking
    path = urlsplit(url).path
    assert path.startswith("/manage/"), url
    return path.removeprefix("/manage/")


async def managed(api: Api, booking: dict[str, Any], action: str = "", **kw: Any) -> Answer:
    """GET (or, with `json`, POST) /api/v1/manage/{token}[/action]."""
    path = f"/api/v1/manage/{token_of(booking)}" + (f"/{action}" if action else "")
    if "json" in kw:
        return await api.post(path, json=kw.pop("json"), **kw)
    return await api.get(path, **kw)

"""Reading requests and writing JSON answers the same way on every route."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from aiohttp import web
from calendence import rpc
from calendence.errors import InvalidInput
from calendence.ids import existing_id
from calendence.pages import MAX_PAGE_SIZE as MAX_PAGE_SIZE

from gateway.appkeys import SETTINGS

Reply = TypeVar("Reply")
MAX_BODY_BYTES = 1024 * 1024
# Cursors the API gives out: base64url without padding, a position in a list. Checked
# here because base64 decoding would otherwise skip characters outside its alphabet.
CURSOR_PATTERN = "^[A-Za-z0-9_-]{0,64}$"
CURSOR = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))


async def read_body(request: web.Request) -> bytes:
    body = await request.read()
    if not body:
        raise InvalidInput("the request needs a JSON body", fields={"body": "missing"})
    return body


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(document), status=status, content_type="application/json", headers=headers
    )


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def page_response(items: list[bytes], next_cursor: str) -> web.Response:
    # Items are JSON documents already; splice them instead of decoding and re-encoding.
    body = (
        b'{"object":"list","data":['
        + b",".join(items)
        + b'],"has_more":'
        + (b"true" if next_cursor else b"false")
        + b',"next_cursor":'
        + orjson.dumps(next_cursor or None)
        + b"}"
    )
    return raw_json_response(body)


def page_params(request: web.Request) -> tuple[str, int]:
    limit_text = request.query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
        raise InvalidInput(
            "bad page size", fields={"limit": f"must be a whole number from 1 to {MAX_PAGE_SIZE}"}
        )
    cursor = request.query.get("cursor", "")
    if not CURSOR.fullmatch(cursor):
        raise InvalidInput(
            "the cursor is not one this API gave out", fields={"cursor": "invalid cursor"}
        )
    return cursor, int(limit_text)


def path_uuid(request: web.Request, name: str) -> str:
    """An id from the path; a malformed one names nothing, so it is 404 like a missing one."""
    value = request.match_info[name]
    existing_id(value, f"no such {name.removesuffix('_id')}")
    return value


async def call(request: web.Request, method: rpc.UnaryMethod[Any, Reply], message: Any) -> Reply:
    """A downstream gRPC call with the gateway's deadline."""
    return await rpc.unary(method, message, timeout=request.app[SETTINGS].rpc_timeout_seconds)

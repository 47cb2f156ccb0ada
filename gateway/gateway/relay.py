"""Routes that hand a request to a service and answer the JSON it returns untouched: one
way to relay a document, one to relay a page of a list, and one for calls that answer
nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from aiohttp import web
from calendence import rpc

from gateway.appkeys import DOWNSTREAM
from gateway.contract import page_of_request
from gateway.downstream import Downstream
from gateway.http_io import call, page_response, raw_json_response


class JsonAnswer(Protocol):
    """A service answer carrying one JSON document (`JsonReply` and its kin)."""

    @property
    def json(self) -> bytes: ...


class PageAnswer(Protocol):
    """A service answer carrying one page of JSON documents."""

    @property
    def items_json(self) -> Sequence[bytes]: ...

    @property
    def next_cursor(self) -> str: ...


class PageQuery(Protocol):
    """A request for one page of a list (`ListBookingsRequest` and its kin)."""

    cursor: str
    limit: int


Document = TypeVar("Document", bound=JsonAnswer)
Page = TypeVar("Page", bound=PageAnswer)
Query = TypeVar("Query", bound=PageQuery)


async def relay_document(
    request: web.Request, method: rpc.UnaryMethod[Any, Document], message: Any, status: int = 200
) -> web.Response:
    """Calls `method` and answers the document it returns with `status`."""
    answer = await call(request, method, message)
    return raw_json_response(answer.json, status=status)


async def relay_no_content(
    request: web.Request, method: rpc.UnaryMethod[Any, Any], message: Any
) -> web.Response:
    """Calls `method`, whose answer has nothing to show, and answers 204."""
    await call(request, method, message)
    return web.Response(status=204)


def item_relay(
    method: Callable[[Downstream], rpc.UnaryMethod[Any, Document]],
    message: Callable[[web.Request], Any],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A route handler that sends the message `message(request)` builds (the item the
    path names) to `method` of the services, and answers the document it returns."""

    async def relay_item(request: web.Request) -> web.Response:
        return await relay_document(request, method(request.app[DOWNSTREAM]), message(request))

    return relay_item


async def relay_page(
    request: web.Request, method: rpc.UnaryMethod[Query, Page], query: Query
) -> web.Response:
    """Calls `method` with `query` set to the page the request asks for (`cursor`,
    `limit`), and answers that page."""
    query.cursor, query.limit = page_of_request(request)
    page = await call(request, method, query)
    return page_response(list(page.items_json), page.next_cursor)

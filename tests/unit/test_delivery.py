"""The gateway's `deliver` layer: undo actions of a request whose answer went out."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from gateway.delivery import deliver, undo_unless_delivered


@pytest.fixture
def undone() -> list[str]:
    return []


@pytest.fixture
async def server(undone: list[str]) -> AsyncIterator[BaseTestServer]:
    async def place(request: web.Request) -> web.Response:
        async def give_back() -> None:
            # Like a real undo action, it needs its request (to call downstream).
            undone.append(request.path)

        undo_unless_delivered(request, give_back)
        return web.Response(status=int(request.query.get("status", "201")))

    app = web.Application(middlewares=[deliver])
    app.router.add_post("/place", place)
    async with TestServer(app) as started:
        yield started


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the cyclic collector frees meanwhile, kept for the test to look at."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_a_delivered_answer_leaves_its_request_to_reference_counting(
    server: BaseTestServer, undone: list[str], saved_garbage: list[object]
) -> None:
    # A request left in a reference cycle waits for the cyclic collector, whose full
    # collections stop the gateway for milliseconds: the p99 of every request.
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            async with http.post(server.make_url("/place")) as answer:
                assert answer.status == 201
    gc.collect()
    assert not [o for o in saved_garbage if isinstance(o, web.BaseRequest)]
    assert undone == []


async def test_a_refused_answer_still_undoes_the_work(
    server: BaseTestServer, undone: list[str]
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url("/place"), params={"status": "409"}) as answer,
    ):
        assert answer.status == 409
    assert undone == ["/place"]

"""Answers to requests that never reach the application: malformed HTTP.

aiohttp answers a request it cannot parse (a bad header, a line over 8 KiB, garbage on
the port) itself, in plain text that quotes the offending bytes and names the aiohttp
and Python versions, without X-Request-Id. This runner makes those answers problems
like every other error, with a request id.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from calendence.logs import new_request_id

from gateway.middleware import REQUEST_ID_HEADER, SERVER_NAME
from gateway.problems import problem_response

_DETAILS = {
    400: "the request is not valid HTTP (a malformed line or header, or one over 8 KiB)",
    500: "something went wrong on our side; it has been logged",
}


class _ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Logs the error (and refuses when an answer had already begun), as aiohttp does.
        super().handle_error(request, status, exc, message)
        response = problem_response(status, _DETAILS.get(status, "the request failed"))
        response.headers[REQUEST_ID_HEADER] = new_request_id()
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections answer unparsable requests with problems."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The same server, made by the application as usual; only its handler class differs.
        server.__class__ = _ProblemServer
        return server

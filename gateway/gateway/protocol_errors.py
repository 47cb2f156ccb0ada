"""Answers to requests that never reach the application: malformed HTTP.

aiohttp answers a request it cannot parse (a bad header, a line over 8 KiB, garbage on
the port) itself, in plain text that quotes the offending bytes and names the aiohttp
and Python versions, without X-Request-Id. This runner makes those answers problems
like every other error, with a request id, and logs them as the client's mistakes they
are: one warning line, no traceback (a bug of ours, a 500, keeps its traceback).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from calendence.logs import log_fields, new_request_id

from gateway.appkeys import SETTINGS
from gateway.middleware import REQUEST_ID_HEADER, SERVER_NAME
from gateway.problems import INTERNAL_ERROR_DETAIL, problem_response

log = logging.getLogger("gateway.access")
# The reason quotes the offending bytes; enough of them to tell what was wrong.
_MAX_REASON_CHARS = 200
_DETAILS = {
    400: "the request is not valid HTTP (a malformed line or header, or one over 8 KiB)",
    500: INTERNAL_ERROR_DETAIL,
}


class _ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # A bug of ours: with its traceback, as aiohttp logs it.
            self.log_exception("error handling a request", exc_info=exc)
        else:
            # The client's mistake, common on any open port: a line, not a traceback.
            reason = " ".join(str(message or exc or "").split())
            log.warning(
                "unparsable request refused",
                extra=log_fields(status=status, reason=reason[:_MAX_REASON_CHARS]),
            )
        if request.writer.output_size > 0:
            # Part of an answer went out already: the connection can only be dropped.
            raise ConnectionError("an answer had begun; cannot send an error instead")
        response = problem_response(status, _DETAILS.get(status, "the request failed"))
        response.headers[REQUEST_ID_HEADER] = new_request_id()
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections answer unparsable requests with problems, and
    close when idle (or when headers never end) for IDLE_CONNECTION_TIMEOUT_SECONDS."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", app[SETTINGS].idle_connection_timeout_seconds)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The same server, made by the application as usual; only its handler class differs.
        server.__class__ = _ProblemServer
        return server

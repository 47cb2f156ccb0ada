"""A local Stripe-compatible server: the Checkout Session calls Calendence makes.

Stripe cannot be reached from a developer's machine or CI, so `make run` and the tests
point the real `stripe` library at this server (through its API base address). It
creates, shows and expires Checkout Sessions, serves a payment page whose "Pay" button
completes the session, and sends `checkout.session.completed` / `.expired` events
signed exactly as Stripe signs them (`Stripe-Signature: t=...,v1=...`).

Test hooks under /_control let a test make it fail or stall, count the calls it got,
and expire a session as Stripe would at its `expires_at`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import time
from typing import Any

import aiohttp
import orjson
import stripe
from aiohttp import web

_BRACKETS = re.compile(r"\[([^\]]*)\]")


def expand_form(form: dict[str, str]) -> dict[str, Any]:
    """`metadata[booking_id]=x&line_items[0][quantity]=1` -> nested dicts and lists."""
    root: dict[str, Any] = {}
    for flat, value in form.items():
        head = flat.split("[", 1)[0]
        path = [head, *_BRACKETS.findall(flat)]
        node: Any = root
        for index, part in enumerate(path):
            last = index == len(path) - 1
            nxt = path[index + 1] if not last else None
            key: Any = int(part) if isinstance(node, list) else part
            if isinstance(node, list):
                while len(node) <= key:
                    node.append(None)
            if last:
                node[key] = value
            else:
                if (node[key] if isinstance(node, list) else node.get(key)) is None:
                    node[key] = [] if nxt is not None and nxt.isdigit() else {}
                node = node[key]
    return root


class LocalStripe:
    def __init__(self, public_url: str, webhook_url: str, webhook_secret: str) -> None:
        self.public_url = public_url.rstrip("/")
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.sessions: dict[str, dict[str, Any]] = {}
        self.by_idempotency_key: dict[str, str] = {}
        self.mode = "up"  # "down" answers 500, "slow" stalls past any client timeout
        self.calls = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.add_routes(
            [
                web.post("/v1/checkout/sessions", self.create_session),
                web.get("/v1/checkout/sessions/{id}", self.get_session),
                web.post("/v1/checkout/sessions/{id}/expire", self.expire_session),
                web.get("/pay/{id}", self.payment_page),
                web.post("/pay/{id}", self.pay),
                web.post("/_control/mode/{mode}", self.set_mode),
                web.get("/_control/calls", self.count_calls),
                web.post("/_control/sessions/{id}/lapse", self.lapse),
            ]
        )
        return app

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            self.calls += 1
            if self.mode == "down":
                return web.json_response(
                    {"error": {"type": "api_error", "message": "local Stripe is down"}}, status=500
                )
            if self.mode == "slow":
                await asyncio.sleep(60)
        response: web.StreamResponse = await handler(request)
        return response

    async def create_session(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key and key in self.by_idempotency_key:
            return web.json_response(self.sessions[self.by_idempotency_key[key]])
        params = expand_form(dict(await request.post()))  # type: ignore[arg-type]
        session_id = "cs_test_" + secrets.token_hex(12)
        items = params.get("line_items") or []
        amount = sum(int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": items[0]["price_data"]["currency"] if items else None,
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata") or {},
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "expires_at": int(params.get("expires_at") or time.time() + 24 * 3600),
            "created": int(time.time()),
            "livemode": False,
            "url": f"{self.public_url}/pay/{session_id}",
        }
        self.sessions[session_id] = session
        if key:
            self.by_idempotency_key[key] = session_id
        return web.json_response(session)

    def _session(self, request: web.Request) -> dict[str, Any]:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            raise web.HTTPNotFound(
                text=orjson.dumps(
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": "No such checkout.session",
                        }
                    }
                ).decode(),
                content_type="application/json",
            )
        return session

    async def get_session(self, request: web.Request) -> web.Response:
        return web.json_response(self._session(request))

    async def expire_session(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session["status"] != "open":
            return web.json_response(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"Only open sessions can be expired, not {session['status']}",
                    }
                },
                status=400,
            )
        session["status"] = "expired"
        await self._send("checkout.session.expired", session)
        return web.json_response(session)

    async def payment_page(self, request: web.Request) -> web.Response:
        session = self._session(request)
        amount = f"{session['amount_total'] / 100:.2f} {str(session['currency']).upper()}"
        body = (
            "<!doctype html><title>Local Stripe Checkout</title>"
            f"<h1>Deposit: {amount}</h1><p>Session {session['id']} is {session['status']}.</p>"
            + (
                '<form method="post"><button type="submit">Pay</button></form>'
                if session["status"] == "open"
                else ""
            )
        )
        return web.Response(text=body, content_type="text/html")

    async def pay(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session["status"] != "open":
            raise web.HTTPConflict(text=f"session is {session['status']}")
        session["status"] = "complete"
        session["payment_status"] = "paid"
        await self._send("checkout.session.completed", session)
        if session.get("success_url") and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther(session["success_url"])
        return web.json_response(session)

    async def lapse(self, request: web.Request) -> web.Response:
        """What Stripe does at expires_at, minus the webhook: for the sweeper's tests."""
        session = self._session(request)
        session["status"] = "expired"
        return web.json_response(session)

    async def set_mode(self, request: web.Request) -> web.Response:
        self.mode = request.match_info["mode"]
        return web.json_response({"mode": self.mode})

    async def count_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls})

    async def _send(self, event_type: str, session: dict[str, Any]) -> None:
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2024-06-20",
            "data": {"object": session},
        }
        payload = orjson.dumps(event).decode()
        signature = stripe.WebhookSignature.generate_signature_header(payload, self.webhook_secret)
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                self.webhook_url,
                data=payload,
                headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
            ) as answer,
        ):
            await answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(prog="stripe_local", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--webhook-secret", required=True)
    args = parser.parse_args()
    local = LocalStripe(f"http://127.0.0.1:{args.port}", args.webhook_url, args.webhook_secret)
    web.run_app(local.app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()

"""Webhooks reach only public https targets: refused when an endpoint is saved, and
again at every attempt after DNS resolution, unless the development setting allows.

The module runs notify-service as production would (WEBHOOKS_ALLOW_PRIVATE_TARGETS
off), then gives the other tests back their localhost receivers. No test here sends
anything off this machine: the refused targets are loopback, private or made up.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from calendence.devstack.stack import LocalStack
from notify_service import targets
from notify_service.delivery_repository import Claim
from notify_service.sender import Sender

from tests.api import Tenant, tomorrow_at
from tests.booking_helpers import open_salon
from tests.webhook_receiver import (
    ALLOW_PRIVATE,
    ENDPOINTS,
    WebhookReceiver,
    notify_db,
    restart_notify_service,
    wait_for_attempts,
)


@pytest.fixture(scope="module")
def production_notify_service(stack: LocalStack) -> Iterator[None]:
    restart_notify_service(stack, env={ALLOW_PRIVATE: "false"})
    try:
        yield
    finally:
        stack.env[ALLOW_PRIVATE] = "true"
        restart_notify_service(stack)


@asynccontextmanager
async def saved_endpoint(stack: LocalStack, tenant: Tenant, url: str) -> AsyncIterator[str]:
    """An endpoint written straight into notify-service's database, as if saved while
    its URL was acceptable; deleted afterwards."""
    endpoint_id = uuid.uuid4()
    async with notify_db(stack) as db:
        await db.execute(
            "INSERT INTO webhook_endpoints (id, business_id, url, events, secret) "
            "VALUES ($1, $2, $3, '{*}', $4)",
            endpoint_id,
            uuid.UUID(tenant.business_id),
            url,
            "whsec_" + "B" * 44,
        )
    try:
        yield str(endpoint_id)
    finally:
        await tenant.api.delete(f"{ENDPOINTS}/{endpoint_id}", tenant.business_key)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT, also Alibaba's metadata range
        ("169.254.169.254", False),  # cloud metadata (link-local)
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert targets.is_public(ipaddress.ip_address(address)) is public


@pytest.mark.usefixtures("production_notify_service")
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/calendence", "must use https"),
        ("https://127.0.0.1/hook", "127.0.0.1 is a private"),
        ("https://10.0.0.8/hook", "10.0.0.8 is a private"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a private"),
        ("https://[::1]:8443/hook", "::1 is a private"),
        ("https://[::ffff:192.168.0.1]/hook", "is a private"),
        ("https://localhost:8443/hook", "localhost is this machine"),
        ("https://api.localhost/hook", "is this machine"),
    ],
)
async def test_private_and_plain_http_targets_are_refused_at_creation(
    tenant: Tenant, url: str, reason: str
) -> None:
    answer = await tenant.api.post(ENDPOINTS, tenant.business_key, {"url": url})
    assert answer.status == 422, answer.body
    assert reason in answer.body["errors"]["url"]


@pytest.mark.usefixtures("production_notify_service")
async def test_changing_the_url_to_a_private_target_is_refused(
    tenant: Tenant, stack: LocalStack
) -> None:
    async with saved_endpoint(stack, tenant, "https://hooks.example.com/ok") as endpoint_id:
        answer = await tenant.api.patch(
            f"{ENDPOINTS}/{endpoint_id}", tenant.business_key, {"url": "https://10.9.8.7/"}
        )
    assert answer.status == 422, answer.body
    assert "url" in answer.body["errors"]


@pytest.mark.usefixtures("production_notify_service")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_targets_are_refused_again_when_delivering(
    tenant: Tenant, receiver: WebhookReceiver, stack: LocalStack, host: str
) -> None:
    """An endpoint saved while its name pointed elsewhere, now pointing here."""
    salon = await open_salon(tenant)
    url = f"https://{host}:{receiver.port}/hook"
    async with saved_endpoint(stack, tenant, url) as endpoint_id:
        await salon.booking(tomorrow_at(10))
        (delivery,) = await wait_for_attempts(tenant, endpoint_id, 1)
    assert delivery["attempts"][0]["status_code"] is None
    assert delivery["attempts"][0]["error"].startswith("refused: ")
    assert receiver.received == []


class LoopbackDns(AbstractResolver):
    """A DNS that answers 127.0.0.1 for every name: DNS rebinding at its plainest."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("allow_private", [False, True])
async def test_a_name_that_resolves_to_a_private_address_is_not_connected_to(
    receiver: WebhookReceiver, allow_private: bool
) -> None:
    scheme = "http" if allow_private else "https"
    claim = Claim(
        delivery_id=uuid.uuid4(),
        endpoint_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        attempt=1,
        lease_token=uuid.uuid4(),
        url=f"{scheme}://hooks.rebinding.test:{receiver.port}/hook",
        signing_secrets=("whsec_" + "A" * 44,),
        body=b'{"type":"booking.created","timestamp":"","data":{}}',
    )
    resolver = targets.PublicOnlyResolver(allow_private, inner=LoopbackDns())
    async with Sender(allow_private, 5, 1, resolver) as sender:
        result = await sender.send(claim)
    if allow_private:  # the control: the same resolution does reach the receiver
        assert result.status_code == 200
        assert len(receiver.received) == 1
    else:
        assert result.status_code is None
        assert result.error == (
            "refused: hooks.rebinding.test resolves to 127.0.0.1, which is not a public address"
        )
        assert receiver.received == []

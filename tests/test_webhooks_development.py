"""Development mode (WEBHOOKS_ALLOW_PRIVATE_TARGETS, what `make run` sets) lets webhooks
reach a receiver on this machine, and nothing else that is not public: never a
link-local address (the cloud metadata service), a private network or a reserved range.

The session's stack runs notify-service in development mode, as `make run` does.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from calendence.devstack.stack import LocalStack
from notify_service import targets
from notify_service.delivery_repository import Claim
from notify_service.sender import Sender

from tests.api import Tenant, tomorrow_at
from tests.booking_helpers import open_salon
from tests.webhook_receiver import (
    ENDPOINTS,
    WebhookReceiver,
    allow_private_targets,
    notify_db,
    wait_for_attempts,
)

# Addresses a development stack must never send to, each with why.
NEVER_REACHED = [
    "169.254.169.254",  # cloud metadata service (link-local)
    "169.254.1.1",  # link-local
    "10.0.0.8",  # private
    "172.16.5.4",  # private
    "192.168.1.10",  # private
    "100.100.100.200",  # shared address space: Alibaba Cloud's metadata service
    "0.0.0.0",  # unspecified: reaches this machine on Linux, without saying so
    "fe80::1",  # IPv6 link-local
    "fd00:ec2::254",  # AWS metadata over IPv6 (unique local)
    "::ffff:169.254.169.254",  # metadata written as IPv4-mapped IPv6
    "64:ff9b::a9fe:a9fe",  # metadata through NAT64
]


@pytest.fixture(autouse=True)
def development_mode(stack: LocalStack) -> None:
    allow_private_targets(stack)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


def _url(address: str, path: str = "/hook") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}{path}"


@pytest.mark.parametrize("address", NEVER_REACHED)
async def test_development_mode_refuses_non_loopback_private_targets(
    tenant: Tenant, address: str
) -> None:
    answer = await tenant.api.post(ENDPOINTS, tenant.business_key, {"url": _url(address)})
    assert answer.status == 422, answer.body
    assert "is a private, link-local or reserved address" in answer.body["errors"]["url"]


async def test_development_mode_refuses_the_cloud_metadata_url(tenant: Tenant) -> None:
    answer = await tenant.api.post(
        ENDPOINTS, tenant.business_key, {"url": "http://169.254.169.254/latest/meta-data"}
    )
    assert answer.status == 422, answer.body


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://127.8.9.10:9/hook",
        "http://[::1]:9/hook",
        "http://localhost:9/hook",
        "https://hooks.example.com/calendence",
    ],
)
async def test_development_mode_accepts_loopback_and_public_targets(
    tenant: Tenant, url: str
) -> None:
    answer = await tenant.api.post(ENDPOINTS, tenant.business_key, {"url": url})
    assert answer.status == 201, answer.body


async def test_development_mode_does_not_deliver_to_a_saved_metadata_address(
    tenant: Tenant, stack: LocalStack
) -> None:
    """An endpoint in the database from before this rule: refused at every attempt."""
    salon = await open_salon(tenant)
    endpoint_id = uuid.uuid4()
    async with notify_db(stack) as db:
        await db.execute(
            "INSERT INTO webhook_endpoints (id, business_id, url, events, secret) "
            "VALUES ($1, $2, $3, '{*}', $4)",
            endpoint_id,
            uuid.UUID(tenant.business_id),
            "http://169.254.169.254/latest/meta-data",
            "whsec_" + "C" * 44,
        )
    try:
        await salon.booking(tomorrow_at(10))
        (delivery,) = await wait_for_attempts(tenant, str(endpoint_id), 1)
    finally:
        await tenant.api.delete(f"{ENDPOINTS}/{endpoint_id}", tenant.business_key)
    attempt = delivery["attempts"][0]
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        "refused: 169.254.169.254 is a private, link-local or reserved address"
    )


class MetadataDns(AbstractResolver):
    """A DNS that answers the metadata address for every name (DNS rebinding)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host="169.254.169.254",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=0,
            )
        ]

    async def close(self) -> None:
        pass


async def test_development_mode_does_not_connect_to_a_name_resolving_to_metadata() -> None:
    claim = Claim(
        delivery_id=uuid.uuid4(),
        endpoint_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        attempt=1,
        lease_token=uuid.uuid4(),
        url="http://hooks.rebinding.test/hook",
        signing_secrets=("whsec_" + "A" * 44,),
        body=b'{"type":"booking.created","timestamp":"","data":{}}',
    )
    resolver = targets.PublicOnlyResolver(True, inner=MetadataDns())
    async with Sender(True, 5, 1, resolver) as sender:
        result = await sender.send(claim)
    assert result.status_code is None
    assert result.error == (
        "refused: hooks.rebinding.test resolves to 169.254.169.254, which is not a public address"
    )


async def test_development_mode_still_delivers_to_a_receiver_on_this_machine(
    tenant: Tenant, receiver: WebhookReceiver
) -> None:
    salon = await open_salon(tenant)
    answer = await tenant.api.post(
        ENDPOINTS, tenant.business_key, {"url": f"http://localhost:{receiver.port}/hook"}
    )
    assert answer.status == 201, answer.body
    await salon.booking(tomorrow_at(10))
    (delivery,) = await wait_for_attempts(tenant, answer.body["id"], 1)
    assert delivery["attempts"][0]["status_code"] == 200
    assert len(receiver.received) == 1

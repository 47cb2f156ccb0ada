"""Two replicas of every service on a three-node NATS cluster (`make run REPLICAS=2
CLUSTER=1`'s NATS side), for the tests in this folder only: started for the first of
them and stopped after the last, so the rest of the suite never shares the machine
with it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Api
from tests.conftest import TEST_SERVICE_ENV


@pytest.fixture(scope="package")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """`make run REPLICAS=2 CLUSTER=1`: two processes of each service on a three-node
    NATS cluster (three copies of the events stream), for the failure tests. Nothing
    restarts a process the tests kill: they start it again themselves."""
    running = LocalStack(
        tmp_path_factory.mktemp("cluster-stack"),
        persist=False,
        replicas=2,
        nats_cluster=True,
        service_env={
            **TEST_SERVICE_ENV,
            # An event delivered to a consumer whose NATS node died is sent again after
            # this long (30 s in production): the tests wait seconds, not half a minute.
            "NOTIFY_EVENTS_ACK_WAIT_SECONDS": "3",
        },
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
async def cluster_apis(cluster_stack: LocalStack) -> AsyncIterator[list[Api]]:
    """One client per gateway replica."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield [Api(session, url) for url in cluster_stack.gateway_urls]


@pytest.fixture(scope="package")
def cluster_hub(cluster_stack: LocalStack) -> dict[str, str]:
    made = cluster_stack.admin("create-hub", "--name", "Cluster Hub")
    key = cluster_stack.admin("create-key", "--kind", "hub", "--hub-id", made["id"])
    return {"id": made["id"], "key": key["token"]}

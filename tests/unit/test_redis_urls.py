"""Which Redis a REDIS_URL names: one server, or a Redis Cluster and its seed nodes."""

from __future__ import annotations

import pytest
from calendence.storage import cluster_seeds, is_cluster_url


def test_redis_and_rediss_urls_name_one_server() -> None:
    assert not is_cluster_url("redis://127.0.0.1:6379/0")
    assert not is_cluster_url("rediss://:secret@redis.internal:6379/0")


def test_cluster_urls_name_a_cluster() -> None:
    assert is_cluster_url("redis+cluster://a:7000,b:7001")
    assert is_cluster_url("rediss+cluster://a:7000")


def test_every_listed_node_is_a_seed_and_a_missing_port_is_6379() -> None:
    seeds, _ = cluster_seeds("redis+cluster://10.0.0.1:7000, node-b ,node-c:7002/")
    assert seeds == [("10.0.0.1", 7000), ("node-b", 6379), ("node-c", 7002)]


def test_credentials_and_tls_carry_over_to_every_node() -> None:
    _, options = cluster_seeds("rediss+cluster://app:s%40cret@a:6379,b:6379")
    assert options["username"] == "app"
    assert options["password"] == "s@cret"
    assert options["ssl"] is True


def test_query_options_are_read_as_redis_py_reads_them() -> None:
    _, options = cluster_seeds("redis+cluster://a:6379?socket_timeout=0.5")
    assert options["socket_timeout"] == 0.5
    assert "ssl" not in options


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://", "redis+cluster://a:6379/1", "redis://a:6379/0"],
    ids=["no node", "a database other than 0", "not a cluster"],
)
def test_a_url_no_cluster_client_can_use_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        cluster_seeds(url)

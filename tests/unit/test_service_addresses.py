"""Where clients find replicas: a service address setting as a gRPC target, NATS_URL
as a list of servers, and the local stack's replica names."""

from __future__ import annotations

import pytest
from calendence.devstack.stack import replica_name, service_of
from calendence.events import server_urls
from calendence.rpc import replica_targets


def test_one_address_stays_a_name_for_dns_to_resolve_to_every_replica() -> None:
    assert replica_targets("hold-service:50051") == ["hold-service:50051"]


def test_listed_ipv4_replicas_become_a_target_each() -> None:
    assert replica_targets("127.0.0.1:50051, 10.0.0.7:50051") == [
        "ipv4:127.0.0.1:50051",
        "ipv4:10.0.0.7:50051",
    ]


def test_listed_ipv6_replicas_become_a_target_each() -> None:
    assert replica_targets("[::1]:50051,[fd00::7]:50051") == [
        "ipv6:[::1]:50051",
        "ipv6:[fd00::7]:50051",
    ]


@pytest.mark.parametrize(
    "address",
    ["hold-a:50051,hold-b:50051", "127.0.0.1:50051,[::1]:50051", "127.0.0.1,127.0.0.2", " , "],
)
def test_a_list_of_names_or_mixed_families_is_refused(address: str) -> None:
    with pytest.raises(ValueError):
        replica_targets(address)


def test_nats_url_lists_every_server_of_a_cluster() -> None:
    assert server_urls("nats://a:4222, nats://b:4222,nats://c:4222") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]
    assert server_urls("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


def test_an_empty_nats_url_is_refused() -> None:
    with pytest.raises(ValueError):
        server_urls(" , ")


def test_the_first_replica_keeps_the_services_name_and_the_others_are_numbered() -> None:
    assert [replica_name("hold-service", n) for n in (1, 2, 3)] == [
        "hold-service",
        "hold-service-2",
        "hold-service-3",
    ]
    assert service_of("hold-service-2") == "hold-service"
    assert service_of("gateway") == "gateway"
    with pytest.raises(KeyError):
        service_of("nats-2")

"""gRPC channels: the keepalive and reconnect options both ends share, and clients'."""

from __future__ import annotations

import ipaddress

import grpc

from calendence.rpc.multiplexed_channel import MultiplexedChannel
from calendence.rpc.replica_channels import ReplicaChannels

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after a peer restarts instead of waiting out a long backoff.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
# Clients spread calls over every address the name resolves to (each pod of a
# headless Kubernetes Service), not just the first.
CLIENT_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.lb_policy_name", "round_robin")]


def replica_targets(address: str) -> list[str]:
    """The gRPC targets for a `*_SERVICE_ADDR` setting.

    One `host:port` stays as it is: gRPC's DNS resolver finds every address the name
    has (each pod behind a headless Kubernetes Service). Replicas listed as
    `ip:port,ip:port` become one `ipv4:` target each (`ipv6:` for `[ip]:port`s). Host
    names cannot be listed: one name that resolves to every replica does that job.
    """
    addresses = [part.strip() for part in address.split(",") if part.strip()]
    if not addresses:
        raise ValueError("a service address is empty")
    if len(addresses) == 1:
        return addresses
    for family, ipv6 in (("ipv4", False), ("ipv6", True)):
        if all(_is_ip_port(part, ipv6=ipv6) for part in addresses):
            return [f"{family}:{part}" for part in addresses]
    raise ValueError(
        f"{address!r}: list replicas as ip:port (all IPv4 or all [IPv6]) separated by "
        "commas, or give one host name that resolves to every replica"
    )


def _is_ip_port(address: str, *, ipv6: bool) -> bool:
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        return False
    if ipv6:
        if not (host.startswith("[") and host.endswith("]")):
            return False
        host = host[1:-1]
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return False
    return parsed.version == (6 if ipv6 else 4)


def open_channel(address: str) -> grpc.aio.Channel:
    """A channel to every replica `address` names, its unary calls sent on a few
    long-lived streams (`MultiplexedChannel`). Replicas listed as `ip:port,ip:port` get
    a channel each and the calls go round robin over those ready (`ReplicaChannels`);
    one host name gets one round-robin channel over every address it resolves to, over
    which the streams spread as they are opened and replaced."""
    targets = replica_targets(address)
    if len(targets) == 1:
        return MultiplexedChannel(grpc.aio.insecure_channel(targets[0], options=CLIENT_OPTIONS))
    return ReplicaChannels(
        [
            MultiplexedChannel(grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS))
            for target in targets
        ]
    )

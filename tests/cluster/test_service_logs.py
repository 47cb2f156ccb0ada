"""Nothing the services sent a Redis Cluster in this package's tests, in answer to a
request or in the background (claim repair, expiry sweeps), was refused for keys in
two hash slots. Runs after the package's other modules, whose traffic it reads."""

from __future__ import annotations

from calendence.devstack.stack import SERVICES, LocalStack

# Redis' refusal (CROSSSLOT) and redis-py's own, for a command it would not send.
CROSS_SLOT_SIGNS = ("CROSSSLOT", "must map to the same key slot")


def test_no_service_sent_redis_a_command_over_two_hash_slots(stack: LocalStack) -> None:
    logs = stack.state_dir / "logs"
    read = {name: (logs / f"{name}.log").read_text(errors="replace") for name in SERVICES}
    assert all(read.values()), "the services wrote no logs"
    for name, text in read.items():
        for sign in CROSS_SLOT_SIGNS:
            assert sign not in text, f"{name}: {sign}"

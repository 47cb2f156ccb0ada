"""What Redis's append-only file costs per hold placed, at each rewrite percentage.

    make bench-aof-rewrite                         # about a minute and a half
    .venv/bin/python bench/aof_rewrite.py --tiny   # proves it works

For each `auto-aof-rewrite-percentage` it starts a Redis as `make run` starts it
(`calendence.devstack.stores.start_redis`, then that percentage set), places holds
through hold-service's own place script (`HoldRepository.place_many`, batches as under
load), each expiring after `--ttl-seconds` so that the run reaches what a long day
of holds has: as many live holds as a few seconds of placing leaves, as a busy hour
leaves 10 minutes' worth, each written once, expired, and dropped by the next rewrite.
It reads Redis's CPU from INFO: its own threads, and its rewrite children (each
rewrite forks a child that writes every live key again). Also the file's size at the
end, against what a rewrite then makes of it: the disk a percentage costs.

The rewrite's first threshold is lowered (`--min-size`) so that a run of a few hundred
thousand holds sees several rewrites, as a long day of holds would at the default
64 MB; what a rewrite costs per hold placed does not depend on it.

Results: bench/results/aof-rewrite-<time>.json and .txt.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from calendence.devstack import stores
from hold_service.hold_repository import HoldLocator, HoldRepository, Placement
from hold_service.holds import HoldRecord
from results_files import write_results

HERE = Path(__file__).resolve().parent
BATCH = 128  # holds per place_many call: HOLD_BATCH_MAX, a busy gateway's batches
GRANULES_PER_HOLD = 2  # a 5-minute service and its neighbour granule, as make bench's


def placements(count: int, start: int, ttl_ms: int) -> list[Placement]:
    """Holds on distinct slots of one resource, each with a record like hold-service's."""
    business, resource = str(uuid.uuid4()), f"l:{uuid.uuid4()}"
    base = datetime(2030, 1, 7, tzinfo=UTC)
    made = []
    for n in range(start, start + count):
        starts = base + timedelta(minutes=5 * n)
        hold_id = str(uuid.uuid4())
        record = HoldRecord(
            hold_id=hold_id,
            business_id=business,
            holder_id=str(uuid.uuid4()),
            service_id=str(uuid.uuid4()),
            location_id=str(uuid.uuid4()),
            staff_id="",
            resource_id=resource,
            starts_at=starts,
            ends_at=starts + timedelta(minutes=5),
            expires_at=datetime.now(UTC) + timedelta(minutes=10),
            blocked_until=starts + timedelta(minutes=5),
        )
        starts_ms = int(starts.timestamp() * 1000)
        made.append(
            Placement(
                hold_id=hold_id,
                holder_id=record.holder_id,
                doc=record.to_json(),
                resource=resource,
                granules=[n * 2 + g for g in range(GRANULES_PER_HOLD)],
                fingerprint=uuid.uuid4().hex,
                ttl_ms=ttl_ms,
                locator=HoldLocator(business, resource, starts_ms, starts_ms + 300_000),
            )
        )
    return made


def cpu(info: dict[str, Any]) -> tuple[float, float]:
    own = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    children = float(info["used_cpu_user_children"]) + float(info["used_cpu_sys_children"])
    return own, children


async def rewrite_finished(client: aioredis.Redis, seconds: float = 120) -> None:
    """Until no rewrite is under way or waiting to start."""
    for _ in range(int(seconds / 0.05)):
        persistence = await client.info("persistence")
        if not (persistence["aof_rewrite_in_progress"] or persistence["aof_rewrite_scheduled"]):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"a rewrite still under way after {seconds:g} s")


async def measure(
    percentage: int, holds: int, min_size_mb: int, ttl_seconds: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="calendence-aof-") as folder:
        store = stores.start_redis(Path(folder), persist=True)
        client = aioredis.Redis.from_url(store.url)
        try:
            await client.config_set("auto-aof-rewrite-percentage", percentage)
            await client.config_set("auto-aof-rewrite-min-size", f"{min_size_mb}mb")
            repository = HoldRepository(client)
            before = cpu(await client.info("cpu"))
            started = time.perf_counter()
            for start in range(0, holds, BATCH):
                answers = await repository.place_many(
                    placements(min(BATCH, holds - start), start, int(ttl_seconds * 1000))
                )
                if any(not isinstance(a, tuple) or a[0] != "placed" for a in answers):
                    raise RuntimeError(f"a hold was not placed: {answers[:3]}")
            await rewrite_finished(client)
            await asyncio.sleep(0.5)  # the finished child's time reaches INFO once reaped
            elapsed = time.perf_counter() - started
            after = cpu(await client.info("cpu"))
            at_end = int((await client.info("persistence"))["aof_current_size"])
            # Redis 6.2's INFO does not count rewrites; its log names each one.
            log = (Path(folder) / "logs" / "redis.log").read_text()
            rewrites = log.count("rewrite performed")
            await client.bgrewriteaof()
            await rewrite_finished(client)
            compact = int((await client.info("persistence"))["aof_current_size"])
        finally:
            await client.aclose()
            store.process.stop()
    return {
        "percentage": percentage,
        "holds": holds,
        "seconds": round(elapsed, 2),
        "rewrites": rewrites,
        "redis_us_per_hold": round((after[0] - before[0]) / holds * 1e6, 1),
        "rewrite_us_per_hold": round((after[1] - before[1]) / holds * 1e6, 1),
        "file_mb_at_end": round(at_end / 1e6, 1),
        "rewritten_mb": round(compact / 1e6, 1),
    }


async def run(args: argparse.Namespace) -> None:
    holds = 3_000 if args.tiny else args.holds
    min_size = 1 if args.tiny else args.min_size
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for percentage in args.percentages:
        rows.append(await measure(percentage, holds, min_size, args.ttl_seconds))
        print(f"  {percentage}%: {rows[-1]}", flush=True)
    lines = [
        f"Redis append-only file per hold placed, {started_at}: {holds:,} holds living "
        f"{args.ttl_seconds:g} s each, first rewrite at {min_size} MB",
        f"{'rewrite at +%':>14}{'rewrites':>10}{'Redis us/hold':>15}{'rewrites us/hold':>18}"
        f"{'file MB at end':>16}{'rewritten MB':>14}",
    ]
    for row in rows:
        lines.append(
            f"{row['percentage']:>14}{row['rewrites']:>10}{row['redis_us_per_hold']:>15}"
            f"{row['rewrite_us_per_hold']:>18}{row['file_mb_at_end']:>16}"
            f"{row['rewritten_mb']:>14}"
        )
    summary = "\n".join(lines)
    print(summary)
    document = {
        "started_at": started_at,
        "first_rewrite_mb": min_size,
        "ttl_seconds": args.ttl_seconds,
        "runs": rows,
    }
    write_results(args.results_dir, "aof-rewrite", document, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holds", type=int, default=400_000, help="holds per run (400,000)")
    parser.add_argument(
        "--percentages", type=int, nargs="+", default=[100, stores.AOF_REWRITE_PERCENTAGE]
    )
    parser.add_argument("--min-size", type=int, default=16, help="first rewrite, MB (16)")
    parser.add_argument("--ttl-seconds", type=float, default=5.0, help="a hold's life (5)")
    parser.add_argument("--tiny", action="store_true", help="3,000 holds, first rewrite at 1 MB")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

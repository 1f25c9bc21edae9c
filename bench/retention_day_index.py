"""What retention's minute costs Redis: finding the history days to drop from their index
(`fc:history:days`) against the keyspace SCAN it replaced, as the keyspace grows.

    python bench/retention_day_index.py [--keys 100000 1000000] [--days 30] [--cameras 20] [--rounds 5]

A real redis-server holds `--keys` face-like hashes (the keys that make up most of a real keyspace) and
`--days` x `--cameras` history partitions of one model, indexed as decisions index them. A round with
nothing to drop is what runs every minute; it is timed both ways, wall clock and Redis's own CPU
(INFO cpu, used_cpu_user + used_cpu_sys), median of `--rounds`. Then one real drop of the oldest day.
-> bench/results/retention_day_index.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from cloud_analyzer.retention import HistoryDays
from devstack.stack import RedisServer
from service_common.redis_keys import (
    HISTORY_DAYS,
    HISTORY_PATTERN,
    face_key,
    history_cameras_key,
    history_days_member,
    history_key,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_record, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DAY_MS = 86_400_000


def server_cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def fill(client: redis.Redis, keys: int, days: int, cameras: int, now_ms: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.hset(face_key(f"{i:032x}"), mapping={"camera_id": f"cam-{i % cameras}", "captured_at_ms": now_ms})
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    vector = (np.ones(8, np.float32) / 8**0.5).tobytes()
    for day in range(days):
        ts = now_ms - day * DAY_MS
        for camera in range(cameras):
            pipe.execute_command("VADD", history_key("m1", ts, f"cam-{camera}"), "FP32", vector, f"f{day}-{camera}")
            pipe.sadd(history_cameras_key("m1", ts), f"cam-{camera}")
        pipe.zadd(HISTORY_DAYS, {history_days_member("m1", ts): ts - ts % DAY_MS})
    pipe.execute()


def timed(client: redis.Redis, work, rounds: int) -> dict:  # type: ignore[no-untyped-def]
    walls, cpus, found = [], [], None
    for _ in range(rounds):
        cpu, start = server_cpu_s(client), time.perf_counter()
        found = work()
        walls.append(time.perf_counter() - start)
        cpus.append(server_cpu_s(client) - cpu)
    return {"wall_ms_median": round(statistics.median(walls) * 1000, 2),
            "redis_cpu_ms_median": round(statistics.median(cpus) * 1000, 2), "found": found}


def scan_round(client: redis.Redis) -> int:
    """What retention did before the index, every round: walk the whole keyspace for history keys."""
    return sum(1 for _ in client.scan_iter(match=HISTORY_PATTERN, count=1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "retention_day_index.json")
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    cutoff_ms = now_ms - (args.days - 2) * DAY_MS  # inside the second-oldest day: only the oldest one goes
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        try:
            client = server.client()
            for keys in args.keys:
                client.flushdb()
                fill(client, keys, args.days, args.cameras, now_ms)
                days = HistoryDays(client)
                days.index_older_days()  # the one-time scan, done once and for all
                dbsize = client.dbsize()
                noop = timed(client, lambda d=days: d.drop_before(now_ms - args.days * DAY_MS), args.rounds)
                scan = timed(client, lambda: scan_round(client), args.rounds)
                drop = timed(client, lambda d=days: d.drop_before(cutoff_ms), 1)
                results.append({"keys": dbsize, "history_partitions": args.days * args.cameras,
                                "round_nothing_to_drop_index": noop, "round_nothing_to_drop_scan": scan,
                                "drop_one_day_index": drop})
                print(results[-1])
        finally:
            server.stop()
    write_report({"benchmark": "retention_day_index", "days": args.days, "cameras": args.cameras,
                  "rounds": args.rounds, "results": results, "machine": machine_record()}, args.out)


if __name__ == "__main__":
    main()

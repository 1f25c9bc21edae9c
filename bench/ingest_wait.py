"""What waiting for a replica costs ingest on Redis Cluster (ANALYZER_INGEST_WAIT_REPLICAS, on by default:
cloud_analyzer/replicated_ingest.py): the same faces stored through `Store.ingest` with and without the WAIT,
on a local cluster of 3 primaries + 3 replicas (real redis-server processes, AOF on).

    python bench/ingest_wait.py [--faces 3000] [--rounds 3]

Per face: wall time (median and p99, one client thread: the latency an edge's stream sees per face) and
every node's CPU (INFO cpu, primaries and replicas summed). The two modes alternate `--rounds` times.
-> bench/results/ingest_wait.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_scaling import face_records, unit  # noqa: E402
from report import machine_record, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from cloud_analyzer.store import Store
    from devstack.redis_cluster import cluster_port, form
    from devstack.stack import RedisServer
    from service_common.redis_client import connect

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest_wait.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rng = np.random.default_rng(3)
    args_cluster = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "15000")
    with tempfile.TemporaryDirectory(prefix="ingest-wait-") as tmp:
        nodes: list[RedisServer] = []
        for i in range(6):
            nodes.append(RedisServer(Path(tmp) / f"n{i}", port=cluster_port({n.port for n in nodes}),
                                     extra_args=args_cluster))
        try:
            for node in nodes:
                node.start()
            address = [("127.0.0.1", n.port) for n in nodes]
            form(address[:3], address[3:], None, timeout_s=60)
            url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)
            plain = [redis.Redis(port=n.port) for n in nodes]

            def cpu_s() -> float:
                return sum(float(i["used_cpu_user"]) + float(i["used_cpu_sys"]) for i in (c.info("cpu") for c in plain))

            stores = {wait: Store(connect(url, timeout_s=30), ingest_wait_replicas=wait) for wait in (0, 1)}
            results: dict[int, dict[str, list[float]]] = {w: {"wall_ms": [], "cpu_ms": []} for w in (0, 1)}
            for _ in range(args.rounds):
                for wait, store in stores.items():
                    descriptors = unit(rng.standard_normal((args.faces, 512)).astype(np.float32))
                    records = face_records(list(descriptors), 20, rng)
                    cpu = cpu_s()
                    for face_id, fields in records:
                        start = time.perf_counter()
                        store.ingest(face_id, fields)
                        results[wait]["wall_ms"].append((time.perf_counter() - start) * 1000)
                    results[wait]["cpu_ms"].append((cpu_s() - cpu) / len(records) * 1000)
            waits = sum(int(c.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)) for c in plain)
        finally:
            for node in nodes:
                node.stop()
    summary = {("wait_1" if wait else "no_wait"): {
        "wall_ms_median": round(statistics.median(r["wall_ms"]), 3),
        "wall_ms_p99": round(float(np.percentile(r["wall_ms"], 99)), 3),
        "server_cpu_ms_per_face": round(statistics.median(r["cpu_ms"]), 3)} for wait, r in results.items()}
    write_report({"bench": "ingest_wait", "faces_per_round": args.faces, "rounds": args.rounds,
                  "wait_calls_seen": waits, **summary,
                  "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "machine": machine_record()}, args.out)


if __name__ == "__main__":
    main()

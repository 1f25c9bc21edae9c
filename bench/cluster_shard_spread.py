"""Where the unknown-face cluster state lands on a 3-primary Redis Cluster, with 1 and with 3 cluster-state
shards (FACECODEC_CLUSTER_SHARDS): its bytes (MEMORY USAGE of every cluster key) and the server CPU each
primary spent while the faces were clustered.

    .venv/bin/python bench/cluster_shard_spread.py [--faces 2000] [--people 500]

The same synthetic faces (people as random 512-d centres, each face a noisy copy: bench/cluster_scaling.py's
`noisy`, coded as the edge codes them) are stored, then assigned one at a time by the real
`cloud_analyzer.clusters.Clusters`, once per shard count, each in a child process (the count is read at
import) on a fresh cluster. Writes bench/results/cluster_shard_spread.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_scaling import DIM, Servers, noisy  # noqa: E402
from report import machine_record, write_report  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "cluster_shard_spread.json"


def child(faces: int, people: int) -> dict:
    from cloud_analyzer.clusters import Clusters
    from cloud_analyzer.recognition import decode_base_layer
    from cloud_analyzer.store import Store
    from facecodec.codec.profiles import codec_by_name
    from facecodec.openset import unit
    from service_common.redis_client import connect
    from service_common.redis_keys import CLUSTER_SHARDS, CLUSTER_TAGS

    codec, rng = codec_by_name("scalable"), np.random.default_rng(7)
    centres = [unit(rng.standard_normal(DIM).astype(np.float32)) for _ in range(people)]
    blobs = [codec.encode_base(noisy(centres[int(rng.integers(people))], rng)).to_bytes() for _ in range(faces)]
    with tempfile.TemporaryDirectory() as tmp, Servers(Path(tmp), "3") as servers:
        client = connect(servers.url)
        store, clusters = Store(client), Clusters(client)
        items = []
        for n, blob in enumerate(blobs):
            store.ingest(f"f{n}", {"base_layer": blob, "camera_id": f"cam{n % 7}",
                                   "captured_at_ms": 1_700_000_000_000 + 1000 * n, "edge_id": "bench"})
            descriptor, used = decode_base_layer(blob)
            items.append((store.face(f"f{n}"), descriptor, used))
        cpu = [_cpu(node) for node in servers.plain]
        start = time.perf_counter()
        for face, descriptor, used in items:
            clusters.assign(face, descriptor, used.spec.descriptor_model, used.open_set_calibration)
        elapsed = time.perf_counter() - start
        nodes = []
        for node, before in zip(servers.plain, cpu):
            keys = [k for tag in CLUSTER_TAGS for k in node.scan_iter(match=f"fc:{{{tag}}}*", count=1000)]
            nodes.append({"port": node.connection_pool.connection_kwargs["port"], "cluster_keys": len(keys),
                          "cluster_state_bytes": int(sum(node.memory_usage(k, samples=0) or 0 for k in keys)),
                          "server_cpu_s_while_clustering": round(_cpu(node) - before, 3)})
        total = sum(n["cluster_state_bytes"] for n in nodes)
        return {"cluster_shards": CLUSTER_SHARDS, "faces": faces, "clusters": len(clusters.list("size", None,
                                                                                                10**6)[0]),
                "assign_per_s": round(faces / elapsed, 1), "cluster_state_bytes_per_face": round(total / faces),
                "largest_node_share": round(max(n["cluster_state_bytes"] for n in nodes) / max(total, 1), 3),
                "nodes": nodes, "stats": dict(clusters.stats)}


def _cpu(node) -> float:
    info = node.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.faces, args.people)))
        return
    rows = []
    for shards in (1, 3):
        env = {**os.environ, "FACECODEC_CLUSTER_SHARDS": str(shards)}
        out = subprocess.run([sys.executable, __file__, "--child", "--faces", str(args.faces), "--people",
                              str(args.people)], env=env, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    write_report({"benchmark": "cluster_shard_spread", "machine": machine_record(), "primaries": 3,
                  "people": args.people, "results": rows}, OUT)


if __name__ == "__main__":
    main()

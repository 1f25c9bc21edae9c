"""Online clustering of unknown faces: purity and completeness on held-out LFW identities.

    .venv/bin/python bench/clustering.py [--faces data/faces] [--tune]

Every detected LFW face that passes the quality gate (what the service would cluster: the rest are
`low_quality` and never clustered) is coded as the edge codes it (`codec_by_name("scalable")` base
layer, encoded then decoded), stored as a face in a real Redis and fed, in a shuffled order, to the
real `cloud_analyzer.clusters.Clusters`, one face at a time as the workers do (nobody is enrolled:
every face is unknown). The resulting clusters are compared with the true identities:

- purity: share of faces whose cluster's majority identity is their own;
- completeness (inverse purity): share of faces in their identity's largest cluster;
- pairwise precision / recall: of face pairs put in one cluster, the share of one person; of face pairs
  of one person, the share put in one cluster;
- clusters vs identities.

`--tune` first runs the same stream over the LFW *training* identities (lfw/splits/train_identities.txt)
at several pair FARs and picks the one with the best harmonic mean of purity and completeness: that
is how `clusters.JOIN_FAR` was chosen. The evaluation identities (eval_identities.txt) are only
measured, at `JOIN_FAR`, never tuned on. Writes `bench/results/clustering.json`, or with
FACECODEC_CLUSTER_SHARDS=C > 1 (the cluster state in C shards, searched in one pipeline)
`bench/results/clustering_shards<C>.json` (or `--out`): the same faces in the same orders, so the two
compare (`clustering_shards1.json` is the one-shard run beside `clustering_shards3.json`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import redis

from cloud_analyzer import clusters as clusters_module
from cloud_analyzer.clusters import Clusters
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.store import Store
from devstack.stack import RedisServer
from facecodec.codec.profiles import codec_by_name
from facecodec.datasets import lfw_eval_identities, lfw_train_identities
from facecodec.frontend.quality import passes
from service_common.redis_keys import CLUSTER_OF_SHARDS, CLUSTER_SHARDS

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / ("clustering.json" if CLUSTER_SHARDS == 1 else f"clustering_shards{CLUSTER_SHARDS}.json")
TUNE_FARS = (3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)


def load(path: Path, names: set[str]) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        mask = z["detected"] & np.isin(z["identities"], [f"lfw/{n}" for n in names])
        mask[mask] = passes(z["crops"][mask], z["points68"][mask])
        return z["descriptors"][mask].astype(np.float32), z["identities"][mask]


def pairs(counts) -> int:
    return int(sum(n * (n - 1) // 2 for n in counts))


def scores(truth: np.ndarray, labels: np.ndarray) -> dict:
    cells = Counter(zip(labels.tolist(), truth.tolist()))
    by_cluster, by_identity = Counter(labels.tolist()), Counter(truth.tolist())
    best_in_cluster: dict[str, int] = {}
    best_of_identity: dict[str, int] = {}
    for (c, i), n in cells.items():
        best_in_cluster[c] = max(best_in_cluster.get(c, 0), n)
        best_of_identity[i] = max(best_of_identity.get(i, 0), n)
    n = len(truth)
    purity = sum(best_in_cluster.values()) / n
    completeness = sum(best_of_identity.values()) / n
    same = pairs(cells.values())
    return {"faces": n, "identities": len(by_identity), "clusters": len(by_cluster),
            "singleton_identities": sum(1 for v in by_identity.values() if v == 1),
            "singleton_clusters": sum(1 for v in by_cluster.values() if v == 1),
            "purity": round(purity, 4), "completeness": round(completeness, 4),
            "f_purity_completeness": round(2 * purity * completeness / (purity + completeness), 4),
            "pairwise_precision": round(same / max(pairs(by_cluster.values()), 1), 4),
            "pairwise_recall": round(same / max(pairs(by_identity.values()), 1), 4)}


def stream(client: redis.Redis, containers: list[bytes], truth: np.ndarray, far: float, seed: int) -> dict:
    """Feed the faces in a shuffled order through Clusters over Redis; score the clusters."""
    client.flushdb()
    store, clusters = Store(client), Clusters(client, far=far)
    order = np.random.default_rng(seed).permutation(len(containers))
    times = []
    for step, i in enumerate(order):
        face_id = f"f{i}"
        store.ingest(face_id, {"base_layer": containers[i], "camera_id": f"cam{i % 7}",
                               "captured_at_ms": 1_700_000_000_000 + 1000 * step, "edge_id": "bench"})
        face = store.face(face_id)
        t0 = time.perf_counter()
        descriptor, codec = decode_base_layer(face["base_layer"])  # what the worker already has in hand
        clusters.assign(face, descriptor, codec.spec.descriptor_model, codec.open_set_calibration)
        times.append(time.perf_counter() - t0)
    of = {k.decode(): v.decode() for key in CLUSTER_OF_SHARDS for k, v in client.hgetall(key).items()}
    labels = np.array([of[f"f{i}"] for i in range(len(containers))])
    out = scores(truth, labels)
    out |= {"far": far, "seed": seed, "assign_ms_p50": round(1000 * float(np.median(times)), 2),
            "assign_ms_p95": round(1000 * float(np.quantile(times, 0.95)), 2)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--tune", action="store_true", help="choose the FAR on training identities first")
    parser.add_argument("--seeds", type=int, default=2, help="shuffled orders measured on evaluation identities")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    codec = codec_by_name("scalable")
    calibration = codec.open_set_calibration
    result: dict = {"machine": "2 cores, no GPU", "codec": codec.spec.name, "cluster_shards": CLUSTER_SHARDS,
                    "descriptor_model": codec.spec.descriptor_model,
                    "protocol": "LFW faces detected and passing the quality gate, scalable base layer encoded and "
                                "decoded, one at a time in a shuffled order into cloud_analyzer.clusters over a "
                                "real Redis 8.2 (vector set per model); nobody enrolled"}
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            far = clusters_module.JOIN_FAR
            if args.tune:
                x, truth = load(args.faces / "lfw.npz", lfw_train_identities())
                containers = [codec.encode_base(v).to_bytes() for v in x]
                tuning = []
                for candidate in TUNE_FARS:
                    row = stream(client, containers, truth, candidate, seed=100)
                    print("train", json.dumps(row))
                    tuning.append(row)
                best = max(tuning, key=lambda r: r["f_purity_completeness"])
                result["tuning_on_training_identities"] = {"rows": tuning, "chosen_far": best["far"],
                                                           "criterion": "harmonic mean of purity and completeness"}
                if best["far"] != far:
                    print(f"training identities prefer FAR {best['far']:g}; clusters.JOIN_FAR is {far:g}: update it")
                far = best["far"]
            result["join_far"] = far
            result["join_threshold_1_face"] = round(calibration.tail(1, 1).threshold_at(far), 4)
            result["join_threshold_3plus_faces"] = round(calibration.tail(3, 1).threshold_at(far), 4)
            result["merge_threshold_3plus_3plus"] = round(calibration.tail(3, 3).threshold_at(far), 4)
            x, truth = load(args.faces / "lfw.npz", lfw_eval_identities())
            containers = [codec.encode_base(v).to_bytes() for v in x]
            runs = []
            for seed in range(args.seeds):
                row = stream(client, containers, truth, far, seed=seed)
                print("eval", json.dumps(row))
                runs.append(row)
            result["evaluation_identities"] = runs
            keys = ("purity", "completeness", "pairwise_precision", "pairwise_recall", "clusters")
            result["evaluation_mean"] = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in keys}
        finally:
            server.stop()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["evaluation_mean"]), "->", args.out)


if __name__ == "__main__":
    main()

"""Does joining clusters without the lock cluster as well as the locked assignment did, and with two workers?

A small stand-in for `bench/clustering.py` (which needs the whole of LFW detected into data/faces/lfw.npz):
photos of LFW *evaluation* identities are detected and described here (the largest face of each), coded
as the edge codes them (scalable base layer) and fed, in one shuffled order, to the real
`cloud_analyzer.clusters.Clusters` over a real Redis three ways:

- locked, one at a time: `Clusters._assign_locked`, the assignment as it was (every face under the lock);
- optimistic, one at a time: `Clusters.assign` (what workers do now);
- optimistic, two threads at once, each its own `Clusters` (two workers or replicas), faces dealt alternately.

Each is scored as bench/clustering.py scores (purity, completeness, pairwise precision/recall), with how the
joins went (`Clusters.stats`: unlocked, under the lock, conflicts that chose again).

    python -m bench.clustering_concurrency [--identities 60] [--photos 6]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import redis

from bench.clustering import scores
from bench.report import machine_record, write_report
from cloud_analyzer.clusters import Clusters, _Member
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.store import Store
from devstack.stack import RedisServer
from facecodec.codec.profiles import codec_by_name
from facecodec.datasets import dataset_root, lfw_eval_identities
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.openset import unit
from service_common.redis_keys import CLUSTER_OF_SHARDS, CLUSTER_SHARDS

# FACECODEC_CLUSTER_SHARDS=C > 1: the cluster state in C shards, written beside the one-shard figures.
OUT = Path(__file__).parent / "results" / ("clustering_concurrency.json" if CLUSTER_SHARDS == 1
                                           else f"clustering_concurrency_shards{CLUSTER_SHARDS}.json")


def faces(identities: int, photos: int) -> tuple[list[bytes], np.ndarray]:
    """Base layers of up to `photos` photos of each of the first `identities` evaluation identities with 2+."""
    root = dataset_root() / "lfw" / "images"
    front_end, codec = FaceFrontEnd(), codec_by_name("scalable")
    blobs, truth = [], []
    names = [n for n in sorted(lfw_eval_identities()) if len(list((root / n).glob("*.jpg"))) >= 2][:identities]
    for name in names:
        for path in sorted((root / name).glob("*.jpg"))[:photos]:
            face = front_end.largest_face(decode_image(path.read_bytes()))
            if face is None:
                continue
            blobs.append(codec.encode_base(front_end.describe(face.crop)[0]).base_only().to_bytes())
            truth.append(name)
    return blobs, np.array(truth)


def run(client: redis.Redis, blobs: list[bytes], truth: np.ndarray, way: str, seed: int = 0) -> dict:
    client.flushdb()
    store = Store(client)
    order = np.random.default_rng(seed).permutation(len(blobs))
    items = []
    for step, i in enumerate(order):
        store.ingest(f"f{i}", {"base_layer": blobs[i], "camera_id": f"cam{i % 7}",
                               "captured_at_ms": 1_700_000_000_000 + 1000 * step, "edge_id": "bench"})
        descriptor, codec = decode_base_layer(blobs[i])
        items.append((store.face(f"f{i}"), descriptor, codec))
    workers = [Clusters(client) for _ in range(2 if way == "optimistic, two threads" else 1)]

    def assign(clusters: Clusters, share: list) -> None:
        for face, descriptor, codec in share:
            model, calibration = codec.spec.descriptor_model, codec.open_set_calibration
            if way.startswith("locked"):
                member = _Member(face["face_id"], int(face["captured_at_ms"]), face["camera_id"],
                                 face["base_layer"], unit(np.asarray(descriptor, np.float32)))
                clusters._assign_locked(member, model, calibration)
            else:
                clusters.assign(face, descriptor, model, calibration)

    start = time.perf_counter()
    threads = [threading.Thread(target=assign, args=(c, items[k :: len(workers)])) for k, c in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    of = {k.decode(): v.decode() for key in CLUSTER_OF_SHARDS for k, v in client.hgetall(key).items()}
    labels = np.array([of[f"f{i}"] for i in range(len(blobs))])
    stats = sum((c.stats for c in workers), Counter())
    return {"way": way, **scores(truth, labels), "faces_per_s": round(len(blobs) / elapsed, 1),
            "joins": dict(stats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=60)
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args()
    blobs, truth = faces(args.identities, args.photos)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            for way in ("locked, one at a time", "optimistic, one at a time", "optimistic, two threads"):
                rows.append(run(client, blobs, truth, way))
                print(rows[-1])
        finally:
            server.stop()
    write_report({"benchmark": "clustering_concurrency", "machine": machine_record(),
                  "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
                  "cluster_shards": CLUSTER_SHARDS,
                  "identities": args.identities, "photos_per_identity": args.photos, "results": rows}, args.out)


if __name__ == "__main__":
    main()

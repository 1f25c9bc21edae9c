"""Rate-accuracy benchmark: bytes per face against recognition accuracy, for every way of sending a face.

    python -m facecodec.eval.rate_accuracy [--faces data/faces] [--out bench/results/rate_accuracy.json]
                                           [--limit N] [--skip-images] [--tenfold-images]

Rows:
- descriptor quantisers: float32, float16, int8, sign, PCA-64 + int8, product quantisation (32/16/8 B);
- base layers: the scalar baseline and every learned base layer in facecodec/weights (real rANS payloads);
- compress-then-analyse: the aligned 112x112 crop as JPEG/WebP/AVIF, and the detector's box region as
  JPEG at native resolution, decoded and run through the front end again.

Protocol (docs: /work/shared/datasets/lfw/splits/README.md): anything fitted (PCA, PQ, int8 and
base-layer tables, learned codecs) sees only training faces (LFW train identities + CelebA + AT&T).
`verification_accuracy` is 5-fold cross-validated accuracy on LFW View-2 folds 6-10 for every row;
rows with nothing learned on LFW add `verification_accuracy_10fold` over all 10 folds. TAR at
FAR=1e-3 is all-vs-all over the evaluation images, rank-1 uses the first image (sorted key) of each
evaluation identity as gallery. Image rows are re-described on the folds 6-10 pair images only (see
each row's `protocol_note`); their descriptors are cached in data/eval_cache/ so a rerun skips them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecodec.datasets import dataset_root, lfw_pairs
from facecodec.eval import anchors
from facecodec.eval.metrics import all_pairs_scores, rank1, tar_at_far, unit, verification_accuracy_cv
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.train.data import Faces, load, load_evaluation_faces, load_training_faces

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
EVAL_FOLDS = (6, 7, 8, 9, 10)
FAR = 1e-3
DIM = 512
# Qualities chosen (measured on 112x112 aligned crops) so the image rows span ~0.3 KB to ~3 KB. Each
# setting re-describes 3,890 images (~5 min on 2 cores), so the grid is kept coarse.
CROP_QUALITIES: dict[str, tuple[int, ...]] = {
    "jpeg": (10, 30, 50, 90),
    "webp": (5, 30, 90),
    "avif": (20, 50, 80),
    "hevc": (10, 25, 50),  # x265 in a HEIF file (facecodec.eval.anchors); VVC is too slow here (~0.2 s/image)
}
PIXEL_PROFILE = "scalable"  # the codec whose reconstructions are described, level by level
DETECTION_QUALITIES = (50,)
CACHE_VERSION = 1  # bump when the image-row pipeline changes so stale cached descriptors are dropped


# ----------------------------------------------------------------------------------------------------
# The evaluation sets


@dataclass
class EvalSet:
    """LFW descriptors plus, as row indices into them, the pairs and the identification set."""

    faces: Faces  # every LFW image from lfw.npz
    pair_a: np.ndarray  # indices of each pair's images
    pair_b: np.ndarray
    same: np.ndarray  # bool
    fold: np.ndarray  # 1..10
    eval_idx: np.ndarray  # the all-vs-all / rank-1 set (evaluation identities), sorted by key
    limited: bool
    lfw_path: Path

    def pairs_in(self, folds: Iterable[int]) -> np.ndarray:
        return np.isin(self.fold, list(folds))

    def pair_images(self, folds: Iterable[int]) -> np.ndarray:
        mask = self.pairs_in(folds)
        return np.unique(np.concatenate([self.pair_a[mask], self.pair_b[mask]]))


def limit_pairs(pairs: list, limit: int | None) -> list:
    """Keep `limit` pairs per fold, half matched and half mismatched, so each fold stays balanced."""
    if limit is None:
        return pairs
    kept = []
    for fold in sorted({p.fold for p in pairs}):
        matched = [p for p in pairs if p.fold == fold and p.same]
        mismatched = [p for p in pairs if p.fold == fold and not p.same]
        kept += matched[: (limit + 1) // 2] + mismatched[: limit // 2]
    return kept


def load_eval_set(faces_root: Path, limit: int | None) -> EvalSet:
    lfw_path = faces_root / "lfw.npz"
    faces = load(lfw_path)
    index = {k: i for i, k in enumerate(faces.keys.tolist())}
    pairs = limit_pairs(lfw_pairs(), limit)
    missing = [k for p in pairs for k in (p.a, p.b) if k not in index]
    if missing:
        raise SystemExit(f"{len(missing)} pair images missing from {lfw_path}, e.g. {missing[:3]}")
    pair_a = np.array([index[p.a] for p in pairs])
    pair_b = np.array([index[p.b] for p in pairs])
    same = np.array([p.same for p in pairs])
    fold = np.array([p.fold for p in pairs])
    if limit is None:
        # The loader owns the evaluation-identity rule; map its images back onto lfw.npz rows.
        evaluation = load_evaluation_faces(faces_root)
        eval_idx = np.array([index[k] for k in evaluation.keys.tolist()])
    else:
        # A development run: identification over the limited pairs' images only (so it stays quick).
        mask = np.isin(fold, EVAL_FOLDS)
        eval_idx = np.unique(np.concatenate([pair_a[mask], pair_b[mask]]))
    eval_idx = eval_idx[np.argsort(faces.keys[eval_idx], kind="stable")]
    return EvalSet(faces, pair_a, pair_b, same, fold, eval_idx, limit is not None, lfw_path)


# ----------------------------------------------------------------------------------------------------
# Scoring a set of decoded descriptors


def gallery_probe_split(keys: np.ndarray, identities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gallery = first image (sorted key) of every identity; probes = the rest of identities with >= 2."""
    order = np.argsort(keys, kind="stable")
    seen: set[str] = set()
    gallery, probes = [], []
    for i in order.tolist():
        (probes if identities[i] in seen else gallery).append(i)
        seen.add(identities[i])
    return np.array(gallery, int), np.array(probes, int)


def pair_scores(decoded: dict[int, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    da = unit(np.stack([decoded[i] for i in a.tolist()]))
    db = unit(np.stack([decoded[i] for i in b.tolist()]))
    return np.einsum("ij,ij->i", da, db)


def verification(ev: EvalSet, decoded: dict[int, np.ndarray], folds: Iterable[int]) -> tuple[float, float]:
    mask = ev.pairs_in(folds)
    scores = pair_scores(decoded, ev.pair_a[mask], ev.pair_b[mask])
    return verification_accuracy_cv(scores, ev.same[mask], ev.fold[mask])


def identification(ev: EvalSet, decoded: dict[int, np.ndarray], idx: np.ndarray) -> dict[str, float]:
    """TAR at FAR=1e-3 (all-vs-all, upper triangle) and rank-1 over the images `idx`."""
    desc = np.stack([decoded[i] for i in idx.tolist()])
    identities = ev.faces.identities[idx]
    genuine, impostor = all_pairs_scores(desc, identities)
    gallery, probes = gallery_probe_split(ev.faces.keys[idx], identities)
    return {
        "tar_at_far_1e-3": tar_at_far(genuine, impostor, FAR),
        "rank1": rank1(desc[gallery], identities[gallery], desc[probes], identities[probes]),
        "genuine_pairs": int(len(genuine)),
        "impostor_pairs": int(len(impostor)),
        "rank1_gallery": int(len(gallery)),
        "rank1_probes": int(len(probes)),
    }


def score(ev: EvalSet, decoded: dict[int, np.ndarray], tenfold: bool, ident_idx: np.ndarray) -> dict:
    acc, std = verification(ev, decoded, EVAL_FOLDS)
    row: dict = {"verification_accuracy": acc, "verification_std": std}
    if tenfold:
        acc10, std10 = verification(ev, decoded, range(1, 11))
        row |= {"verification_accuracy_10fold": acc10, "verification_std_10fold": std10}
    return row | identification(ev, decoded, ident_idx)


# ----------------------------------------------------------------------------------------------------
# Descriptor-domain methods: quantisers and base layers


@dataclass
class Coded:
    descriptors: np.ndarray  # decoded, N x 512
    payload_bytes: np.ndarray  # N: what the method transmits per face
    container_bytes: np.ndarray  # N: the same inside a base-only container (== payload without one)


@dataclass
class DescriptorMethod:
    method: str
    setting: str
    code: Callable[[np.ndarray], Coded]
    fitted: bool  # anything fitted on training faces -> folds 6-10 figure only
    family: str
    note: str = ""
    extra: dict = field(default_factory=dict)


def fixed_size(decode: Callable[[np.ndarray], np.ndarray], nbytes: int) -> Callable[[np.ndarray], Coded]:
    def code(x: np.ndarray) -> Coded:
        sizes = np.full(len(x), nbytes)
        return Coded(decode(x), sizes, sizes)

    return code


def int8_scale(x: np.ndarray) -> np.ndarray:
    """Per-dimension symmetric scale mapping the training range onto [-127, 127]."""
    return np.maximum(np.abs(x).max(0), 1e-8) / 127


def int8_roundtrip(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x / scale), -127, 127) * scale


def pca_int8(train: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:k]  # k x 512
    scale = int8_scale((train - mean) @ basis.T)
    return lambda x: mean + int8_roundtrip((x - mean) @ basis.T, scale) @ basis


def product_quantiser(train: np.ndarray, subvectors: int, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """One byte per sub-vector: 256 k-means centroids fitted on training descriptors.

    Full-batch KMeans with one k-means++ start: on ~10k training descriptors it was measured both
    faster (~0.4 s vs 2-3 s per codebook) and lower in distortion than MiniBatchKMeans with n_init=3.
    """
    from sklearn.cluster import KMeans

    width = DIM // subvectors
    books = []
    for s in range(subvectors):
        part = train[:, s * width : (s + 1) * width]
        km = KMeans(n_clusters=256, n_init=1, max_iter=50, random_state=seed + s)
        books.append(km.fit(part).cluster_centers_.astype(np.float32))

    def roundtrip(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for s, book in enumerate(books):
            part = x[:, s * width : (s + 1) * width]
            # argmin ||p - c||^2 = argmin (||c||^2 - 2 p.c): no N x 256 x width temporary.
            nearest = np.argmin((book**2).sum(1)[None] - 2 * part @ book.T, axis=1)
            out[:, s * width : (s + 1) * width] = book[nearest]
        return out

    return roundtrip


def profile_ids(weights_file: str, default: tuple[int, int], profile: str | None = None) -> tuple[int, int, bool]:
    """(model_id, rate_id, in_profile) for a base-layer weights file, from PROFILES where listed
    (from `profile` when given)."""
    from facecodec.codec.profiles import PROFILES

    for spec in [PROFILES[profile]] if profile else PROFILES.values():
        for rate_id, name in spec.base_files.items():
            if name == weights_file:
                return spec.model_id, rate_id, True
    return default[0], default[1], False


def base_layer_code(codec, model_id: int, rate_id: int) -> Callable[[np.ndarray], Coded]:
    from facecodec.bitstream import CodedFace

    def code(x: np.ndarray) -> Coded:
        payloads = [codec.encode(d) for d in x]
        decoded = np.stack([codec.decode(p) for p in payloads])
        sizes = np.array([len(p) for p in payloads])
        containers = np.array([len(CodedFace(model_id, rate_id, 112, base=p).to_bytes()) for p in payloads])
        return Coded(decoded, sizes, containers)

    return code


def base_layer_methods(weights: Path) -> tuple[list[DescriptorMethod], list[str]]:
    from facecodec.codec.base_layer import LearnedBaseLayer, ScalarBaseLayer

    methods, skipped = [], []
    scalar = weights / "base_scalar.npz"
    if scalar.exists():
        codec = ScalarBaseLayer(scalar)
        model_id, rate_id, listed = profile_ids(scalar.name, (0, 0))
        methods.append(DescriptorMethod(
            "base_layer_scalar", codec.name, base_layer_code(codec, model_id, rate_id), True, "base_layer",
            "rANS payload; Gaussian table scale fitted on training faces",
            {"model_id": model_id, "rate_id": rate_id, "in_profile": listed, "weights": scalar.name},
        ))
    else:
        skipped.append(f"base_layer_scalar: {scalar} not found (run python -m facecodec.train.baseline)")
    for path in sorted(weights.glob("base_learned_r*.npz"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)):
        rate = int(re.sub(r"\D", "", path.stem) or 0)
        sidecar = path.with_suffix(".json")
        # As served (profile scalable: arithmetic coder, <= 1 byte of termination), and with the rANS
        # coder of model ids 2 and 4 (~6 bytes of flush per face): the same symbols, so the same accuracy.
        for coder, method, spec_name in (("arithmetic", "base_layer_learned", "scalable"),
                                         ("rans", "base_layer_learned_rans", "learned")):
            codec = LearnedBaseLayer(path, coder)
            name = json.loads(sidecar.read_text()).get("name", codec.name) if sidecar.exists() else codec.name
            model_id, rate_id, listed = profile_ids(path.name, (0, rate), spec_name)
            methods.append(DescriptorMethod(
                method, name, base_layer_code(codec, model_id, rate_id), True, "learned",
                f"{coder}-coded payload of the learned base layer (trained on training faces only)",
                {"model_id": model_id, "rate_id": rate_id, "in_profile": listed, "weights": path.name,
                 "coder": coder},
            ))
    return methods, skipped


def descriptor_methods(train: np.ndarray, weights: Path) -> tuple[list[DescriptorMethod], list[str]]:
    t0 = time.time()
    int8 = int8_scale(train)
    methods = [
        DescriptorMethod("float32", "512 x f32", fixed_size(lambda x: x, 4 * DIM), False, "descriptor"),
        DescriptorMethod("float16", "512 x f16", fixed_size(lambda x: x.astype(np.float16).astype(np.float32),
                                                            2 * DIM), False, "descriptor"),
        DescriptorMethod(
            "int8", "512 x int8, per-dim scale", fixed_size(lambda x: int8_roundtrip(x, int8), DIM), False,
            "descriptor",
            "scale fitted on training faces (which include LFW folds 1-5 identities): the 10-fold figure "
            "is reported as for the other non-learned rows, but only the folds 6-10 figure is strictly clean",
        ),
        DescriptorMethod("sign", "512 bits", fixed_size(np.sign, DIM // 8), False, "descriptor",
                         "1 bit per dimension; cosine of sign vectors = 1 - 2 x Hamming / 512"),
        DescriptorMethod("pca_int8", "PCA-64 + int8", fixed_size(pca_int8(train, 64), 64), True, "descriptor",
                         "PCA and int8 scales fitted on training faces"),
    ]
    for nbytes in (32, 16, 8):
        print(f"  fitting PQ-{nbytes}B ({nbytes} x 256 centroids)...", flush=True)
        methods.append(DescriptorMethod(
            "pq", f"{nbytes} x 8 bit, {DIM // nbytes}-d sub-vectors",
            fixed_size(product_quantiser(train, nbytes), nbytes), True, "pq",
            "k-means codebooks (256 per sub-vector) fitted on training faces; symmetric (both sides decoded) scoring",
        ))
    base, skipped = base_layer_methods(weights)
    print(f"  fitted quantisers in {time.time() - t0:.1f}s; base layers: {[m.setting for m in base]}", flush=True)
    return methods + base, skipped


def run_descriptor_method(ev: EvalSet, m: DescriptorMethod) -> dict:
    t0 = time.time()
    tenfold = not m.fitted
    needed = np.unique(np.concatenate([
        ev.eval_idx, ev.pair_images(range(1, 11) if tenfold else EVAL_FOLDS),
    ]))
    coded = m.code(ev.faces.descriptors[needed])
    position = {int(i): p for p, i in enumerate(needed)}
    decoded = {int(i): coded.descriptors[position[int(i)]] for i in needed}
    on_eval = np.array([position[int(i)] for i in ev.eval_idx])
    row = {
        "method": m.method,
        "setting": m.setting,
        "family": m.family,
        "bytes_per_face": float(coded.payload_bytes[on_eval].mean()),
        "container_bytes_per_face": float(coded.container_bytes[on_eval].mean()),
        "bytes_per_face_max": int(coded.payload_bytes[on_eval].max()),
        "learned_or_fitted": m.fitted,
    }
    row |= score(ev, decoded, tenfold, ev.eval_idx)
    row |= {"protocol_note": m.note} if m.note else {}
    row |= m.extra
    row["seconds"] = round(time.time() - t0, 1)
    return row


# ----------------------------------------------------------------------------------------------------
# Image rows: compress, decompress, analyse again


class DescriptorCache:
    """Re-described descriptors per image key in data/eval_cache/<name>.npy (+ .keys.npy, .bytes.npy).

    Keyed by image, so a limited development run fills part of the cache that the full run reuses;
    `source` (the input file's size and mtime, or a constant for raw images) invalidates it.
    """

    def __init__(self, folder: Path, name: str, source: str) -> None:
        self.paths = {part: folder / f"{name}{part}" for part in (".npy", ".keys.npy", ".bytes.npy", ".json")}
        self.source = f"v{CACHE_VERSION}:{source}"
        self.entries: dict[str, tuple[np.ndarray, int]] = {}
        if all(p.exists() for p in self.paths.values()) and \
                json.loads(self.paths[".json"].read_text()).get("source") == self.source:
            desc, keys, nbytes = (np.load(self.paths[p]) for p in (".npy", ".keys.npy", ".bytes.npy"))
            self.entries = {k: (d, int(b)) for k, d, b in zip(keys.tolist(), desc, nbytes)}

    def save(self) -> None:
        folder = self.paths[".npy"].parent
        folder.mkdir(parents=True, exist_ok=True)
        keys = list(self.entries)
        # Write-then-rename so an interrupted run never leaves a torn cache behind.
        for part, value in ((".npy", np.stack([self.entries[k][0] for k in keys]).astype(np.float32)),
                            (".keys.npy", np.array(keys)),
                            (".bytes.npy", np.array([self.entries[k][1] for k in keys], np.int64))):
            tmp = self.paths[part].with_name(self.paths[part].name + ".tmp.npy")
            np.save(tmp, value)
            tmp.replace(self.paths[part])
        self.paths[".json"].write_text(json.dumps({"source": self.source, "count": len(keys)}) + "\n")


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.start, self.last, self.done = label, total, time.time(), 0.0, 0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.time()
        if now - self.last > 10 or self.done == self.total:
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            print(f"    {self.label}: {self.done}/{self.total} images, {rate:.1f} images/s, "
                  f"eta {eta:.0f}s", flush=True)
            self.last = now


Produce = Callable[[str, FaceFrontEnd], tuple[np.ndarray, int]]  # key -> (decoded aligned crop, bytes)

# Worker-process state. Set before the pool forks, so the (unpicklable) `produce` closure and the
# in-memory crops reach the workers by copy-on-write instead of pickling.
_PRODUCE: Produce | None = None
_FRONT: FaceFrontEnd | None = None


def _init_worker() -> None:
    global _FRONT
    # One onnxruntime thread per worker: on 2 cores, batch-1 inference parallelises poorly inside one
    # session (measured ~58 ms/face with 1 thread vs ~82 ms with 2 under load), so processes do better.
    os.environ["FACECODEC_ORT_THREADS"] = "1"
    from facecodec.frontend import FaceFrontEnd

    _FRONT = FaceFrontEnd()


def _produce_and_describe(keys: list[str]) -> tuple[np.ndarray, list[int]]:
    assert _PRODUCE is not None and _FRONT is not None
    crops, sizes = zip(*(_PRODUCE(k, _FRONT) for k in keys))
    return _FRONT.describe(np.stack(crops)), list(sizes)


def describe_cached(
    cache: DescriptorCache, keys: list[str], produce: Produce, front: FaceFrontEnd, label: str,
    workers: int = 1, batch: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors and coded sizes for `keys`, computing (and caching) only the ones not cached yet."""
    global _PRODUCE
    todo = [k for k in keys if k not in cache.entries]
    if todo:
        print(f"    {label}: describing {len(todo)} images ({len(keys) - len(todo)} cached, "
              f"{workers} worker{'s' if workers > 1 else ''})", flush=True)
        chunks = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        progress, since_save = Progress(label, len(todo)), 0
        pool = None
        if workers > 1:
            _PRODUCE = produce
            pool = multiprocessing.get_context("fork").Pool(workers, _init_worker)
            results = pool.imap(_produce_and_describe, chunks)
        else:
            results = (
                (front.describe(np.stack(c)), s)
                for c, s in (zip(*(produce(k, front) for k in chunk)) for chunk in chunks)
            )
        try:
            for chunk, (descriptors, sizes) in zip(chunks, results):
                for k, d, n in zip(chunk, descriptors, sizes):
                    cache.entries[k] = (d, int(n))
                progress.step(len(chunk))
                since_save += len(chunk)
                if since_save >= 500:  # resumable if interrupted
                    cache.save()
                    since_save = 0
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
            _PRODUCE = None
        cache.save()
    desc = np.stack([cache.entries[k][0] for k in keys])
    nbytes = np.array([cache.entries[k][1] for k in keys])
    return desc, nbytes


@dataclass
class ImageRowContext:
    ev: EvalSet
    images: np.ndarray  # lfw.npz rows to re-describe
    ident_idx: np.ndarray  # the subset used for TAR / rank-1 (folds 6-10 pair images)
    tenfold: bool
    cache_dir: Path
    front: FaceFrontEnd  # the parent's front end: detection, and describing when workers == 1
    workers: int = 1


def image_row(ctx: ImageRowContext, method: str, setting: str, produce: Produce, source: str, note: str) -> dict:
    t0 = time.time()
    ev = ctx.ev
    keys = ev.faces.keys[ctx.images].tolist()
    cache = DescriptorCache(ctx.cache_dir, f"{method}_{setting}", source)
    desc, nbytes = describe_cached(cache, keys, produce, ctx.front, f"{method} {setting}", ctx.workers)
    decoded = {int(i): d for i, d in zip(ctx.images, desc)}
    on_ident = np.isin(ctx.images, ctx.ident_idx)
    row = {
        "method": method,
        "setting": setting,
        "family": "image",
        "bytes_per_face": float(nbytes[on_ident].mean()),
        "container_bytes_per_face": float(nbytes[on_ident].mean()),
        "bytes_per_face_max": int(nbytes[on_ident].max()),
        "learned_or_fitted": False,
        "images_described": len(keys),
    }
    row |= score(ev, decoded, ctx.tenfold, ctx.ident_idx)
    row["protocol_note"] = note
    row["seconds"] = round(time.time() - t0, 1)
    return row


def crop_rows(ctx: ImageRowContext) -> list[dict]:
    ev = ctx.ev
    stat = ev.lfw_path.stat()
    source = f"{ev.lfw_path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    crop_of = {k: i for i, k in enumerate(ev.faces.keys.tolist())}
    note = reduced_note(ctx) + " The aligned 112x112 crop from lfw.npz is coded, decoded and described."
    rows = []
    for fmt, qualities in CROP_QUALITIES.items():
        for q in qualities:
            def produce(key: str, front: FaceFrontEnd, fmt: str = fmt, q: int = q) -> tuple[np.ndarray, int]:
                data = anchors.encode_image(ev.faces.crops[crop_of[key]], fmt, q)
                return anchors.decode_image(data, fmt), len(data)

            rows.append(image_row(ctx, f"{fmt}_crop", f"q{q}", produce, source, note))
            print_row(rows[-1])
    return rows


def pixel_rows(ctx: ImageRowContext) -> list[dict]:
    """Rate-accuracy of the pixels: the scalable codec's reconstructions (base only, then each level),
    described again, with the bytes of the container a viewer of that level receives."""
    from facecodec.codec.profiles import PROFILES, codec_by_name

    ev = ctx.ev
    stat = ev.lfw_path.stat()
    # The spec and level count from the files, not a FaceCodec: its onnxruntime sessions must open in the
    # worker processes (after the fork), not here.
    spec = PROFILES[PIXEL_PROFILE]
    with np.load(WEIGHTS / spec.enhancement_file) as z:
        levels = len(z["lmbdas"])
    weights = [WEIGHTS / spec.base_files[spec.default_rate], WEIGHTS / spec.prediction_file,
               WEIGHTS / spec.enhancement_file]
    source = f"{ev.lfw_path.name}:{stat.st_size}:{stat.st_mtime_ns}:model{spec.model_id}:" + ":".join(
        f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights)
    crop_of = {k: i for i, k in enumerate(ev.faces.keys.tolist())}
    note = reduced_note(ctx) + (f" The aligned crop is coded by profile {PIXEL_PROFILE} (model {spec.model_id}, "
                                "default rate), reconstructed at the level and described; bytes = base + that "
                                "level's layer in one container.")
    rows = []
    for level in range(levels + 1):
        def produce(key: str, front: FaceFrontEnd, level: int = level) -> tuple[np.ndarray, int]:
            codec = codec_by_name(PIXEL_PROFILE)  # cached per process
            i = crop_of[key]
            coded = codec.encode_base(ev.faces.descriptors[i])
            if level:
                coded = codec.add_enhancement(ev.faces.crops[i], coded, level)
            return codec.reconstruct(coded, level), len(coded.to_bytes())

        rows.append(image_row(ctx, f"{PIXEL_PROFILE}_pixels", f"level-{level}" if level else "base-only",
                              produce, source, note) | {"family": "pixels"})  # not an image-codec row
        print_row(rows[-1])
    return rows


def detection_regions(ctx: ImageRowContext, keys: list[str]) -> dict[str, tuple[int, int, int]]:
    """(left, top, side) of the square region the landmark stage would see, per raw LFW image (cached)."""
    from facecodec.frontend.landmarks import square_box
    from facecodec.train.prepare import fallback_box

    path = ctx.cache_dir / "detection_regions.json"
    regions: dict[str, list[int]] = json.loads(path.read_text()) if path.exists() else {}
    todo = [k for k in keys if k not in regions]
    if todo:
        print(f"    detecting faces in {len(todo)} raw LFW images", flush=True)
        progress = Progress("detect", len(todo))
        for i, key in enumerate(todo):
            rgb = decode_image(lfw_image_path(key).read_bytes())
            h, w = rgb.shape[:2]
            face = ctx.front.largest_face(rgb)
            # As in prepare: no detection -> the centred fallback box (LFW faces are centred).
            box = face.detection.box if face is not None else fallback_box(h, w, "lfw")
            left, top, side, _ = square_box(box, w, h)
            regions[key] = [left, top, side, int(face is not None)]
            progress.step()
            if (i + 1) % 500 == 0 or i + 1 == len(todo):
                ctx.cache_dir.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(regions))
    return {k: tuple(regions[k]) for k in keys}


def lfw_image_path(key: str) -> Path:
    return dataset_root() / "lfw" / "images" / f"{key}.jpg"


def detection_rows(ctx: ImageRowContext) -> list[dict]:
    from facecodec.frontend.align import align

    keys = ctx.ev.faces.keys[ctx.images].tolist()
    regions = detection_regions(ctx, keys)
    detected = float(np.mean([regions[k][3] for k in keys]))
    note = reduced_note(ctx) + (
        " The detector's square box region of the raw 250x250 LFW image is coded at native resolution; "
        "the decoder runs landmarks + alignment on the decoded region, then describes. "
        f"Detected in {detected:.1%} of images (others: prepare's centred fallback box)."
    )
    rows = []
    for q in DETECTION_QUALITIES:
        def produce(key: str, front: FaceFrontEnd, q: int = q) -> tuple[np.ndarray, int]:
            left, top, side, _ = regions[key]
            rgb = decode_image(lfw_image_path(key).read_bytes())
            data = anchors.encode_image(np.ascontiguousarray(rgb[top : top + side, left : left + side]), "jpeg", q)
            region = decode_image(data)
            points = front.landmarks(region, (0.0, 0.0, float(side), float(side)))
            return align(region, points), len(data)

        row = image_row(ctx, "jpeg_detection_box", f"q{q}", produce, "raw-lfw", note)
        row["mean_region_side_px"] = float(np.mean([regions[k][2] for k in keys]))
        rows.append(row)
        print_row(row)
    return rows


def reduced_note(ctx: ImageRowContext) -> str:
    n_ident = len(ctx.ident_idx)
    return (
        f"Reduced protocol: re-described only the {n_ident} unique images of the folds 6-10 pairs"
        + (" (plus folds 1-5 pair images for the 10-fold figure)." if ctx.tenfold else ".")
        + f" TAR@FAR=1e-3 and rank-1 are over those {n_ident} images, not all evaluation images;"
        " compare with `float32_same_images`."
    )


def float32_reference(ctx: ImageRowContext) -> dict:
    """float32 TAR/rank-1 on the image rows' reduced image set, so those rows have a fair reference."""
    decoded = {int(i): ctx.ev.faces.descriptors[i] for i in ctx.ident_idx}
    ident = identification(ctx.ev, decoded, ctx.ident_idx)
    return {"tar_at_far_1e-3": ident["tar_at_far_1e-3"], "rank1": ident["rank1"], "images": len(ctx.ident_idx)}


# ----------------------------------------------------------------------------------------------------
# Summary, plot, output


def summarise(points: list[dict]) -> dict:
    f32 = next((p for p in points if p["method"] == "float32"), None)
    if f32 is None:
        return {}
    acc0, tar0 = f32["verification_accuracy"], f32["tar_at_far_1e-3"]
    learned = [p for p in points if p["family"] == "learned"]
    images = [p for p in points if p["family"] == "image"]

    def smallest(rows: list[dict], pp: float) -> dict | None:
        ok = [p for p in rows if p["verification_accuracy"] >= acc0 - pp / 100 - 1e-12]
        return min(ok, key=lambda p: p["container_bytes_per_face"]) if ok else None

    def brief(p: dict | None) -> dict | None:
        if p is None:
            return None
        return {
            "method": p["method"], "setting": p["setting"], "bytes_per_face": p["bytes_per_face"],
            "container_bytes_per_face": p["container_bytes_per_face"],
            "verification_accuracy": p["verification_accuracy"],
            "accuracy_delta_pp": 100 * (p["verification_accuracy"] - acc0),
            "tar_at_far_1e-3": p["tar_at_far_1e-3"], "tar_delta": p["tar_at_far_1e-3"] - tar0,
        }

    def best_within(rows: list[dict], max_bytes: float) -> dict | None:
        ok = [p for p in rows if p["bytes_per_face"] <= max_bytes]
        return max(ok, key=lambda p: p["verification_accuracy"]) if ok else None

    # Issue 13's targets, on the payload that crosses the network (termination included).
    served = [p for p in learned if p["method"] == "base_layer_learned"]
    at_32, at_16, at_8 = best_within(served, 32), best_within(served, 16), best_within(served, 8)
    targets = {
        "payload_le_32B_within_0.3pp": bool(at_32 and 100 * (acc0 - at_32["verification_accuracy"]) <= 0.3 + 1e-9),
        "payload_le_32B_tar_within_1pt": bool(at_32 and 100 * (tar0 - at_32["tar_at_far_1e-3"]) <= 1.0 + 1e-9),
        "payload_le_16B_ge_97.0": bool(at_16 and at_16["verification_accuracy"] >= 0.970 - 1e-12),
        "payload_le_8B_ge_92.0": bool(at_8 and at_8["verification_accuracy"] >= 0.920 - 1e-12),
    }
    learned_03, learned_10, learned_05 = smallest(learned, 0.3), smallest(learned, 1.0), smallest(learned, 0.5)
    image_05 = smallest(images, 0.5)
    ratio = payload_ratio = None
    if image_05 is not None and learned_05 is not None:
        ratio = image_05["container_bytes_per_face"] / learned_05["container_bytes_per_face"]
        payload_ratio = image_05["bytes_per_face"] / learned_05["bytes_per_face"]
    return {
        "float32_verification_accuracy": acc0,
        "float32_tar_at_far_1e-3": tar0,
        "learned_smallest_within_0.3pp": brief(learned_03),
        "learned_smallest_within_1.0pp": brief(learned_10),
        "learned_smallest_within_0.5pp": brief(learned_05),
        "image_smallest_within_0.5pp": brief(image_05),
        "image_over_learned_bytes_within_0.5pp": ratio,
        "image_over_learned_payload_within_0.5pp": payload_ratio,
        "best_served_payload_le_32B": brief(at_32),
        "best_served_payload_le_16B": brief(at_16),
        "best_served_payload_le_8B": brief(at_8),
        "targets_met": targets,
        "notes": "Smallest = fewest container bytes per face among rows whose folds 6-10 accuracy is within the "
                 "stated points of float32. The ratios compare image file bytes with the learned base layer's "
                 "container bytes (payload + 12 B header/CRC) and with its payload, both within 0.5 pp of float32. "
                 "Image-row TAR is on the reduced image set (see float32_same_images in those rows).",
    }


MARKERS = {"descriptor": "s", "pq": "D", "base_layer": "^", "learned": "*", "image": "o", "pixels": "P"}


def point_label(p: dict) -> str:
    if p["method"] == "pq":
        return f"PQ {p['bytes_per_face']:.0f} B"
    if p["method"] == "pca_int8":
        return "PCA-64+int8"
    if p["family"] in ("base_layer", "learned"):
        return p["setting"]
    return p["method"]


def plot(points: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6))
    groups: dict[str, list[dict]] = {}
    for p in points:
        groups.setdefault(p["method"], []).append(p)
    colours = plt.get_cmap("tab20").colors
    for n, (method, rows) in enumerate(groups.items()):
        rows = sorted(rows, key=lambda p: p["bytes_per_face"])
        x = [p["bytes_per_face"] for p in rows]
        y = [100 * p["verification_accuracy"] for p in rows]
        family = rows[0]["family"]
        # Image rows and PQ are one method at several settings: join them into a curve.
        line = "-" if family in ("image", "pq") else ""
        ax.plot(x, y, line + MARKERS.get(family, "o"), color=colours[n % len(colours)], label=method,
                markersize=9 if family == "learned" else 5)
        for p, xi, yi in zip(rows, x, y):
            text = p["setting"] if family == "image" else point_label(p)
            ax.annotate(text, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    f32 = next((p for p in points if p["method"] == "float32"), None)
    if f32 is not None:
        ax.axhline(100 * f32["verification_accuracy"], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per face (log scale)")
    ax.set_ylabel("LFW verification accuracy, folds 6-10, 5-fold CV (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def print_row(p: dict) -> None:
    ten = p.get("verification_accuracy_10fold")
    print(f"  {p['method']:>20} {p['setting']:<34} {p['bytes_per_face']:8.1f} B "
          f"(container {p['container_bytes_per_face']:7.1f})  acc {100 * p['verification_accuracy']:6.2f}%"
          + (f" (10-fold {100 * ten:6.2f}%)" if ten is not None else "")
          + f"  TAR@1e-3 {p['tar_at_far_1e-3']:.4f}  rank1 {p['rank1']:.4f}  [{p['seconds']}s]", flush=True)


def protocol_text(ev: EvalSet, limit: int | None) -> str:
    n_eval_pairs = int(ev.pairs_in(EVAL_FOLDS).sum())
    text = (
        f"verification_accuracy: LFW View-2 folds 6-10 ({n_eval_pairs} pairs), 5-fold cross-validated "
        "(threshold maximising accuracy on 4 folds, tested on the 5th); verification_accuracy_10fold (rows "
        f"with nothing learned on LFW): standard 10-fold over all {len(ev.same)} pairs. TAR at FAR=1e-3: "
        f"all-vs-all (upper triangle) cosine scores over {len(ev.eval_idx)} evaluation-identity images; "
        "rank1: gallery = first image (sorted key) of every evaluation identity, probes = the other images "
        "of identities with >= 2 images. Anything fitted (PCA, PQ, int8 scales, base-layer tables, learned "
        "codecs) used training faces only (LFW train identities + CelebA + AT&T)."
    )
    if limit is not None:
        text = (f"LIMITED DEVELOPMENT RUN (--limit {limit}: {limit} pairs per fold; TAR/rank-1 over the limited "
                "pairs' images only) - not a result. ") + text
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/rate_accuracy.json"))
    parser.add_argument("--plot", type=Path, default=None, help="default: --out with .png")
    parser.add_argument("--limit", type=int, default=None, help="pairs per fold (development runs)")
    parser.add_argument("--skip-images", action="store_true", help="skip the compress-then-analyse rows")
    parser.add_argument("--tenfold-images", action="store_true",
                        help="also re-describe folds 1-5 pair images for the image rows' 10-fold figure")
    parser.add_argument("--cache", type=Path, default=Path("data/eval_cache"))
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--workers", type=int, default=2,
                        help="processes re-describing image rows (1 onnxruntime thread each); 1 = in-process")
    args = parser.parse_args(argv)
    if not (args.faces / "lfw.npz").exists():
        raise SystemExit(f"{args.faces / 'lfw.npz'} not found: run python -m facecodec.train.prepare first")

    t0 = time.time()
    print("loading faces...", flush=True)
    ev = load_eval_set(args.faces, args.limit)
    train = load_training_faces(args.faces).descriptors
    print(f"  {len(ev.faces.keys)} LFW images, {len(ev.same)} pairs, {len(ev.eval_idx)} identification images, "
          f"{len(train)} training descriptors", flush=True)

    print("descriptor rows:", flush=True)
    methods, skipped = descriptor_methods(train, args.weights)
    points = []
    for m in methods:
        points.append(run_descriptor_method(ev, m))
        print_row(points[-1])

    if args.skip_images:
        skipped.append("image rows: --skip-images")
    else:
        folds = range(1, 11) if args.tenfold_images else EVAL_FOLDS
        ctx = ImageRowContext(ev, ev.pair_images(folds), ev.pair_images(EVAL_FOLDS), args.tenfold_images,
                              args.cache, FaceFrontEnd(), args.workers)
        print(f"image rows ({len(ctx.images)} images each, cache {args.cache}):", flush=True)
        reference = float32_reference(ctx)
        for row in crop_rows(ctx) + pixel_rows(ctx) + detection_rows(ctx):
            row["float32_same_images"] = reference
            points.append(row)

    result = {
        "dataset": "LFW deep-funneled (subset with the full View-2 protocol), descriptors from lfw.npz "
                   "(facecodec.train.prepare); evaluation identities = View-2 folds 6-10",
        "protocol": protocol_text(ev, args.limit),
        "machine": "2 cores, no GPU",
        "limited": args.limit is not None,
        "points": points,
        "summary": summarise(points),
        "skipped": skipped,
        "seconds": round(time.time() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot_path = args.plot or args.out.with_suffix(".png")
    title = "Rate vs accuracy (LFW folds 6-10, 5-fold CV)" + (" - LIMITED RUN" if args.limit else "")
    plot(points, plot_path, title)
    print(f"wrote {args.out} and {plot_path} in {time.time() - t0:.0f}s", flush=True)
    print(json.dumps(result["summary"], indent=2), flush=True)


if __name__ == "__main__":
    sys.exit(main())

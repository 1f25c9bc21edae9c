"""Image rows: compress, decompress, analyse again (aligned crops as JPEG/WebP/AVIF/HEVC, the codec's
reconstructions, the detector's box region at native resolution)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec.datasets import dataset_root
from facecodec.eval import anchors
from facecodec.eval.rate_accuracy.cache import DescriptorCache
from facecodec.eval.rate_accuracy.evalset import WEIGHTS, EvalSet
from facecodec.eval.rate_accuracy.pool import Produce, Progress, describe_cached
from facecodec.eval.rate_accuracy.scoring import identification, score
from facecodec.eval.rate_accuracy.summary import print_row
from facecodec.frontend import FaceFrontEnd, decode_image

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

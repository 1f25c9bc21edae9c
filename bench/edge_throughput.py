"""Edge throughput on 1080p camera frames, through the real cloud (Redis + the three services).

    python bench/edge_throughput.py [--seconds 15] [--out bench/results/edge_throughput.json]

Frames: 1920x1080 composites of LFW evaluation photos at known boxes, 40-300 px wide, 1-6 faces each
(`bench/detection.py`'s compositor, JPEG q85), 40 distinct frames looped. The launcher's stack runs as
real processes (`devstack.stack.Stack`); `devstack.replay` plays the frames as cameras:

- saturation: 1, 4 and 16 cameras at 10 fps each for `--seconds`: faces detected per second, frames
  accepted per second, POST latency (frame in -> coded at the edge);
- video: 4 cameras at 10 fps each playing a fixed camera's stream (`bench/motion_gate.py`'s sequence: a
  WIDER scene with 2-4 LFW heads walking across it, 60 frames looped), where consecutive frames share
  their background, as a real camera's do (the composites above share nothing from frame to frame);
- latency: 8 cameras at 2 fps with one face per frame: frame-to-sighting = the analyzer's decision time
  minus the frame's capture stamp (set by the camera as it sends), for every uplinked face;
- uplink per face: base-only container bytes against a JPEG (q75) of the face's box region;
- per-stage time (the edge's own `edge_stage_seconds` histograms, scraped from /metrics, with the edge's admin token,
  before and after
  each run: mean, and p50/p95 interpolated within the histogram's buckets), and the share of the edge's
  stage time spent detecting;
- CPU seconds and peak RSS per service process over the whole run (/proc).

With `--py-spy PATH` (the py-spy binary: `pip download py-spy` and unzip, or `pip install py-spy`), the
edge process is sampled during the 4-camera run and the share of its busy samples under each part of
the path is written beside the figures (`profile`).

Machine: whatever runs it (recorded). Writes `faces_per_s`, `frame_to_sighting_p95_ms`,
`uplink_ratio_vs_jpeg` at the top level, rows beside them.
"""

# ruff: noqa: E402  (bench/ holds scripts: their imports follow the path set-up)
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import httpx
import numpy as np
from detection import composite_frame, wider_scenes
from motion_gate import walking_sequence
from PIL import Image
from report import machine_record

from devstack.replay import replay
from devstack.stack import Stack
from facecodec.datasets import evaluation_images
from facecodec.frontend.detect import FaceDetector

TICKS = os.sysconf("SC_CLK_TCK")


def frames(count: int, faces: tuple[int, int], seed: int) -> tuple[list[tuple[bytes, str]], list[int]]:
    """JPEG frames and, for the uplink comparison, the JPEG size of each face's box region."""
    rng, photos, reference = np.random.default_rng(seed), evaluation_images(), FaceDetector(tiling=False)
    out, crops = [], []
    for _ in range(count):
        rgb, boxes = composite_frame(rng, photos, reference, faces)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=85)
        out.append((buffer.getvalue(), "image/jpeg"))
        for x1, y1, x2, y2 in boxes.astype(int):
            crop = io.BytesIO()
            Image.fromarray(rgb[max(y1, 0) : y2, max(x1, 0) : x2]).save(crop, "JPEG", quality=75)
            crops.append(len(crop.getvalue()))
    return out, crops


def video_frames(count: int, seed: int) -> list[tuple[bytes, str]]:
    rng = np.random.default_rng(seed)
    sequence = walking_sequence(rng, wider_scenes(), evaluation_images(), FaceDetector(tiling=False), count)
    out = []
    for rgb, _, _ in sequence:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=85)
        out.append((buffer.getvalue(), "image/jpeg"))
    return out


def process_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    peak = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    return cpu, peak


def stage_histograms(client: httpx.Client, edge: str) -> dict[str, dict[float, float]]:
    """Cumulative bucket counts per stage (le -> count), plus '_sum' under le=-1."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(client.get(f"{edge}/metrics").text):
        if family.name != "edge_stage_seconds":
            continue
        for sample in family.samples:
            stage = sample.labels.get("stage")
            if sample.name.endswith("_bucket"):
                out.setdefault(stage, {})[float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                out.setdefault(stage, {})[-1.0] = sample.value
    return out


def _quantile(cumulative: dict[float, float], q: float) -> float:
    """The q-quantile in ms from cumulative bucket counts (upper bound -> count), linear within a bucket."""
    edges = sorted(cumulative)
    target, lower, below = q * cumulative[edges[-1]], 0.0, 0.0
    for le in edges:
        if cumulative[le] >= target:
            upper = le if le != float("inf") else lower
            share = (target - below) / max(cumulative[le] - below, 1e-9)
            return round(1000 * (lower + share * (upper - lower)), 1)
        lower, below = le, cumulative[le]
    return round(1000 * lower, 1)


def stage_summary(before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]) -> dict:
    """Per stage over one run: count, mean, p50/p95 (linear within buckets), total seconds."""
    summary = {}
    for stage, buckets in after.items():
        delta = {le: n - before.get(stage, {}).get(le, 0.0) for le, n in buckets.items()}
        total_s = delta.pop(-1.0, 0.0)
        edges = sorted(delta)
        count = delta[edges[-1]] if edges else 0
        if not count:
            continue

        summary[stage] = {"count": int(count), "mean_ms": round(1000 * total_s / count, 1),
                          "p50_ms": _quantile(delta, 0.5), "p95_ms": _quantile(delta, 0.95),
                          "total_s": round(total_s, 1)}
    return summary


# Where an edge's CPU goes: a function's share of the samples whose stack passes through it.
PROFILE_PARTS = {
    "decode (JPEG)": ("decode_image (",), "detect": ("frontend/detect.py",),
    "landmarks": ("frontend/landmarks.py",), "align": ("frontend/align.py",),
    "quality": ("frontend/quality.py",), "describe (recogniser)": ("frontend/describe.py",),
    "track": ("edge_encoder/tracker.py",), "code base layer": ("encode_base (",), "lossless crop": ("lossless (",),
    "store + outbox (SQLite)": ("edge_encoder/outbox.py", "edge_encoder/enhancement_store.py"),
    "upload (gRPC)": ("edge_encoder/uploader.py",), "HTTP (uvicorn, starlette)": ("uvicorn/", "starlette/"),
}


def profile_edge(py_spy: str, pid: int, seconds: float) -> tuple[subprocess.Popen, Path]:
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
                             "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True), out


def profile_summary(raw: Path) -> dict:
    """Share of busy samples under each part (a sample counts for every part on its stack)."""
    total, parts = 0, dict.fromkeys(PROFILE_PARTS, 0)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for name, needles in PROFILE_PARTS.items():
            if any(needle in stack for needle in needles):
                parts[name] += int(count)
    return {"samples": total, "share": {k: round(v / total, 3) for k, v in parts.items()} if total else {}}


def frame_to_sighting(client: httpx.Client, analyzer: str, uplinked: list[tuple[str, int]],
                      timeout_s: float = 60.0) -> list[float]:
    deadline, latencies, pending = time.time() + timeout_s, [], dict(uplinked)
    while pending and time.time() < deadline:
        for face_id, captured_ms in list(pending.items()):
            face = client.get(f"{analyzer}/v1/faces/{face_id}")
            if face.status_code == 200 and face.json().get("decided_at_ms"):
                latencies.append(face.json()["decided_at_ms"] - captured_ms)
                del pending[face_id]
        time.sleep(0.2)
    return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each saturation run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "edge_throughput.json")
    parser.add_argument("--edge-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="an edge setting for the run, e.g. EDGE_DETECT_MOTION_GATE=false (repeatable)")
    parser.add_argument("--py-spy", default=None, help="py-spy binary: profile the edge during the 4-camera run")
    args = parser.parse_args(argv)

    print("composing 1080p frames...", flush=True)
    multi, crop_jpeg = frames(40, (1, 7), seed=0)
    single, _ = frames(40, (1, 2), seed=1)
    video = video_frames(60, seed=2)
    edge_settings = dict(item.split("=", 1) for item in args.edge_setting)
    rows, t0, profile = [], time.time(), None
    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp), settings={"edge_encoder": edge_settings}) as stack:
        edge, analyzer, token = stack.url("edge_encoder"), stack.url("cloud_analyzer"), stack.camera_token
        # A reader key without the default per-key rate limit: the poll below asks about every face.
        reader = stack.client().post(f"{analyzer}/v1/keys", json={"name": "bench", "scopes": ["sightings:read"],
                                                                  "rate_per_s": 100_000}).json()["token"]
        client = httpx.Client(headers={"authorization": f"Bearer {reader}"}, timeout=10)
        plain = httpx.Client(timeout=10, headers=stack.edge_admin)  # the edge's /metrics and /v1/status
        for run, cameras, played in (("saturation", 1, multi), ("saturation", 4, multi), ("saturation", 16, multi),
                                     ("video", 4, video)):
            fps = 10.0
            before = stage_histograms(plain, edge)
            spy = profile_edge(args.py_spy, stack.services["edge_encoder"].proc.pid, args.seconds - 1) \
                if args.py_spy and (run, cameras) == ("saturation", 4) else None
            s = asyncio.run(replay(played, edge, cameras, fps, int(args.seconds * fps), progress=False, token=token))
            stages = stage_summary(before, stage_histograms(plain, edge))
            if spy is not None:
                spy[0].wait(60)
                profile = {"run": "saturation, 4 cameras", **profile_summary(spy[1])}
            spent = sum(v["total_s"] for v in stages.values())
            rows.append({"run": run, "cameras": cameras, "fps_per_camera": fps,
                         "faces_per_s": round(s.faces_detected / s.seconds, 2),
                         "frames_per_s": round(s.accepted / s.seconds, 2),
                         "post_ms_p50": s.latency_ms_p50, "post_ms_p95": s.latency_ms_p95,
                         "frames_sent": s.frames_sent, "refused_429": s.refused_429, "skipped": s.skipped,
                         "faces_detected": s.faces_detected, "faces_uplinked": s.faces_uplinked,
                         "stages": stages,
                         "detect_share_of_stage_time": round(stages.get("detect_align", {}).get("total_s", 0)
                                                             / spent, 3) if spent else None})
            print(rows[-1], flush=True)
        s = asyncio.run(replay(single, edge, 8, 2.0, int(args.seconds * 2), progress=False, token=token))
        latencies = frame_to_sighting(client, analyzer, s.uplinked)
        bases = [client.get(f"{analyzer}/v1/faces/{fid}").json()["base_layer_bytes"] for fid, _ in s.uplinked[:50]]
        rows.append({"run": "latency", "cameras": 8, "fps_per_camera": 2.0, "faces_uplinked": s.faces_uplinked,
                     "frames_sent": s.frames_sent, "refused_429": s.refused_429, "skipped": s.skipped,
                     "frame_to_sighting_ms_p50": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
                     "frame_to_sighting_ms_p95": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
                     "post_ms_p50": s.latency_ms_p50, "post_ms_p95": s.latency_ms_p95,
                     "sightings_measured": len(latencies)})
        print(rows[-1], flush=True)
        # The level each of the edge's onnxruntime sessions got on this machine (facecodec.frontend.runtime).
        onnx_levels = plain.get(f"{edge}/v1/status").json().get("onnxruntime")
        print("onnxruntime graph optimisation per model:", onnx_levels, flush=True)
        services = {}
        for name, service in stack.services.items():
            if service.proc is not None and service.proc.poll() is None:
                cpu, rss = process_usage(service.proc.pid)
                services[name] = {"cpu_s": round(cpu, 1), "peak_rss_mb": round(rss / 2**20, 1)}
    base_mean = float(np.mean(bases)) if bases else None
    result = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, no GPU; Redis + 3 services + this driver on it",
        **machine_record(),
        "onnxruntime_levels": onnx_levels,
        "faces_per_s": max(r["faces_per_s"] for r in rows if r["run"] == "saturation"),
        "faces_per_s_fixed_camera_video": next(r["faces_per_s"] for r in rows if r["run"] == "video"),
        "edge_settings": edge_settings,
        "frame_to_sighting_p95_ms": rows[-1]["frame_to_sighting_ms_p95"],
        "uplink_ratio_vs_jpeg": round(base_mean / float(np.mean(crop_jpeg)), 4) if base_mean else None,
        "uplink": {"base_container_bytes_mean": base_mean, "jpeg_q75_face_box_bytes_mean": float(np.mean(crop_jpeg))},
        "targets": {"faces_per_s": ">= 50", "frame_to_sighting_p95_ms": "<= 300 at 8 cameras x 2 fps",
                    "uplink_ratio_vs_jpeg": "<= 1/30"},
        "rows": rows,
        "services": services,
        "profile": profile,
        "seconds": round(time.time() - t0, 1),
        "notes": "faces_per_s counts faces detected (every face is detected, aligned, described and tracked; "
                 "only uplinked ones are coded). Frames loop, so after the first pass the tracker links most "
                 "faces to open tracks. CPU/RSS are whole-run totals of each process.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()

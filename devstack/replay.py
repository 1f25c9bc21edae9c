"""Play a folder of images or a video to an edge as N cameras, and say how the edge kept up.

    python -m devstack.replay DIR|VIDEO [--cameras 4] [--fps 2] [--frames 100] [--edge http://127.0.0.1:8001]

Each camera posts its frames at `--fps` (cameras start staggered across one frame interval), like a
camera it does not queue: a frame whose time has passed while the previous one was still in flight is
skipped and counted. While the edge refuses connections (restarting) a camera tries again within its
frame's slot, then counts the frame unreachable. Images are sent as they are (JPEG/PNG/WebP); video
frames (PyAV, `pip install av`) are sent as JPEG q90. A status line every second goes to stderr; the
summary (frames sent, accepted, refused with 429, unreachable, other errors, skipped, faces detected and
uplinked, p50/p95 latency of accepted posts, faces/s) goes to stdout, as JSON with `--json`. The exit
status is 0 when some frames were accepted and none met an error (unreachable ones are not errors).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from devstack.settings import DevstackSettings

RETRY_S = 0.1  # between connection attempts while the edge is down
IMAGE_SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class ReplayError(ValueError):
    """The source cannot be played (no images, unreadable video, PyAV missing)."""


@dataclass
class Summary:
    cameras: int
    fps: float
    frames_sent: int = 0
    accepted: int = 0
    refused_429: int = 0
    unreachable: int = 0  # frames whose slot passed while the edge refused connections (down, restarting)
    errors: int = 0
    skipped: int = 0
    faces_detected: int = 0
    faces_uplinked: int = 0
    seconds: float = 0.0
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    faces_per_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    uplinked: list[tuple[str, int]] = field(default_factory=list, repr=False)  # (face_id, captured_at_ms)


def load_frames(source: Path, limit: int) -> list[tuple[bytes, str]]:
    """Up to `limit` frames as (bytes, content type): a folder's images (sorted), or a video's frames."""
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ReplayError(f"no .jpg/.png/.webp images under {source}")
        return [(p.read_bytes(), IMAGE_SUFFIXES[p.suffix.lower()]) for p in paths[:limit]]
    if not source.is_file():
        raise ReplayError(f"{source} is neither a folder nor a file")
    return [(frame, "image/jpeg") for frame in _video_frames(source, limit)]


def _video_frames(path: Path, limit: int) -> Iterator[bytes]:
    try:
        import av
    except ImportError as exc:
        raise ReplayError("playing a video needs PyAV: pip install av") from exc
    from PIL import Image

    try:
        with av.open(str(path)) as container:
            for n, frame in enumerate(container.decode(video=0)):
                if n >= limit:
                    break
                buffer = io.BytesIO()
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(buffer, format="JPEG", quality=90)
                yield buffer.getvalue()
    except av.error.FFmpegError as exc:
        raise ReplayError(f"{path}: not a readable video ({exc})") from exc


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


async def _post(client: httpx.AsyncClient, url: str, data: bytes, content_type: str, captured_ms: int,
                until: float) -> httpx.Response:
    """POST one frame; while the edge refuses connections (restarting), try again every RETRY_S until the
    frame's slot ends (`until`, perf_counter seconds), as a camera would, then raise httpx.ConnectError.
    Nothing reached the edge, so a retry cannot duplicate the frame."""
    while True:
        try:
            return await client.post(url, content=data, headers={"content-type": content_type},
                                     params={"captured_at": _iso(captured_ms)})
        except httpx.ConnectError:
            if time.perf_counter() + RETRY_S > until:
                raise
            await asyncio.sleep(RETRY_S)


async def _camera(client: httpx.AsyncClient, edge: str, camera: str, frames: list[tuple[bytes, str]],
                  count: int, fps: float, offset: float, summary: Summary, latencies: list[float]) -> None:
    start = time.perf_counter() + offset
    for n in range(count):
        due = start + n / fps
        now = time.perf_counter()
        if now > due + 1 / fps:  # this frame's slot has passed: a camera drops it, it does not queue
            summary.skipped += 1
            continue
        await asyncio.sleep(max(0.0, due - now))
        data, content_type = frames[n % len(frames)]
        sent = time.perf_counter()
        captured_ms = int(time.time() * 1000)  # the camera's clock stamps the frame as it is sent
        summary.frames_sent += 1
        try:
            reply = await _post(client, f"{edge}/v1/cameras/{camera}/frames", data, content_type, captured_ms,
                                until=due + 1 / fps)
        except httpx.ConnectError:
            summary.unreachable += 1
            continue
        except httpx.HTTPError as exc:  # cut mid-request, timed out: the frame's fate is unknown
            summary.errors += 1
            summary.error_samples = (summary.error_samples + [f"{camera}: {exc!r}"])[:5]
            continue
        if reply.status_code == 201:
            body = reply.json()
            summary.accepted += 1
            summary.faces_detected += int(body.get("faces_detected", len(body["faces"])))
            summary.faces_uplinked += len(body["faces"])
            summary.uplinked += [(f["face_id"], captured_ms) for f in body["faces"]]
            latencies.append((time.perf_counter() - sent) * 1000)
        elif reply.status_code == 429:
            summary.refused_429 += 1
        else:
            summary.errors += 1
            summary.error_samples = (summary.error_samples + [f"{camera}: {reply.status_code} {reply.text[:200]}"])[:5]


async def replay(frames: list[tuple[bytes, str]], edge: str, cameras: int = 4, fps: float = 2.0,
                 frames_per_camera: int = 100, timeout_s: float = 60.0, progress: bool = True,
                 token: str | None = None) -> Summary:
    if cameras < 1 or fps <= 0 or frames_per_camera < 1 or not frames:
        raise ReplayError("need >= 1 camera, fps > 0, >= 1 frame per camera and some frames")
    summary, latencies = Summary(cameras, fps), []
    t0 = time.perf_counter()

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            elapsed = time.perf_counter() - t0
            print(f"\r{elapsed:5.0f}s  sent {summary.frames_sent}  accepted {summary.accepted}  "
                  f"429 {summary.refused_429}  unreachable {summary.unreachable}  skipped {summary.skipped}  "
                  f"uplinked {summary.faces_uplinked}",
                  end="", file=sys.stderr, flush=True)

    limits = httpx.Limits(max_connections=cameras * 2)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits, headers=headers) as client:
        reporter = asyncio.create_task(report()) if progress else None
        await asyncio.gather(*(
            _camera(client, edge.rstrip("/"), f"replay-{k + 1}", frames, frames_per_camera, fps, k / (fps * cameras),
                    summary, latencies)
            for k in range(cameras)))
        if reporter:
            reporter.cancel()
            print(file=sys.stderr)
    summary.seconds = round(time.perf_counter() - t0, 2)
    if latencies:
        summary.latency_ms_p50 = round(float(np.percentile(latencies, 50)), 1)
        summary.latency_ms_p95 = round(float(np.percentile(latencies, 95)), 1)
    summary.faces_per_s = round(summary.faces_detected / summary.seconds, 2) if summary.seconds else 0.0
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a folder of images, or a video file (PyAV)")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=100, help="frames per camera (the source loops)")
    parser.add_argument("--edge", default="http://127.0.0.1:8001")
    parser.add_argument("--token", default=DevstackSettings().camera_token,
                        help="camera token valid for every replay-N camera (a fleet token, `tokens add '*'`); "
                             "default $FACECODEC_CAMERA_TOKEN")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        frames = load_frames(args.source, max(args.frames, 1))
        summary = asyncio.run(replay(frames, args.edge, args.cameras, args.fps, args.frames, progress=True,
                                     token=args.token))
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: v for k, v in asdict(summary).items() if k != "uplinked"}, indent=2))
    else:
        print("  ".join(f"{k} {v}" for k, v in asdict(summary).items() if k not in ("error_samples", "uplinked")))
        for sample in summary.error_samples:
            print(f"  error: {sample}")
    return 0 if summary.errors == 0 and summary.accepted else 1


if __name__ == "__main__":
    sys.exit(main())

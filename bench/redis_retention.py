"""Redis memory under a steady load, with and without retention.

    python bench/redis_retention.py [--seconds 120] [--rate 100] [--max-age 20]

A real redis-server; the analyzer's Store ingests faces with real base layers (the default profile's
base layer of random unit descriptors) at `--rate` faces/s, a consumer decides each one as a worker
does (unknown: no gallery needed, the bytes stored are the same), and `Retention` runs every 5 s with
`--max-age` seconds. The same load runs again without retention. `used_memory` and key counts are
sampled every 5 s -> bench/results/redis_retention.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import redis
from facecoding.v1 import ingest_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from cloud_analyzer.ingest_service import validate
from cloud_analyzer.retention import Retention
from cloud_analyzer.store import Outcome, Store
from devstack.stack import RedisServer
from facecodec.codec.profiles import codec_by_name
from service_common.redis_keys import EVENTS_STREAM, FACE_INDEXES, GROUP, INGEST_STREAMS

ROOT = Path(__file__).resolve().parent.parent


def records(n: int, seed: int = 0) -> list[ingest_pb2.FaceRecord]:
    codec, rng = codec_by_name("scalable"), np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = rng.standard_normal(512).astype(np.float32)
        coded = codec.encode_base(d / np.linalg.norm(d))
        out.append(ingest_pb2.FaceRecord(
            camera_id=f"cam-{len(out) % 8}", bbox=ingest_pb2.BoundingBox(x1=10, y1=20, x2=110, y2=140),
            detection_score=0.9, model_id=coded.model_id, rate_id=coded.rate_id, codec_version="bench",
            base_layer=coded.base_only().to_bytes(), edge_id="edge-1", enhancement_levels=4,
            quality=ingest_pb2.FaceQuality(face_width_px=100, sharpness=200, yaw=0.1)))
    return out


def run(client: redis.Redis, pool: list[ingest_pb2.FaceRecord], seconds: float, rate: float,
        max_age_s: float | None) -> list[dict]:
    client.flushdb()
    store = Store(client)
    store.ensure_group()
    retention = Retention(client, max_age_s) if max_age_s else None
    samples, start, sent, next_sample, next_retention = [], time.time(), 0, 0.0, 5.0
    while (elapsed := time.time() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            record = ingest_pb2.FaceRecord()
            record.CopyFrom(pool[sent % len(pool)])
            record.face_id = uuid.uuid4().hex
            captured = Timestamp()
            captured.FromMilliseconds(int(time.time() * 1000))
            record.captured_at.CopyFrom(captured)
            store.ingest(record.face_id, validate(record))
            sent += 1
        while rows := [e for s in INGEST_STREAMS
                       for _, entries in client.xreadgroup(GROUP, "bench", {s: ">"}, count=500) for e in entries]:
            for stream_id, fields in rows:
                store.record_result(stream_id, store.face(fields[b"face_id"].decode()),
                                    Outcome("unknown", similarity=0.2, threshold=0.5, fpir=0.01, gallery_size=0))
        if retention and elapsed >= next_retention:
            retention.run_once()
            next_retention += 5.0
        if elapsed >= next_sample:
            info = client.info("memory")
            samples.append({"t_s": round(elapsed, 1), "faces_ingested": sent, "used_memory_mb":
                            round(info["used_memory"] / 2**20, 2),
                            "faces_kept": sum(client.zcard(k) for k in FACE_INDEXES),
                            "ingest_stream": sum(client.xlen(s) for s in INGEST_STREAMS),
                            "events": client.xlen(EVENTS_STREAM), "keys": client.dbsize()})
            print(samples[-1], flush=True)
            next_sample += 5.0
        time.sleep(0.02)
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=100.0, help="faces per second")
    parser.add_argument("--max-age", type=float, default=20.0, help="retention in seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "redis_retention.json")
    args = parser.parse_args(argv)
    pool = records(500)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            kept = run(client, pool, args.seconds, args.rate, args.max_age)
            unbounded = run(client, pool, args.seconds, args.rate, None)
        finally:
            server.stop()
    half = len(kept) // 2
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
        "rate_faces_per_s": args.rate, "seconds": args.seconds, "max_age_s": args.max_age,
        "with_retention": kept, "without_retention": unbounded,
        "summary": {
            "with_retention_mb_second_half_min_max": [min(s["used_memory_mb"] for s in kept[half:]),
                                                      max(s["used_memory_mb"] for s in kept[half:])],
            "without_retention_mb_end": unbounded[-1]["used_memory_mb"],
            # What one more kept face costs Redis, all its keys, indexes and stream entries included.
            "bytes_per_face": round((unbounded[-1]["used_memory_mb"] - unbounded[1]["used_memory_mb"]) * 2**20
                                    / max(1, unbounded[-1]["faces_kept"] - unbounded[1]["faces_kept"])),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()

"""Pushed events under load, through the real stack (Redis + the three services as processes, plus
mosquitto): sightings fed over gRPC Ingest as an edge would, an SSE client and an MQTT subscriber
connected, the analyzer killed (SIGKILL) and started again in the middle.

    python bench/events.py [--rate 200] [--seconds 30] [--workers 2] [--out bench/results/events.json]
    python bench/events.py --direct [--rate 200] [--out bench/results/events_direct.json]

`--direct` measures the delivery channels alone at the asked rate, whatever recognition reaches on this
machine: decisions are written to the events stream as the workers write them (the same fields, one XADD
each, paced), while the analyzer (which runs SSE, webhooks and MQTT) is killed and started again.

Feed: `--rate` records per second (base layers of random unit descriptors, 8 cameras, unknown faces:
recognition against an empty gallery plus unknown-face clustering, the path every stranger takes),
sent in one-second batches, each an Ingest stream; a batch the restart broke is sent again whole (as an
edge's outbox does: duplicates are acknowledged and dropped by the analyzer).

Receivers: an SSE client on `/v1/events/stream` that reconnects with `Last-Event-ID` when its stream
ends, and an MQTT subscriber with a persistent session on `facecodec/cameras/#`.

`recognition_cost_one_thread`: what bounds the decision rate, one worker thread's time per unknown face
measured in process (fusion window on and off; clustering in both).

Counts, per channel: faces fed, faces delivered, lost (fed, decided, never delivered), duplicates
(deliveries beyond the first), and latency from decision (`decided_at_ms`, the analyzer's clock) to
delivery (the receiver's clock; one host): p50/p99 over every delivery and over the deliveries before
the restart (steady state). Also the decision rate the analyzer reached (decisions per second between
the first and the last decision) and the time the restart took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import httpx
import numpy as np
import paho.mqtt.client as mqtt
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_record, write_report  # noqa: E402

from cloud_analyzer.events.schema import decision_fields  # noqa: E402
from devstack.stack import Stack  # noqa: E402
from facecodec.codec.profiles import codec_by_name  # noqa: E402
from service_common.redis_keys import EVENTS_MAXLEN, EVENTS_STREAM  # noqa: E402

CAMERAS = [f"cam-{i}" for i in range(8)]
DISTINCT = 400  # base layers made once and reused under new face ids (making one costs ~ms)


def base_layers(n: int) -> list[ingest_pb2.FaceRecord]:
    codec, rng = codec_by_name("baseline"), np.random.default_rng(7)
    out = []
    for _ in range(n):
        d = rng.standard_normal(512).astype(np.float32)
        coded = codec.encode_base(d / np.linalg.norm(d))
        out.append(ingest_pb2.FaceRecord(
            bbox=ingest_pb2.BoundingBox(x1=10, y1=20, x2=110, y2=140), detection_score=0.9, model_id=coded.model_id,
            rate_id=coded.rate_id, codec_version="bench", base_layer=coded.base_only().to_bytes(), edge_id="edge-1",
            enhancement_levels=0))
    return out


def make_record(template: ingest_pb2.FaceRecord, camera: str, edge_address: str) -> ingest_pb2.FaceRecord:
    r = ingest_pb2.FaceRecord()
    r.CopyFrom(template)
    r.face_id, r.camera_id, r.edge_address = uuid.uuid4().hex, camera, edge_address
    stamp = Timestamp()
    stamp.FromMilliseconds(int(time.time() * 1000))
    r.captured_at.CopyFrom(stamp)
    return r


class Deliveries:
    """face_id -> receive times (ms), and each face's decision time, for one channel."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.decided: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, event: dict) -> None:
        now = time.time() * 1000
        with self.lock:
            self.times.setdefault(event["face_id"], []).append(now)
            if event.get("decided_at_ms"):
                self.decided[event["face_id"]] = int(event["decided_at_ms"])

    def report(self, fed: set[str], restart_at_ms: float) -> dict:
        with self.lock:
            got = set(self.times)
            latencies = [self.times[f][0] - self.decided[f] for f in got if f in self.decided]
            steady = [self.times[f][0] - self.decided[f] for f in got
                      if f in self.decided and self.decided[f] < restart_at_ms]
            dups = sum(len(v) - 1 for v in self.times.values())

        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 1) if values else None

        return {"delivered": len(got & fed), "lost": len(fed - got), "duplicates": dups,
                "latency_ms": {"p50": pct(latencies, 50), "p99": pct(latencies, 99), "max": pct(latencies, 100)},
                "latency_before_restart_ms": {"p50": pct(steady, 50), "p99": pct(steady, 99)}}


def sse_client(url: str, key: str, into: Deliveries, stop: threading.Event, stats: dict) -> None:
    last_id = None
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {key}", **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            with httpx.Client(timeout=httpx.Timeout(10, read=30)) as client, \
                    client.stream("GET", f"{url}/v1/events/stream", headers=headers) as response:
                if response.status_code != 200:
                    time.sleep(0.5)
                    continue
                stats["connections"] += 1
                data, event_id = None, None
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("data:"):
                        data = line[5:].strip()
                    elif line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif not line and data:
                        into.add(json.loads(data))
                        last_id, data = event_id, None
        except httpx.HTTPError:
            time.sleep(0.5)  # the analyzer is down: try again, resuming after the last id


def mqtt_subscriber(port: int, into: Deliveries) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-events", clean_session=False)
    client.on_connect = lambda c, *_: c.subscribe("facecodec/cameras/#", qos=1)
    client.on_message = lambda c, u, m: into.add(json.loads(m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def feed(stack: Stack, records: list[ingest_pb2.FaceRecord], rate: int, fed: set[str], stop: threading.Event) -> None:
    """One-second batches at `rate`; a batch whose stream broke is sent again once the analyzer answers."""
    start = time.monotonic()
    for i in range(0, len(records), rate):
        batch = records[i:i + rate]
        due = start + i / rate
        while not stop.is_set():
            try:
                with stack.grpc_channel("cloud_analyzer") as channel:
                    stub = ingest_pb2_grpc.IngestStub(channel)

                    def paced(batch=batch, due=due):
                        for j, r in enumerate(batch):
                            wait = due + j / rate - time.monotonic()
                            if wait > 0:
                                time.sleep(wait)
                            yield r

                    acks = list(stub.Ingest(paced(), timeout=60))
                fed.update(a.face_id for a in acks if a.status in (a.ACCEPTED, a.DUPLICATE))
                break
            except grpc.RpcError:
                time.sleep(0.5)
                due = time.monotonic()


def feed_direct(client, n: int, rate: int, fed: set[str], stop: threading.Event) -> None:
    """`n` decisions at `rate` per second straight into the events stream, as `Store.record_result` writes
    them (Redis stays up while the analyzer restarts, as the workers' writes would once it is back)."""
    start = time.monotonic()
    for i in range(n):
        if stop.is_set():
            return
        wait = start + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = int(time.time() * 1000)
        face = {"face_id": uuid.uuid4().hex, "camera_id": CAMERAS[i % len(CAMERAS)], "captured_at_ms": now - 40}
        event = decision_fields(face, "unknown", None, None, f"unknown-{i % 50:012d}", "0.210000", "0.341000",
                                "0.01", now)
        client.xadd(EVENTS_STREAM, event, maxlen=EVENTS_MAXLEN, approximate=True)
        fed.add(face["face_id"])


def recognition_cost(n: int = 200) -> dict:
    """What bounds the decision rate: one worker thread's time per unknown face, in process on its own
    Redis, with the default fusion window (3 s: the camera's recent faces are decoded and compared) and
    without it; clustering runs in both."""
    import redis

    from cloud_analyzer.clusters import Clusters
    from cloud_analyzer.decision import OpenSetPolicy
    from cloud_analyzer.gallery import Gallery
    from cloud_analyzer.store import Store
    from cloud_analyzer.worker import RecognitionWorker
    from devstack.stack import RedisServer
    from service_common.redis_keys import GROUP, INGEST_STREAMS

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            store = Store(redis.Redis.from_url(server.url))
            store.ensure_group()
            now = int(time.time() * 1000)
            for i, template in enumerate(base_layers(2 * n)):
                store.ingest(uuid.uuid4().hex, {"base_layer": template.base_layer, "camera_id": CAMERAS[i % 8],
                                                "captured_at_ms": now + 5 * i, "edge_id": "edge-1", "model_id": 0,
                                                "rate_id": 0, "enhancement_levels": 0, "track_id": ""})
            for fusion_s in (3.0, 0.0):
                worker = RecognitionWorker(store, Gallery(store), "cost", OpenSetPolicy(0.01, None), fusion_s, 30,
                                           Clusters(store.r))
                rows = [e for s in INGEST_STREAMS
                        for _, entries in store.r.xreadgroup(GROUP, "cost", {s: ">"}, count=n) for e in entries]
                t = time.perf_counter()
                for stream_id, fields in rows:
                    worker.process(stream_id, fields[b"face_id"].decode())
                ms = 1000 * (time.perf_counter() - t) / len(rows)
                out[f"fusion_{fusion_s:g}s"] = {"ms_per_face": round(ms, 2), "faces_per_s": round(1000 / ms, 1)}
        finally:
            server.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=200, help="sightings fed per second")
    parser.add_argument("--seconds", type=int, default=30, help="how long to feed")
    parser.add_argument("--workers", type=int, default=2, help="the analyzer's recognition workers")
    parser.add_argument("--direct", action="store_true", help="decisions written to the events stream at --rate "
                                                                 "(the channels alone, not recognition)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out or Path("bench/results/events_direct.json" if args.direct else "bench/results/events.json")

    cost = None if args.direct else recognition_cost()
    print(f"one worker thread per unknown face: {cost}", flush=True)
    templates = base_layers(DISTINCT)
    with tempfile.TemporaryDirectory() as tmp, Stack(
            Path(tmp), insecure_grpc=True, mqtt=True,
            settings={"cloud_analyzer": {"ANALYZER_WORKERS": args.workers}}) as stack:
        edge_address = json.loads(stack.services["cloud_analyzer"].env["ANALYZER_EDGES"])["edge-1"]
        records = [make_record(templates[i % DISTINCT], CAMERAS[i % len(CAMERAS)], edge_address)
                   for i in range(args.rate * args.seconds)]
        sse, mq = Deliveries(), Deliveries()
        stop, fed, sse_stats = threading.Event(), set(), {"connections": 0}
        sse_thread = threading.Thread(target=sse_client, args=(stack.url("cloud_analyzer"), stack.admin_key, sse,
                                                               stop, sse_stats), daemon=True)
        sse_thread.start()
        subscriber = mqtt_subscriber(stack.broker.port, mq)  # type: ignore[union-attr]
        time.sleep(2)  # both connected before the first sighting
        if args.direct:
            feeder = threading.Thread(target=feed_direct, args=(stack.redis.client(), len(records), args.rate, fed,
                                                                stop), daemon=True)
        else:
            feeder = threading.Thread(target=feed, args=(stack, records, args.rate, fed, stop), daemon=True)
        t0 = time.time()
        feeder.start()
        time.sleep(args.seconds / 2)
        restart_at_ms = time.time() * 1000
        stack.restart("cloud_analyzer", kill=True)
        restart_s = time.time() - restart_at_ms / 1000
        print(f"analyzer killed and back in {restart_s:.1f} s", flush=True)
        feeder.join()
        fed_s = time.time() - t0
        # Wait for every fed face to be delivered on both channels (or for progress to stop).
        last, still = -1, time.time()
        while True:
            got = min(len(set(sse.times) & fed), len(set(mq.times) & fed))
            if got == len(fed):
                break
            if got != last:
                last, still = got, time.time()
            elif time.time() - still > 60:
                break
            time.sleep(0.5)
        stop.set()
        subscriber.loop_stop()
        decided = sorted(sse.decided.values()) or [0]
        before = [d for d in decided if d < restart_at_ms] or [0]
        span_s = max((decided[-1] - decided[0]) / 1000, 1e-3)
        before_s = max((before[-1] - before[0]) / 1000, 1e-3)
        report = {
            "benchmark": "events", "machine": machine_record(),
            "fed_rate_per_s": args.rate, "seconds": args.seconds, "workers": args.workers,
            "feed": "decisions written to the events stream (channels alone)" if args.direct
                    else "base layers over gRPC Ingest (recognition, then the channels)",
            "recognition_cost_one_thread": cost,
            "faces_fed": len(fed), "fed_in_s": round(fed_s, 1),
            "decision_rate_per_s": round(len(decided) / span_s, 1),
            "decision_rate_before_restart_per_s": round(len(before) / before_s, 1),
            "restart": {"kind": "SIGKILL, then started again", "took_s": round(restart_s, 1),
                        "sse_connections": sse_stats["connections"]},
            "sse": sse.report(fed, restart_at_ms), "mqtt": mq.report(fed, restart_at_ms),
        }
    write_report(report, args.out)
    return 0 if report["sse"]["lost"] == 0 and report["mqtt"]["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

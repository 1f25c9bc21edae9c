"""How many decisions per second one analyzer replica makes, and what each costs, on this machine.

Each scenario starts a fresh Redis and real analyzer processes (`python -m cloud_analyzer`), sends base
layers over gRPC Ingest as one edge (one stream), and waits until every face is decided:

- decisions/s: faces / (first record sent -> last decision);
- CPU per face: the analyzer processes' user + system time (/proc/<pid>/stat, every thread: Ingest, the
  workers, onnxruntime) and Redis's (`INFO cpu`) over that span, divided by the faces;
- then a second, paced batch at 80% of that rate: p50/p99 ingest-to-decision (`decided_at_ms -
  ingested_at_ms` of each face record).

Faces are synthetic people: random unit 512-d descriptors (every face another person) coded by the
analyzer's codec (`scalable` base layer), so the work per face is the real decode, decision, fusion and
clustering. Enrolled people: 200 random identities stored as templates; each probe is its identity's
descriptor plus noise (cosine ~0.65 to its template after coding). Spread: 100 cameras, capture times over the last 10
minutes; busy camera: one camera, captured as sent (every face has the camera's last 3 s as fusion
neighbours). The machine's load (`os.getloadavg`, what `uptime` shows) is recorded beside each figure:
on a shared machine the figures are lower bounds.

    python -m bench.analyzer_throughput            ~3,000 faces per scenario
    python -m bench.analyzer_throughput --quick    ~600 per scenario, 1-2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import numpy as np
import redis
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.report import machine_record, write_report
from cloud_analyzer.store import Store
from devstack.stack import RedisServer, Service, Stack, free_port, service_env
from facecodec.codec.profiles import codec_by_name
from service_common.access import KeyStore, new_token
from service_common.redis_keys import GROUP, INGEST_STREAMS, face_key

OUT = Path(__file__).parent / "results" / "analyzer_throughput.json"
EDGE = "edge-bench"
TARGETS = {"unknown_spread": 300, "unknown_busy_camera": 300, "enrolled_spread": 500}  # decisions/s, 1 replica


@dataclass(frozen=True)
class Scenario:
    name: str
    enrolled: int = 0  # identities in the gallery; faces are theirs when > 0
    cameras: int = 100
    spread_s: float = 600.0  # capture times over this much of the past; 0: captured as sent
    workers: int = 1
    replicas: int = 1


SCENARIOS = [
    Scenario("unknown_spread"),
    Scenario("enrolled_spread", enrolled=200),
    Scenario("unknown_busy_camera", cameras=1, spread_s=0),
    Scenario("unknown_spread_workers2", workers=2),
    Scenario("unknown_spread_replicas2", replicas=2),
]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Faces:
    """Base layers of synthetic people, coded once per process and reused by every scenario."""

    def __init__(self, n: int, identities: int, seed: int = 0) -> None:
        from cloud_analyzer.recognition import decode_base_layer

        rng = np.random.default_rng(seed)
        self.codec = codec_by_name("scalable")
        people = unit(rng.standard_normal((identities, 512)))
        # Templates: what the codec makes of each person (a random vector is far from the real descriptors
        # the base layer was trained on: it comes back at cosine ~0.4 to itself, but consistently).
        self.identities = unit(np.stack([decode_base_layer(self._code(v))[0] for v in people]))
        strangers = unit(rng.standard_normal((n, 512)))
        owners = rng.integers(0, identities, n)
        probes = unit(people[owners] + 0.5 * unit(rng.standard_normal((n, 512))))  # ~0.65 to the template, coded
        self.unknown = [self._code(v) for v in strangers]
        self.enrolled = [self._code(v) for v in probes]

    def _code(self, v: np.ndarray) -> bytes:
        coded = self.codec.encode_base(v)
        self.model_id, self.rate_id = coded.model_id, coded.rate_id
        return coded.base_only().to_bytes()


def record(base_layer: bytes, camera: str, captured_ms: int, model_id: int, rate_id: int) -> ingest_pb2.FaceRecord:
    captured = Timestamp()
    captured.FromMilliseconds(captured_ms)
    return ingest_pb2.FaceRecord(
        face_id=uuid.uuid4().hex, camera_id=camera, captured_at=captured,
        bbox=ingest_pb2.BoundingBox(x1=10, y1=20, x2=110, y2=140), detection_score=0.9, model_id=model_id,
        rate_id=rate_id, codec_version="bench", base_layer=base_layer, edge_id=EDGE, edge_address="127.0.0.1:1",
        enhancement_levels=0)


def records(s: Scenario, blobs: list[bytes], faces: Faces, ids: list[str], rate: float | None = None
            ) -> Iterator[ingest_pb2.FaceRecord]:
    """The scenario's records, made as they are sent (a busy camera's capture time is the send time);
    `rate`: paced at this many per second."""
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for i, blob in enumerate(blobs):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        captured = int(time.time() * 1000) if not s.spread_s else now - int(s.spread_s * 1000 * (1 - i / len(blobs)))
        r = record(blob, f"cam-{i % s.cameras}", captured, faces.model_id, faces.rate_id)
        ids.append(r.face_id)
        yield r


def cpu_s(pid: int) -> float:
    """User + system seconds of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def wait_decided(client: redis.Redis, ids: list[str], timeout_s: float) -> float:
    """Until the consumer group has read and acked every entry; returns the time it was seen so."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        groups = [next(g for g in client.xinfo_groups(s) if g["name"].decode() == GROUP) for s in INGEST_STREAMS]
        if all(g["pending"] == 0 and g.get("lag", 1) == 0 for g in groups) \
                and sum(g["entries-read"] or 0 for g in groups) >= len(ids):
            return time.perf_counter()
        time.sleep(0.02)
    raise TimeoutError(f"faces not decided after {timeout_s}s")


def latencies(client: redis.Redis, ids: list[str]) -> dict:
    pipe = client.pipeline(transaction=False)
    for face_id in ids:
        pipe.hmget(face_key(face_id), "ingested_at_ms", "decided_at_ms", "status")
    rows = pipe.execute()
    ms = np.array([int(d) - int(i) for i, d, _ in rows if i and d])
    statuses: dict[str, int] = {}
    for *_, status in rows:
        statuses[(status or b"missing").decode()] = statuses.get((status or b"missing").decode(), 0) + 1
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "statuses": statuses}


def run(s: Scenario, faces: Faces, n: int, paced: int, tmp: Path) -> dict:
    server = RedisServer(tmp / s.name)
    server.start()
    client = redis.Redis.from_url(server.url)
    KeyStore(client).register(new_token(), "bench", ["admin"])
    if s.enrolled:
        store = Store(client)
        model = faces.codec.spec.descriptor_model
        for k, template in enumerate(faces.identities[: s.enrolled]):
            store.add_identity(f"person-{k:04d}", f"person {k}", template[None], model)
    stack = Stack(tmp / f"{s.name}-stack")
    stack.redis = server
    grpc_port = 0
    for r in range(s.replicas):
        env = service_env(ANALYZER_REDIS_URL=server.url, ANALYZER_HTTP_PORT=free_port(),
                          ANALYZER_GRPC_PORT=free_port(), ANALYZER_CONSUMER_NAME=f"bench-{r}",
                          ANALYZER_EDGES=json.dumps({EDGE: "127.0.0.1:1"}), ANALYZER_GRPC_INSECURE="true",
                          ANALYZER_WORKERS=s.workers, ANALYZER_METRICS_ENABLED="false")
        service = Service("cloud_analyzer", env, int(env["ANALYZER_HTTP_PORT"]), tmp / f"{s.name}-{r}.log")
        Stack.launch(service)
        stack.services[f"a{r}"] = service
        grpc_port = grpc_port or int(env["ANALYZER_GRPC_PORT"])
    try:
        stack.wait_healthy(300)
        pids = [svc.proc.pid for svc in stack.services.values()]
        blobs = faces.enrolled if s.enrolled else faces.unknown
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = ingest_pb2_grpc.IngestStub(channel)
            load = os.getloadavg()
            cpu0, rcpu0, t0 = sum(cpu_s(p) for p in pids), redis_cpu_s(client), time.perf_counter()
            ids: list[str] = []
            acks = list(stub.Ingest(records(s, blobs[:n], faces, ids), timeout=600))
            done = wait_decided(client, ids, 600)
            cpu, rcpu = sum(cpu_s(p) for p in pids) - cpu0, redis_cpu_s(client) - rcpu0
            rate = n / (done - t0)
            refused = sum(a.status != ingest_pb2.IngestAck.ACCEPTED for a in acks)
            burst = latencies(client, ids)
            paced_ids: list[str] = []  # at 80% of the rate just measured: the latency a steady load sees
            list(stub.Ingest(records(s, blobs[n : n + paced], faces, paced_ids, 0.8 * rate), timeout=600))
            wait_decided(client, ids + paced_ids, 600)
            steady = latencies(client, paced_ids)
        return {"scenario": asdict(s), "faces": n, "refused": refused, "decisions_per_s": round(rate, 1),
                "analyzer_cpu_ms_per_face": round(cpu / n * 1e3, 2), "redis_cpu_ms_per_face": round(rcpu / n * 1e3, 2),
                "burst_statuses": burst["statuses"],
                "paced": {"faces": paced, "rate_per_s": round(0.8 * rate, 1), "p50_ms": steady["p50_ms"],
                          "p99_ms": steady["p99_ms"]},
                "load_1_5_15_before": [round(x, 2) for x in load],
                "load_1_5_15_after": [round(x, 2) for x in os.getloadavg()]}
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="600 faces per scenario (+300 paced)")
    parser.add_argument("--faces", type=int, help="faces per scenario (default 3000, quick 600)")
    parser.add_argument("--only", nargs="*", help="scenario names to run (the others' rows are kept)")
    args = parser.parse_args()
    n = args.faces or (600 if args.quick else 3000)
    paced = n // 2
    faces = Faces(n + paced, 200)
    # --only re-runs some scenarios: the others' rows are kept from the last report.
    kept = json.loads(OUT.read_text())["results"] if args.only and OUT.exists() else []
    results = [r for r in kept if r["scenario"]["name"] not in (args.only or [])]
    with tempfile.TemporaryDirectory() as tmp:
        for s in SCENARIOS:
            if args.only and s.name not in args.only:
                continue
            row = run(s, faces, n, paced, Path(tmp))
            print(json.dumps(row))
            results.append(row)
    results.sort(key=lambda r: [s.name for s in SCENARIOS].index(r["scenario"]["name"]))
    write_report({"benchmark": "analyzer_throughput", "machine": machine_record(), "faces_per_scenario": n,
                  "targets_decisions_per_s_one_replica": TARGETS, "results": results}, OUT)


if __name__ == "__main__":
    main()

"""The attacks of bench/security_probe.py, one small function each: it attacks the running stack,
measures what it answers, and returns an Entry (refused or bounded when the stack held). Each attack
has a control beside it (the legitimate request, which must work) so that a refusal is told apart from
a stack that is simply down."""

# ruff: noqa: E402  (bench/ holds scripts: their imports follow the path set-up)
from __future__ import annotations

import base64
import os
import queue
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

BENCH = Path(__file__).resolve().parent
# probe_context, also when imported as bench.security_checks
sys.path[:0] = [str(BENCH)]

import grpc
import numpy as np
import redis
from facecoding.v1 import (
    enhancement_pb2,
    enhancement_pb2_grpc,
    frames_pb2,
    frames_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from probe_context import Entry, Probe, RssSampler, rpc_code, verdict, vm_kb, within

from cloud_analyzer.settings import AnalyzerSettings
from edge_encoder.settings import EdgeSettings
from facecodec.codec.profiles import codec_by_name
from service_common import certs
from service_common.redis_keys import AUDIT_STREAM, api_key_key
from service_common.tls import TlsFiles

ANALYZER, EDGE, RECONSTRUCTOR = "cloud_analyzer", "edge_encoder", "cloud_reconstructor"
MB = 1024 * 1024


# --- gRPC calls, each returning the status it ended with ---------------------------------------------------

def coded_face(seed: int = 0):  # type: ignore[no-untyped-def]
    """A real base layer (of a random unit descriptor), coded as an edge codes it."""
    d = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return codec_by_name("baseline").encode_base(d / np.linalg.norm(d))


def base_layer(seed: int = 0) -> bytes:
    """A base-only container, as an edge uplinks it and as a search probe takes it."""
    return coded_face(seed).base_only().to_bytes()


def record(edge_id: str) -> ingest_pb2.FaceRecord:
    coded = coded_face()
    captured = Timestamp()
    captured.FromMilliseconds(int(time.time() * 1000))
    return ingest_pb2.FaceRecord(
        face_id=uuid.uuid4().hex, camera_id="probe", captured_at=captured,
        bbox=ingest_pb2.BoundingBox(x1=10, y1=20, x2=110, y2=140), detection_score=0.9, model_id=coded.model_id,
        rate_id=coded.rate_id, codec_version="probe", base_layer=coded.base_only().to_bytes(), edge_id=edge_id,
        enhancement_levels=4)


def ingest(channel: grpc.Channel, edge_id: str = "edge-1") -> str:
    return rpc_code(lambda: list(ingest_pb2_grpc.IngestStub(channel).Ingest(iter([record(edge_id)]), timeout=10)))


def fetch(channel: grpc.Channel) -> str:
    stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
    return rpc_code(lambda: stub.Fetch(enhancement_pb2.FetchRequest(face_id=uuid.uuid4().hex), timeout=10))


def erase(channel: grpc.Channel) -> str:
    stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
    return rpc_code(lambda: stub.Erase(enhancement_pb2.EraseRequest(face_ids=[uuid.uuid4().hex],
                                                                    erasure_id="probe"), timeout=10))


def submit_frames(channel: grpc.Channel, token: str | None) -> str:
    stub = frames_pb2_grpc.FrameIngestStub(channel)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    frame = frames_pb2.Frame(camera_id="probe", image=b"\xff\xd8not-a-jpeg")
    return rpc_code(lambda: list(stub.SubmitFrames(iter([frame]), metadata=metadata, timeout=10)))


def reflection(channel: grpc.Channel) -> str:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    return rpc_code(lambda: list(stub.ServerReflectionInfo(iter([request]), timeout=10)))


def grpc_controls(probe: Probe) -> dict[str, str]:
    """The stack's own links, which must work: the cloud's Fetch (NOT_FOUND: no such face) and Erase,
    the edge's Ingest of its own record."""
    with probe.channel(EDGE, "cloud") as c:
        controls = {"cloud Fetch": fetch(c), "cloud Erase": erase(c)}
    with probe.channel(ANALYZER, "edge-1") as c:
        controls["edge-1 Ingest as edge-1"] = ingest(c)
    return controls


def grpc_entry(probe: Probe, attack: str, codes: dict[str, str], expected: str | dict[str, str]) -> Entry:
    """Refused when every call ended with `expected` (one code, or one per call) while the stack's own
    links worked."""
    controls = grpc_controls(probe)
    wanted = expected if isinstance(expected, dict) else dict.fromkeys(codes, expected)
    held = controls == {"cloud Fetch": "NOT_FOUND", "cloud Erase": "OK", "edge-1 Ingest as edge-1": "OK"}
    return Entry("gRPC without TLS", attack, verdict(codes == wanted, held), {"codes": codes, "controls": controls})


# --- gRPC without TLS --------------------------------------------------------------------------------------

def grpc_plaintext(probe: Probe) -> Entry:
    with probe.channel(EDGE, None) as edge, probe.channel(ANALYZER, None) as analyzer:
        codes = {"edge Fetch": fetch(edge), "edge Erase": erase(edge),
                 "edge SubmitFrames (valid camera token)": submit_frames(edge, probe.stack.camera_token),
                 "analyzer Ingest": ingest(analyzer)}
    return grpc_entry(probe, "a plaintext channel to the edge's Fetch, Erase, SubmitFrames and the analyzer's "
                      "Ingest", codes, "UNAVAILABLE")


def foreign_ca(probe: Probe) -> dict[str, TlsFiles]:
    """Certificates with the right names and roles, from a CA of the attacker's own."""
    out, ca_dir = probe.work_dir / "foreign", probe.work_dir / "foreign-ca"
    if not (out / "cloud.crt").exists():
        certs.init(out, edges=["edge-1"], clouds=["cloud"], cameras=["dev"], ca_dir=ca_dir)
    ca = probe.stack.data_dir / "tls" / "ca.crt"  # the attacker trusts the server: only its own side is forged
    return {stem: TlsFiles(out / f"{stem}.crt", out / f"{stem}.key", ca) for stem in ("cloud", "edge-1", "camera-dev")}


def grpc_foreign_certificate(probe: Probe) -> Entry:
    forged = foreign_ca(probe)
    with probe.channel(EDGE, None, forged["cloud"]) as edge, \
            probe.channel(EDGE, None, forged["camera-dev"]) as camera, \
            probe.channel(ANALYZER, None, forged["edge-1"]) as analyzer:
        codes = {"edge Fetch as cloud": fetch(edge), "edge Erase as cloud": erase(edge),
                 "edge SubmitFrames as camera": submit_frames(camera, probe.stack.camera_token),
                 "analyzer Ingest as edge-1": ingest(analyzer)}
    return grpc_entry(probe, "certificates named cloud, edge-1 and camera-dev from another CA", codes, "UNAVAILABLE")


def grpc_wrong_role(probe: Probe) -> Entry:
    codes = {}
    for identity in ("cloud", "camera-dev"):
        with probe.channel(ANALYZER, identity) as c:
            codes[f"Ingest as {identity}"] = ingest(c)
    for identity in ("edge-1", "camera-dev"):
        with probe.channel(EDGE, identity) as c:
            codes[f"Fetch as {identity}"], codes[f"Erase as {identity}"] = fetch(c), erase(c)
    with probe.channel(EDGE, "cloud") as c:
        codes["SubmitFrames as cloud"] = submit_frames(c, probe.stack.camera_token)
    return grpc_entry(probe, "the stack's own certificates in the wrong role: cloud and camera calling Ingest, "
                      "the edge (its own Fetch) and a camera calling Fetch/Erase, the cloud calling SubmitFrames",
                      codes, "PERMISSION_DENIED")


def grpc_edge_impersonation(probe: Probe) -> Entry:
    issued = probe.work_dir / "edge-2"  # a valid certificate from the stack's CA, for an edge it does not trust
    issued.mkdir(exist_ok=True)
    shutil.copy(probe.stack.data_dir / "tls" / "ca.crt", issued / "ca.crt")
    certs.init(issued, edges=["edge-2"], clouds=[], ca_dir=probe.stack.secrets_dir)
    with probe.channel(ANALYZER, "edge-1") as c:
        codes = {"edge-1 certificate, record of edge-2": ingest(c, "edge-2")}
    edge2 = TlsFiles(issued / "edge-2.crt", issued / "edge-2.key", issued / "ca.crt")
    with probe.channel(ANALYZER, None, edge2) as c:
        codes["edge-2 certificate (not in ANALYZER_EDGES), record of edge-2"] = ingest(c, "edge-2")
    return grpc_entry(probe, "an edge uploading records in another edge's name", codes, "PERMISSION_DENIED")


def grpc_reflection(probe: Probe) -> Entry:
    codes = {}
    for service, identity in ((EDGE, "cloud"), (ANALYZER, "edge-1")):
        with probe.channel(service, identity) as c:
            codes[f"{service} (valid {identity} certificate)"] = reflection(c)
        with probe.channel(service, None) as c:
            codes[f"{service} (plaintext)"] = reflection(c)
    expected = {name: "UNAVAILABLE" if "plaintext" in name else "UNIMPLEMENTED" for name in codes}
    return grpc_entry(probe, "gRPC reflection: list the services", codes, expected)


# --- Audit flood -------------------------------------------------------------------------------------------

def audit_since(r: redis.Redis, after_id: str) -> list[tuple[str, dict[str, str]]]:
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()})
            for i, f in r.xrange(AUDIT_STREAM, min=f"({after_id}", max="+")]


def key_lookups(r: redis.Redis, key_id: str, requests: Callable[[], None]) -> int:
    """How many times Redis was asked for the record of key `key_id` while `requests` ran (MONITOR)."""
    seen: list[str] = []
    marker = f"probe-done-{uuid.uuid4().hex}"
    ready = threading.Event()

    def watch() -> None:
        with r.monitor() as m:
            ready.set()
            for command in m.listen():
                if marker in command["command"]:
                    return
                seen.append(command["command"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(5)  # set once MONITOR has answered OK: from then on it sees every command
    requests()
    r.echo(marker)
    watcher.join(10)
    return sum(1 for c in seen if c.upper().startswith("HGETALL") and api_key_key(key_id) in c)


def audit_flood(probe: Probe) -> Entry:
    """Unauthenticated requests with a 12 KB id full of newlines: the audit stream grows by one summary
    per client and window, and a client over its denial budget is refused before any key lookup."""
    r, settings, requests = probe.stack.redis.client(), AnalyzerSettings, 300
    budget = settings.model_fields["denial_budget_per_min"].default
    window_ms = int(settings.model_fields["denial_window_s"].default * 1000)
    last = r.xrevrange(AUDIT_STREAM, count=1)
    before_id, before_len = (last[0][0].decode() if last else "0-0"), r.xlen(AUDIT_STREAM)
    hostile = quote("x\n" * 6000, safe="")
    source = probe.new_address()
    url = f"{probe.url(ANALYZER)}/v1/faces/{hostile}"
    started_ms = time.time() * 1000
    with probe.http(source) as attacker:
        codes = [attacker.get(url).status_code for _ in range(requests)]
    flood_s = time.time() - started_ms / 1000
    admin_key_id = probe.stack.admin_key.split("_")[1]
    over_budget: list[int] = []

    def with_admin_key() -> None:
        with probe.http(source, probe.stack.admin_key) as c:
            over_budget.extend(c.get(f"{probe.url(ANALYZER)}/v1/faces/{uuid.uuid4().hex}").status_code
                               for _ in range(10))
    lookups = key_lookups(r, admin_key_id, with_admin_key)
    control: list[int] = []

    def control_request() -> None:  # the same key from an address with budget left: it is looked up
        with probe.http(token=probe.stack.admin_key) as c:
            control.append(c.get(f"{probe.url(ANALYZER)}/v1/faces/{uuid.uuid4().hex}").status_code)
    control_lookups = key_lookups(r, admin_key_id, control_request)
    ended_ms = time.time() * 1000
    windows = int(ended_ms // window_ms - started_ms // window_ms) + 1
    # The summaries are written once their window has ended: the services flush every 5 s.
    flushed_by = (ended_ms // window_ms + 1) * window_ms / 1000 + 8
    while len(mine := [f for _, f in audit_since(r, before_id) if f.get("client") == source]) < windows \
            and time.time() < flushed_by:
        time.sleep(1)
    entry_bytes = sum(len(k) + len(v) for f in mine for k, v in f.items())
    summaries = [f.get("detail", "") for f in mine]
    counted = {s: sum(int(n) for d in summaries for n in re.findall(rf"(\d+)x {s}", d)) for s in (401, 429)}
    bounded = (codes[:budget] == [401] * budget and set(codes[budget:]) == {429} and set(over_budget) == {429}
               and lookups == 0 and 1 <= len(mine) <= windows and all(f.get("action") == "access.denied" for f in mine)
               and not any("\n" in v for f in mine for v in f.values()) and sum(counted.values()) == requests + 10)
    return Entry(
        "Audit flood", f"{requests} unauthenticated GET /v1/faces/<12 KB id of newlines> from one address, then 10 "
        "with the admin key from it", within(bounded, control == [404] and control_lookups >= 1),
        {"requests": requests + 10, "flood_seconds": round(flood_s, 2),
         "status_counts": {str(s): codes.count(s) for s in sorted(set(codes))},
         "first_429_at_request": codes.index(429) + 1 if 429 in codes else None,
         "admin_key_over_budget_statuses": sorted(set(over_budget)), "key_lookups_over_budget": lookups,
         "key_lookups_control": control_lookups, "windows_touched": windows,
         "audit_entries_from_flood": len(mine), "audit_bytes_from_flood": entry_bytes,
         "audit_stream_growth_with_the_control_face_read": r.xlen(AUDIT_STREAM) - before_len, "summaries": summaries,
         "summarised_counts": counted},
        bound=f"at most one access.denied entry per client and {window_ms // 1000} s window ({windows} touched); "
              f"429 before any key lookup after {budget} denials")


# --- Body before key ---------------------------------------------------------------------------------------

def post_body(url: str, source: str, total: int, token: str | None = None) -> tuple[bytes, int, float]:
    """POST `total` bytes of nested JSON lists as fast as the socket takes them, reading whatever the
    server answers meanwhile: (the answer's first bytes, body bytes sent when it came, seconds to it)."""
    host = urlsplit(url)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    chunk = b"[" * (64 * 1024)
    sent = 0
    with socket.create_connection((host.hostname, host.port), timeout=30, source_address=(source, 0)) as s:
        started = time.monotonic()
        s.sendall(f"POST {host.path} HTTP/1.1\r\nHost: probe\r\n{auth}Content-Type: application/json\r\n"
                  f"Content-Length: {total}\r\n\r\n".encode())
        while True:
            readable, writable, _ = select.select([s], [s] if sent < total else [], [], 30)
            if readable:
                return s.recv(4096), sent, time.monotonic() - started
            if not writable:
                return b"", sent, time.monotonic() - started
            try:
                sent += s.send(chunk[:total - sent])
            except (BrokenPipeError, ConnectionResetError):
                s.settimeout(10)
                return s.recv(4096), sent, time.monotonic() - started


def body_before_key(probe: Probe) -> Entry:
    total, bound_kb = 16 * MB, 8 * 1024
    url = f"{probe.url(ANALYZER)}/v1/keys"
    pid = probe.pid(ANALYZER)
    hwm_before = vm_kb(pid, "VmHWM")
    with RssSampler(pid) as rss:
        answer, sent, seconds = post_body(url, probe.new_address(), total)
    status = answer[:12].decode(errors="replace")
    # Control: with the admin key the same body meets the JSON route's limit (413) while it streams.
    keyed, keyed_sent, _ = post_body(url, probe.new_address(), total, probe.stack.admin_key)
    growth_kb = rss.peak_kb - rss.before_kb
    bounded = status == "HTTP/1.1 401" and sent < total and growth_kb <= bound_kb
    return Entry("Body before key", "POST /v1/keys without a key, 16 MB of nested JSON lists",
                 within(bounded, keyed.startswith(b"HTTP/1.1 413") and keyed_sent < total),
                 {"answer": status, "seconds_to_answer": round(seconds, 4), "body_bytes": total,
                  "body_bytes_sent_before_answer": sent, "rss_before_kb": rss.before_kb,
                  "rss_peak_growth_kb": growth_kb, "vm_hwm_growth_kb": vm_kb(pid, "VmHWM") - hwm_before,
                  "control_with_admin_key": {"answer": keyed[:12].decode(errors="replace"),
                                             "body_bytes_sent_before_answer": keyed_sent}},
                 bound=f"401 before the body is sent; analyzer RSS growth <= {bound_kb // 1024} MB")


# --- Scopes ------------------------------------------------------------------------------------------------

def scope_search_history(probe: Probe) -> Entry:
    url = f"{probe.url(ANALYZER)}/v1/search/history"
    form = {"base_layer": base64.b64encode(base_layer(seed=7)).decode()}
    with probe.http(token=probe.new_key(["sightings:read"])) as reader:
        status = reader.post(url, data=form).status_code
    with probe.http(token=probe.new_key(["faces:search"])) as searcher:
        control = searcher.post(url, data=form).status_code
    return Entry("Scopes", "a sightings:read key calling POST /v1/search/history with a base_layer probe",
                 verdict(status == 403, control == 200), {"status": status, "control_faces_search_key": control})


def scope_full_layers(probe: Probe) -> Entry:
    face = f"{probe.url(RECONSTRUCTOR)}/v1/faces/{uuid.uuid4().hex}/image"
    with probe.http(token=probe.new_key(["faces:view_base"])) as viewer:
        status = viewer.get(face, params={"layers": "full"}).status_code
        base = viewer.get(face, params={"layers": "base"}).status_code
    with probe.http(token=probe.new_key(["faces:view"])) as full_viewer:
        control = full_viewer.get(face, params={"layers": "full"}).status_code
    # Controls: past the gate the face is unknown (404) for the base preview and for a faces:view key.
    return Entry("Scopes", "a faces:view_base key asking the reconstructor for layers=full",
                 verdict(status == 403, base == 404 and control == 404),
                 {"status": status, "control_layers_base": base, "control_faces_view_key": control})


# --- Edge REST ---------------------------------------------------------------------------------------------

def edge_rest(probe: Probe) -> Entry:
    edge = probe.url(EDGE)
    with probe.http() as anyone:
        health = anyone.get(f"{edge}/healthz").json()
        tokens = {"none": {}, "camera token": {"Authorization": f"Bearer {probe.stack.camera_token}"},
                  "wrong token": {"Authorization": f"Bearer {'x' * 43}"}, "admin token": probe.stack.edge_admin}
        codes = {who: {path: anyone.get(f"{edge}{path}", headers=headers).status_code
                       for path in ("/v1/status", "/metrics", "/docs", "/openapi.json")}
                 for who, headers in tokens.items()}
    refused = set(health) == {"status"} and all(set(c.values()) == {401} for who, c in codes.items()
                                                 if who != "admin token")
    return Entry("Edge REST", "the edge's open /healthz; /v1/status, /metrics, /docs, /openapi.json without "
                 "the edge admin token (none, a camera token, a wrong token)",
                 verdict(refused, set(codes["admin token"].values()) == {200}),
                 {"healthz": health, "codes": codes})


# --- Idle frame streams ------------------------------------------------------------------------------------

class IdleStream:
    """A camera's SubmitFrames stream that sends nothing and waits."""

    def __init__(self, stub: frames_pb2_grpc.FrameIngestStub, token: str) -> None:
        self._frames: queue.Queue[frames_pb2.Frame | None] = queue.Queue()
        self.call = stub.SubmitFrames(self._send(), metadata=[("authorization", f"Bearer {token}")], timeout=120)
        self.ended = threading.Event()
        self.code: str | None = None
        threading.Thread(target=self._wait, daemon=True).start()

    def _send(self) -> Iterator[frames_pb2.Frame]:
        while (frame := self._frames.get()) is not None:
            yield frame

    def _wait(self) -> None:
        try:
            for _ in self.call:
                pass
            self.code = "OK"
        except grpc.RpcError as exc:
            self.code = exc.code().name
        self.ended.set()

    def close(self) -> None:
        self._frames.put(None)
        self.call.cancel()


def idle_frame_streams(probe: Probe) -> Entry:
    cap, extra, bound_s = EdgeSettings.model_fields["max_frame_streams"].default, 8, 2.0
    with probe.channel(EDGE, "camera-dev") as channel:
        stub = frames_pb2_grpc.FrameIngestStub(channel)
        streams = [IdleStream(stub, probe.stack.camera_token) for _ in range(cap + extra)]
        try:
            deadline = time.time() + 10
            while sum(s.ended.is_set() for s in streams) < extra and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # any further refusal would have come by now
            ended = [s.code for s in streams if s.ended.is_set()]
            timings = {}
            with probe.channel(EDGE, "cloud") as cloud:
                for name, call in (("Fetch", fetch), ("Erase", erase)):
                    started = time.monotonic()
                    timings[name] = {"code": call(cloud), "seconds": round(time.monotonic() - started, 4)}
            still_open = sum(not s.ended.is_set() for s in streams)
        finally:
            for s in streams:
                s.close()
    served = timings["Fetch"]["code"] == "NOT_FOUND" and timings["Erase"]["code"] == "OK"
    bounded = (served and all(t["seconds"] <= bound_s for t in timings.values()) and still_open == cap
               and ended == ["RESOURCE_EXHAUSTED"] * extra)
    return Entry("Idle frame streams", f"{cap + extra} idle SubmitFrames streams (camera certificate, valid "
                 "token), then Fetch and Erase", within(bounded),
                 {"streams_opened": cap + extra, "streams_held": still_open, "refused": ended,
                  "cloud_calls_meanwhile": timings},
                 bound=f"streams beyond {cap} refused RESOURCE_EXHAUSTED; Fetch and Erase answered within {bound_s} s")


# --- Redis -------------------------------------------------------------------------------------------------

def redis_says(port: int, commands: bytes) -> str:
    """What Redis answers a client that sends `commands` (RESP inline) before any AUTH."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(commands)
        time.sleep(0.1)
        return s.recv(4096).decode(errors="replace").strip()


def redis_without_password(probe: Probe) -> Entry:
    port = probe.stack.redis.port
    outcomes = {"no password: GET, CONFIG GET requirepass, KEYS *": redis_says(
        port, b"GET fc:audit\r\nCONFIG GET requirepass\r\nKEYS *\r\n")}
    try:
        redis.Redis.from_url(probe.stack.redis.url, password="x" * 64).get(AUDIT_STREAM)
        outcomes["wrong password"] = "answered"
    except redis.AuthenticationError as exc:
        outcomes["wrong password"] = f"{type(exc).__name__}: {exc}"
    no_password = outcomes["no password: GET, CONFIG GET requirepass, KEYS *"].splitlines()
    protected = probe.stack.redis.client().config_get("protected-mode")
    refused = (len(no_password) == 3 and all(line.startswith("-NOAUTH") for line in no_password)
               and outcomes["wrong password"].startswith("AuthenticationError")
               and protected == {"protected-mode": "yes"})
    return Entry("Redis", "commands to Redis without its password, and with a wrong one; CONFIG GET protected-mode",
                 verdict(refused), {"outcomes": outcomes, "protected_mode": protected.get("protected-mode")})


def read_as_nobody(path: Path) -> str:
    """Another local user (nobody) reading `path`: `read` or how it failed."""
    done = subprocess.run(["head", "-c", "1", str(path)], user=65534, group=65534, extra_groups=[],
                          capture_output=True, text=True, timeout=10)
    return "read" if done.returncode == 0 else done.stderr.strip().rsplit(": ", 1)[-1]


def secret_files(probe: Probe) -> Entry:
    files = sorted([*probe.stack.secrets_dir.iterdir(), *(probe.stack.data_dir / "tls").glob("*.key"),
                    probe.stack.env_file])
    modes = {str(p.relative_to(probe.stack.data_dir)): oct(p.stat().st_mode & 0o777) for p in files}
    folders = {str(d.relative_to(probe.stack.data_dir)): oct(d.stat().st_mode & 0o777)
               for d in sorted({p.parent for p in files})}
    if os.geteuid() != 0:
        return Entry("Redis", "the secret files' modes (not root: nobody's read not tried)",
                     verdict(set(modes.values()) == {"0o600"}), {"modes": modes, "folders": folders})
    # Another local user (nobody) tries; the control, a world-readable file beside the stack, it reads.
    public = probe.stack.data_dir / "public"
    public.write_text("readable\n")
    public.chmod(0o644)
    reads = {str(p.relative_to(probe.stack.data_dir)): read_as_nobody(p) for p in files}
    refused = set(modes.values()) == {"0o600"} and "read" not in reads.values()
    return Entry("Redis", "another local user (nobody) reading the secret files (Redis password, keys, tokens, "
                 "certificate keys, stack.env); their modes", verdict(refused, read_as_nobody(public) == "read"),
                 {"modes": modes, "folders": folders, "read_as_nobody": reads})


# --- Smaller findings --------------------------------------------------------------------------------------

def open_health(probe: Probe) -> Entry:
    with probe.http() as anyone:
        bodies = {s: anyone.get(f"{probe.url(s)}/healthz").json() for s in (ANALYZER, RECONSTRUCTOR)}
    with probe.http(token=probe.stack.admin_key) as admin:
        detail = admin.get(f"{probe.url(ANALYZER)}/v1/health").json()
    return Entry("Smaller", "the analyzer's and reconstructor's open /healthz: gallery size or other detail",
                 verdict(all(b == {"status": "ok"} for b in bodies.values()), "identities" in detail),
                 {"healthz": bodies, "control_admin_health_fields": sorted(detail)})


def rate_burst(probe: Probe) -> Entry:
    """`rate` requests just before a second's edge, `rate` more just after, all within 0.8 s: a per-second
    counter would admit both halves. The denials stay under the address's budget, so it cannot mask one."""
    rate, pace_s = 20, 0.015
    url = f"{probe.url(ANALYZER)}/v1/cameras"
    sent: list[tuple[float, float, int]] = []  # (sent at, answered at, status)
    with probe.http(token=probe.new_key(["sightings:read"], rate_per_s=rate)) as client:
        client.get(url)  # the connection up; this request is more than a second old when the burst starts
        edge = int(time.time() + 1.6) + 1
        for start in (edge - 0.4, edge + 0.02):
            for i in range(rate):
                time.sleep(max(0.0, start + i * pace_s - time.time()))
                at = time.time()
                status = client.get(url).status_code
                sent.append((at, time.time(), status))
    admitted = sum(1 for *_, s in sent if s == 200)
    span = sent[-1][1] - sent[0][0]
    before = sum(1 for _, answered, _ in sent if answered < edge)
    after = sum(1 for at, _, _ in sent if at > edge)
    return Entry("Smaller", f"a key limited to {rate}/s sends {rate} requests just before a second's edge and "
                 f"{rate} just after", within(admitted <= rate, span < 1.0 and before == after == rate),
                 {"sent": len(sent), "answered_before_the_edge": before, "sent_after_the_edge": after,
                  "burst_span_s": round(span, 3), "admitted": admitted,
                  "statuses": {str(s): [c for *_, c in sent].count(s) for s in sorted({c for *_, c in sent})}},
                 bound=f"at most {rate} admitted within the burst (under 1 s)")


# The probe runs these in order. The audit flood comes first among the REST checks so that nothing else
# this probe does has denials in its audit window; each attacker has its own loopback address anyway.
CHECKS: list[Callable[[Probe], Entry]] = [
    grpc_plaintext, grpc_foreign_certificate, grpc_wrong_role, grpc_edge_impersonation, grpc_reflection,
    audit_flood, body_before_key, scope_search_history, scope_full_layers, edge_rest, idle_frame_streams,
    redis_without_password, secret_files, open_health, rate_burst,
]

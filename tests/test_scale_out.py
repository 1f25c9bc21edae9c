"""Two analyzer replicas as real processes on one Redis: they share the ingest work through the
consumer group, a SIGKILLed replica's faces are taken over by the other, and an enrolment through one
is what a search through the other sees."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import grpc
import httpx
import pytest
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc

from devstack.stack import RedisServer, Service, Stack, service_env
from service_common.access import KeyStore, new_token
from service_common.redis_client import connect
from service_common.redis_keys import face_key
from tests.helpers import free_port, lfw_image, shards, wait_until
from tests.helpers.records import valid_record

pytestmark = pytest.mark.e2e


def replica(name: str, redis_url: str, logs: Path) -> Service:
    env = service_env(ANALYZER_REDIS_URL=redis_url, ANALYZER_HTTP_PORT=free_port(),
                           ANALYZER_GRPC_PORT=free_port(), ANALYZER_CONSUMER_NAME=name,
                           ANALYZER_EDGES=json.dumps({"edge-t": "127.0.0.1:1"}), ANALYZER_CLAIM_IDLE_S=2,
                           ANALYZER_GRPC_INSECURE="true")
    service = Service("cloud_analyzer", env, int(env["ANALYZER_HTTP_PORT"]), logs / f"{name}.log")
    Stack.launch(service)
    return service


def test_two_replicas_share_work_survive_a_kill_and_see_one_gallery(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    client = connect(server.url)
    token = new_token()
    KeyStore(client).register(token, "tests", ["admin"])
    api = httpx.Client(headers={"authorization": f"Bearer {token}"}, timeout=60)
    a, b = replica("replica-a", server.url, tmp_path), replica("replica-b", server.url, tmp_path)
    stack = Stack(tmp_path)
    stack.services = {"a": a, "b": b}
    try:
        stack.wait_healthy(180)
        # Enrolment through A, search through B at once: one gallery, in Redis.
        files = [("images", (f"{i}.jpg", lfw_image("Tony_Blair", i).read_bytes(), "image/jpeg")) for i in (1, 2)]
        enrolled = api.post(f"{a.url}/v1/identities", data={"name": "Tony_Blair"}, files=files)
        assert enrolled.status_code == 201, enrolled.text
        probe = {"image": ("p.jpg", lfw_image("Tony_Blair", 3).read_bytes(), "image/jpeg")}
        found = api.post(f"{b.url}/v1/search", files=probe).json()
        assert found["candidates"][0]["identity_id"] == enrolled.json()["identity_id"]
        assert found["candidates"][0]["match"]

        # 400 faces through A's Ingest; B's workers take their share from the same stream.
        records = [valid_record(seed=i) for i in range(400)]
        with grpc.insecure_channel(f"127.0.0.1:{a.env['ANALYZER_GRPC_PORT']}") as channel:
            acks = list(ingest_pb2_grpc.IngestStub(channel).Ingest(iter(records), timeout=60))
        assert {ack.status for ack in acks} == {ingest_pb2.IngestAck.ACCEPTED}
        # Freeze B while it holds undecided faces, then kill it: A must take them over.
        deadline = time.time() + 60
        held = 0
        while time.time() < deadline:
            b.proc.send_signal(signal.SIGSTOP)
            held = sum(c["pending"] for c in shards.consumers(client)
                       if c["name"].decode().startswith("replica-b"))
            if held:
                break
            b.proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        assert held, "replica B never held a face"
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        wait_until(lambda: shards.sightings_count(client) >= len(records), 60, 0.5, "every face decided")
        assert shards.sightings_count(client) == len(records)  # every face decided, none twice
        assert shards.pending(client) == 0
        statuses = {client.hget(face_key(r.face_id), "status") for r in records}
        assert statuses <= {b"unknown", b"recognised"}
        consumers = {c["name"].decode(): c for c in shards.consumers(client)}
        assert any(n.startswith("replica-b") for n in consumers)  # B did take a share before dying
    finally:
        for service in (a, b):
            if service.proc and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGCONT)
                service.proc.terminate()
                service.proc.wait(20)
        server.stop()

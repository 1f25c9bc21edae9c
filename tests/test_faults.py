"""Faults during a camera replay, with real processes: the analyzer SIGKILLed and restarted, then the
edge, while the edge's enhancement store holds far fewer faces than the replay codes.

Afterwards every face the edge acknowledged is in Redis once and decided; nothing is left pending at
the edge or in the cloud; the only failed posts are the ones in flight while the edge was down; the
faces the store evicted answer NOT_FOUND on Fetch and the ones it kept are served.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import pytest
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc

from devstack.replay import load_frames, replay
from devstack.stack import Stack
from service_common.redis_keys import FACE_RECORDS_PATTERN, face_key
from tests.helpers import shards, wait_until

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
STORE_BOUND = 6  # faces the edge's enhancement store keeps (EDGE_ENHANCEMENT_MAX_FACES)


def test_a_replay_survives_the_analyzer_and_the_edge_being_killed(tmp_path: Path) -> None:
    frames = load_frames(SAMPLES, 100)
    with Stack(tmp_path, settings={"edge_encoder": {"EDGE_ENHANCEMENT_MAX_FACES": STORE_BOUND}}) as stack:
        edge, analyzer = stack.url("edge_encoder"), stack.url("cloud_analyzer")

        async def play_with_crashes():  # type: ignore[no-untyped-def]
            task = asyncio.create_task(replay(frames, edge, cameras=2, fps=4, frames_per_camera=32, progress=False,
                                              token=stack.camera_token))
            await asyncio.sleep(2.0)
            await asyncio.to_thread(stack.restart, "cloud_analyzer")  # SIGKILL mid-stream
            await asyncio.sleep(1.0)
            await asyncio.to_thread(stack.restart, "edge_encoder")
            return await task

        summary = asyncio.run(play_with_crashes())
        api = stack.client()
        assert summary.accepted >= 10 and summary.refused_429 == 0
        # The only failures are connections refused or cut while the edge was down, never an error reply.
        assert all("Error(" in e for e in summary.error_samples), summary.error_samples
        again = httpx.post(f"{edge}/v1/cameras/replay-1/frames", content=frames[0][0], timeout=60,
                           headers={"content-type": frames[0][1], "authorization": f"Bearer {stack.camera_token}"})
        assert again.status_code == 201
        def settled() -> dict:
            health = httpx.get(f"{edge}/v1/status", headers=stack.edge_admin).json()
            pending = shards.pending(stack.redis.client())
            statuses = [api.get(f"{analyzer}/v1/faces/{fid}").json().get("status") for fid, _ in summary.uplinked]
            done = health["outbox_pending"] == 0 and pending == 0 and not {"pending", None} & set(statuses)
            return health if done else {}

        health = wait_until(settled, 90, 0.5, "every uplinked face delivered and decided")
        client = stack.redis.client()
        ids = [fid for fid, _ in summary.uplinked]
        assert len(ids) == len(set(ids)) >= 5
        stored = {key.decode().split(":")[-1] for key in client.scan_iter(FACE_RECORDS_PATTERN)}
        assert set(ids) <= stored, set(ids) - stored  # every acknowledged face reached the cloud
        assert all(client.hget(face_key(fid), "status") in (b"recognised", b"unknown", b"low_quality")
                   for fid in stored), "a face was left undecided"
        assert shards.sightings_count(client) == len(stored)  # each face decided once, none twice
        assert health["outbox_pending"] == 0
        # The store was filled past its bound: the oldest faces were evicted, the newest are served.
        assert len(ids) > STORE_BOUND and health["enhancement_store"]["faces"] == STORE_BOUND
        with stack.grpc_channel("edge_encoder", "cloud") as channel:
            stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
            codes = {}
            for fid in ids:
                try:
                    stub.Fetch(enhancement_pb2.FetchRequest(face_id=fid, max_level=1), timeout=60)
                    codes[fid] = "ok"
                except grpc.RpcError as exc:
                    codes[fid] = exc.code().name
        served = list(codes.values()).count("ok")
        assert set(codes.values()) == {"ok", "NOT_FOUND"}, codes
        assert 1 <= served <= STORE_BOUND  # the frame posted after the replay may hold one of the places
        assert list(codes.values()).count("NOT_FOUND") == len(ids) - served

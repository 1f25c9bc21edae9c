"""Camera frame streams cannot starve the edge's gRPC server: the token is checked when a stream opens,
streams are capped below the thread pool, and idle ones are ended; meanwhile the cloud's Fetch and
Erase get through. Against the edge's real gRPC server (fetch_service.make_server) on loopback."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc, frames_pb2, frames_pb2_grpc

from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.fetch_service import make_server
from edge_encoder.frame_service import FrameIngestService
from edge_encoder.frame_streams import FrameStreams
from edge_encoder.metrics import EdgeMetrics
from facecodec.codec.profiles import codec_by_name
from service_common.access.camera_tokens import CameraTokens, add_camera

OLD_POOL = 20  # the thread pool every stream, Fetch and Erase once shared
MAX_STREAMS = 6


class Camera:
    """A camera's open SubmitFrames stream that sends frames only when told (idle otherwise)."""

    def __init__(self, stub: frames_pb2_grpc.FrameIngestStub, token: str | None) -> None:
        self.frames: queue.Queue[frames_pb2.Frame | None] = queue.Queue()
        metadata = [("authorization", f"Bearer {token}")] if token else []
        self.acks = stub.SubmitFrames(self._send(), metadata=metadata, timeout=60)
        self._ended = threading.Event()
        self._code: grpc.StatusCode | None = None
        threading.Thread(target=self._wait, daemon=True).start()

    def _send(self) -> Iterator[frames_pb2.Frame]:
        while (frame := self.frames.get()) is not None:
            yield frame

    def _wait(self) -> None:
        try:
            for _ in self.acks:
                pass
            self._code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            self._code = exc.code()
        self._ended.set()

    def outcome(self, timeout_s: float = 10.0) -> grpc.StatusCode | None:
        """How the stream ended, None if it is still open after `timeout_s`."""
        return self._code if self._ended.wait(timeout_s) else None

    def close(self) -> None:
        self.frames.put(None)
        self.acks.cancel()


@pytest.fixture
def edge(tmp_path: Path):
    """The edge's gRPC server with FrameIngest (camera tokens on) beside a store holding one face;
    yields (address, camera token, face id, the servicer)."""
    descriptor = np.random.default_rng(1).standard_normal(512).astype(np.float32)
    store = EnhancementStore(tmp_path / "enhancement.sqlite3", 100, 1 << 20)
    store.put("face-1", codec_by_name("baseline").encode_base(descriptor / np.linalg.norm(descriptor))
              .base_only().to_bytes(), 0)
    token = add_camera(tmp_path / "camera_tokens", "cam-1")

    def ingest(*_: object) -> None:
        raise AssertionError("no frame is sent in these tests")

    frames = FrameIngestService(ingest, EdgeMetrics(), 1 << 20, CameraTokens(tmp_path / "camera_tokens"),
                                streams=FrameStreams(MAX_STREAMS, idle_timeout_s=30))
    server, port = make_server(store, 0, frames=frames)
    server.start()
    yield f"127.0.0.1:{port}", token, "face-1", frames
    server.stop(0)
    store.close()


def fetch_and_erase(address: str, face_id: str, deadline_s: float) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
        reply = stub.Fetch(enhancement_pb2.FetchRequest(face_id=face_id), timeout=deadline_s)
        assert reply.face_id == face_id
        erased = stub.Erase(enhancement_pb2.EraseRequest(face_ids=[face_id], erasure_id="e-1"), timeout=deadline_s)
        assert erased.erased == 1


def test_idle_frame_streams_do_not_stall_fetch_and_erase(edge) -> None:
    address, token, face_id, frames = edge
    with grpc.insecure_channel(address) as channel:
        stub = frames_pb2_grpc.FrameIngestStub(channel)
        cameras = [Camera(stub, token) for _ in range(OLD_POOL + 4)]
        try:
            time.sleep(1.0)
            outcomes = [c.outcome(timeout_s=0) for c in cameras]
            # The first MAX_STREAMS hold their slot; every other is refused at once, not queued.
            assert outcomes.count(None) == MAX_STREAMS, str(outcomes)
            assert set(outcomes) - {None} == {grpc.StatusCode.RESOURCE_EXHAUSTED}, outcomes
            assert len(frames.streams) == MAX_STREAMS
            started = time.monotonic()
            fetch_and_erase(address, face_id, deadline_s=3.0)  # with every frame slot held by an idle camera
            assert time.monotonic() - started < 3.0
        finally:
            for c in cameras:
                c.close()


def test_a_stream_without_a_valid_token_is_refused_before_any_frame(edge) -> None:
    address, _, _, frames = edge
    with grpc.insecure_channel(address) as channel:
        stub = frames_pb2_grpc.FrameIngestStub(channel)
        for token in (None, "fct_not-a-token"):
            camera = Camera(stub, token)  # sends nothing: the refusal cannot wait for a frame
            try:
                assert camera.outcome(timeout_s=5) == grpc.StatusCode.UNAUTHENTICATED
            finally:
                camera.close()
    assert len(frames.streams) == 0


def test_idle_streams_are_ended_and_free_their_slot(edge) -> None:
    address, token, _, frames = edge
    frames.streams.idle_timeout_s = 1.5  # EDGE_FRAME_STREAM_IDLE_TIMEOUT_S, before the first stream opens
    with grpc.insecure_channel(address) as channel:
        stub = frames_pb2_grpc.FrameIngestStub(channel)
        cameras = [Camera(stub, token) for _ in range(MAX_STREAMS)]
        try:
            time.sleep(0.5)
            assert [c.outcome(timeout_s=0) for c in cameras] == [None] * MAX_STREAMS
            # EDGE_FRAME_STREAM_IDLE_TIMEOUT_S (1.5 s here) later, the server has ended every one.
            assert {c.outcome(timeout_s=6) for c in cameras} == {grpc.StatusCode.CANCELLED}
            deadline = time.time() + 5
            while len(frames.streams) and time.time() < deadline:
                time.sleep(0.05)
            assert len(frames.streams) == 0
            again = Camera(stub, token)  # and a camera may open a new one
            assert again.outcome(timeout_s=0.5) is None
            again.close()
        finally:
            for c in cameras:
                c.close()

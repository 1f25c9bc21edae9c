"""The analyzer's gRPC Ingest against hostile or broken clients, on a real Redis and real gRPC over
loopback: idle streams cannot starve other edges, one bad record is refused alone, re-sent face ids
with other content are refused distinctly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from cloud_analyzer.ingest_service import IngestLimits, make_server, peer_host
from cloud_analyzer.store import Store
from service_common.redis_client import connect
from service_common.redis_keys import face_key
from tests.helpers import free_port, shards, wait_until
from tests.helpers.records import valid_record, variant

Ack = ingest_pb2.IngestAck


@pytest.fixture
def ingest(redis_server, redis_client):
    """A real Ingest server with short limits; yields its port."""
    port = free_port()
    limits = IngestLimits(max_streams=8, max_streams_per_peer=3, idle_timeout_s=3.0)
    # Both loopbacks (127.0.0.1 and ::1): two client hosts on one machine.
    server, port = make_server(Store(connect(redis_server.url)), port, {"edge-t"}, "[::]", limits=limits)
    server.start()
    yield port
    server.stop(0)


def test_peer_host_strips_port_and_brackets() -> None:
    assert peer_host("ipv4:10.0.0.5:41234") == "10.0.0.5"
    assert peer_host("ipv6:[::1]:41234") == "::1"
    assert peer_host("unix:/tmp/s") == "unix:/tmp/s"


@pytest.mark.slow
def test_idle_streams_from_one_peer_do_not_stall_ingest_for_other_edges(ingest) -> None:
    """More idle streams than the old pool of 8 threads, all from 127.0.0.1: beyond its 3 the peer is
    refused at once; another peer ([::1]) is served meanwhile; the idle ones are ended after the idle
    timeout, and then 127.0.0.1 is served again."""
    stop = threading.Event()
    records = [valid_record(), valid_record(seed=1)]  # coded before the clock starts

    def idle() -> Iterator[ingest_pb2.FaceRecord]:
        stop.wait(30)  # an open stream that never sends a record
        return
        yield  # pragma: no cover

    hostile = grpc.insecure_channel(f"127.0.0.1:{ingest}")
    calls = [ingest_pb2_grpc.IngestStub(hostile).Ingest(idle(), timeout=30) for _ in range(12)]
    outcomes: list[grpc.StatusCode] = []
    threads = [threading.Thread(target=lambda c=c: outcomes.append(_final_code(c))) for c in calls]
    for t in threads:
        t.start()
    try:
        # The first 3 are open, so the other 9 are refused at once.
        wait_until(lambda: len(outcomes) >= 9, 30, 0.05, "9 streams refused")
        with grpc.insecure_channel(f"[::1]:{ingest}") as other:  # another edge, another host
            acks = list(ingest_pb2_grpc.IngestStub(other).Ingest(iter(records[:1]), timeout=5))
            assert [a.status for a in acks] == [Ack.ACCEPTED]
        # Served while the 3 idle streams still held their threads (none ended by the idle timeout yet),
        # not once they were gone.
        assert outcomes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 9, outcomes
        for t in threads:
            t.join(10)
        # 9 refused at once (per-peer cap), 3 ended by the idle watchdog: none left holding a thread.
        assert sorted(outcomes, key=str) == sorted([grpc.StatusCode.RESOURCE_EXHAUSTED] * 9
                                                   + [grpc.StatusCode.CANCELLED] * 3, key=str)
        acks = list(ingest_pb2_grpc.IngestStub(hostile).Ingest(iter(records[1:]), timeout=5))
        assert [a.status for a in acks] == [Ack.ACCEPTED]
    finally:
        stop.set()
        hostile.close()


def _final_code(call) -> grpc.StatusCode:
    try:
        for _ in call:
            pass
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_the_server_refuses_rather_than_queues_beyond_its_streams(redis_server, redis_client) -> None:
    """max_streams RPCs at once: the next one is refused at once, not queued behind the idle ones."""
    limits = IngestLimits(max_streams=2, max_streams_per_peer=10, idle_timeout_s=30)
    server, port = make_server(Store(connect(redis_server.url)), free_port(), {"edge-t"},
                               limits=limits)
    server.start()
    stop = threading.Event()

    def idle() -> Iterator[ingest_pb2.FaceRecord]:
        stop.wait(30)
        return
        yield  # pragma: no cover

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        held = [ingest_pb2_grpc.IngestStub(channel).Ingest(idle(), timeout=30) for _ in range(2)]
        def third_call() -> tuple[grpc.StatusCode, float] | None:
            """Refused (code, seconds taken), or None while the held RPCs have not reached the server
            yet (then this one was served)."""
            started = time.monotonic()
            try:
                list(ingest_pb2_grpc.IngestStub(channel).Ingest(iter([valid_record()]), timeout=10))
            except grpc.RpcError as exc:
                return exc.code(), time.monotonic() - started
            return None

        code, seconds = wait_until(third_call, 30, 0.05, "a third RPC refused")
        # Queued behind the held ones it would end DEADLINE_EXCEEDED after its 10 s timeout.
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code
        assert seconds < 5, f"refused only after {seconds:.1f} s: should be at once, not queued"
        for call in held:
            call.cancel()
    finally:
        stop.set()
        channel.close()
        server.stop(0)


def test_one_bad_record_is_rejected_alone_and_the_stream_goes_on(ingest, redis_client) -> None:
    good = valid_record(seed=2)
    now = int(time.time() * 1000)
    year_33658 = Timestamp(seconds=10**12)
    bad = {
        "timestamp far out of range": variant(good, captured_at=year_33658),
        "an hour ahead": variant(good, captured_at=_ts(now + 3_600_000)),
        "two years old": variant(good, captured_at=_ts(now - 2 * 365 * 86_400_000)),
        "before 1970": variant(good, captured_at=Timestamp(seconds=-10**11)),
        "NaN box": variant(good, bbox=ingest_pb2.BoundingBox(x1=float("nan"), y1=0, x2=1, y2=1)),
        "inf box": variant(good, bbox=ingest_pb2.BoundingBox(x1=0, y1=0, x2=float("inf"), y2=1)),
        "huge box": variant(good, bbox=ingest_pb2.BoundingBox(x1=0, y1=0, x2=1e30, y2=1)),
        "NaN score": variant(good, detection_score=float("nan")),
        "score above 1": variant(good, detection_score=7.0),
        "absurd levels": variant(good, enhancement_levels=4_000_000_000),
    }
    with grpc.insecure_channel(f"127.0.0.1:{ingest}") as channel:
        acks = list(ingest_pb2_grpc.IngestStub(channel).Ingest(iter([*bad.values(), good]), timeout=10))
    assert [a.status for a in acks] == [Ack.REJECTED] * len(bad) + [Ack.ACCEPTED], \
        {name: (a.status, a.error) for name, a in zip(bad, acks)}
    assert all(a.error for a in acks[:-1])
    assert "future" in acks[1].error and "past" in acks[2].error
    assert not any(redis_client.exists(face_key(r.face_id)) for r in bad.values())
    assert redis_client.hget(face_key(good.face_id), "camera_id") == b"cam-a"


def test_a_face_id_resent_with_other_content_is_a_conflict(ingest, redis_client) -> None:
    first = valid_record(seed=3)
    same = ingest_pb2.FaceRecord()
    same.CopyFrom(first)
    other_pixels = valid_record(seed=4)
    other_pixels.face_id = first.face_id
    other_camera = ingest_pb2.FaceRecord()
    other_camera.CopyFrom(first)
    other_camera.camera_id = "cam-b"
    other_time = ingest_pb2.FaceRecord()
    other_time.CopyFrom(first)
    other_time.captured_at.FromMilliseconds(first.captured_at.ToMilliseconds() - 1000)
    with grpc.insecure_channel(f"127.0.0.1:{ingest}") as channel:
        acks = list(ingest_pb2_grpc.IngestStub(channel).Ingest(
            iter([first, same, other_pixels, other_camera, other_time]), timeout=10))
    assert [a.status for a in acks] == [Ack.ACCEPTED, Ack.DUPLICATE, Ack.CONFLICT, Ack.CONFLICT, Ack.CONFLICT]
    assert acks[1].error == "" and all("different content" in a.error for a in acks[2:])
    stored = redis_client.hgetall(face_key(first.face_id))
    assert stored[b"base_layer"] == first.base_layer and stored[b"camera_id"] == b"cam-a"
    assert shards.ingest_len(redis_client) == 1  # queued for recognition once


def _ts(ms: int) -> Timestamp:
    t = Timestamp()
    t.FromMilliseconds(ms)
    return t

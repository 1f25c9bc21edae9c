"""An erased face leaves the edge's files: after the real Erase RPC, neither its base layer nor its
crop can be found in the SQLite databases, their write-ahead logs or shared-memory files, while the
faces not erased are still there."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import numpy as np
import pytest
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc, ingest_pb2

from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.fetch_service import make_server
from edge_encoder.local_db import open_db
from edge_encoder.outbox import Outbox
from facecodec.codec.profiles import codec_by_name


def base_layer(seed: int) -> bytes:
    descriptor = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return codec_by_name("baseline").encode_base(descriptor / np.linalg.norm(descriptor)).base_only().to_bytes()


def pieces(blob: bytes, width: int = 24) -> list[bytes]:
    """Windows spread over a blob: a page holding any part of it is found, not only the whole."""
    step = max(1, (len(blob) - width) // 7)
    return [blob[i : i + width] for i in range(0, len(blob) - width + 1, step)]


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if ".sqlite3" in p.name}


@pytest.fixture
def edge(tmp_path: Path):
    """The edge's two stores (as build_node opens them) with four faces queued and kept, and its gRPC
    server; yields (address, data dir, {face_id: (base layer, crop)})."""
    store = EnhancementStore(tmp_path / "enhancement.sqlite3", 100, 1 << 24)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    faces = {f"face-{n}": (base_layer(n), os.urandom(20_000 + 997 * n)) for n in range(4)}
    # As EdgeNode.accept stores a frame's faces: layers and kept crop, then the record for the cloud.
    store.put_many([(face_id, base, 3, crop, None) for face_id, (base, crop) in faces.items()])
    outbox.put_many([(face_id, ingest_pb2.FaceRecord(face_id=face_id, camera_id="cam-1", base_layer=base)
                      .SerializeToString()) for face_id, (base, _) in faces.items()])
    outbox.reject("face-1", "refused by the cloud")  # a dead letter holds a base layer too
    server, port = make_server(store, 0, outbox=outbox)
    server.start()
    yield f"127.0.0.1:{port}", tmp_path, faces
    server.stop(0)
    outbox.close()
    store.close()


def test_erased_faces_leave_no_bytes_in_the_database_files(edge) -> None:
    address, data_dir, faces = edge
    before = b"".join(files_of(data_dir).values())
    for base, crop in faces.values():  # what the search looks for is there to be found at first
        assert all(p in before for p in pieces(base) + pieces(crop))
    erased = ["face-0", "face-1"]
    with grpc.insecure_channel(address) as channel:
        stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
        reply = stub.Erase(enhancement_pb2.EraseRequest(face_ids=erased, erasure_id="erasure-1"), timeout=10)
        assert reply.erased == 2
    after = files_of(data_dir)
    assert {"enhancement.sqlite3", "outbox.sqlite3"} <= set(after)
    for name, content in after.items():
        for face_id in erased:
            base, crop = faces[face_id]
            found = [p for p in pieces(base) + pieces(crop) if p in content]
            assert not found, f"{face_id}: {len(found)} pieces still in {name} ({len(content)} bytes)"
    survivors = b"".join(after.values())
    for face_id in ("face-2", "face-3"):
        base, crop = faces[face_id]
        assert all(p in survivors for p in pieces(base) + pieces(crop))  # the search does find what is there


def test_the_stores_turn_secure_delete_on_themselves(tmp_path: Path) -> None:
    db = open_db(tmp_path / "any.sqlite3")
    assert db.execute("PRAGMA secure_delete").fetchone() == (1,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    # Whatever the platform's default: a build defaulting to off (SQLITE_SECURE_DELETE unset) is the
    # case this guards against; the pragma is per connection, so the stores' own connections are checked.
    for store in (EnhancementStore(tmp_path / "e.sqlite3", 10, 1 << 20), Outbox(tmp_path / "o.sqlite3")):
        assert store._db.execute("PRAGMA secure_delete").fetchone() == (1,)
        store.close()

"""Scene snapshots: kept at the edge for cameras that opt in, served only to viewers with full-pixel
rights through the reconstructor (audited), gone with an erasure and with the edge's retention. Real
Redis, edge, analyzer and reconstructor processes over loopback (mutual TLS), as the demo runs them."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc
from PIL import Image

from devstack.demo import compose_frame
from devstack.stack import Stack
from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.outbox import Outbox
from edge_encoder.retention import EdgeRetention
from edge_encoder.snapshots import MAX_SIDE, scene_snapshot
from service_common.access import AuditLog, KeyStore, new_token
from tests.helpers import lfw_image, wait_until

pytestmark = pytest.mark.e2e
CAMERAS = """
[cameras.lobby]
snapshot = true

[cameras.vault]
snapshot = false
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snapshots")
    (folder / "cameras.toml").write_text(CAMERAS)
    with Stack(folder / "stack", settings={"edge_encoder": {"EDGE_CAMERAS_FILE": str(folder / "cameras.toml")}}) as s:
        yield s


def _post(stack: Stack, camera_id: str, people: list[str]) -> list[str]:
    frame = compose_frame([lfw_image(name, 1) for name in people])
    r = httpx.post(f"{stack.url('edge_encoder')}/v1/cameras/{camera_id}/frames", content=frame, timeout=60,
                   headers={"content-type": "image/jpeg", "authorization": f"Bearer {stack.camera_token}"})
    assert r.status_code == 201, r.text
    return [f["face_id"] for f in r.json()["faces"]]


def _key(stack: Stack, *scopes: str) -> httpx.Client:
    token = new_token()
    KeyStore(stack.redis.client()).register(token, "viewer", list(scopes))
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_opt_in_camera_snapshot_is_served_to_full_viewers_only_and_erased(stack: Stack) -> None:
    analyzer, recon = stack.url("cloud_analyzer"), stack.url("cloud_reconstructor")
    admin = stack.client()
    lobby = _post(stack, "lobby", ["Colin_Powell", "Tony_Blair"])
    vault = _post(stack, "vault", ["Laura_Bush"])
    assert len(lobby) >= 2 and len(vault) >= 1  # LFW photos may show someone in the background too
    for face_id in lobby + vault:  # the analyzer knows every face before the reconstructor is asked
        wait_until(lambda f=face_id: admin.get(f"{analyzer}/v1/faces/{f}").status_code == 200, 60, 0.2,
                   f"face {face_id} ingested")

    viewer, preview = _key(stack, "faces:view"), _key(stack, "faces:view_base", "sightings:read")
    shot = viewer.get(f"{recon}/v1/faces/{lobby[0]}/snapshot")
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg", shot.text
    image = Image.open(io.BytesIO(shot.content))
    assert image.format == "JPEG" and max(image.size) <= MAX_SIDE
    # The scene, not the aligned face: wider than the 112 px crop, and it differs between the two people.
    assert max(image.size) > 112
    other = Image.open(io.BytesIO(viewer.get(f"{recon}/v1/faces/{lobby[1]}/snapshot").content))
    assert image.size != other.size or not np.array_equal(np.asarray(image), np.asarray(other))

    assert viewer.get(f"{recon}/v1/faces/{vault[0]}/snapshot").status_code == 404  # camera did not opt in
    assert preview.get(f"{recon}/v1/faces/{lobby[0]}/snapshot").status_code == 403  # base previews only
    assert viewer.get(f"{recon}/v1/faces/no-such-face/snapshot").status_code == 404
    assert viewer.get(f"{recon}/v1/faces/bad:id/snapshot").status_code == 422

    audit = AuditLog(stack.redis.client())
    views = audit.query(action="face.snapshot", limit=100)[0]
    served = [e for e in views if e.outcome == "ok"]
    assert {e.face_id for e in served} == set(lobby[:2]) and all(e.layers == "snapshot" for e in served)
    assert any(e.face_id == vault[0] and e.status == 404 for e in views)

    # Erased: the cloud forgets the face at once, the edge deletes its row (snapshot included) once told.
    assert admin.delete(f"{analyzer}/v1/faces/{lobby[0]}").status_code == 202
    assert viewer.get(f"{recon}/v1/faces/{lobby[0]}/snapshot").status_code == 404
    with stack.grpc_channel("edge_encoder") as channel:
        stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)

        def edge_code(face_id: str) -> grpc.StatusCode:
            try:
                stub.FetchSnapshot(enhancement_pb2.SnapshotRequest(face_id=face_id), timeout=10)
                return grpc.StatusCode.OK
            except grpc.RpcError as exc:
                return exc.code()

        wait_until(lambda: edge_code(lobby[0]) == grpc.StatusCode.NOT_FOUND, 60, 0.3, "the edge erased the snapshot")
        assert edge_code(lobby[1]) == grpc.StatusCode.OK  # the other face's stays
    with stack.grpc_channel("edge_encoder", identity="edge-1") as channel:  # not a cloud certificate
        with pytest.raises(grpc.RpcError) as refused:
            enhancement_pb2_grpc.EnhancementStoreStub(channel).FetchSnapshot(
                enhancement_pb2.SnapshotRequest(face_id=lobby[1]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_snapshot_is_bounded_and_goes_with_the_face_at_the_edge(tmp_path: Path) -> None:
    """The snapshot is the scene around the box, at most MAX_SIDE px; it counts in the store's byte bound
    and leaves with eviction, erasure and retention."""
    frame = np.asarray(Image.open(io.BytesIO(compose_frame([lfw_image("Colin_Powell", 1)] * 4))).convert("RGB"))
    jpeg = scene_snapshot(frame, (400.0, 130.0, 440.0, 178.0))
    shot = Image.open(io.BytesIO(jpeg))
    assert shot.format == "JPEG" and shot.size == (120, 144)  # 3x the 40x48 box, inside the frame
    clipped = Image.open(io.BytesIO(scene_snapshot(frame, (0.0, 0.0, 40.0, 48.0))))
    assert clipped.size == (80, 96)  # the frame's corner: the part of 3x that is inside it
    wide = Image.open(io.BytesIO(scene_snapshot(frame, (0.0, 0.0, frame.shape[1], frame.shape[0]))))
    assert max(wide.size) == MAX_SIDE  # the whole frame, downscaled
    store = EnhancementStore(tmp_path / "e.sqlite3", max_faces=10, max_bytes=len(jpeg) * 2 + 100)
    for face_id in ("a", "b", "c"):
        store.put(face_id, b"base", 0, snapshot=jpeg)
    assert store.snapshot("a") is None and store.snapshot("c") == jpeg  # over the byte bound: oldest evicted
    assert store.erase(["c"]) == 1 and store.snapshot("c") is None
    EdgeRetention(store, Outbox(tmp_path / "o.sqlite3"), max_age_s=0).run_once(now=float("inf"))
    assert store.snapshot("b") is None and store.stats()["faces"] == 0

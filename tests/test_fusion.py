"""Fusion reads its camera's recent faces from the descriptors cached at their decisions, not by decoding
them again; a face whose cache expired is decoded as before; erasure removes the cache with the face."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from cloud_analyzer.decision import OpenSetPolicy
from cloud_analyzer.erasure import Eraser
from cloud_analyzer.fusion import cache_ttl_ms
from cloud_analyzer.gallery import Gallery
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.store import Store
from cloud_analyzer.worker import RecognitionWorker
from facecodec.codec.profiles import codec_by_name
from facecodec.frontend import decode_image
from service_common.redis_keys import face_key, fusion_descriptor_key
from tests.helpers import lfw_image
from tests.helpers.records import recent_ms
from tests.helpers.shards import read_ingest


@pytest.fixture(scope="module")
def blair(front_end) -> list[bytes]:
    codec = codec_by_name("baseline")
    out = []
    for n in (1, 2, 3, 4, 5):
        face = front_end.largest_face(decode_image(lfw_image("Tony_Blair", n).read_bytes()))
        out.append(codec.encode_base(front_end.describe(face.crop)[0]).to_bytes())
    return out


def _decide(store: Store, worker: RecognitionWorker, base_layer: bytes, camera: str, ts: int) -> dict:
    face_id = uuid.uuid4().hex
    store.ingest(face_id, {"base_layer": base_layer, "camera_id": camera, "captured_at_ms": ts, "edge_id": "e"})
    for stream_id, fields in read_ingest(store.r, "t", 10):
        worker.process(stream_id, fields[b"face_id"].decode())
    return store.face(face_id)


def test_fusion_reads_cached_descriptors_and_falls_back_to_decoding(redis_client, blair) -> None:
    store = Store(redis_client)
    store.ensure_group()
    worker = RecognitionWorker(store, Gallery(store), "t", OpenSetPolicy(0.01), fusion_window_s=3.0)
    t0 = recent_ms(0)
    first = [_decide(store, worker, blair[i], "cam-f", t0 + 500 * i) for i in range(2)]
    assert [int(f["fused_faces"]) for f in first] == [1, 2]
    for face in first:  # cached: exactly the decoded descriptor, expiring after a few windows
        model, _, raw = redis_client.get(fusion_descriptor_key(face["face_id"])).partition(b"\0")
        descriptor, codec = decode_base_layer(face["base_layer"])
        assert model.decode() == codec.spec.descriptor_model
        assert np.array_equal(np.frombuffer(raw, "<f4"), descriptor.astype("<f4"))
        assert 0 < redis_client.pttl(fusion_descriptor_key(face["face_id"])) <= cache_ttl_ms(3000)

    # The neighbours' stored base layers made unreadable: fusion still finds them in the cache.
    for face in first:
        redis_client.hset(face_key(face["face_id"]), "base_layer", b"not a container")
    third = _decide(store, worker, blair[2], "cam-f", t0 + 1000)
    assert int(third["fused_faces"]) == 3

    # The cache gone (expired): fusion decodes base layers again, so only the third face's (readable) joins.
    for face in [*first, third]:
        redis_client.delete(fusion_descriptor_key(face["face_id"]))
    last = _decide(store, worker, blair[3], "cam-f", t0 + 1500)
    assert int(last["fused_faces"]) == 2

    Eraser(redis_client).forget([last["face_id"]])
    assert not redis_client.exists(fusion_descriptor_key(last["face_id"]))

"""What the reconstructor accepts from an edge's Fetch is bounded: a real reconstructor dials a real gRPC
EnhancementStore on loopback that answers with hostile containers; each is refused with 502, undecoded."""

from __future__ import annotations

import io
from concurrent import futures

import grpc
import pytest
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc
from PIL import Image

from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.stack import free_port
from facecodec.bitstream import CodedFace, EnhancementLayer
from facecodec.codec.enhancement_layer import EnhancementLayerError, WebPResidualCodec
from service_common.redis_keys import face_key
from tests.helpers import lfw_image
from tests.helpers.servers import api_client, serve


def _webp(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buffer, format="WEBP", quality=10)
    return buffer.getvalue()


class HostileEdge(enhancement_pb2_grpc.EnhancementStoreServicer):
    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers

    def Fetch(self, request, context):  # noqa: N802
        return enhancement_pb2.FetchResponse(face_id=request.face_id, container=self.answers[request.face_id],
                                             levels=request.max_level)


@pytest.fixture(scope="module")
def coded(front_end):
    from facecodec.codec.profiles import codec_by_name
    from facecodec.frontend import decode_image

    face = front_end.largest_face(decode_image(lfw_image("Colin_Powell", 2).read_bytes()))
    return codec_by_name("learned").encode(face.crop, front_end.describe(face.crop)[0])


def test_hostile_edge_containers_are_refused_before_decoding(redis_server, redis_client, coded) -> None:
    assert len(coded.enhancements) == 4
    layers = coded.enhancements
    giant = EnhancementLayer(1, _webp((4000, 4000)))  # declares 16 MP; tiny on the wire
    answers = {
        "good": coded.to_bytes(),
        "oversized": coded.to_bytes() + b"\x00" * 300_000,
        "giant-layer": CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base,
                                 (giant, *layers[1:])).to_bytes(),
        "extra-levels": CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base,
                                  (*layers, EnhancementLayer(9, layers[0].payload))).to_bytes(),
        "other-base": CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base[::-1], layers).to_bytes(),
        "garbage": b"FC\x01" + b"\xff" * 100,
    }
    for face_id in answers:
        redis_client.hset(face_key(face_id), mapping={"base_layer": coded.base_only().to_bytes(),
                                                         "edge_id": "edge-h", "enhancement_levels": 4})
    server = grpc.server(futures.ThreadPoolExecutor(2))
    enhancement_pb2_grpc.add_EnhancementStoreServicer_to_server(HostileEdge(answers), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings = ReconstructorSettings(redis_url=redis_server.url, http_port=free_port(), fetch_retries=0,
                                     edges={"edge-h": f"127.0.0.1:{port}"}, max_edge_container_bytes=256 * 1024,
                                     grpc_insecure=True)  # the hostile edge is a plaintext test server
    viewer = api_client(redis_server.url, ("faces:view",))
    try:
        with serve(create_reconstructor(settings)) as url:
            def full(face_id: str):
                return viewer.get(f"{url}/v1/faces/{face_id}/image", params={"layers": "full"}, timeout=30)

            assert full("good").status_code == 200
            expected = {"oversized": "bytes, more than 262144", "giant-layer": "declares 4000x4000",
                        "extra-levels": "levels [1, 2, 3, 4, 9]", "other-base": "different base layer",
                        "garbage": "unusable enhancement container"}
            for face_id, why in expected.items():
                r = full(face_id)
                assert r.status_code == 502 and why in r.json()["detail"], (face_id, r.text)
    finally:
        server.stop(0)


def test_webp_layers_declaring_another_size_are_refused_from_their_header() -> None:
    """The codec checks a layer's declared size before it decodes a pixel of it (a 16383 x 16383 WebP
    header is a few bytes)."""
    import numpy as np

    prediction = np.zeros((112, 112, 3), np.uint8)
    with pytest.raises(EnhancementLayerError, match="declares 3000x2000 pixels, expected 112x112"):
        WebPResidualCodec().decode(prediction, (EnhancementLayer(1, _webp((3000, 2000))),), 1)


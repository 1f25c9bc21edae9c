"""Learned enhancement layer: exact integer hyperprior, typed errors, only the asked level travels."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.fetch_service import make_server
from edge_encoder.pipeline import lossless
from facecodec.bitstream import EnhancementLayer, parse
from facecodec.codec.enhancement_layer import EnhancementLayerError
from facecodec.codec.integer_net import FRACTION_BITS, WEIGHT_BITS, IntegerHyperSynthesis
from facecodec.codec.learned_enhancement import LATENT_SIZE, LearnedResidualCodec
from facecodec.codec.profiles import PROFILES, WEIGHTS, codec_by_name
from facecodec.eval.metrics import psnr
from facecodec.frontend import decode_image
from facecodec.train.enhancement_export import load_exported
from tests.helpers import lfw_image

SPEC = PROFILES["scalable"]


@pytest.fixture(scope="module")
def codec() -> LearnedResidualCodec:
    return LearnedResidualCodec(WEIGHTS / SPEC.enhancement_file)


@pytest.fixture(scope="module")
def face(front_end):
    aligned = front_end.largest_face(decode_image(lfw_image("Serena_Williams", 1).read_bytes()))
    assert aligned is not None
    return aligned.crop, front_end.describe(aligned.crop)[0]


def float_hyper_synthesis(weights: dict[str, np.ndarray]) -> torch.nn.Sequential:
    """The float network the integer weights came from (up to their rounding)."""
    layers: list[torch.nn.Module] = [torch.nn.Upsample(scale_factor=2, mode="nearest")]
    i = 0
    while f"h_s{i}_weight" in weights:
        w = torch.from_numpy(weights[f"h_s{i}_weight"] / 2**WEIGHT_BITS)
        conv = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1).double()
        conv.weight.data, conv.bias.data = w, torch.from_numpy(weights[f"h_s{i}_bias"] / 2**FRACTION_BITS)
        layers += [conv, torch.nn.ReLU()]
        i += 1
    return torch.nn.Sequential(*layers)


def test_integer_hyper_synthesis_tracks_the_float_network() -> None:
    with np.load(WEIGHTS / SPEC.enhancement_file) as z:
        weights = {k: z[k] for k in z.files if k.startswith("h_s")}
        channels = len(z["z_medians"])
    rng = np.random.default_rng(0)
    z_hat = rng.integers(-3, 4, size=(channels, 4, 4)).astype(np.int64)
    exact = IntegerHyperSynthesis(weights)(z_hat << FRACTION_BITS, LATENT_SIZE) / 2**FRACTION_BITS
    reference = float_hyper_synthesis(weights)(torch.from_numpy(z_hat[None].astype(np.float64)))
    reference = reference[0, :, :LATENT_SIZE, :LATENT_SIZE].detach().numpy()
    assert exact.shape == reference.shape
    assert np.abs(exact - reference).max() < 1e-2 * max(1.0, np.abs(reference).max())


def test_each_level_is_self_contained_and_better_than_the_last(codec: LearnedResidualCodec, face) -> None:
    crop, descriptor = face
    scalable = codec_by_name("scalable")
    prediction = scalable.prediction(scalable.base.decode(scalable.base.encode(descriptor)))
    layers = codec.encode(crop, prediction)
    assert [layer.level for layer in layers] == list(range(1, codec.levels + 1))
    sizes = [len(layer.payload) for layer in layers]
    assert sizes == sorted(sizes)
    qualities = [psnr(codec.decode(prediction, (layer,), layer.level), crop) for layer in layers]
    assert qualities == sorted(qualities) and qualities[0] > psnr(prediction, crop) + 5, qualities
    # The payload decodes only against the prediction it was coded for: it carries no image of its own.
    wrong = np.zeros_like(prediction)
    assert psnr(codec.decode(wrong, (layers[-1],), codec.levels), crop) < qualities[-1] - 3


def test_garbage_layers_raise_enhancement_layer_error(codec: LearnedResidualCodec, face) -> None:
    prediction = face[0]
    layer = codec.encode(face[0], prediction, levels=1)[0]

    @settings(max_examples=150, deadline=500)
    @given(st.binary(max_size=300))
    def check(payload: bytes) -> None:
        with pytest.raises(EnhancementLayerError):
            codec.decode(prediction, (EnhancementLayer(1, payload),), 1)

    check()
    for cut in (1, 2, len(layer.payload) // 2, len(layer.payload) - 1):
        with pytest.raises(EnhancementLayerError):
            codec.decode(prediction, (EnhancementLayer(1, layer.payload[:cut]),), 1)
    with pytest.raises(EnhancementLayerError, match="outside"):
        codec.decode(prediction, (layer,), codec.levels + 1)


def test_edge_sends_only_the_layer_a_learned_level_needs(face, tmp_path: Path) -> None:
    crop, descriptor = face
    coded = codec_by_name("scalable").encode(crop, descriptor)
    store = EnhancementStore(tmp_path / "enh.db", max_faces=10, max_bytes=10_000_000)
    store.put("face-1", coded.to_bytes(), len(coded.enhancements))
    server, port = make_server(store, 0, "127.0.0.1")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
            reply = stub.Fetch(enhancement_pb2.FetchRequest(face_id="face-1", max_level=3), timeout=10)
    finally:
        server.stop(None)
        store.close()
    fetched = parse(reply.container)
    assert [e.level for e in fetched.enhancements] == [3]
    assert len(reply.container) < len(coded.to_bytes())


def test_deferred_coding_serves_the_layers_eager_coding_would_have_sent(face, tmp_path: Path) -> None:
    crop, descriptor = face
    codec = codec_by_name("scalable")
    eager = codec.encode(crop, descriptor)
    store = EnhancementStore(tmp_path / "enh.db", max_faces=10, max_bytes=10_000_000)
    store.put("face-1", codec.encode_base(descriptor).to_bytes(), codec.levels, lossless(crop))
    server, port = make_server(store, 0, "127.0.0.1")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
            fetch = lambda level: parse(stub.Fetch(  # noqa: E731
                enhancement_pb2.FetchRequest(face_id="face-1", max_level=level), timeout=10).container)
            third = fetch(3)
            after_first = parse(store.get("face-1").container)
            top = fetch(5)
            again = fetch(3)
    finally:
        server.stop(None)
        store.close()
    by_level = {layer.level: layer for layer in eager.enhancements}
    assert third.enhancements == (by_level[3],)  # bit-identical to coding it at capture
    assert [layer.level for layer in after_first.enhancements] == [3]  # coded once, kept for the next viewer
    assert top.enhancements == (by_level[5],) and again.enhancements == (by_level[3],)
    assert third.base == eager.base


def test_add_enhancement_codes_what_a_level_needs_for_both_layer_kinds(face) -> None:
    crop, descriptor = face
    for name in ("scalable", "learned"):
        codec = codec_by_name(name)
        eager = codec.encode(crop, descriptor)
        later = codec.add_enhancement(crop, codec.encode_base(descriptor), 3)
        wanted = set(codec.layers_needed(3))  # learned coder: (3,); WebP refinement: (1, 2, 3)
        assert later.enhancements == tuple(e for e in eager.enhancements if e.level in wanted)
        assert codec.add_enhancement(crop, later, 3) is later  # nothing missing: nothing coded


def test_torch_and_onnxruntime_synthesis_agree(codec: LearnedResidualCodec, face) -> None:
    crop, _ = face
    prediction = np.clip(crop.astype(np.int16) + 20, 0, 255).astype(np.uint8)  # any side information
    layer = codec.encode(crop, prediction, levels=3)[2]
    served = codec.decode(prediction, (layer,), 3)
    model = load_exported(WEIGHTS / SPEC.enhancement_file).eval()  # the fine-tuning start point, too
    # Re-derive the latent exactly as the decoder does; the entropy decoding is integer-only.
    z_length = int.from_bytes(layer.payload[:2], "big")
    z_symbols = codec.z_coder.decode(layer.payload[2 : 2 + z_length], codec.z_indexes)
    y_symbols = codec.y_coder.decode(layer.payload[2 + z_length :], codec._y_indexes(z_symbols))
    y_hat = torch.from_numpy((y_symbols * codec.inverse_gain[2][:, None, None]).astype(np.float32))[None]
    x_gen = torch.from_numpy(prediction.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    with torch.no_grad():
        ours = model.synthesis(y_hat, x_gen)[0].numpy().transpose(1, 2, 0)
    ours = np.clip(np.round(ours * 255.0), 0, 255).astype(np.uint8)
    differing = np.abs(ours.astype(int) - served.astype(int))
    assert differing.max() <= 1 and (differing > 0).mean() < 1e-3

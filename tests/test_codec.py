"""Codec profiles on real faces: base layer decodes alone, enhancement levels nest, errors are typed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facecodec.bitstream import CodedFace, EnhancementLayer, parse
from facecodec.codec.enhancement_layer import EnhancementLayerError
from facecodec.codec.profiles import PROFILES, UnknownProfileError, codec_by_name, codec_for
from facecodec.eval.metrics import psnr
from facecodec.frontend import decode_image
from tests.helpers import lfw_image


@pytest.fixture(scope="module")
def face(front_end):
    rgb = decode_image(lfw_image("Colin_Powell", 1).read_bytes())
    aligned = front_end.largest_face(rgb)
    assert aligned is not None
    return aligned.crop, front_end.describe(aligned.crop)[0]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_base_layer_decodes_alone_and_levels_nest(profile: str, face) -> None:
    crop, descriptor = face
    codec = codec_by_name(profile)
    coded = codec.encode(crop, descriptor)
    base_only = parse(coded.base_only().to_bytes(), base_only=True)
    decoded = codec.decode_descriptor(base_only)
    assert float(decoded @ descriptor) > 0.9
    assert len(coded.enhancements) == codec.levels

    full = parse(coded.to_bytes())
    psnrs = [psnr(codec.reconstruct(full, level), crop) for level in range(codec.levels + 1)]
    assert psnrs == sorted(psnrs), psnrs  # every enhancement level improves fidelity
    assert psnrs[-1] > 30, psnrs

    with pytest.raises(EnhancementLayerError):
        # Drop one layer that level 2 decodes from (1 for WebP refinement, 2 for the learned codec).
        missing = codec.layers_needed(2)[0]
        kept = tuple(e for e in coded.enhancements if e.level != missing)
        codec.reconstruct(CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base, kept), 2)
    with pytest.raises(EnhancementLayerError):
        codec.reconstruct(CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base,
                                    (EnhancementLayer(1, b"not webp"),)), 1)


def test_containers_of_the_previous_default_model_keep_decoding(face) -> None:
    """Model 4 (rANS base layer, LFW-trained enhancement coder) wrote the containers of earlier releases:
    a decoder picks its weights from the header and reads them as before; model 5 reads the same
    descriptor from fewer base-layer bytes."""
    crop, descriptor = face
    old = codec_by_name("scalable-lfw").encode(crop, descriptor)
    assert old.model_id == 4
    reader = codec_for(old.model_id, old.rate_id)
    assert reader.spec.enhancement_file == "enhancement_scalable_ft.npz" and reader.spec.base_coder == "rans"
    parsed = parse(old.to_bytes())
    assert psnr(reader.reconstruct(parsed, reader.levels), crop) > 30
    new = codec_by_name("scalable").encode_base(descriptor)
    assert new.model_id == 5 and len(new.base) <= len(old.base) - 3
    assert np.allclose(codec_for(5, new.rate_id).decode_descriptor(new), reader.decode_descriptor(parsed), atol=1e-6)


def test_unknown_model_or_rate_is_refused_clearly() -> None:
    with pytest.raises(UnknownProfileError, match="unknown codec model id 200"):
        codec_for(200, 0)
    with pytest.raises(UnknownProfileError, match="model id 3 was retired"):
        codec_for(3, 4)
    with pytest.raises(UnknownProfileError, match="no rate id 99"):
        codec_for(PROFILES["baseline"].model_id, 99)


@pytest.mark.slow
def test_bitstream_decodes_identically_in_another_process(face, tmp_path) -> None:
    crop, descriptor = face
    for profile in sorted(PROFILES):
        coded = codec_by_name(profile).encode(crop, descriptor)
        path = tmp_path / f"{profile}.bin"
        path.write_bytes(coded.to_bytes())
        # Another interpreter decodes the bytes; its output must equal ours bit for bit.
        script = (
            "import sys, numpy as np; from facecodec.bitstream import parse; "
            "from facecodec.codec.profiles import codec_for; c = parse(open(sys.argv[1], 'rb').read()); "
            "k = codec_for(c.model_id, c.rate_id); "
            "d = k.decode_descriptor(c).tobytes(); im = k.reconstruct(c, len(c.enhancements)).tobytes(); "
            "sys.stdout.buffer.write(d + im)"
        )
        theirs = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, check=True).stdout
        codec = codec_for(coded.model_id, coded.rate_id)
        ours = codec.decode_descriptor(coded).tobytes() + codec.reconstruct(coded, len(coded.enhancements)).tobytes()
        assert theirs == ours


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_random_payloads_are_refused_quickly(profile: str) -> None:
    """Entropy decoders read any bytes; garbage must end as BaseLayerError, never a hang or crash. The
    arithmetic-coded base layer has no spare bits, so most short strings are the exact stream of some
    face (the container's CRC guards transport): those must be canonical and decode to a unit descriptor."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from facecodec.codec.base_layer import BaseLayerError

    codec = codec_by_name(profile)
    accepted = []

    @settings(max_examples=300, deadline=200)
    @given(st.binary(min_size=0, max_size=400))
    def check(payload: bytes) -> None:
        try:
            descriptor = codec.base.decode(payload)
        except BaseLayerError:
            return
        assert codec.spec.base_coder == "arithmetic", "a rANS base layer accepted garbage"
        assert codec.base.coder.encode(codec.base.decode_symbols(payload), codec.base.indexes) == payload
        assert abs(float(np.linalg.norm(descriptor)) - 1) < 1e-4
        accepted.append(payload)

    check()
    if codec.spec.base_coder == "rans":
        assert not accepted

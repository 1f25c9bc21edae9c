"""The learned base layer: torch (training) and onnxruntime (serving) agree bit for bit, and our
frozen-table rANS path writes exactly the bytes CompressAI's own EntropyBottleneck.compress writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facecodec.codec.base_layer import BaseLayerError, LearnedBaseLayer
from facecodec.codec.profiles import PROFILES, WEIGHTS
from facecodec.frontend import decode_image
from facecodec.models.feature_codec import FeatureCodec
from tests.helpers import lfw_image

LEARNED = PROFILES["learned"]
RATES = sorted(LEARNED.base_files)


@pytest.fixture(scope="module")
def descriptors(front_end) -> np.ndarray:
    faces = []
    for name in ("Colin_Powell", "Tony_Blair", "Laura_Bush", "Jennifer_Capriati"):
        for i in (1, 2, 3):
            face = front_end.largest_face(decode_image(lfw_image(name, i).read_bytes()))
            faces.append(face.crop)
    real = front_end.describe(np.stack(faces))
    # Plus perturbed copies: many more latents, some near rounding boundaries.
    rng = np.random.default_rng(0)
    noisy = real[rng.integers(0, len(real), 300)] + rng.normal(0, 0.02, (300, 512)).astype(np.float32)
    both = np.concatenate([real, noisy])
    return (both / np.linalg.norm(both, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
def test_torch_and_onnxruntime_agree_bit_for_bit(rate: int, descriptors: np.ndarray) -> None:
    path = WEIGHTS / LEARNED.base_files[rate]
    served = LearnedBaseLayer(path, "rans")
    short = LearnedBaseLayer(path, "arithmetic")
    model = FeatureCodec.from_export(str(path))
    eb = model.entropy_bottleneck
    with torch.no_grad():
        y = model.g_a(torch.from_numpy(descriptors)).unsqueeze(-1)
        strings = eb.compress(y)
        y_hat = eb.decompress(strings, size=(1,))
        x_torch = torch.nn.functional.normalize(model.g_s(y_hat.squeeze(-1)), dim=-1).numpy()
    for i, x in enumerate(descriptors):
        payload = served.encode(x)
        assert payload == strings[i], f"face {i}: serving bytes differ from EntropyBottleneck.compress"
        symbols = served.decode_symbols(payload)
        assert np.array_equal(symbols.astype(np.float32) + served.medians, y_hat[i, :, 0].numpy())
        np.testing.assert_allclose(served.decode(payload), x_torch[i], atol=2e-5)
        compact = short.encode(x)  # the same symbols, arithmetic-coded: same descriptor, fewer bytes
        assert np.array_equal(short.decode_symbols(compact), symbols) and len(compact) < len(payload)


@pytest.mark.parametrize("coder", ["rans", "arithmetic"])
@pytest.mark.parametrize("rate", RATES)
def test_rates_are_ordered_and_garbage_is_refused(rate: int, coder: str, descriptors: np.ndarray) -> None:
    served = LearnedBaseLayer(WEIGHTS / LEARNED.base_files[rate], coder)
    payload = served.encode(descriptors[0])
    for bad in (b"", payload + b"\x00", bytes(len(payload) + 1), b"\xff" * 64):
        with pytest.raises(BaseLayerError):
            served.decode(bad)
    try:  # rANS has spare bits and refuses a cut payload; the arithmetic code may read another face
        other = served.decode(payload[:-1])
    except BaseLayerError:
        return
    assert coder == "arithmetic" and float(other @ served.decode(payload)) < 0.999


def trained_with(rate: int) -> tuple[int, float]:
    """(latent width, rate weight) a base layer was trained with, from its JSON's command."""
    command = json.loads((WEIGHTS / LEARNED.base_files[rate]).with_suffix(".json").read_text())["command"]
    latent = int(command.split("--latent")[1].split()[0]) if "--latent" in command else 128
    return latent, float(command.split("--lmbda")[1].split()[0])


@pytest.mark.parametrize("latent", sorted({trained_with(r)[0] for r in RATES}))
def test_smaller_rate_weights_spend_more_bytes_for_more_fidelity(latent: int, descriptors: np.ndarray) -> None:
    sizes, cosines = [], []
    family = [r for r in RATES if trained_with(r)[0] == latent]
    for rate in sorted(family, key=lambda r: -trained_with(r)[1]):
        served = LearnedBaseLayer(WEIGHTS / LEARNED.base_files[rate])
        payloads = [served.encode(x) for x in descriptors]
        sizes.append(np.mean([len(p) for p in payloads]))
        cosines.append(np.mean([served.decode(p) @ x for p, x in zip(payloads, descriptors)]))
    assert sizes == sorted(sizes) and cosines == sorted(cosines), (family, sizes, cosines)

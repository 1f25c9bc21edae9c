"""Codec profiles: which base-layer codec, prediction and enhancement codec a model id means.

The model id and rate id ride in every container, so a decoder knows exactly which weights to use,
or refuses clearly (`UnknownProfileError`) when it does not have them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from facecodec.bitstream import CodedFace
from facecodec.codec.base_layer import BaseLayerCodec, LearnedBaseLayer, ScalarBaseLayer
from facecodec.codec.enhancement_layer import WebPResidualCodec
from facecodec.codec.learned_enhancement import LearnedResidualCodec
from facecodec.codec.prediction import GeneratorPrediction, MeanFacePrediction, Prediction
from facecodec.frontend.align import CROP_SIZE
from facecodec.frontend.describe import DESCRIPTOR_MODEL
from facecodec.openset import OpenSetCalibration

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
# FAR 1e-3 over all pairs of LFW training identities with float32 descriptors (TAR 97.0%).
DEFAULT_MATCH_THRESHOLD = 0.34


class UnknownProfileError(LookupError):
    """The container names a model id / rate id this decoder has no weights for."""


# Rate ids 1-5 (latent 128) were trained on descriptors of the RANSAC alignment; 6-9 on those of the
# least-squares one, with smaller latents where the rate is low (added later, for payloads of 32 bytes and
# below): 6 ~6.6 B (latent 32),
# 7 ~14 B and 8 ~16 B (latent 64), 9 ~22 B (latent 96). A rate id names its weights for good.
LEARNED_RATES = (1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass(frozen=True)
class ProfileSpec:
    model_id: int
    name: str
    base_kind: Literal["scalar", "learned"]
    base_files: dict[int, str]  # rate_id -> weights file in facecodec/weights
    prediction_kind: Literal["mean-face", "generator"]
    prediction_file: str
    default_rate: int
    enhancement_kind: Literal["webp-residual", "learned-residual"] = "webp-residual"
    enhancement_file: str = ""
    descriptor_model: str = DESCRIPTOR_MODEL  # the recogniser whose descriptor the base layer codes
    base_coder: Literal["rans", "arithmetic"] = "rans"  # entropy coder of a learned base layer


LEARNED_BASE = {r: f"base_learned_r{r}.npz" for r in LEARNED_RATES}

# A model id never changes meaning: a new prediction or enhancement design gets a new id, and the old
# ones stay registered so containers already written keep decoding.
PROFILES: dict[str, ProfileSpec] = {
    "baseline": ProfileSpec(1, "baseline", "scalar", {0: "base_scalar.npz"}, "mean-face", "mean_face.npz", 0),
    "learned": ProfileSpec(2, "learned", "learned", LEARNED_BASE, "mean-face", "mean_face.npz", 4),
    # The seed paper's design: generator from the decoded feature, learned conditional enhancement layer.
    # 4: rANS-coded base layer and the enhancement coder trained on LFW-like faces only; kept so the
    # containers it wrote still decode.
    "scalable-lfw": ProfileSpec(4, "scalable-lfw", "learned", LEARNED_BASE, "generator", "generator_recognition.npz",
                                4, "learned-residual", "enhancement_scalable_ft.npz"),
    # 5: the same design; base layer arithmetic-coded (termination <= 1 byte instead of rANS's ~6), the
    # enhancement coder fine-tuned on varied and camera-degraded faces.
    "scalable": ProfileSpec(5, "scalable", "learned", LEARNED_BASE, "generator", "generator_recognition.npz", 4,
                            "learned-residual", "enhancement_scalable_varied.npz", base_coder="arithmetic"),
}
DEFAULT_PROFILE = "scalable"
# Ids whose weights were replaced before any release; say so rather than "unknown".
RETIRED_MODEL_IDS = {3: "learned-generator (a 10-epoch CPU generator with WebP residuals), replaced by scalable (4)"}


def profile_by_id(model_id: int) -> ProfileSpec:
    for spec in PROFILES.values():
        if spec.model_id == model_id:
            return spec
    known = {s.model_id: s.name for s in PROFILES.values()}
    if model_id in RETIRED_MODEL_IDS:
        raise UnknownProfileError(f"codec model id {model_id} was retired: {RETIRED_MODEL_IDS[model_id]}; "
                                  f"this decoder knows {known}")
    raise UnknownProfileError(f"unknown codec model id {model_id}; this decoder knows {known}")


class FaceCodec:
    """One profile at one rate: encode a face, decode its base layer, reconstruct its image."""

    def __init__(self, spec: ProfileSpec, rate_id: int | None = None) -> None:
        self.spec = spec
        self.rate_id = spec.default_rate if rate_id is None else rate_id
        if self.rate_id not in spec.base_files:
            raise UnknownProfileError(
                f"profile {spec.name} has no rate id {self.rate_id}; known {sorted(spec.base_files)}"
            )
        base_path = WEIGHTS / spec.base_files[self.rate_id]
        self.base: BaseLayerCodec = (
            ScalarBaseLayer(base_path) if spec.base_kind == "scalar" else LearnedBaseLayer(base_path, spec.base_coder)
        )

    @cached_property
    def match_threshold(self) -> float:
        """Cosine at FAR=1e-3 on training identities for this base layer (facecodec.train.calibrate)."""
        sidecar = (WEIGHTS / self.spec.base_files[self.rate_id]).with_suffix(".json")
        if sidecar.exists():
            return float(json.loads(sidecar.read_text()).get("match_threshold", DEFAULT_MATCH_THRESHOLD))
        return DEFAULT_MATCH_THRESHOLD

    @cached_property
    def open_set_calibration(self) -> OpenSetCalibration:
        """Impostor tails of identity templates for this base layer (facecodec.train.calibrate)."""
        sidecar = (WEIGHTS / self.spec.base_files[self.rate_id]).with_suffix(".json")
        data = json.loads(sidecar.read_text()).get("open_set") if sidecar.exists() else None
        if not data:
            raise UnknownProfileError(f"{sidecar.name} has no open-set calibration; run facecodec.train.calibrate")
        return OpenSetCalibration.from_json(data)

    @cached_property
    def enhancement(self) -> WebPResidualCodec | LearnedResidualCodec:
        # Loaded on first use, like the prediction: base-layer-only users never open its three graphs.
        if self.spec.enhancement_kind == "learned-residual":
            return LearnedResidualCodec(WEIGHTS / self.spec.enhancement_file)
        return WebPResidualCodec()

    @cached_property
    def prediction(self) -> Prediction:
        # Loaded on first use: the analyzer only ever decodes base layers and never needs it.
        path = WEIGHTS / self.spec.prediction_file
        return GeneratorPrediction(path) if self.spec.prediction_kind == "generator" else MeanFacePrediction(path)

    @property
    def levels(self) -> int:
        return self.enhancement.levels

    def encode_base(self, descriptor: np.ndarray) -> CodedFace:
        """The base-only container for a descriptor (what enrolment and analysis need)."""
        return CodedFace(self.spec.model_id, self.rate_id, CROP_SIZE, self.base.encode(descriptor))

    def encode(self, crop: np.ndarray, descriptor: np.ndarray, levels: int | None = None) -> CodedFace:
        if crop.shape != (CROP_SIZE, CROP_SIZE, 3) or crop.dtype != np.uint8:
            raise ValueError(f"crop must be {CROP_SIZE}x{CROP_SIZE}x3 uint8")
        base = self.base.encode(descriptor)
        # Predict from the *decoded* base layer: that is all the decoder will have.
        predicted = self.prediction(self.base.decode(base))
        layers = self.enhancement.encode(crop, predicted, levels)
        return CodedFace(self.spec.model_id, self.rate_id, CROP_SIZE, base, tuple(layers))

    def add_enhancement(self, crop: np.ndarray, coded: CodedFace, level: int) -> CodedFace:
        """`coded` plus the layers that `level` decodes from, coded now from `crop` (layers it already has
        are kept): the edge can keep a face's crop and code a level only when someone first asks for it.
        Layers do not depend on when they are coded, so the result equals coding them at capture."""
        self._check(coded)
        if crop.shape != (CROP_SIZE, CROP_SIZE, 3) or crop.dtype != np.uint8:
            raise ValueError(f"crop must be {CROP_SIZE}x{CROP_SIZE}x3 uint8")
        have = {layer.level: layer for layer in coded.enhancements}
        missing = tuple(level for level in self.layers_needed(level) if level not in have)
        if not missing:
            return coded
        predicted = self.prediction(self.base.decode(coded.base))
        have.update({layer.level: layer for layer in self.enhancement.encode_levels(crop, predicted, missing)})
        layers = tuple(have[level] for level in sorted(have))
        return CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base, layers, coded.version)

    def decode_descriptor(self, coded: CodedFace) -> np.ndarray:
        self._check(coded)
        return self.base.decode(coded.base)

    def layers_needed(self, level: int) -> tuple[int, ...]:
        """Which enhancement layers `reconstruct(coded, level)` reads: 1..k for WebP refinement,
        only k for the learned codec (each of its levels is self-contained)."""
        return self.enhancement.layers_needed(level)

    def reconstruct(self, coded: CodedFace, level: int = 0) -> np.ndarray:
        """level 0: from the base layer alone; level k: base + the enhancement layers level k needs."""
        predicted = self.prediction(self.decode_descriptor(coded))
        if level == 0:
            return predicted
        return self.enhancement.decode(predicted, coded.enhancements, level)

    def _check(self, coded: CodedFace) -> None:
        if coded.model_id != self.spec.model_id or coded.rate_id != self.rate_id:
            raise UnknownProfileError(
                f"container is model {coded.model_id} rate {coded.rate_id}; this codec is "
                f"model {self.spec.model_id} rate {self.rate_id}"
            )
        if coded.crop_size != CROP_SIZE:
            raise UnknownProfileError(f"crop size {coded.crop_size} unsupported (expected {CROP_SIZE})")


@cache
def codec_for(model_id: int, rate_id: int) -> FaceCodec:
    """The (cached) codec that decodes containers with this model id and rate id."""
    return FaceCodec(profile_by_id(model_id), rate_id)


def codec_by_name(name: str, rate_id: int | None = None) -> FaceCodec:
    if name not in PROFILES:
        raise UnknownProfileError(f"unknown codec profile {name!r}; known {sorted(PROFILES)}")
    spec = PROFILES[name]
    return codec_for(spec.model_id, spec.default_rate if rate_id is None else rate_id)

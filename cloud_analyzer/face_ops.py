"""What the REST routes do with faces, in one place: find faces (every face of an image, the largest, a
base layer sent by a client, a stored face), search the gallery with them, verify two of them, and check a
new template against an identity's others. The native routers (`routers/identities.py`, `search.py`,
`verify.py`, `detect.py`) and any compatibility router answer from these functions, so every route makes
the same decision in its own shape; identification always goes through `OpenSetPolicy.decide`.

Descriptor kinds, as the calibration measured them (`facecodec.train.calibrate`): templates are float
descriptors of enrolment photos; probes are what an edge would send, the base layer decoded. A base layer
or a stored face has only its decoded base layer, which then serves as both.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from fastapi import HTTPException

from cloud_analyzer.decision import Decision
from cloud_analyzer.deps import Analyzer, decoded_image
from cloud_analyzer.gallery import Match
from cloud_analyzer.minors import ChildCheck, child_policy
from cloud_analyzer.recognition import decode_base_layer
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import FaceCodec, UnknownProfileError
from facecodec.frontend import AlignedFace
from facecodec.frontend.quality import FaceQuality, assess
from facecodec.openset import OpenSetCalibration, identity_template, unit

HELD_OUT = Path(__file__).with_name("verification_heldout.json")  # written by bench/verify_far.py
MAX_BASE_LAYER_B64 = 64 * 1024  # a base layer is a few hundred bytes; anything near this is not one

# A new template is flagged as likely another person when it scores against the mean of the identity's
# other templates below the cosine that 1 stranger in 100 reaches (pair false-accept rate on the codec's
# calibration identities, tail(n templates, 1 frame)): it looks no more like the identity than the
# closest 1% of strangers do. Higher (1e-3) would stay silent on more wrong photos; lower (1e-1) would
# warn on poor but genuine ones.
TEMPLATE_WARN_FAR = 1e-2


@dataclass(frozen=True)
class Face:
    """One face to decide on. `template`: the vector it gives as an enrolment template; `probe`: the
    vector it is searched with; `codec`: whose calibration decides it."""

    template: np.ndarray
    probe: np.ndarray
    codec: FaceCodec
    quality: FaceQuality | None = None
    box: tuple[float, float, float, float] | None = None
    landmarks: list[list[float]] | None = None
    detection_score: float | None = None
    face_id: str | None = None  # a stored face's id

    @property
    def issues(self) -> tuple[str, ...]:
        return self.quality.issues if self.quality is not None else ()


# --- finding faces ---------------------------------------------------------------------------------------
def detected(analyzer: Analyzer, data: bytes, label: str) -> list[tuple[AlignedFace, FaceQuality]]:
    """Every face of an image with its quality, largest first; nothing is described or stored."""
    faces = analyzer.front_end.faces(decoded_image(data, label))
    faces.sort(key=lambda f: -(f.detection.box[2] - f.detection.box[0]) * (f.detection.box[3] - f.detection.box[1]))
    return [(f, assess(f.detection.box, f.landmarks, f.crop)) for f in faces]


def image_faces(analyzer: Analyzer, data: bytes, label: str, largest_only: bool = False) -> list[Face]:
    """Every face of an image (or only the largest), described; 422 if there is none."""
    faces = faces_in_image(analyzer, data, label, limit=1 if largest_only else 0)
    if not faces:
        raise HTTPException(422, f"{label}: no face found")
    return faces


def faces_in_image(analyzer: Analyzer, data: bytes, label: str, min_score: float = 0.0, limit: int = 0) -> list[Face]:
    """The faces of an image whose detection score reaches `min_score`, largest first (the `limit`
    largest; 0: all), described; none is an empty list."""
    found = [(f, q) for f, q in detected(analyzer, data, label) if f.detection.score >= min_score]
    found = found[:limit] if limit > 0 else found
    if not found:
        return []
    descriptors = analyzer.front_end.describe(np.stack([f.crop for f, _ in found]))
    return [Face(d, analyzer.as_probe(d), analyzer.codec, q, tuple(float(v) for v in f.detection.box),
                 np.asarray(f.landmarks, float).round(1).tolist(), float(f.detection.score))
            for (f, q), d in zip(found, descriptors)]


def base_layer_face(analyzer: Analyzer, b64: str, label: str = "base_layer") -> Face:
    """A face from a client's base-layer container (docs/bitstream.md) in base64; 422 saying what is
    wrong with it otherwise (not base64, not a container, another recogniser than this analyzer's)."""
    if len(b64) > MAX_BASE_LAYER_B64:
        raise HTTPException(422, f"{label}: longer than {MAX_BASE_LAYER_B64} characters; not a base layer")
    try:
        container = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HTTPException(422, f"{label}: not valid base64") from exc
    return container_face(analyzer, container, label)


def container_face(analyzer: Analyzer, container: bytes, label: str, face_id: str | None = None) -> Face:
    try:
        descriptor, codec = decode_base_layer(container)
    except (BitstreamError, BaseLayerError) as exc:
        raise HTTPException(422, f"{label}: not a base-layer container ({exc})") from exc
    except UnknownProfileError as exc:
        raise HTTPException(422, f"{label}: unknown codec profile or rate ({exc})") from exc
    wanted = analyzer.codec.spec.descriptor_model
    if codec.spec.descriptor_model != wanted:
        raise HTTPException(422, f"{label}: coded for recogniser {codec.spec.descriptor_model}; this analyzer "
                                 f"matches {wanted} only")
    vector = unit(np.asarray(descriptor, np.float32))
    return Face(vector, vector, codec, face_id=face_id)


def stored_face(analyzer: Analyzer, face_id: str) -> Face:
    """A face the analyzer stored (a sighting), by its decoded base layer; 404 if there is none."""
    face = analyzer.store.face(face_id)
    if face is None:
        raise HTTPException(404, f"face {face_id} not found")
    return container_face(analyzer, face["base_layer"], f"face {face_id}", face_id)


# --- identification ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identification:
    decision: Decision
    candidates: list[Match]
    named: Match | None  # None when the probe's quality forbids naming anyone
    issues: list[str]
    child: ChildCheck = ChildCheck()  # whether it looks like a child's, and what that did (minors.py)


def identify(analyzer: Analyzer, faces: list[Face], k: int) -> Identification:
    """Top-k identities for one person seen in `faces` (fused into one probe) and the open-set decision
    on the best of them, at the operator's FPIR; faces with quality issues are never named, faces that
    look like a child's are decided by the child policy (minors.py)."""
    codec = faces[0].codec
    probe = identity_template(np.stack([f.probe for f in faces]))
    decision, candidates = analyzer.policy.decide(
        analyzer.gallery, probe, codec.spec.descriptor_model, codec.open_set_calibration, len(faces), k)
    decision, child = child_policy(analyzer.settings).decide(decision, probe, codec.spec.descriptor_model)
    issues = sorted({issue for f in faces for issue in f.issues})
    return Identification(decision, candidates, decision.match if not issues else None, issues, child)


# --- verification -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verification:
    similarity: float
    threshold: float
    match: bool
    far: float  # pair false-accept rate at `threshold` on the calibration's identities
    far_held_out: float | None  # the same, measured on held-out identities (bench/verify_far.py), if it was
    target_far: float
    issues: list[str]
    threshold_override: bool = False  # the identity's own threshold, stricter than the default
    rejected_by_negative: bool = False  # cleared the threshold, but as close to one of the identity's negatives


def verification_threshold(calibration: OpenSetCalibration, target_far: float, enrol_images: int = 1,
                           probe_frames: int = 1) -> tuple[float, float]:
    """(threshold, its FAR): the lowest cosine whose pair false-accept rate on the calibration identities
    is at most `target_far`, for a template of `enrol_images` photos against a probe of `probe_frames`."""
    tail = calibration.tail(enrol_images, probe_frames)
    threshold = tail.threshold_at(target_far)
    return threshold, tail.far(threshold)


@cache
def _held_out() -> dict:
    return json.loads(HELD_OUT.read_text()) if HELD_OUT.exists() else {}


def held_out_far(codec: FaceCodec, threshold: float) -> float | None:
    """The FAR `bench/verify_far.py` measured at this threshold on held-out LFW identities (image against
    image), when it measured this codec at this threshold; else None (another ANALYZER_VERIFY_FAR)."""
    points = _held_out().get(f"{codec.spec.name}/{codec.rate_id}", {}).get("points", [])
    return next((p["far_held_out"] for p in points if abs(p["threshold"] - threshold) < 1e-6), None)


def verify(analyzer: Analyzer, reference: np.ndarray, reference_images: int, probe: Face,
           codec: FaceCodec | None = None, issues: tuple[str, ...] = (), identity_id: str | None = None
           ) -> Verification:
    """1:1: is `probe` the person of `reference` (a template of `reference_images` photos)? Against an
    enrolled identity, its corrections count as in every decision (docs/corrections.md): its threshold
    override where stricter, and no match for a probe as close to a face people said is not them."""
    calibration = (codec or probe.codec).open_set_calibration
    target = analyzer.settings.verify_far
    threshold, far = verification_threshold(calibration, target, reference_images, 1)
    similarity = float(unit(reference) @ unit(probe.probe))
    problems = sorted({*issues, *probe.issues})
    held_out = held_out_far(codec or probe.codec, threshold) if reference_images == 1 else None
    override, rejected = False, False
    if identity_id is not None:
        own = (analyzer.store.identity(identity_id) or {}).get("threshold_override") or ""
        if own and float(own) > threshold:
            threshold, override, held_out = float(own), True, None
            far = calibration.tail(reference_images, 1).far(threshold)
        negative = analyzer.gallery.closest_negative(identity_id, probe.probe)
        rejected = similarity >= threshold and negative is not None and negative >= similarity
    return Verification(similarity, threshold, similarity >= threshold and not problems and not rejected, far,
                        held_out, target, problems, override, rejected)


# --- templates ---------------------------------------------------------------------------------------------
def far_from_others(calibration: OpenSetCalibration, others: list[np.ndarray], new: np.ndarray
                    ) -> tuple[float, float] | None:
    """(similarity of `new` to the mean of `others`, the warning threshold) when `new` is likely another
    person (module doc, TEMPLATE_WARN_FAR); None when it is not, or there is nothing to compare with."""
    if not others:
        return None
    similarity = float(identity_template(np.stack(others)) @ unit(new))
    threshold = calibration.tail(len(others), 1).threshold_at(TEMPLATE_WARN_FAR)
    return (similarity, threshold) if similarity < threshold else None

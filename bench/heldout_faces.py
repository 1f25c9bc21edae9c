"""Held-out faces for the decision benchmarks (`verify_far.py`, `client_similarity.py`): LFW *evaluation*
identities (lfw/splits/eval_identities.txt; no model or threshold here was trained, tuned or calibrated on
them), the largest face of each photo run through the analyzer's own front end, as the REST API sees an
upload: the float descriptor (what a template is made of), its base layer decoded (what a probe is), and
whether it passes the quality gate.

Up to `per_person` photos of up to `people` identities, drawn with a fixed seed; photos with no face
detected are left out. Cached as .npz under data/heldout/ (keyed by the draw), so the benchmarks share one
extraction.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec.codec.profiles import codec_by_name
from facecodec.datasets import evaluation_images
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.frontend.quality import assess
from facecodec.openset import unit

CACHE = Path(__file__).resolve().parents[1] / "data" / "heldout"  # ignored by git: a cache, not a result


@dataclass(frozen=True)
class Faces:
    identities: np.ndarray  # N, "lfw/Name"
    templates: np.ndarray  # N x 512 float descriptors, unit
    probes: np.ndarray  # N x 512 base layers decoded (codec `profile`), unit
    quality_ok: np.ndarray  # N bool
    seconds: float  # extraction time (0 when read from the cache)


def heldout_faces(people: int = 800, per_person: int = 3, seed: int = 0, profile: str = "scalable") -> Faces:
    cache = CACHE / f"lfw_eval_{people}x{per_person}_s{seed}_{profile}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return Faces(z["identities"], z["templates"], z["probes"], z["quality_ok"], 0.0)
    rng = np.random.default_rng(seed)
    by_person: dict[str, list] = {}
    for image in evaluation_images():
        by_person.setdefault(image.identity, []).append(image)
    names = sorted(by_person)
    chosen = [names[i] for i in rng.permutation(len(names))[:people]]
    front_end, codec = FaceFrontEnd(), codec_by_name(profile)
    ids, templates, probes, ok = [], [], [], []
    start = time.time()
    for name in chosen:
        photos = sorted(by_person[name], key=lambda im: im.key)
        for i in rng.permutation(len(photos))[:per_person]:
            face = front_end.largest_face(decode_image(photos[i].path.read_bytes()))
            if face is None:
                continue
            d = front_end.describe(face.crop)[0]
            ids.append(name)
            templates.append(unit(d))
            probes.append(unit(codec.base.decode(codec.base.encode(d))))
            ok.append(assess(face.detection.box, face.landmarks, face.crop).ok)
    faces = Faces(np.array(ids), np.stack(templates), np.stack(probes), np.array(ok), time.time() - start)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, identities=faces.identities, templates=faces.templates, probes=faces.probes,
                        quality_ok=faces.quality_ok)
    return faces


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The draw and the codec, as every benchmark on these faces takes them."""
    parser.add_argument("--people", type=int, default=800)
    parser.add_argument("--per-person", type=int, default=3)
    parser.add_argument("--profile", default="scalable")


def from_arguments(args: argparse.Namespace) -> Faces:
    return heldout_faces(args.people, args.per_person, profile=args.profile)

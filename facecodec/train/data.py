"""Cached front-end output (from `facecodec.train.prepare`) split by the train/eval identity rule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec.datasets import lfw_eval_identities, lfw_train_identities


@dataclass
class Faces:
    crops: np.ndarray  # N x 112 x 112 x 3 uint8
    descriptors: np.ndarray  # N x 512 float32, unit norm
    identities: np.ndarray  # N, dataset-qualified names
    keys: np.ndarray  # N, "Name/Name_0001"

    def subset(self, mask: np.ndarray) -> Faces:
        return Faces(self.crops[mask], self.descriptors[mask], self.identities[mask], self.keys[mask])


def load(path: Path) -> Faces:
    with np.load(path) as z:
        return Faces(z["crops"], z["descriptors"].astype(np.float32), z["identities"], z["keys"])


def _concat(parts: list[Faces]) -> Faces:
    fields = ("crops", "descriptors", "identities", "keys")
    return Faces(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def load_training_faces(root: Path) -> Faces:
    """LFW training identities + CelebA + AT&T. Never contains an evaluation identity.

    `root` is the `facecodec.train.prepare` cache folder, or a `facecodec.train.pack` file (whose
    faces have no descriptors yet).
    """
    if root.suffix == ".npz":
        from facecodec.train.pack import load_pack

        return load_pack(root)
    lfw = load(root / "lfw.npz")
    train = {f"lfw/{n}" for n in lfw_train_identities()}
    parts = [lfw.subset(np.isin(lfw.identities, list(train)))]
    parts += [load(root / f"{name}.npz") for name in ("celeba", "att") if (root / f"{name}.npz").exists()]
    faces = _concat(parts)
    evaluation = {f"lfw/{n}" for n in lfw_eval_identities()}
    assert not evaluation & set(faces.identities.tolist()), "evaluation identity leaked into training"
    return faces


def load_evaluation_faces(root: Path) -> Faces:
    lfw = load(root / "lfw.npz")
    evaluation = {f"lfw/{n}" for n in lfw_eval_identities()}
    return lfw.subset(np.isin(lfw.identities, list(evaluation)))

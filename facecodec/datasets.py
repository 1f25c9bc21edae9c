"""The identity-labelled face sets under `../shared/datasets` and the train/eval identity split.

Learned models train only on LFW `train_identities.txt` + CelebA + AT&T; evaluation uses the LFW
identities of View-2 folds 6-10 (`eval_identities.txt`). This module is the one place that knows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# `../shared/datasets` beside the checkout; /work/shared/datasets when the checkout lives elsewhere.
CANDIDATE_ROOTS = (Path(__file__).resolve().parents[2] / "shared" / "datasets", Path("/work/shared/datasets"))


def dataset_root() -> Path:
    if "FACECODEC_DATASETS" in os.environ:
        return Path(os.environ["FACECODEC_DATASETS"])
    return next((p for p in CANDIDATE_ROOTS if p.is_dir()), CANDIDATE_ROOTS[0])


@dataclass(frozen=True)
class FaceImage:
    path: Path
    dataset: str  # lfw | celeba | att
    identity: str  # dataset-qualified, e.g. "lfw/George_W_Bush"


def _identities(name: str) -> set[str]:
    return set((dataset_root() / "lfw" / "splits" / name).read_text().split())


def lfw_train_identities() -> set[str]:
    return _identities("train_identities.txt")


def lfw_eval_identities() -> set[str]:
    return _identities("eval_identities.txt")


def list_images(dataset: str) -> list[FaceImage]:
    folder = {"lfw": "lfw", "celeba": "celeba", "att": "att_faces"}[dataset]
    root = dataset_root() / folder / "images"
    return [
        FaceImage(path, dataset, f"{dataset}/{path.parent.name}")
        for path in sorted(root.glob("*/*"))
        if path.is_file()
    ]


def training_images() -> list[FaceImage]:
    """Every image a learned model may train on."""
    train_ids = lfw_train_identities()
    lfw = [im for im in list_images("lfw") if im.path.parent.name in train_ids]
    return lfw + list_images("celeba") + list_images("att")


def evaluation_images() -> list[FaceImage]:
    eval_ids = lfw_eval_identities()
    return [im for im in list_images("lfw") if im.path.parent.name in eval_ids]


@dataclass(frozen=True)
class Pair:
    fold: int  # 1..10
    a: str  # "Name/Name_0001" style key, no extension
    b: str
    same: bool


def lfw_pairs() -> list[Pair]:
    lines = (dataset_root() / "lfw" / "pairs.txt").read_text().splitlines()
    folds, per_fold = (int(v) for v in lines[0].split())
    pairs = []
    for i, line in enumerate(lines[1:]):
        fold = i // (2 * per_fold) + 1
        parts = line.split()
        if len(parts) == 3:
            name, i1, i2 = parts
            pairs.append(Pair(fold, f"{name}/{name}_{int(i1):04d}", f"{name}/{name}_{int(i2):04d}", True))
        else:
            n1, i1, n2, i2 = parts
            pairs.append(Pair(fold, f"{n1}/{n1}_{int(i1):04d}", f"{n2}/{n2}_{int(i2):04d}", False))
    assert len(pairs) == folds * per_fold * 2
    return pairs


def lfw_key(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"

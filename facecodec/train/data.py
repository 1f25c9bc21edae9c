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


def concat(parts: list[Faces]) -> Faces:
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
    faces = concat(parts)
    evaluation = {f"lfw/{n}" for n in lfw_eval_identities()}
    assert not evaluation & set(faces.identities.tolist()), "evaluation identity leaked into training"
    return faces


def cfp_lfw_people(cfp_images: Path | None = None) -> dict[str, str]:
    """CFP identity -> LFW identity for the CFP people who are also in LFW (153 of 500)."""
    from facecodec.datasets import cfp_names, list_images

    lfw_people = {im.identity for im in list_images("lfw")}
    return {cfp_id: f"lfw/{name.replace(' ', '_')}" for cfp_id, name in cfp_names(cfp_images).items()
            if f"lfw/{name.replace(' ', '_')}" in lfw_people}


def load_cfp_training_faces(cfp: Path, cfp_images: Path | None = None) -> Faces:
    """The CFP identities that may train (up to `CFP_CALIBRATION_MAX_ID`; the rest evaluate), detected
    faces only, profiles included. People who are also in LFW keep their LFW name, and those who are
    LFW *evaluation* identities are dropped."""
    from facecodec.datasets import CFP_CALIBRATION_MAX_ID

    same_person = cfp_lfw_people(cfp_images)
    with np.load(cfp) as z:
        mask = z["detected"] & np.array([int(i.split("/")[1]) <= CFP_CALIBRATION_MAX_ID for i in z["identities"]])
        faces = Faces(z["crops"][mask], z["descriptors"][mask].astype(np.float32),
                      np.array([same_person.get(i, i) for i in z["identities"][mask].tolist()]), z["keys"][mask])
    return faces.subset(~np.isin(faces.identities, [f"lfw/{n}" for n in lfw_eval_identities()]))


def load_evaluation_faces(root: Path) -> Faces:
    lfw = load(root / "lfw.npz")
    evaluation = {f"lfw/{n}" for n in lfw_eval_identities()}
    return lfw.subset(np.isin(lfw.identities, list(evaluation)))


def load_cfp_test_faces(root: Path) -> Faces:
    """In-the-wild evaluation photos no model trained on: `root/cfp.npz` (the shared CFP test split,
    identities 451-500, or a whole CFP), detected faces only, identities above `CFP_CALIBRATION_MAX_ID`
    (the ones that never train or calibrate anything), frontal and profile photos alike. Some of these
    people are in LFW too (19 of the test split's 50; 10 of them LFW training identities, with other
    photos): identities stay CFP's own."""
    from facecodec.datasets import CFP_CALIBRATION_MAX_ID

    with np.load(root / "cfp.npz") as z:
        mask = z["detected"] & np.array([int(i.split("/")[1]) > CFP_CALIBRATION_MAX_ID for i in z["identities"]])
        return Faces(z["crops"][mask], z["descriptors"][mask].astype(np.float32), z["identities"][mask],
                     z["keys"][mask])


def load_calibration_faces(root: Path, cfp: Path | None = None,
                           cfp_images: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors, identities) for open-set calibration: the training faces, plus CFP identities up
    to `CFP_CALIBRATION_MAX_ID` when a whole CFP run through prepare is given (in-the-wild photos and
    profiles, harder than LFW; the others stay for evaluation). Only faces that were detected and pass
    the quality gate, as in service. A CFP person who is also in LFW (153 of 500 are) keeps the LFW
    identity: their photos in the two sets would otherwise count as impostor pairs of the same face.
    `cfp_images` is that CFP's `Data/Images` folder, for its names."""
    from facecodec.datasets import CFP_CALIBRATION_MAX_ID
    from facecodec.frontend.quality import passes

    same_person = cfp_lfw_people(cfp_images)
    train = {f"lfw/{n}" for n in lfw_train_identities()}
    evaluation = [f"lfw/{n}" for n in lfw_eval_identities()]
    parts = []
    sources = [(root / "lfw.npz", lambda ids: np.isin(ids, list(train)))]
    sources += [(root / f"{n}.npz", lambda ids: np.ones(len(ids), bool)) for n in ("celeba", "att")]
    if cfp is not None:
        sources.append((cfp, lambda ids: np.array([int(i.split("/")[1]) <= CFP_CALIBRATION_MAX_ID for i in ids])))
    for path, select in sources:
        if not path.exists():
            continue
        with np.load(path) as z:
            mask = select(z["identities"]) & z["detected"]
            mask[mask] = passes(z["crops"][mask], z["points68"][mask])
            identities = np.array([same_person.get(i, i) for i in z["identities"][mask].tolist()])
            # CFP people who are LFW *evaluation* identities must not calibrate anything: drop them.
            keep = ~np.isin(identities, evaluation)
            parts.append((z["descriptors"][mask][keep].astype(np.float32), identities[keep]))
    identities = np.concatenate([i for _, i in parts])
    assert not set(evaluation) & set(identities.tolist()), "evaluation identity leaked into calibration"
    return np.concatenate([d for d, _ in parts]), identities


@dataclass
class SplitFaces:
    """Detected faces of the prepared data sets with the split each belongs to (`facecodec.eval.splits`)."""

    descriptors: np.ndarray  # N x 512 float32
    identities: np.ndarray  # one name per person across data sets where the names say so (`same_people`)
    splits: np.ndarray  # split name per face
    keys: np.ndarray
    passes: np.ndarray  # the quality gate's verdict
    quality: np.ndarray  # `FaceQuality.score`

    def subset(self, mask: np.ndarray) -> SplitFaces:
        return SplitFaces(*(getattr(self, f)[mask] for f in
                            ("descriptors", "identities", "splits", "keys", "passes", "quality")))


def same_people(cfp_images: Path | None = None, glint: Path | None = None) -> dict[str, str]:
    """CFP and Glint identities -> one name per person: the LFW identity where the person is in LFW,
    else "person/<Name>"; so that photos of one person in two sets never count as impostors."""
    from facecodec.datasets import cfp_names, list_images

    lfw_people = {im.identity.split("/", 1)[1].lower(): im.identity for im in list_images("lfw")}
    named = {cfp_id: name for cfp_id, name in cfp_names(cfp_images).items()}
    try:
        from facecodec.datasets import glint_images

        named |= {im.identity: im.identity.split("/", 1)[1].replace("_", " ") for im in glint_images(glint)}
    except OSError:
        pass
    out = {}
    for identity, name in named.items():
        key = name.strip().replace(" ", "_")
        out[identity] = lfw_people.get(key.lower(), f"person/{key}")
    return out


# Two labels whose photos' mean descriptors are this close are one person: across the sets, 59 label pairs
# score >= 0.6 (misspellings such as CFP's "Jevin Kostner" for LFW's Kevin_Costner, CelebA people who
# are in CFP) and then a gap (64 at 0.55, 305 at 0.45, where unrelated look-alikes begin).
SAME_PERSON_COSINE = 0.6


def merge_same_people(descriptors: np.ndarray, identities: np.ndarray) -> np.ndarray:
    """Identities with every label of one person replaced by one of them (the smallest), so that a
    person's photos under two labels are never each other's impostors, nor a held-out person's
    photos calibration data."""
    from facecodec.openset import unit

    ids, inverse = np.unique(identities, return_inverse=True)
    means = np.zeros((len(ids), descriptors.shape[1]), np.float32)
    np.add.at(means, inverse, unit(descriptors))
    means = unit(means)
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(ids), 2048):  # blocks: 6,000 labels need no 6,000^2 matrix at once
        close = means[start : start + 2048] @ means.T >= SAME_PERSON_COSINE
        for a, b in np.argwhere(close):
            a += start
            if a < b:
                parent[root(b)] = root(a)
    return ids[[root(i) for i in range(len(ids))]][inverse]


def load_split_faces(root: Path, names: tuple[str, ...] = ("lfw", "cfp", "fgnet", "glint", "celeba", "att"),
                     cfp_images: Path | None = None) -> SplitFaces:
    """Every detected face of the prepared sets under `root` that belongs to a split, with its quality."""
    from facecodec.eval.splits import split_of
    from facecodec.frontend.quality import passes, prepared_scores

    people = same_people(cfp_images)
    lists = {"lfw_train": lfw_train_identities(), "lfw_eval": lfw_eval_identities()}
    parts = []
    for name in names:
        path = root / f"{name}.npz"
        if not path.exists():
            continue
        with np.load(path) as z:
            ids, keys = z["identities"], z["keys"]
            split = np.array([split_of(str(i), str(k), **lists) or "" for i, k in zip(ids, keys)])
            mask = z["detected"] & (split != "")
            crops, points = z["crops"][mask], z["points68"][mask]
            parts.append(SplitFaces(z["descriptors"][mask].astype(np.float32),
                                    np.array([people.get(i, i) for i in ids[mask].tolist()]), split[mask],
                                    keys[mask], passes(crops, points), prepared_scores(crops, points)))
    faces = SplitFaces(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                         ("descriptors", "identities", "splits", "keys", "passes", "quality")))
    faces.identities = merge_same_people(faces.descriptors, faces.identities)
    return faces

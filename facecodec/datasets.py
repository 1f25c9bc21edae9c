"""The identity-labelled face sets under `../shared/datasets` and the train/eval identity split.

Learned models train only on LFW `train_identities.txt` + CelebA + AT&T; evaluation uses the LFW
identities of View-2 folds 6-10 (`eval_identities.txt`). This module is the one place that knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facecodec.settings import RuntimeSettings

# `../shared/datasets` beside the checkout; /work/shared/datasets when the checkout lives elsewhere.
CANDIDATE_ROOTS = (Path(__file__).resolve().parents[2] / "shared" / "datasets", Path("/work/shared/datasets"))


def dataset_root() -> Path:
    configured = RuntimeSettings().datasets
    if configured is not None:
        return configured
    return next((p for p in CANDIDATE_ROOTS if p.is_dir()), CANDIDATE_ROOTS[0])


@dataclass(frozen=True)
class FaceImage:
    path: Path
    dataset: str  # lfw | celeba | att | cfp | fgnet | glint | utk
    identity: str  # dataset-qualified, e.g. "lfw/George_W_Bush"
    key: str  # unique within the data set: "Name/Name_0001" for LFW, "451/profile/01" for CFP


def _identities(name: str) -> set[str]:
    return set((dataset_root() / "lfw" / "splits" / name).read_text().split())


def lfw_train_identities() -> set[str]:
    return _identities("train_identities.txt")


def lfw_eval_identities() -> set[str]:
    return _identities("eval_identities.txt")


def list_images(dataset: str) -> list[FaceImage]:
    if dataset == "cfp":
        return cfp_images()
    if dataset == "fgnet":
        return fgnet_images()
    if dataset == "glint":
        return glint_images()
    if dataset == "utk":
        return utk_adult_images()
    folder = {"lfw": "lfw", "celeba": "celeba", "att": "att_faces"}[dataset]
    root = dataset_root() / folder / "images"
    return [
        FaceImage(path, dataset, f"{dataset}/{path.parent.name}", f"{path.parent.name}/{path.stem}")
        for path in sorted(root.glob("*/*"))
        if path.is_file()
    ]


def cfp_images(root: Path | None = None) -> list[FaceImage]:
    """CFP (`<identity>/{frontal,profile}/NN.jpg` anywhere below `root`): by default the 50-identity
    test split in the shared folder; FACECODEC_CFP may name a whole CFP extracted as
    `../shared/datasets/EXTRA.md` says (its `Data/Images`). No model here trains on CFP."""
    root = root or RuntimeSettings().cfp or dataset_root() / "cfp_test" / "images"
    paths = sorted(p for p in root.rglob("*.jpg") if p.parent.name in ("frontal", "profile"))
    return [
        FaceImage(p, "cfp", f"cfp/{p.parent.parent.name}", f"{p.parent.parent.name}/{p.parent.name}/{p.stem}")
        for p in paths
    ]


def fgnet_images(root: Path | None = None) -> list[FaceImage]:
    """FG-NET (`001A02.JPG` = person 001 at age 2), extracted as `../shared/datasets/EXTRA.md` says and
    named by FACECODEC_FGNET: 82 people photographed across their lives. No model here trains on it."""
    root = root or RuntimeSettings().fgnet or dataset_root() / "fgnet" / "images"
    paths = sorted(p for p in root.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [FaceImage(p, "fgnet", f"fgnet/{p.stem[:3]}", p.stem) for p in paths]


def glint_images(root: Path | None = None) -> list[FaceImage]:
    """The Glint360K sample (`<Person Name>/<n>.png`, 112x112 aligned), extracted as
    `../shared/datasets/EXTRA.md` says and named by FACECODEC_GLINT (its `celebrity_images` folder):
    24 people with 22-936 photos each. Which of them may calibrate: `facecodec.eval.splits`."""
    root = root or RuntimeSettings().glint or dataset_root() / "glint" / "celebrity_images"
    paths = sorted((p for p in root.glob("*/*.png")), key=lambda p: (p.parent.name, int(p.stem)))
    return [FaceImage(p, "glint", f"glint/{p.parent.name.replace(' ', '_')}", f"{p.parent.name}/{p.stem}")
            for p in paths]


def utk_adult_images(root: Path | None = None) -> list[FaceImage]:
    """UTKFace photos of people 18 or older (`<age>_<gender>_<race>_<date>.jpg.chip.jpg`), extracted as
    `../shared/datasets/EXTRA.md` says and named by FACECODEC_UTK: no identity labels, so each photo counts
    as its own person. Only ever gallery distractors (galleries of 10,000 need more people than the
    labelled sets have), never probes."""
    root = root or RuntimeSettings().utk or dataset_root() / "utk" / "UTKFace"
    paths = sorted(p for p in root.glob("*.jpg") if p.name.split("_")[0].isdigit() and int(p.name.split("_")[0]) >= 18)
    return [FaceImage(p, "utk", f"utk/{p.name.split('.')[0]}", p.name.split(".")[0]) for p in paths]


# Identities 001-250 of a whole CFP may calibrate the open-set threshold; 251-500 are for evaluation.
CFP_CALIBRATION_MAX_ID = 250


def cfp_names(images_root: Path | None = None) -> dict[str, str]:
    """CFP identity ("cfp/451") -> person's name, from the test split's labels.csv and, for a whole CFP,
    the `list_name.txt` beside its `Images` folder. Used to keep people who are in both CFP and LFW
    out of a gallery whose strangers they would otherwise be."""
    names = {}
    labels = dataset_root() / "cfp_test" / "labels.csv"
    if labels.exists():
        for line in labels.read_text().splitlines()[1:]:
            _, identity, name, _ = line.split(",")
            names[f"cfp/{identity}"] = name
    root = images_root or RuntimeSettings().cfp
    if root is not None and (root.parent / "list_name.txt").exists():
        for i, name in enumerate((root.parent / "list_name.txt").read_text().splitlines(), start=1):
            names[f"cfp/{i:03d}"] = name.strip()
    return names


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

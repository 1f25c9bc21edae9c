"""Which identities calibrate the open-set threshold and which only ever evaluate it: one rule per data set.

Every face set is split *by person*, so that no one whose photos set a threshold is ever a probe or a
gallery entry of the figures that check it. The rules (reproducible from identities and file names alone):

- LFW: calibration `lfw/splits/train_identities.txt`; held out `lfw` = `eval_identities.txt` (folds 6-10).
- CFP (whole, 500 people): calibration 001-250 less the LFW evaluation people; held out `cfp_heldout` = 251-500.
- FG-NET (82 people): calibration = even person numbers, photos at age >= 18; held out = odd person numbers,
  split into `fgnet_adults` (age >= 18) and `fgnet_children` (age < 18).
- Glint360K sample (24 people): calibration = those not in `GLINT_HELDOUT_PEOPLE`, who are never used.
- CelebA slice: calibration = even CelebA identity numbers; held out `celeba_heldout` = odd numbers.
- AT&T (40 people, grey lab photos): calibration only.

FG-NET ages come from the file name (`001A43a` = person 001 at 43; they agree with `annotations.csv` for
all 1,002 photos); "adult" is `ADULT_AGE` or older. Photos of even-numbered FG-NET people under
`ADULT_AGE` (`fgnet_calibration_children`) are on the calibration side too: free for tuning a children
flag, never for measuring it. `GLINT_HELDOUT_PEOPLE` are the Glint people who are LFW evaluation
identities or CFP identities 251-500 (matched by name): calibrating on them would tune on held-out people.
"""

from __future__ import annotations

import re

import numpy as np

ADULT_AGE = 18
CFP_CALIBRATION_MAX_ID = 250  # also `facecodec.datasets.CFP_CALIBRATION_MAX_ID`

# Glint sample people who are LFW evaluation identities (first eight) or CFP 251-500 (the rest).
GLINT_HELDOUT_PEOPLE = frozenset({
    "Gwyneth Paltrow", "Halle Berry", "Jennifer Aniston", "Jennifer Lopez", "Jessica Alba", "Simon Cowell",
    "Tom Hanks", "Victoria Beckham",
    "Kate Winslet", "Keanu Reeves", "Keira Knightley", "Leonardo DiCaprio", "Miley Cyrus", "Robert Downey Jr",
    "Will Smith",
})

HELDOUT_SPLITS = ("lfw", "cfp_heldout", "fgnet_adults", "fgnet_children", "celeba_heldout")
ADULT_HELDOUT_SPLITS = ("lfw", "cfp_heldout", "fgnet_adults", "celeba_heldout")
CALIBRATION_SPLITS = ("lfw_train", "cfp_calibration", "fgnet_calibration", "glint_calibration",
                      "celeba_calibration", "att")


def fgnet_age(key: str) -> int:
    """Age in an FG-NET file stem: `001A43a` -> 43."""
    match = re.match(r"(\d{3})A(\d+)", key.rsplit("/", 1)[-1])
    if match is None:
        raise ValueError(f"not an FG-NET file name: {key}")
    return int(match.group(2))


def fgnet_person(key: str) -> int:
    return int(key.rsplit("/", 1)[-1][:3])


def fgnet_is_calibration_person(person: int) -> bool:
    return person % 2 == 0


def _number(identity: str) -> int:
    return int(identity.split("/", 1)[1])


def split_of(identity: str, key: str, lfw_train: set[str] | None = None,
             lfw_eval: set[str] | None = None) -> str | None:
    """The split one face belongs to (a name from `HELDOUT_SPLITS` or `CALIBRATION_SPLITS`, or
    "fgnet_calibration_children"), or None when it is in none. `identity` is dataset-qualified
    ("lfw/Name", "cfp/451", "fgnet/001", "glint/Tom_Hanks", "celeba/123", "att/s1"); `key` the file key
    (FG-NET's file stem). LFW's lists default to `facecodec.datasets`' (needs ../shared/datasets)."""
    dataset, name = identity.split("/", 1)
    if dataset == "lfw":
        if lfw_train is None or lfw_eval is None:
            from facecodec.datasets import lfw_eval_identities, lfw_train_identities

            lfw_train, lfw_eval = lfw_train_identities(), lfw_eval_identities()
        return "lfw_train" if name in lfw_train else "lfw" if name in lfw_eval else None
    if dataset == "cfp":
        return "cfp_calibration" if _number(identity) <= CFP_CALIBRATION_MAX_ID else "cfp_heldout"
    if dataset == "fgnet":
        adult = fgnet_age(key) >= ADULT_AGE
        if fgnet_is_calibration_person(fgnet_person(key)):
            return "fgnet_calibration" if adult else "fgnet_calibration_children"
        return "fgnet_adults" if adult else "fgnet_children"
    if dataset == "glint":
        return None if name.replace("_", " ") in GLINT_HELDOUT_PEOPLE else "glint_calibration"
    if dataset == "celeba":
        return "celeba_calibration" if _number(identity) % 2 == 0 else "celeba_heldout"
    if dataset == "att":
        return "att"
    return None


def split_mask(split: str, identities: np.ndarray, keys: np.ndarray, **lfw_lists) -> np.ndarray:
    """Boolean mask of the faces (parallel arrays of identities and keys) that belong to `split`."""
    if not lfw_lists and any(str(i).startswith("lfw/") for i in identities):
        from facecodec.datasets import lfw_eval_identities, lfw_train_identities

        lfw_lists = {"lfw_train": lfw_train_identities(), "lfw_eval": lfw_eval_identities()}
    return np.array([split_of(str(i), str(k), **lfw_lists) == split for i, k in zip(identities, keys)], bool)

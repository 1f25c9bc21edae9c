"""Match thresholds calibrated on training identities, stored beside each base layer's weights.

    python -m facecodec.train.prepare --out data/faces --datasets att celeba lfw cfp fgnet
    python -m facecodec.train.prepare --out data/faces --datasets glint --per-identity 100
    python -m facecodec.train.calibrate --faces data/faces

(with FACECODEC_CFP, FACECODEC_FGNET and FACECODEC_GLINT naming the whole CFP's `Data/Images`, FG-NET's
`images` and the Glint sample's `celebrity_images`, extracted as `../shared/datasets/EXTRA.md` says).
For every base layer in facecodec/weights, codes the *calibration-side* faces, decodes them, and
records in the weights' JSON sidecar:

- `open_set`: impostor score tails of identity templates (1, 2, 3+ enrolment images, float
  descriptors) against probes (1, 2, 3+ fused frames of decoded base layers), per quality band, over
  the faces that pass the quality gate of every calibration split of `facecodec.eval.splits` (LFW
  training identities, CFP 001-250, FG-NET even-numbered adults, the Glint sample's people who are in
  no held-out split, CelebA even identities, AT&T), at most `PER_IDENTITY` photos of a person; and
  each cell's check on galleries of each source (`facecodec.openset_checks`). The analyzer derives its
  operating threshold from them for a target FPIR and its current gallery.
- `match_threshold`: the cosine at FAR=1e-3 per *pair* of LFW training faces: a reference figure
  (and the threshold of the decision analyzers made before the open-set one, which the open-set
  benchmark reports as "before").

Decoded descriptors of a coarse rate point sit closer together than float32 ones, so each base layer
gets its own figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facecodec import openset
from facecodec.codec.profiles import PROFILES, WEIGHTS, FaceCodec
from facecodec.datasets import lfw_eval_identities
from facecodec.eval.metrics import all_pairs_scores, far_threshold, tar_at_far
from facecodec.train.data import SplitFaces, load_split_faces, load_training_faces

FAR = 1e-3


def _coded(codec: FaceCodec, descriptors: np.ndarray) -> np.ndarray:
    return np.stack([codec.base.decode(codec.base.encode(x)) for x in descriptors])


PER_IDENTITY = 30  # photos of one person at most: Glint's hundreds would outweigh everyone else
SOURCE_NAMES = {"lfw_train": "LFW training identities", "cfp_calibration": "CFP 001-250",
                "fgnet_calibration": "FG-NET even-numbered people (adult photos)",
                "glint_calibration": "Glint360K sample", "celeba_calibration": "CelebA even identities",
                "att": "AT&T"}


def calibration_faces(root: Path, cfp_images: Path | None = None) -> SplitFaces:
    """The calibration side's faces that pass the quality gate, at most `PER_IDENTITY` per person."""
    from facecodec.eval.splits import CALIBRATION_SPLITS, HELDOUT_SPLITS

    faces = load_split_faces(root, cfp_images=cfp_images)
    # CFP 001-250 people who are LFW evaluation people (by name) carry that LFW identity: they stay out.
    evaluation = {f"lfw/{n}" for n in lfw_eval_identities()}
    # ... and so does anyone who is also in a held-out split under another label (`merge_same_people`).
    held_out = set(faces.identities[np.isin(faces.splits, HELDOUT_SPLITS)].tolist())
    faces = faces.subset(np.isin(faces.splits, CALIBRATION_SPLITS) & faces.passes
                         & ~np.isin(faces.identities, list(evaluation | held_out)))
    keep = np.zeros(len(faces.identities), bool)
    rng = np.random.default_rng(0)
    for person in np.unique(faces.identities):
        idx = np.flatnonzero(faces.identities == person)
        keep[rng.permutation(idx)[:PER_IDENTITY]] = True
    assert not evaluation & set(faces.identities[keep].tolist()), "evaluation identity leaked into calibration"
    return faces.subset(keep)


def describe(faces: SplitFaces) -> str:
    """"calibrated on ...": each source with its people and photos."""
    parts = []
    for split, name in SOURCE_NAMES.items():
        m = faces.splits == split
        if m.any():
            parts.append(f"{name} ({len(np.unique(faces.identities[m]))} people, {int(m.sum())} photos)")
    return ", ".join(parts)


def calibrate(codec: FaceCodec, pairs: tuple[np.ndarray, np.ndarray], open_set: SplitFaces) -> dict:
    genuine, impostor = all_pairs_scores(_coded(codec, pairs[0]), pairs[1])
    sources = describe(open_set)
    calibration = openset.calibrate(open_set.descriptors, open_set.identities, _coded(codec, open_set.descriptors),
                                    sources=open_set.splits, quality=open_set.quality, described_as=sources)
    return {"match_threshold": far_threshold(impostor, FAR), "match_threshold_far": FAR,
            "match_threshold_tar_train": tar_at_far(genuine, impostor, FAR),
            "match_threshold_faces": int(len(pairs[0])),
            # Templates are enrolled from the float descriptor; probes arrive as decoded base layers.
            "open_set": calibration.to_json(),
            "open_set_faces": int(len(open_set.descriptors)), "open_set_sources": sources}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--cfp-images", type=Path, default=None,
                        help="that CFP's Data/Images folder, for its names (default FACECODEC_CFP)")
    parser.add_argument("--rates", type=int, nargs="+", help="only these learned rate ids (default: every base layer)")
    args = parser.parse_args(argv)
    faces = load_training_faces(args.faces)
    # Pair thresholds from in-the-wild faces, like the cameras'; open-set tails from every training face.
    lfw = np.char.startswith(faces.identities.astype(str), "lfw/")
    pairs = (faces.descriptors[lfw], faces.identities[lfw])
    open_set = calibration_faces(args.faces, args.cfp_images)
    done: set[str] = set()
    for spec in PROFILES.values():
        for rate, weights in spec.base_files.items():
            if weights in done:  # profiles that differ only in prediction share a base layer
                continue
            if args.rates and (spec.base_kind != "learned" or rate not in args.rates):
                continue
            done.add(weights)
            sidecar = (WEIGHTS / weights).with_suffix(".json")
            report = json.loads(sidecar.read_text()) if sidecar.exists() else {}
            report |= calibrate(FaceCodec(spec, rate), pairs, open_set)
            sidecar.write_text(json.dumps(report, indent=2) + "\n")
            print(f"{spec.name} rate {rate}: threshold {report['match_threshold']:.4f} "
                  f"(TAR {report['match_threshold_tar_train']:.4f} at FAR {FAR} on training identities)")


if __name__ == "__main__":
    main()

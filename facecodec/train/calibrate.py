"""Match thresholds calibrated on training identities, stored beside each base layer's weights.

    python -m facecodec.train.calibrate [--faces data/faces]

For every base layer in facecodec/weights, codes the *training-identity* faces, decodes them, and
records in the weights' JSON sidecar:

- `open_set`: impostor score tails of identity templates (1, 2, 3+ enrolment images, float
  descriptors) against probes (1, 2, 3+ fused frames of decoded base layers), over the faces that
  pass the quality gate of LFW training identities + CelebA + AT&T, and with `--cfp` CFP identities
  001-250 (`facecodec.openset`). The analyzer derives its operating threshold from them for a target
  FPIR and its current gallery.
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
from facecodec.eval.metrics import all_pairs_scores, far_threshold, tar_at_far
from facecodec.train.data import load_calibration_faces, load_training_faces

FAR = 1e-3


def _coded(codec: FaceCodec, descriptors: np.ndarray) -> np.ndarray:
    return np.stack([codec.base.decode(codec.base.encode(x)) for x in descriptors])


def calibrate(codec: FaceCodec, pairs: tuple[np.ndarray, np.ndarray], open_set: tuple[np.ndarray, np.ndarray],
              sources: str) -> dict:
    genuine, impostor = all_pairs_scores(_coded(codec, pairs[0]), pairs[1])
    return {"match_threshold": far_threshold(impostor, FAR), "match_threshold_far": FAR,
            "match_threshold_tar_train": tar_at_far(genuine, impostor, FAR),
            "match_threshold_faces": int(len(pairs[0])),
            # Templates are enrolled from the float descriptor; probes arrive as decoded base layers.
            "open_set": openset.calibrate(open_set[0], open_set[1], _coded(codec, open_set[0])).to_json(),
            "open_set_faces": int(len(open_set[0])), "open_set_sources": sources}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--cfp", type=Path, default=None,
                        help="a whole CFP run through prepare: its identities 001-250 join the open-set calibration")
    parser.add_argument("--cfp-images", type=Path, default=None,
                        help="that CFP's Data/Images folder, for its names (default FACECODEC_CFP)")
    parser.add_argument("--rates", type=int, nargs="+", help="only these learned rate ids (default: every base layer)")
    args = parser.parse_args(argv)
    faces = load_training_faces(args.faces)
    # Pair thresholds from in-the-wild faces, like the cameras'; open-set tails from every training face.
    lfw = np.char.startswith(faces.identities.astype(str), "lfw/")
    pairs = (faces.descriptors[lfw], faces.identities[lfw])
    open_set = load_calibration_faces(args.faces, args.cfp, args.cfp_images)
    sources = "LFW training identities + CelebA + AT&T" + (" + CFP 001-250" if args.cfp else "")
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
            report |= calibrate(FaceCodec(spec, rate), pairs, open_set, sources)
            sidecar.write_text(json.dumps(report, indent=2) + "\n")
            print(f"{spec.name} rate {rate}: threshold {report['match_threshold']:.4f} "
                  f"(TAR {report['match_threshold_tar_train']:.4f} at FAR {FAR} on training identities)")


if __name__ == "__main__":
    main()

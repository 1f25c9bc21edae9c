"""Train the learned enhancement layer (conditional residual coder) or the single-layer codec.

    python -m facecodec.train.enhancement --name recognition --texture recognition [--device cuda]
    python -m facecodec.train.enhancement --name single --single-layer [--device cuda]
    python -m facecodec.train.enhancement --name recognition --texture recognition --export

The conditional coder learns on (crop, generated face) pairs: the generated face is what the decoder
will have, G(decoded base layer), rounded to 8 bits exactly as served, so runs/texture_<texture>
must exist (`facecodec.train.texture`). `--single-layer` codes the crop alone with the same
transforms: the reference for the cost of scalability.

Each step draws a quality per face, loss = lambda_q * 255^2 * MSE + bits per pixel (CompressAI's
rate-distortion loss), plus the EntropyBottleneck's auxiliary loss. Training identities only. Checkpoints
every 1,000 steps in runs/enhancement_<name>/ (`--resume`), progress on stdout. `--export` (CPU,
needs onnxruntime) writes facecodec/weights/enhancement_<name>.npz (ONNX transforms, integer
hyper-synthesis, frozen CDF tables) and its validation figures (bpp and PSNR per quality through the
serving path) in enhancement_<name>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecodec.models.feature_codec import FeatureCodec
from facecodec.models.generator import Generator
from facecodec.models.residual_codec import ResidualCodec
from facecodec.train.augment import degraded_copies
from facecodec.train.checkpoint import load_checkpoint, save_checkpoint
from facecodec.train.cli import WEIGHTS, add_run_arguments, training_split
from facecodec.train.data import Faces, concat
from facecodec.train.enhancement_export import load_exported, predictions
from facecodec.train.texture import describe


@torch.no_grad()
def generated_faces(texture_ckpt: Path, base: Path, descriptors: np.ndarray, device: torch.device) -> torch.Tensor:
    """G(decoded base layer) for every face, uint8 N x 3 x 112 x 112: the decoder's side information."""
    state = torch.load(texture_ckpt, map_location=device, weights_only=False)
    codec = FeatureCodec.from_export(str(base)).to(device)
    codec.load_state_dict(state["codec"])
    generator = Generator().to(device)
    generator.load_state_dict(state["generator"])
    codec.eval()
    generator.eval()
    out = []
    for i in range(0, len(descriptors), 256):
        d = torch.from_numpy(descriptors[i : i + 256]).to(device)
        out.append(torch.round(generator(codec(d)["x_hat"]) * 255).to(torch.uint8))
    return torch.cat(out)


def fit_prior(model: ResidualCodec, x: torch.Tensor, x_gen: torch.Tensor, steps: int = 500) -> float:
    """Fit the hyper-latent prior alone, everything else fixed; returns its bits per pixel.

    An exported coder keeps that prior only as frozen tables (`load_exported` starts it fresh), and
    fine-tuning against a prior that costs ~0.2 bpp instead of ~0.01 would first push the transforms
    off their trained point.
    """
    with torch.no_grad():
        z = torch.cat([model.h_a(model.analysis(x, x_gen) * model.gains(torch.full((len(x),), q, device=x.device))[0])
                       for q in range(model.qualities)])
    eb = model.entropy_bottleneck
    optimizer = torch.optim.Adam([p for n, p in eb.named_parameters() if not n.endswith("quantiles")], lr=1e-2)
    for _ in range(steps):
        _, likelihoods = eb(z)
        bpp = -torch.log2(likelihoods).sum() / len(z) / (x.shape[2] * x.shape[3])
        optimizer.zero_grad()
        bpp.backward()
        optimizer.step()
    return bpp.item()


def side_information(args: argparse.Namespace, descriptors: np.ndarray, device: torch.device) -> torch.Tensor:
    """The generated faces from the texture run's checkpoint, or else from its exported weights
    through the serving path (`facecodec/weights/generator_<texture>.npz`): fine-tuning a committed
    coder needs no training checkpoint."""
    ckpt = args.runs / f"texture_{args.texture}" / "checkpoint.pt"
    if ckpt.exists():
        return generated_faces(ckpt, args.base, descriptors, device)
    print(f"{ckpt} not found: generated faces from {args.out}/generator_{args.texture}.npz", flush=True)
    return torch.from_numpy(predictions(args.texture, descriptors, args.out)).to(device).permute(0, 3, 1, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--texture", help="texture run (runs/texture_<name>) that gives the generated face")
    parser.add_argument("--single-layer", action="store_true")
    parser.add_argument("--base", type=Path, default=WEIGHTS / "base_learned_r4.npz")
    parser.add_argument("--channels", type=int, default=96, help="N: width of the transforms")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--init", type=Path, help="start from these weights (a checkpoint, or an exported "
                        "enhancement_*.npz), with a fresh schedule")
    parser.add_argument("--augment", action="store_true",
                        help="add one camera-like degraded copy of every training face (facecodec.train.augment)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if args.single_layer == bool(args.texture):
        parser.error("give exactly one of --texture NAME or --single-layer")

    torch.manual_seed(0)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    faces, val_mask, train_idx, val_idx = training_split(args)
    run_dir = args.runs / f"enhancement_{args.name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"
    model = ResidualCodec(N=args.channels, conditional=not args.single_layer).to(device)

    if args.export:
        from facecodec.train.enhancement_export import export, validate

        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model = ResidualCodec(N=state.get("channels", 64), conditional=not args.single_layer)
        model.load_state_dict(state["model"])
        path = args.out / f"enhancement_{args.name}.npz"
        export(model.cpu(), path)
        described = describe(faces, torch.device("cpu"))
        report = {"command": f"python -m facecodec.train.enhancement {' '.join(state['argv'])}",
                  "steps": state["step"], "train_faces": int(len(train_idx)),
                  "conditional": not args.single_layer, "texture": args.texture,
                  **validate(path, args.texture, faces.crops[val_idx], described[val_idx], args.out),
                  "weights_bytes": path.stat().st_size}
        path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return

    if args.augment:  # degraded copies join the training rows; validation stays on clean faces
        copies = Faces(degraded_copies(faces.crops[train_idx]), np.zeros((len(train_idx), 0), np.float32),
                       faces.identities[train_idx], faces.keys[train_idx])
        described = [replace(f, descriptors=describe(f, device)) for f in (faces, copies)]
        train_idx = np.concatenate([train_idx, len(faces.crops) + np.arange(len(train_idx))])
        faces = concat(described)
    crops = torch.from_numpy(faces.crops).to(device).permute(0, 3, 1, 2).contiguous()
    if args.single_layer:
        side = torch.zeros_like(crops)
    else:  # the base layer's architecture comes from --base; its weights from the texture run
        side = side_information(args, describe(faces, device), device)
    lmbdas = torch.tensor(model.lmbdas, device=device)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=args.lr)
    aux_optimizer = torch.optim.Adam([p for n, p in model.named_parameters() if n.endswith(".quantiles")], lr=1e-3)
    # 500 warm-up steps, then cosine from lr to lr/20: the entropy models are unstable at full lr from scratch.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 500) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / args.steps))))
    step = 0
    if args.init and not (args.resume and ckpt.exists()):  # fine-tuning: weights only, new optimiser
        if args.init.suffix == ".npz":
            model.load_state_dict(load_exported(args.init).state_dict())
            rows = torch.from_numpy(train_idx[:512]).to(device)
            bpp = fit_prior(model, crops[rows].float() / 255.0, side[rows].float() / 255.0)
            print(f"hyper-latent prior re-fitted: {bpp:.4f} bpp", flush=True)
        else:
            model.load_state_dict(torch.load(args.init, map_location=device, weights_only=False)["model"])
        print(f"initialised from {args.init}", flush=True)
    parts = {"model": model, "optimizer": optimizer, "aux_optimizer": aux_optimizer, "scheduler": scheduler}
    if args.resume and ckpt.exists():
        step = load_checkpoint(ckpt, parts, device)["step"]
        print(f"resumed at step {step}", flush=True)

    def save() -> None:
        save_checkpoint(ckpt, parts, step=step, channels=args.channels,
                        argv=sys.argv[1:] if argv is None else argv)

    print(f"train {len(train_idx)} faces; {args.steps} steps of {args.batch} on {device}; "
          f"qualities {model.lmbdas}", flush=True)
    train = torch.from_numpy(train_idx).to(device)
    pixels = crops.shape[2] * crops.shape[3]
    sums, t0 = np.zeros(3), time.time()
    model.train()
    while step < args.steps:
        idx = train[torch.randint(len(train), (args.batch,), device=device)]
        x, x_gen = crops[idx].float() / 255.0, side[idx].float() / 255.0
        flip = torch.rand(args.batch, device=device) < 0.5  # mirror crop and side information together
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x_gen = torch.where(flip[:, None, None, None], x_gen.flip(-1), x_gen)
        q = torch.randint(model.qualities, (args.batch,), device=device)
        out = model(x, x_gen, q)
        mse = ((out["x_hat"] - x) ** 2).mean((1, 2, 3))
        bpp = sum(-torch.log2(lk).sum((1, 2, 3)) for lk in out["likelihoods"]) / pixels
        loss = (lmbdas[q] * 255**2 * mse + bpp).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(main_params, 1.0)
        optimizer.step()
        scheduler.step()
        aux = model.aux_loss()
        aux_optimizer.zero_grad()
        aux.backward()
        aux_optimizer.step()
        step += 1
        sums += [loss.item(), bpp.mean().item(), (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean().item()]
        if step % 200 == 0:
            print(f"step {step}/{args.steps}  loss {sums[0] / 200:.3f}  bpp {sums[1] / 200:.3f}  "
                  f"psnr {sums[2] / 200:.2f} dB (mixed qualities)  ({time.time() - t0:.0f}s)", flush=True)
            sums[:] = 0
        if step % 1000 == 0:
            save()
        if args.max_minutes and time.time() - t0 > 60 * args.max_minutes:
            print(f"stopping at step {step}: --max-minutes reached (resume with --resume)", flush=True)
            break
    save()


if __name__ == "__main__":
    main()

"""Train one rate point of the learned base layer and export it for serving.

    python -m facecodec.train.feature_codec --rate-id 2 --lmbda 0.004 [--epochs 400] [--resume]

Trains on training identities only (LFW train split + CelebA + AT&T, from `facecodec.train.prepare`),
keeps 10% of those identities aside for validation, and never sees an evaluation identity.
Loss = (1 - cos(x, x_hat)) + lmbda * bits/face; the EntropyBottleneck's auxiliary loss is optimised
alongside. Checkpoints every 25 epochs in runs/feature_codec_r<id>/ (resumable with --resume);
the export `facecodec/weights/base_learned_r<id>.npz` holds the ONNX transforms and the frozen
integer CDF tables, and `facecodec/weights/base_learned_r<id>.json` its validation figures.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecodec.codec.base_layer import LearnedBaseLayer
from facecodec.eval.metrics import best_threshold
from facecodec.models.feature_codec import Analysis, FeatureCodec, Synthesis
from facecodec.train.checkpoint import load_checkpoint, save_checkpoint
from facecodec.train.data import load_training_faces

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def split_identities(identities: np.ndarray, seed: int = 0, val_fraction: float = 0.1) -> np.ndarray:
    """Mask of validation rows: whole identities, chosen at random from the training identities."""
    rng = np.random.default_rng(seed)
    names = np.unique(identities)
    val = set(rng.choice(names, size=int(len(names) * val_fraction), replace=False).tolist())
    return np.array([i in val for i in identities])


def recognition_loss(x_hat: torch.Tensor, x: torch.Tensor, pairwise: float) -> torch.Tensor:
    """1 - cos(x, x_hat), plus keeping in-batch similarities: verification compares x_hat_a . x_hat_b."""
    loss = (1 - (x_hat * x).sum(-1)).mean()
    if pairwise:
        loss = loss + pairwise * ((x_hat @ x_hat.T - x @ x.T) ** 2).mean()
    return loss


def pair_accuracy(descriptors: np.ndarray, identities: np.ndarray) -> float:
    """Best-threshold accuracy over all genuine pairs and as many random impostor pairs: a quick,
    label-only proxy for verification accuracy on validation identities (selection, not reporting)."""
    sims = descriptors @ descriptors.T
    iu = np.triu_indices(len(descriptors), 1)
    same = (identities[:, None] == identities[None])[iu]
    genuine, impostor = sims[iu][same], sims[iu][~same]
    # Balanced: as many impostor pairs as genuine ones (fewer only when tiny sets have fewer).
    impostor = np.random.default_rng(0).choice(impostor, size=min(len(genuine), len(impostor)), replace=False)
    scores = np.concatenate([genuine, impostor])
    labels = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    return float(np.mean((scores >= best_threshold(scores, labels)) == labels))


def onnx_bytes(module: nn.Module, example: torch.Tensor, input_name: str, output_name: str) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, opset_version=17,
                      input_names=[input_name], output_names=[output_name],
                      dynamic_axes={input_name: {0: "n"}, output_name: {0: "n"}})
    return buffer.getvalue()


def export(model: FeatureCodec, path: Path, name: str) -> None:
    model.eval()
    eb = model.entropy_bottleneck
    eb.update(force=True)
    medians = eb._get_medians().detach().reshape(-1).numpy().astype(np.float32)
    cdfs = eb._quantized_cdf.numpy().astype(np.int32)
    lengths = eb._cdf_length.numpy().astype(np.int32)
    offsets = eb._offset.numpy().astype(np.int32)
    analysis = onnx_bytes(Analysis(model), torch.zeros(1, 512), "descriptor", "latent")
    synthesis = onnx_bytes(Synthesis(model), torch.zeros(1, model.latent), "latent", "descriptor")
    # The torch state rides along so tests can check torch and onnxruntime agree bit for bit.
    torch_state = {f"torch/{k}": v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez(path, name=name, medians=medians, cdfs=cdfs, lengths=lengths, offsets=offsets,
             analysis_onnx=np.frombuffer(analysis, np.uint8), synthesis_onnx=np.frombuffer(synthesis, np.uint8),
             latent=model.latent, hidden=model.hidden, **torch_state)


def measure(path: Path, descriptors: np.ndarray, identities: np.ndarray) -> dict[str, float]:
    """Coded size, cosine and pair accuracy of an exported base layer, through the serving path."""
    codec = LearnedBaseLayer(path)
    payloads = [codec.encode(x) for x in descriptors]
    decoded = np.stack([codec.decode(p) for p in payloads])
    return {
        "val_bytes_per_face": float(np.mean([len(p) for p in payloads])),
        "val_mean_cosine": float(np.mean(np.sum(decoded * descriptors, axis=1))),
        "val_pair_accuracy": pair_accuracy(decoded, identities),
        "val_pair_accuracy_float32": pair_accuracy(descriptors, identities),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate-id", type=int, required=True)
    parser.add_argument("--lmbda", type=float, required=True, help="weight of bits/face against 1 - cosine")
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=0, help="hidden width of the transforms; 0 = linear")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--noise", type=float, default=0.01, help="input noise std (regularises the transform)")
    parser.add_argument("--pairwise", type=float, default=2.0,
                        help="weight of the in-batch similarity-preservation term (what verification compares)")
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    faces = load_training_faces(args.faces)
    val_mask = split_identities(faces.identities, args.seed)
    x_train = torch.from_numpy(faces.descriptors[~val_mask])
    x_val = torch.from_numpy(faces.descriptors[val_mask])
    print(f"train {len(x_train)} faces, validation {len(x_val)} faces (held-out training identities)", flush=True)

    model = FeatureCodec(latent=args.latent, hidden=args.hidden)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=args.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, eta_min=args.lr * 0.02)
    run_dir = args.runs / f"feature_codec_r{args.rate_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    start_epoch = 0
    parts = {"model": model, "optimizer": optimizer, "aux_optimizer": aux_optimizer, "scheduler": scheduler}
    if args.resume and ckpt_path.exists():
        start_epoch = load_checkpoint(ckpt_path, parts)["epoch"]
        print(f"resumed from {ckpt_path} at epoch {start_epoch}", flush=True)

    started = time.time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        order = torch.randperm(len(x_train))
        totals = np.zeros(3)
        for i in range(0, len(order), args.batch):
            x = x_train[order[i : i + args.batch]]
            x_in = nn.functional.normalize(x + args.noise * torch.randn_like(x), dim=-1)
            out = model(x_in)
            distortion = recognition_loss(out["x_hat"], x, args.pairwise)
            bits = -torch.log2(out["likelihoods"]).sum() / len(x)
            loss = distortion + args.lmbda * bits
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(main_params, 1.0)
            optimizer.step()
            aux_loss = model.aux_loss()
            aux_optimizer.zero_grad()
            aux_loss.backward()
            aux_optimizer.step()
            totals += [loss.item() * len(x), distortion.item() * len(x), bits.item() * len(x)]
        scheduler.step()
        if (epoch + 1) % 25 == 0 or epoch + 1 == args.epochs:
            model.eval()
            with torch.no_grad():
                val = model(x_val)
                val_cos = (val["x_hat"] * x_val).sum(-1).mean().item()
                val_bytes = (-torch.log2(val["likelihoods"]).sum() / len(x_val)).item() / 8
            n = len(x_train)
            print(f"epoch {epoch + 1}/{args.epochs}  loss {totals[0] / n:.4f}  1-cos {totals[1] / n:.4f}  "
                  f"{totals[2] / n / 8:.1f} B/face  | val cos {val_cos:.4f}  {val_bytes:.1f} B/face  "
                  f"({time.time() - started:.0f}s)", flush=True)
            save_checkpoint(ckpt_path, parts, epoch=epoch + 1, args=vars(args))

    name = f"learned-r{args.rate_id}(latent={args.latent},hidden={args.hidden},lmbda={args.lmbda:g})"
    path = args.out / f"base_learned_r{args.rate_id}.npz"
    export(model, path, name)
    report = {
        "name": name,
        "command": "python -m facecodec.train.feature_codec " + " ".join(sys.argv[1:] if argv is None else argv),
        "train_faces": int(len(x_train)), "val_faces": int(len(x_val)),
        **measure(path, faces.descriptors[val_mask], faces.identities[val_mask]),
        "weights_bytes": path.stat().st_size, "epochs": args.epochs,
    }
    (args.out / f"base_learned_r{args.rate_id}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2), flush=True)
    if not math.isfinite(report["val_mean_cosine"]):
        raise SystemExit("training diverged")


if __name__ == "__main__":
    main()

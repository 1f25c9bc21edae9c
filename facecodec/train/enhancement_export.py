"""Export a trained `ResidualCodec` for serving and measure it through the serving path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from onnx import numpy_helper
from torch import nn

from facecodec.codec.compact_onnx import compact, restore
from facecodec.codec.integer_net import FRACTION_BITS, WEIGHT_BITS
from facecodec.eval.metrics import psnr
from facecodec.models.residual_codec import LATENT_SIZE, Analysis, HyperAnalysis, ResidualCodec, Synthesis, scale_table

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def _onnx(module: nn.Module, inputs: dict[str, torch.Tensor], output: str, prefix: str) -> dict[str, np.ndarray]:
    buffer = io.BytesIO()
    names = list(inputs)
    torch.onnx.export(module.eval(), tuple(inputs.values()), buffer, dynamo=False, opset_version=17,
                      input_names=names, output_names=[output])
    return compact(buffer.getvalue(), prefix)


def quantise_hyper_synthesis(h_s: nn.Sequential) -> dict[str, np.ndarray]:
    """Fixed-point weights of `h_s` (Upsample, then Conv3x3/ReLU pairs) for serving's integer network."""
    convs = [m for m in h_s if isinstance(m, nn.Conv2d)]
    out: dict[str, np.ndarray] = {}
    for i, c in enumerate(convs):
        if c.kernel_size != (3, 3) or c.stride != (1, 1) or c.padding != (1, 1):
            raise ValueError("integer h_s supports 3x3 stride-1 convolutions only")
        w = c.weight.detach().double().numpy()
        b = c.bias.detach().double().numpy()
        fixed = {f"h_s{i}_weight": np.round(w * 2**WEIGHT_BITS), f"h_s{i}_bias": np.round(b * 2**FRACTION_BITS)}
        for key, value in fixed.items():
            if np.abs(value).max() >= 2**31:
                raise ValueError(f"{key} does not fit the int32 it is stored as")
            out[key] = value.astype(np.int32)  # the serving code widens to int64 before any arithmetic
    return out


class WithoutSideInformation(nn.Module):
    """The single-layer graphs take one input: the side-information argument is fixed (and unused)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.inner(a, torch.zeros(1, 3, 112, 112))


def export(model: ResidualCodec, path: Path) -> None:
    model.eval()
    eb, gc = model.entropy_bottleneck, model.gaussian_conditional
    eb.update(force=True)
    gc.update_scale_table(scale_table(), force=True)
    image = torch.zeros(1, 3, 112, 112)
    latent = torch.zeros(1, model.M, LATENT_SIZE, LATENT_SIZE)
    inputs = {"x": image, "x_gen": image} if model.conditional else {"x": image}
    synthesis_inputs = {"y_hat": latent, "x_gen": image} if model.conditional else {"y_hat": latent}
    analysis = Analysis(model) if model.conditional else WithoutSideInformation(Analysis(model))
    synthesis = Synthesis(model) if model.conditional else WithoutSideInformation(Synthesis(model))
    np.savez_compressed(  # the zero-padded CDF tables compress ~10x
        path,
        **_onnx(analysis, inputs, "y", "analysis"),
        **_onnx(HyperAnalysis(model), {"y": latent}, "z", "hyper_analysis"),
        **_onnx(synthesis, synthesis_inputs, "x_hat", "synthesis"),
        gain=model.log_gain.detach().exp().numpy(), inverse_gain=model.log_inverse_gain.detach().exp().numpy(),
        lmbdas=np.array(model.lmbdas), conditional=model.conditional,
        z_medians=eb._get_medians().detach().reshape(-1).numpy(), z_size=4,
        z_cdfs=eb._quantized_cdf.numpy().astype(np.int32), z_lengths=eb._cdf_length.numpy().astype(np.int32),
        z_offsets=eb._offset.numpy().astype(np.int32),
        y_cdfs=gc._quantized_cdf.numpy().astype(np.int32), y_lengths=gc._cdf_length.numpy().astype(np.int32),
        y_offsets=gc._offset.numpy().astype(np.int32), scale_table=scale_table().numpy(),
        **quantise_hyper_synthesis(model.h_s),
    )


def load_exported(path: Path) -> ResidualCodec:
    """A trainable `ResidualCodec` with the weights of an exported coder (the inverse of `export`).

    Transforms come from the ONNX graphs, gains from their arrays, `h_s` from its fixed-point weights
    (2^-12 resolution: fine-tuning starts within rounding of the served network). The hyper-latent's
    factorised prior is stored only as frozen tables, so it starts fresh at the stored medians and is
    re-learned: fine-tuning from a committed coder needs no training checkpoint.
    """
    import onnx

    with np.load(path) as z:
        entries = {k: z[k] for k in z.files}
    state = {}
    for prefix in ("analysis", "hyper_analysis", "synthesis"):
        for tensor in onnx.load_from_string(restore(entries, prefix)).graph.initializer:
            name = tensor.name.removeprefix("codec.").removeprefix("inner.codec.")
            state[name] = torch.from_numpy(numpy_helper.to_array(tensor).copy())
    model = ResidualCodec(lmbdas=tuple(float(x) for x in entries["lmbdas"]), N=state["g_a.0.weight"].shape[0],
                          conditional=bool(entries["conditional"]))
    convs = [i for i, m in enumerate(model.h_s) if isinstance(m, nn.Conv2d)]
    for k, i in enumerate(convs):
        state[f"h_s.{i}.weight"] = torch.from_numpy(entries[f"h_s{k}_weight"] / 2**WEIGHT_BITS).float()
        state[f"h_s.{i}.bias"] = torch.from_numpy(entries[f"h_s{k}_bias"] / 2**FRACTION_BITS).float()
    state["log_gain"] = torch.from_numpy(np.log(entries["gain"]))
    state["log_inverse_gain"] = torch.from_numpy(np.log(entries["inverse_gain"]))
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{path}: weights the model does not have: {unknown[:5]}")
    model.load_state_dict(state, strict=False)
    with torch.no_grad():  # the prior's median at the stored one, its spread as initialised
        quantiles = model.entropy_bottleneck.quantiles
        quantiles += torch.from_numpy(entries["z_medians"])[:, None, None] - quantiles[:, :, 1:2]
    return model


def predictions(texture: str | None, descriptors: np.ndarray, weights: Path) -> np.ndarray:
    """What the decoder has before the enhancement layer: G(decoded base layer), or nothing.

    The texture run's exports live in `weights`: generator_<texture>.npz, and base_<texture>.npz when
    its base layer was trained with it (multitask); otherwise the base layer is r4.
    """
    if texture is None:
        return np.zeros((len(descriptors), 112, 112, 3), np.uint8)
    from facecodec.codec.base_layer import LearnedBaseLayer
    from facecodec.codec.prediction import GeneratorPrediction

    own_base = weights / f"base_{texture}.npz"
    base = LearnedBaseLayer(own_base if own_base.exists() else WEIGHTS / "base_learned_r4.npz")
    generator = GeneratorPrediction(weights / f"generator_{texture}.npz")
    decoded = np.stack([base.decode(base.encode(d)) for d in descriptors]).astype(np.float32)
    return np.concatenate([generator.batch(decoded[i : i + 256]) for i in range(0, len(decoded), 256)])


def validate(path: Path, texture: str | None, crops: np.ndarray, descriptors: np.ndarray,
             weights: Path = WEIGHTS) -> dict:
    """Mean enhancement bpp (container payload bytes) and PSNR per level, through onnxruntime + rANS."""
    from facecodec.codec.learned_enhancement import LearnedResidualCodec

    codec = LearnedResidualCodec(path)
    predicted = predictions(texture, descriptors, weights)
    bpp = np.zeros((len(crops), codec.levels))
    quality = np.zeros_like(bpp)
    for i, (crop, prediction) in enumerate(zip(crops, predicted)):
        layers = codec.encode(crop, prediction)
        for layer in layers:
            bpp[i, layer.level - 1] = len(layer.payload) * 8 / (crop.shape[0] * crop.shape[1])
            quality[i, layer.level - 1] = psnr(codec.decode(prediction, tuple(layers), layer.level), crop)
    return {"val_faces": int(len(crops)),
            "levels": [{"level": q + 1, "enhancement_bpp": float(bpp[:, q].mean()),
                        "psnr_db": float(quality[:, q].mean())} for q in range(codec.levels)]}

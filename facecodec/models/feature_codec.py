"""Learned base layer: descriptor -> latent -> EntropyBottleneck -> descriptor (CompressAI style).

Named transforms: `g_a` (analysis) and `g_s` (synthesis) around a factorised-prior bottleneck. The
latent is a per-face vector (N, C, 1), so its rate is the whole base layer.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

DESCRIPTOR_DIM = 512


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class FeatureCodec(nn.Module):
    def __init__(self, latent: int = 64, hidden: int = 512) -> None:
        super().__init__()
        self.latent, self.hidden = latent, hidden
        # hidden=0: linear transforms (transform coding: a learned rotation + scaling, then entropy coding),
        # which generalise best from the ~10k training faces we have.
        self.g_a = _mlp([DESCRIPTOR_DIM, hidden, latent] if hidden else [DESCRIPTOR_DIM, latent])
        self.g_s = _mlp([latent, hidden, hidden, DESCRIPTOR_DIM] if hidden else [latent, DESCRIPTOR_DIM])
        self.entropy_bottleneck = EntropyBottleneck(latent)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.g_a(x).unsqueeze(-1)
        y_hat, likelihoods = self.entropy_bottleneck(y)
        x_hat = nn.functional.normalize(self.g_s(y_hat.squeeze(-1)), dim=-1)
        return {"x_hat": x_hat, "likelihoods": likelihoods}

    @classmethod
    def from_export(cls, path: str) -> FeatureCodec:
        """Rebuild the torch model from an exported `base_learned_r*.npz` (for parity checks)."""
        import numpy as np

        with np.load(path) as z:
            model = cls(latent=int(z["latent"]), hidden=int(z["hidden"]))
            state = {k[len("torch/"):]: torch.from_numpy(z[k]) for k in z.files if k.startswith("torch/")}
        # The bottleneck's CDF buffers are sized by update(); make room before loading them.
        eb = model.entropy_bottleneck
        for name in ("_quantized_cdf", "_offset", "_cdf_length"):
            getattr(eb, name).resize_(state[f"entropy_bottleneck.{name}"].shape)
        model.load_state_dict(state)
        return model.eval()

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()


class Analysis(nn.Module):
    """Exported for serving: unit-norm descriptor -> latent y (before quantisation)."""

    def __init__(self, codec: FeatureCodec) -> None:
        super().__init__()
        self.g_a = codec.g_a

    def forward(self, descriptor: torch.Tensor) -> torch.Tensor:
        return self.g_a(descriptor)


class Synthesis(nn.Module):
    """Exported for serving: dequantised latent -> descriptor (normalised by the caller)."""

    def __init__(self, codec: FeatureCodec) -> None:
        super().__init__()
        self.g_s = codec.g_s

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.g_s(latent)

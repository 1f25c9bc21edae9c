"""Learned enhancement layer: a conditional transform coder for the face the generator could not rebuild.

CompressAI-style scale hyperprior (Ballé et al. 2018) with two changes:

- **Conditional** on the generated face `x_gen`, which the decoder also has: the analysis sees the
  residual `x - x_gen` and `x_gen`; the synthesis sees the latent and a context map `c_a(x_gen)` and
  outputs a correction to `x_gen`. With `conditional=False` the same transforms code the image alone:
  the single-layer codec of equal capacity that measures the cost of scalability.
- **Several qualities from one model** with gain units (Cui et al. 2021): quality q scales the latent
  by a learned per-channel gain before rounding and by an inverse gain after it, so one set of
  transforms and entropy models serves every level. Levels are independent: decoding level q needs
  only layer q.

`h_s` (hyper-synthesis) uses only nearest upsampling, 3x3 convolutions and ReLU so that serving can
run it in exact integer arithmetic (`facecodec.codec.integer_net`): the scale indexes that drive the
entropy coder are then identical on every machine and runtime.
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import nn

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64
LATENT_SIZE = 7  # 112 / 16
DEFAULT_LMBDAS = (0.002, 0.005, 0.013, 0.035, 0.09)  # MSE weight on 0..255 pixels, one per quality


def scale_table() -> torch.Tensor:
    return torch.exp(torch.linspace(math.log(SCALES_MIN), math.log(SCALES_MAX), SCALES_LEVELS))


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class ResidualCodec(nn.Module):
    def __init__(self, lmbdas: tuple[float, ...] = DEFAULT_LMBDAS, N: int = 64, M: int = 128,
                 Z: int = 32, conditional: bool = True) -> None:
        super().__init__()
        self.lmbdas, self.N, self.M, self.Z, self.conditional = tuple(lmbdas), N, M, Z, conditional
        context = N // 2 if conditional else 0
        self.g_a = nn.Sequential(conv(6 if conditional else 3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N),
                                 conv(N, M))
        self.c_a = nn.Sequential(conv(3, context), nn.ReLU(), conv(context, context), nn.ReLU(),
                                 conv(context, context), nn.ReLU(), conv(context, context)) if conditional else None
        self.g_s = nn.Sequential(deconv(M + context, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                                 deconv(N, N), GDN(N, inverse=True), deconv(N, 3))
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N, 3, 2), nn.ReLU(), conv(N, Z, 3, 1))
        self.h_s = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(Z, N, 3, 1), nn.ReLU(),
                                 conv(N, N, 3, 1), nn.ReLU(), conv(N, M, 3, 1), nn.ReLU())
        # sqrt(lambda) spacing is where MSE-optimal step sizes land; training refines it per channel.
        start = 0.5 * torch.log(torch.tensor(lmbdas) / max(lmbdas))
        self.log_gain = nn.Parameter(start[:, None].repeat(1, M))
        self.log_inverse_gain = nn.Parameter(-start[:, None].repeat(1, M))
        self.entropy_bottleneck = EntropyBottleneck(Z)
        self.gaussian_conditional = GaussianConditional(scale_table().tolist())

    @property
    def qualities(self) -> int:
        return len(self.lmbdas)

    def gains(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_gain[q].exp()[..., None, None], self.log_inverse_gain[q].exp()[..., None, None]

    def analysis(self, x: torch.Tensor, x_gen: torch.Tensor) -> torch.Tensor:
        return self.g_a(torch.cat([x - x_gen, x_gen], 1) if self.conditional else x)

    def synthesis(self, y_hat: torch.Tensor, x_gen: torch.Tensor) -> torch.Tensor:
        if not self.conditional:
            return self.g_s(y_hat)
        return x_gen + self.g_s(torch.cat([y_hat, self.c_a(x_gen)], 1))

    def scales(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.h_s(z_hat)[..., :LATENT_SIZE, :LATENT_SIZE]

    def forward(self, x: torch.Tensor, x_gen: torch.Tensor, q: torch.Tensor) -> dict[str, torch.Tensor]:
        gain, inverse_gain = self.gains(q)
        y = self.analysis(x, x_gen) * gain
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        _, y_likelihoods = self.gaussian_conditional(y, self.scales(z_hat))
        # Noise for the rate estimate, straight-through rounding for what the synthesis sees.
        x_hat = self.synthesis(ste_round(y) * inverse_gain, x_gen)
        return {"x_hat": x_hat, "likelihoods": (y_likelihoods, z_likelihoods)}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()


class Analysis(nn.Module):
    """Exported for serving (encoder): crop and generated face in [0, 1] -> latent before gains."""

    def __init__(self, codec: ResidualCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, x: torch.Tensor, x_gen: torch.Tensor) -> torch.Tensor:
        return self.codec.analysis(x, x_gen)


class HyperAnalysis(nn.Module):
    """Exported for serving (encoder): gained latent -> hyper-latent."""

    def __init__(self, codec: ResidualCodec) -> None:
        super().__init__()
        self.h_a = codec.h_a

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.h_a(y)


class Synthesis(nn.Module):
    """Exported for serving (decoder): de-gained latent and generated face -> reconstruction."""

    def __init__(self, codec: ResidualCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, y_hat: torch.Tensor, x_gen: torch.Tensor) -> torch.Tensor:
        return self.codec.synthesis(y_hat, x_gen)

"""Feature-level texture reconstruction: decoded descriptor -> aligned 112x112 face.

The descriptor is projected to a 7x7 map and doubled four times (nearest upsampling + 3x3 conv) to
the canonical crop. The widths shrink as the resolution grows so one face costs ~0.3 GMAC: the
reconstructor runs this on every `layers=base` view and before every enhancement decode.
"""

from __future__ import annotations

import torch
from torch import nn

CROP = 112


class UpBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.2),
        )


class Generator(nn.Module):
    def __init__(self, descriptor_dim: int = 512, seed_channels: int = 32) -> None:
        super().__init__()
        c = seed_channels
        self.project = nn.Sequential(nn.Linear(descriptor_dim, c * 7 * 7), nn.LeakyReLU(0.2))
        self.g_s = nn.Sequential(
            nn.Conv2d(c, 256, 3, padding=1), nn.LeakyReLU(0.2),
            UpBlock(256, 128), UpBlock(128, 64), UpBlock(64, 32), UpBlock(32, 16),
            nn.Conv2d(16, 3, 3, padding=1),
        )
        self.c = c

    def forward(self, descriptor: torch.Tensor) -> torch.Tensor:
        """Descriptors (N x 512, unit norm) -> images (N x 3 x 112 x 112) in [0, 1]."""
        h = self.project(descriptor * 16.0).view(-1, self.c, 7, 7)  # x16: unit-norm entries are ~0.04
        return torch.sigmoid(self.g_s(h))

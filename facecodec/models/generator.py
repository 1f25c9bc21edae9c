"""Feature-level texture reconstruction: decoded descriptor -> aligned face (CompressAI-style transforms).

A small upsampling CNN: the descriptor is projected to a 7x7 map and doubled three times to 56x56,
then bilinearly upsampled to the 112x112 canonical crop. Working at 56x56 keeps training feasible on
a 2-core CPU; what the descriptor carries about texture is coarse anyway (the enhancement layer adds
the detail).
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
    def __init__(self, descriptor_dim: int = 512, base_channels: int = 64) -> None:
        super().__init__()
        c = base_channels
        self.project = nn.Sequential(nn.Linear(descriptor_dim, c * 7 * 7), nn.LeakyReLU(0.2))
        self.g_s = nn.Sequential(UpBlock(c, 128), UpBlock(128, 64), UpBlock(64, 32), nn.Conv2d(32, 3, 3, padding=1))
        self.c = c

    def forward(self, descriptor: torch.Tensor) -> torch.Tensor:
        """Descriptors (N x 512, unit norm) -> images (N x 3 x 112 x 112) in [0, 1]."""
        h = self.project(descriptor * 16.0).view(-1, self.c, 7, 7)  # x16: unit-norm entries are ~0.04
        small = torch.sigmoid(self.g_s(h))
        return nn.functional.interpolate(small, size=(CROP, CROP), mode="bilinear", align_corners=False)

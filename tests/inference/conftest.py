"""Small models for the inference tests (any callable (N, C, H, W) -> (N, K, H, W) will do)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyConvNet(nn.Module):
    """Two 3x3 convolutions: context-dependent, so tile borders matter."""

    def __init__(self, in_channels: int = 3, num_classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, num_classes, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyUNet(nn.Module):
    """One down/up level with a skip connection (needs even H and W)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int = 8) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.mid = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.head = nn.Conv2d(2 * width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc(x)  # (N, w, H, W)
        low = self.mid(nn.functional.max_pool2d(skip, 2))  # (N, w, H/2, W/2)
        return self.head(torch.cat([self.up(low), skip], dim=1))  # (N, K, H, W)


class CumsumModel(nn.Module):
    """Asymmetric on purpose: logits of pixel (i, j) depend on the pixels left of and above it,
    so flipping or rotating the input does not simply flip or rotate the output."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(x.cumsum(dim=-1).cumsum(dim=-2) / 10)


@pytest.fixture
def conv_net() -> TinyConvNet:
    return TinyConvNet().eval()


@pytest.fixture
def unet() -> TinyUNet:
    model = TinyUNet().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.enc[1].running_mean.uniform_(-0.5, 0.5)
        model.enc[1].running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture
def cumsum_model() -> CumsumModel:
    return CumsumModel().eval()


@pytest.fixture
def pointwise_model() -> nn.Module:
    """A 1x1 convolution: commutes with every flip, rotation and tiling."""
    return nn.Conv2d(3, 4, 1).eval()

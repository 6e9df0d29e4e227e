"""Convergence regression guard (issue 17): the default U-Net must learn a fixed batch fast.

Not a timing test: it counts optimizer steps. The default ``create_model("unet")`` (ResNet-34,
3x3 Glorot head, decoder as in ``segwise.models.init``) is trained for ``STEPS`` AdamW steps on
one fixed synthetic batch (4 x 3 x 64 x 64 shapes, foreground ~12 %) with BCE + soft Dice.
The bound was recorded with the current initialisation; the initialisation segwise had before
issue 17 (PyTorch's default init, 1x1 head) ends far above it (figures in the module constants
and docs/benchmarks.md, "Initialisation and convergence").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segwise.data.synthetic import render_sample
from segwise.models import create_model

STEPS = 20
# Loss after STEPS steps, seed 0, 2 CPU threads (recorded 2026-11-30): 0.782 with the current
# init (He decoder); 0.747 with PyTorch's default scale in the norm-followed decoder convs
# (segwise's init before the 200-step runs of issue 17); 1.137 with the init before issue 17
# (1x1 head, PyTorch defaults in decoder and head).
BOUND = 0.95


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    samples = [render_sample(rng, (64, 64)) for _ in range(4)]
    image = np.stack([s[0] for s in samples]).astype(np.float32) / 255.0
    x = (torch.from_numpy(image).permute(0, 3, 1, 2) - 0.5) / 0.25  # (4, 3, 64, 64)
    y = torch.from_numpy(np.stack([s[1] > 0 for s in samples])).float()[:, None]  # (4, 1, 64, 64)
    return x, y


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice (Milletari et al. 2016, batch-pooled, smoothing 1)."""
    p = logits.sigmoid()
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + dice


@pytest.mark.slow
def test_default_unet_learns_a_fixed_batch_within_the_recorded_bound():
    x, y = _batch()
    torch.manual_seed(0)
    model = create_model("unet", num_classes=1).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(STEPS):
        loss = _loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < BOUND

"""Batch norm on a single value: find the layers before PyTorch stops, and say what to do.

In training mode a batch-norm layer needs more than one value per channel (batch x the spatial
size of its map; Ioffe & Szegedy 2015 normalise by the batch statistics). With one image per
batch, a map that is 1x1 at the encoder's deepest stage (a 32 px input on a stride-32 encoder)
or after a global-pooling branch (ASPP's image pooling) has exactly one, and PyTorch raises
"Expected more than 1 value per channel when training" from deep inside the network, naming
no layer and no fix. :func:`single_value_norms` finds every such layer with one forward on the
``meta`` device (the model's own modules with meta copies of its weights: shapes only, no
arithmetic, nothing allocated); :class:`~segwise.models.SegmentationModel` runs it on a
one-image training batch and raises :class:`BatchStatisticsError` instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BatchStatisticsError", "batch_norm_layers", "single_value_norms"]


class BatchStatisticsError(ValueError):
    """A batch-norm layer would see one value per channel in training (the message names the
    layer, the size of its map and the two fixes)."""


def batch_norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every batch-norm layer of ``model`` (1D, 2D, 3D, sync)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def single_value_norms(model: nn.Module, input_shape: Sequence[int]
                       ) -> list[tuple[str, tuple[int, ...]]]:
    """The batch-norm layers that see one value per channel on a one-image batch.

    Args:
        model: any module whose ``forward`` takes one image tensor ``(1, *input_shape)``.
        input_shape: ``(C, H, W)`` (or ``(C, D, H, W)``) of one image.

    Returns:
        ``(layer name, spatial size of its input map)`` for each such layer, in forward order
        (empty when none). The model's train/eval mode is restored.
    """
    bns = batch_norm_layers(model)
    if not bns:
        return []
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module, args) -> None:  # returns None: the input is left unchanged
            seen.setdefault(name, tuple(args[0].shape[2:]))
        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in bns]
    was_training = model.training
    meta = {name: torch.empty_like(t, device="meta")
            for name, t in itertools.chain(model.named_parameters(), model.named_buffers())}
    try:
        model.eval()
        probe = torch.zeros(1, *input_shape, device="meta")
        with torch.no_grad():
            torch.func.functional_call(model, meta, (probe,))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [(name, size) for name, size in seen.items()
            if all(s == 1 for s in size)]


def describe_single_value(single: list[tuple[str, tuple[int, ...]]],
                          input_shape: Sequence[int]) -> str:
    """The message for :class:`BatchStatisticsError`: the first layer, its map, the fixes."""
    name, size = single[0]
    spatial = "x".join(str(s) for s in input_shape[1:])
    return (
        f"batch-norm layer {name!r} sees a {'x'.join(map(str, size))} map for a batch of one "
        f"{spatial} image: a single value per channel, which batch norm cannot train on "
        f"({len(single)} such layer(s)). Train with 2 or more images per batch, or with larger "
        "images (crops) so the deepest map is larger than 1x1 (or build the model with "
        "group/instance norm)"
    )

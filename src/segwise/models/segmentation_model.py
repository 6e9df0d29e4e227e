"""``SegmentationModel(encoder, decoder, head)``: the one model class every architecture uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import nn

from segwise.models.batch_stats import (
    BatchStatisticsError,
    describe_single_value,
    single_value_norms,
)

__all__ = ["SegmentationModel", "SegmentationOutput"]


@dataclass(frozen=True)
class SegmentationOutput:
    """What ``model(x, with_aux=True)`` returns, for every model (with or without aux heads).

    Attributes:
        logits: ``(N, num_classes, H, W)`` main output, unnormalised, at input resolution.
        aux: auxiliary logits, each ``(N, num_classes, H, W)`` at input resolution (one per
            auxiliary head; for FCN/DeepLab built with ``aux=True`` one, read from the
            encoder's stride-16 stage); ``()`` for a model without auxiliary heads.
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


class SegmentationModel(nn.Module):
    """Encoder -> decoder -> head, with internal padding so any input size works.

    The input is zero-padded at the bottom/right to a multiple of ``encoder.divisor`` (an int,
    or one per axis for the volume models, whose input is ``(N, C, D, H, W)``) and the
    logits are cropped back, so ``forward`` accepts any ``H, W >= 1``. The pad is applied even
    when it is zero, so that a traced or exported graph (ONNX, TorchScript, ``torch.export``)
    holds the pad and the crop as shape arithmetic and works at any ``H, W``, not only at sizes
    like the one it was traced at.

    Args:
        encoder: follows the Encoder contract (:mod:`segwise.models.encoders.base`).
        decoder: maps the encoder's feature list to one ``(N, C_dec, h, w)`` tensor.
        head: ``head(decoded, size)`` -> logits ``(N, num_classes, *size)``.
        aux_head: optional ``aux_head(feature, size)`` on ``features[aux_index]``.
        aux_index: which encoder feature the auxiliary head reads.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        head: nn.Module,
        *,
        aux_head: nn.Module | None = None,
        aux_index: int = -2,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.aux_head = aux_head
        self.aux_index = aux_index
        self._batch_one_checked: set[tuple[int, ...]] = set()  # input shapes found trainable

    @overload
    def forward(self, x: torch.Tensor, with_aux: Literal[False] = ...) -> torch.Tensor: ...

    @overload
    def forward(self, x: torch.Tensor, with_aux: Literal[True]) -> SegmentationOutput: ...

    def forward(self, x: torch.Tensor, with_aux: bool = False
                ) -> torch.Tensor | SegmentationOutput:
        """``x: (N, in_channels, H, W)`` -> logits ``(N, num_classes, H, W)``, always a tensor.

        The return type depends on the call only, never on how the model was built:
        ``with_aux=True`` returns a :class:`SegmentationOutput` for every model (``aux`` is
        ``()`` without auxiliary heads), so callers never probe what they got. Auxiliary heads
        are only run when asked for (training); plain calls (inference, export) skip them.
        ``with_aux`` may also be passed by position: PyTorch's tracers (``torch.onnx.export``,
        ``torch.jit.trace``) fill every parameter of ``forward`` positionally.
        """
        if self.training and x.shape[0] == 1:
            self._check_batch_of_one(tuple(x.shape[1:]))
        # (H, W), or (D, H, W) for the volume models (their divisor is per axis)
        crop = (..., *(slice(0, size) for size in x.shape[2:]))
        padded = _pad_to_multiple(x, self.encoder.divisor)  # (N, C, H', W'), H', W' % divisor == 0
        features = self.encoder(padded)
        logits = self.head(self.decoder(features), padded.shape[2:])[crop]
        if not with_aux:
            return logits
        if self.aux_head is None:
            return SegmentationOutput(logits, ())
        aux = self.aux_head(features[self.aux_index], padded.shape[2:])[crop]
        return SegmentationOutput(logits, (aux,))

    def _check_batch_of_one(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`~segwise.models.batch_stats.BatchStatisticsError` (naming the layer,
        its map size and the fixes) where a one-image training batch of ``shape`` would give a
        batch-norm layer a single value per channel, before PyTorch's anonymous error. Checked
        once per input shape (a meta-device forward); skipped while compiling or tracing."""
        if shape in self._batch_one_checked or torch.compiler.is_compiling() or (
                torch.jit.is_tracing()):
            return
        single = single_value_norms(self, shape)
        if single:
            raise BatchStatisticsError(describe_single_value(single, shape))
        self._batch_one_checked.add(shape)


def _pad_to_multiple(x: torch.Tensor, divisor: int | tuple[int, ...]) -> torch.Tensor:
    """Zero-pad ``x (N, C, H, W)`` at the bottom and right so that H and W divide ``divisor``.

    ``x (N, C, D, H, W)`` with a per-axis ``divisor (d, h, w)`` (the volume models) is padded
    at the end of every axis alike.

    There is no "nothing to pad" shortcut: a Python branch on the size would be frozen into a
    traced graph at the trace size (a U-Net traced at 64x64 then fails at 97x131), and
    ``torch.export`` would turn it into a guard. A zero pad costs one copy of the input.
    """
    spatial = x.shape[2:]
    divisors = (divisor,) * len(spatial) if isinstance(divisor, int) else divisor
    pad: list[int] = []
    for size, div in zip(reversed(spatial), reversed(divisors), strict=True):
        pad += [0, (-size) % div]  # F.pad lists the last axis first
    return F.pad(x, tuple(pad))

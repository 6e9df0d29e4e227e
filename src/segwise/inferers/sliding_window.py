"""Sliding-window inference over any model ``(N, C, h, w) -> (N, K, h, w)``, or over volumes
``(N, C, d, h, w) -> (N, K, d, h, w)`` alike (the band below is then a slab of slices).

Tiles are cut from the image, run through the model ``tile_batch_size`` at a time, weighted by an
importance map (Gaussian or constant) and accumulated in place into the output; each output row is
divided by its summed weight as soon as no later tile touches it. Memory is the tiles in flight
plus the output accumulator plus a ``(tile_h, W)`` band of summed weights; with
``output=Output.ARGMAX`` the accumulator itself is only a ``(K, tile_h, W)`` band and the result is
a label map plus a score map, so the full ``(K, H, W)`` float map never exists.

The tile grid and the Gaussian map are MONAI's (see :mod:`segwise.inferers.tiling`): with
``activation=Activation.NONE`` and ``output=Output.FULL`` the result equals
``monai.inferers.sliding_window_inference(image, tile_size, tile_batch_size, model, overlap,
mode=blend, sigma_scale=sigma_scale, padding_mode=pad_mode)`` up to float rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from segwise._validation import as_enum
from segwise.inferers.options import Activation, Blend, Output, PadMode
from segwise.inferers.tiling import TileGrid, importance_map, tile_grid

__all__ = ["LabelPrediction", "sliding_window_inference"]


class LabelPrediction(NamedTuple):
    """What ``sliding_window_inference(..., output=Output.ARGMAX)`` returns.

    Attributes:
        labels: ``(N, H, W)`` int64 class indices. With one output channel: 1 where the blended
            value is above 0.5 (``SIGMOID``) or 0 (``NONE``), else 0.
        scores: ``(N, H, W)`` float32, the blended value of the winning channel (with one channel:
            the blended value itself), e.g. the class probability after ``SOFTMAX``.
    """

    labels: torch.Tensor
    scores: torch.Tensor


def _as_sides(value: int | tuple[int, ...], ndim: int, name: str) -> tuple[int, ...]:
    """``value`` as one side per spatial axis (``ndim`` 2 for images, 3 for volumes)."""
    sides = (value,) * ndim if isinstance(value, int) else tuple(value)
    if len(sides) != ndim or not all(isinstance(v, int) and v >= 1 for v in sides):
        what = "a pair of them" if ndim == 2 else f"{ndim} of them (D, H, W)"
        raise ValueError(f"{name}={value!r} is not valid; expected an int >= 1 or {what}")
    return sides


def _check_args(image: torch.Tensor, overlap: float, tile_batch_size: int) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim not in (4, 5):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(
            f"image must be a (N, C, H, W) tensor (or (N, C, D, H, W) for a volume), got "
            f"{shape}; add a batch axis with image.unsqueeze(0)"
        )
    if not image.is_floating_point():
        raise ValueError(
            f"image must be a float tensor, got dtype {image.dtype}; normalise it first"
        )
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap!r} is not valid; expected a number in [0, 1)")
    if not isinstance(tile_batch_size, int) or tile_batch_size < 1:
        raise ValueError(f"tile_batch_size={tile_batch_size!r} is not valid; expected an int >= 1")


def _activate(logits: torch.Tensor, activation: Activation) -> torch.Tensor:
    if activation == Activation.SOFTMAX:
        return logits.softmax(dim=1)
    if activation == Activation.SIGMOID:
        return logits.sigmoid()
    return logits


class _Stitcher:
    """Accumulates weighted tiles of one image and finalises rows once no later tile touches them.

    ``FULL``: the accumulator is the output ``(K, H, W)`` itself. ``ARGMAX``: a ``(K, band, W)``
    ring of rows starting at row ``lo``; finalised rows are turned into labels and scores.
    The summed weights always live in a ``(band, W)`` buffer. For a volume ``(K, D, H, W)`` the
    rows are slices: the band is ``(band, H, W)`` (``rest`` holds the axes after the first).
    """

    def __init__(
        self,
        *,
        height: int,
        rest: tuple[int, ...],
        band: int,
        channels: int,
        full_out,
        label_out,
        device: torch.device,
        threshold: float,
    ) -> None:
        self.h, self.band, self.lo = height, band, 0
        self.full_out, self.label_out, self.threshold = full_out, label_out, threshold
        self.wsum = torch.zeros(band, *rest, dtype=torch.float32, device=device)
        self.acc = (
            None
            if full_out is not None
            else torch.zeros(channels, band, *rest, dtype=torch.float32, device=device)
        )

    def add(self, pred: torch.Tensor, weight: torch.Tensor, start: tuple[int, ...]) -> None:
        """Add weighted ``pred (K, h, w)`` and ``weight (h, w)`` at original ``start (y0, x0)``
        (``(K, d, h, w)``, ``(d, h, w)`` and ``(z0, y0, x0)`` for a volume)."""
        y0, rest = start[0], start[1:]
        h = weight.shape[0]
        r0 = y0 - self.lo
        others = tuple(slice(a, a + n) for a, n in zip(rest, weight.shape[1:], strict=True))
        self.wsum[(slice(r0, r0 + h), *others)] += weight
        if self.acc is None:
            self.full_out[(slice(None), slice(y0, y0 + h), *others)] += pred
        else:
            self.acc[(slice(None), slice(r0, r0 + h), *others)] += pred

    def finalise(self, upto: int) -> None:
        """Rows ``[lo, upto)`` are complete: normalise them and move the band down."""
        upto = min(upto, self.h)
        n = upto - self.lo
        if n <= 0:
            return
        wsum = self.wsum[:n]
        if self.acc is None:
            self.full_out[:, self.lo : upto].div_(wsum)
        else:
            rows = self.acc[:, :n].div_(wsum)  # (K, n, W), in place: these rows are done
            labels = self.label_out.labels[self.lo : upto]  # contiguous row slices
            scores = self.label_out.scores[self.lo : upto]
            if rows.shape[0] == 1:
                scores.copy_(rows[0])
                labels.copy_(rows[0] > self.threshold)
            else:
                torch.max(rows, dim=0, out=(scores, labels))
            _shift_rows(self.acc, n, axis=1)
        _shift_rows(self.wsum, n, axis=0)
        self.lo = upto


def _shift_rows(buf: torch.Tensor, n: int, axis: int) -> None:
    """Move rows ``n:`` along ``axis`` (the band: 0 in the weights ``(band, ...)``, 1 in the
    accumulator ``(K, band, ...)``) to the top, zero the rest, in place."""
    lead = (slice(None),) * axis
    rest = buf.shape[axis] - n
    if rest > 0:
        src = buf[(*lead, slice(n, None))]
        dst = buf[(*lead, slice(0, rest))]
        dst.copy_(src if n >= rest else src.clone())  # no overlap when n >= rest
    buf[(*lead, slice(rest, None))].zero_()


def _channels_last(ndim: int) -> torch.memory_format:
    """The channels-last layout of a batch of ``ndim`` dims (4: images, 5: volumes)."""
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


def _cut_tiles(
    image: torch.Tensor,
    grid: TileGrid,
    positions: list[tuple[int, ...]],
    pad_mode: PadMode,
    channels_last: bool,
) -> torch.Tensor:
    """Cut tiles ``(B, C, tile_h, tile_w)`` from ``image (C, H, W)`` at padded ``positions``
    (``(B, C, tile_d, tile_h, tile_w)`` from a volume ``(C, D, H, W)``)."""
    sizes = image.shape[1:]
    pads = [grid.pad[2 * a : 2 * a + 2] for a in range(len(sizes))]  # (before, after) per axis
    padded = sum(grid.pad) > 0
    # an axis that needs padding is shorter than the tile, so a tile spans all of it
    shape = (
        len(positions),
        image.shape[0],
        *(t if not sum(p) else n for t, p, n in zip(grid.tile, pads, sizes, strict=True)),
    )
    layout = (
        _channels_last(len(shape)) if channels_last and not padded else torch.contiguous_format
    )
    batch = torch.empty(shape, dtype=image.dtype, device=image.device, memory_format=layout)
    for j, start in enumerate(positions):
        cut = tuple(
            slice(0, n) if sum(p) else slice(s, s + t)
            for s, t, p, n in zip(start, grid.tile, pads, sizes, strict=True)
        )
        batch[j].copy_(image[(slice(None), *cut)])
    if padded:
        kwargs = {"value": 0.0} if pad_mode == PadMode.CONSTANT else {}
        flat = tuple(v for p in reversed(pads) for v in p)  # F.pad: last axis first
        batch = F.pad(batch, flat, mode=pad_mode.value, **kwargs)
    return batch


def _run_model(model: Callable, tiles: torch.Tensor, positions, grid: TileGrid) -> torch.Tensor:
    out = model(tiles)
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"the model returned {type(out).__name__}, expected a (N, K, H, W) tensor (or "
            "(N, K, D, H, W) for a volume); if it "
            "returns auxiliary outputs, pass a callable that returns only the logits, e.g. "
            "lambda x: model(x).logits"
        )
    if (
        out.ndim != tiles.ndim
        or out.shape[0] != tiles.shape[0]
        or tuple(out.shape[2:]) != grid.tile
    ):
        sides = ", ".join(map(str, grid.tile))
        raise ValueError(
            f"the model turned tiles of shape {tuple(tiles.shape)} into {tuple(out.shape)}; "
            f"sliding-window inference needs (N, K, {sides}) outputs at input resolution"
        )
    out = out.float()
    if not torch.isfinite(out).all():
        bad = next(p for p, t in zip(positions, out, strict=True) if not torch.isfinite(t).all())
        raise FloatingPointError(
            f"the model returned NaN or Inf for the tile at padded (row, col) {bad} of size "
            f"{grid.tile}; check the input normalisation, the weights, and for fp16 overflow"
        )
    return out


def sliding_window_inference(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    tile_size: int | tuple[int, ...],
    overlap: float = 0.25,
    tile_batch_size: int = 4,
    blend: Blend | str = Blend.GAUSSIAN,
    sigma_scale: float = 0.125,
    pad_mode: PadMode | str = PadMode.CONSTANT,
    activation: Activation | str = Activation.NONE,
    tile_device: torch.device | str | None = None,
    output_device: torch.device | str | None = None,
    output: Output | str = Output.FULL,
    channels_last: bool = True,
) -> torch.Tensor | LabelPrediction:
    """Predict a large image tile by tile and blend the tiles into one map.

    Call ``model.eval()`` first; the tiles run under ``torch.no_grad()``. An image smaller than
    the tile along an axis is padded along that axis (``pad_mode``; ``(tile - size) // 2`` before,
    the rest after) and the output is cropped back, so the output always has the input's size.
    A tile that covers the whole image gives exactly ``activation(model(image))``.

    Args:
        model: any callable ``(B, C, tile_h, tile_w) -> (B, K, tile_h, tile_w)`` logits
            (``(B, C, tile_d, tile_h, tile_w) -> (B, K, tile_d, tile_h, tile_w)`` for volumes).
        image: ``(N, C, H, W)`` float, already normalised, or a volume ``(N, C, D, H, W)``
            (tiled on all three axes; the streaming band is then a slab of ``tile_d``
            slices); may stay on the CPU while tiles run on ``tile_device``.
        tile_size: tile side, or ``(tile_h, tile_w)`` (``(tile_d, tile_h, tile_w)``).
        overlap: fraction of a tile shared with its neighbour, in ``[0, 1)``.
        tile_batch_size: tiles per model call.
        blend: :class:`Blend` weighting of overlapping tiles.
        sigma_scale: Gaussian sigma as a fraction of the tile side (``GAUSSIAN`` only).
        pad_mode: :class:`PadMode` for images smaller than the tile.
        activation: :class:`Activation` applied to each tile *before* blending (blending
            probabilities keeps the result a probability map).
        tile_device: where tiles are run (default: the image's device).
        output_device: where the output is accumulated (default: the image's device), e.g.
            ``"cpu"`` while tiles run on a GPU.
        output: :class:`Output`: the full map, or labels and scores only.
        channels_last: feed tiles to the model in channels-last memory layout (same values,
            different strides). Convolutions run much faster this way on CPUs (oneDNN) and on
            tensor-core GPUs; results differ from a contiguous run only by float rounding. Set
            ``False`` for a model that calls ``.view`` on its input.

    Returns:
        ``FULL``: ``(N, K, H, W)`` float32 blended map. ``ARGMAX``: a :class:`LabelPrediction`
        with ``labels (N, H, W)`` int64 and ``scores (N, H, W)`` float32. Volumes: the same
        with ``D, H, W``.

    Raises:
        ValueError: on a bad argument, or a model output of the wrong shape.
        TypeError: if the model does not return a tensor.
        FloatingPointError: if the model returns NaN or Inf for any tile.
    """
    blend = as_enum(blend, Blend, "blend")
    pad_mode = as_enum(pad_mode, PadMode, "pad_mode")
    activation = as_enum(activation, Activation, "activation")
    output = as_enum(output, Output, "output")
    _check_args(image, overlap, tile_batch_size)
    tile = _as_sides(tile_size, image.ndim - 2, "tile_size")
    if isinstance(model, torch.nn.Module) and model.training:
        warnings.warn(
            "the model is in training mode (dropout / batch-norm statistics active); call "
            "model.eval() before inference",
            stacklevel=2,
        )
    n, spatial = image.shape[0], tuple(image.shape[2:])  # (H, W) or (D, H, W)
    h = spatial[0]
    tile_device = torch.device(tile_device) if tile_device is not None else image.device
    output_device = torch.device(output_device) if output_device is not None else image.device
    grid = tile_grid(spatial, tile, overlap=overlap)
    if len(grid) == 1:  # one tile: weights cancel, and constant ones keep the result exact
        blend = Blend.CONSTANT
    weight = importance_map(tile, blend=blend, sigma_scale=sigma_scale, device=tile_device)
    before = grid.pad[::2]  # padding before each axis
    positions = grid.positions()
    threshold = 0.5 if activation == Activation.SIGMOID else 0.0
    full = labels = scores = None
    with torch.no_grad():
        for i in range(n):
            stitcher = None
            for b0 in range(0, len(positions), tile_batch_size):
                batch_pos = positions[b0 : b0 + tile_batch_size]
                tiles = _cut_tiles(image[i], grid, batch_pos, pad_mode, channels_last)
                tiles = tiles.to(tile_device)
                if channels_last:
                    tiles = tiles.contiguous(memory_format=_channels_last(tiles.ndim))
                preds = _activate(_run_model(model, tiles, batch_pos, grid), activation)
                if stitcher is None:
                    k = preds.shape[1]
                    if full is None and output == Output.FULL:
                        full = torch.zeros(
                            n, k, *spatial, dtype=torch.float32, device=output_device
                        )
                    elif labels is None and output == Output.ARGMAX:
                        labels = torch.zeros(n, *spatial, dtype=torch.int64, device=output_device)
                        scores = torch.zeros(
                            n, *spatial, dtype=torch.float32, device=output_device
                        )
                    stitcher = _Stitcher(
                        height=h,
                        rest=spatial[1:],
                        band=min(tile[0], h),
                        channels=k,
                        full_out=None if full is None else full[i],
                        label_out=None if labels is None else LabelPrediction(labels[i], scores[i]),
                        device=output_device,
                        threshold=threshold,
                    )
                weighted = preds.mul_(weight).to(output_device)
                w_out = weight.to(output_device)
                for pos, pred in zip(batch_pos, weighted, strict=True):
                    stitcher.finalise(pos[0] - before[0])  # rows above this tile are complete
                    # crop the padding away: original rows [y - top, y - top + tile_h) within [0, H)
                    lo = tuple(max(p - b, 0) for p, b in zip(pos, before, strict=True))
                    crop = tuple(
                        slice(a - p + b, min(p - b + t, size) - p + b)
                        for a, p, b, t, size in zip(lo, pos, before, tile, spatial, strict=True)
                    )
                    stitcher.add(pred[(slice(None), *crop)], w_out[crop], lo)
            stitcher.finalise(h)
    if output == Output.FULL:
        return full
    return LabelPrediction(labels, scores)

"""Validation of loss inputs and their conversion to one internal form (private).

Every loss funnels ``(input, target)`` through :func:`prepare`, so shapes, dtypes and values
are checked in one place and every error reads the same. Index targets are never expanded to
one-hot: they stay ``(N, L)`` labels, with the ignored pixels mapped to an extra bin ``C``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from segwise.enums import Task
from segwise.labels import check_ignore_label

__all__ = [
    "Prepared",
    "check_class_weights",
    "check_pixel_weights",
    "compute_dtype",
    "input_channels",
    "prepare",
]


@dataclass(frozen=True)
class Prepared:
    """Inputs of one loss call in the internal form (``L = H * W``).

    Attributes:
        probs: (N, C, L) probabilities in the compute dtype (float32, or float64 for float64
            input), differentiable w.r.t. the input; None when left to the fused path.
        logits: (N, C, L) the input in the compute dtype when it was logits, else ``None``.
        logp: (N, C, L) log-softmax of the logits (multiclass only, when asked), else ``None``.
        labels: (N, L) int64 class indices in ``[0, C]``, ``C`` marking ignored pixels
            (index targets, multiclass), else ``None``.
        dense: (N, C, L) float targets in ``[0, 1]`` with ignored entries set to 0, else ``None``.
        valid: bool mask of the scored pixels, (N, L) for labels, (N, C, L) for dense targets;
            ``None`` when nothing is ignored.
    """

    probs: Tensor | None
    logits: Tensor | None
    logp: Tensor | None
    labels: Tensor | None
    dense: Tensor | None
    valid: Tensor | None


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (for gradcheck); every other float type is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_input(input: Tensor, task: Task) -> None:
    if not isinstance(input, Tensor):
        raise ValueError(f"input must be a torch.Tensor (N, C, H, W); got {type(input).__name__}")
    if not input.is_floating_point():
        raise ValueError(
            f"input dtype={input.dtype} is not valid; expected a floating dtype "
            "(float16, bfloat16, float32 or float64) holding logits or probabilities"
        )
    if input.ndim not in (4, 5):
        raise ValueError(f"input shape={_shape(input)} is not valid; expected (N, C, H, W) "
                         "or, for volumes, (N, C, D, H, W)")
    n_ch = input.shape[1]
    if task is Task.BINARY and n_ch != 1:
        raise ValueError(
            f"input has C={n_ch} channels, but task='binary' expects exactly 1 channel "
            "(N, 1, H, W); use task='multiclass' for C >= 2 softmax outputs"
        )
    if task is Task.MULTICLASS and n_ch < 2:
        raise ValueError(
            f"input has C={n_ch} channel, but task='multiclass' expects C >= 2 (softmax); "
            "use task='binary' for one sigmoid channel"
        )


def _index_target(target: Tensor, n_cls: int, ignore_index: int | None) -> tuple:
    """Return (labels (N, L) with ignored -> n_cls, valid (N, L) bool or None if none ignored)."""
    t = target.reshape(target.shape[0], -1).long()
    lo, hi = torch.aminmax(t) if t.numel() else (torch.tensor(0), torch.tensor(0))
    if int(lo) >= 0 and int(hi) < n_cls:  # ignore_index lies outside [0, n_cls): none ignored
        return t, None
    valid = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    bad = valid & ((t < 0) | (t >= n_cls))
    if bool(bad.any()):
        value = int(t[bad][0])
        allowed = f"[0, {n_cls})" + ("" if ignore_index is None else f" or {ignore_index}")
        raise ValueError(
            f"target contains class index {value}, outside {allowed}; expected class indices "
            "in [0, num_classes) or ignore_index"
        )
    if bool(valid.all()):
        return t, None
    return torch.where(valid, t, n_cls), valid


def _dense_target(target: Tensor, ignore_index: int | None, dtype: torch.dtype) -> tuple:
    """Return (dense (N, C, L) in [0,1] with ignored entries 0, valid (N, C, L) bool or None)."""
    g = target.reshape(target.shape[0], target.shape[1], -1).to(dtype)
    valid = None
    if ignore_index is not None:
        valid = g != ignore_index
        if bool(valid.all()):
            valid = None
        else:
            g = g.masked_fill(~valid, 0.0)
    if g.numel():
        lo, hi = torch.aminmax(g)
        if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))) or lo < 0 or hi > 1:
            raise ValueError(
                f"float target has values in [{float(lo)}, {float(hi)}]; expected one-hot or "
                "soft labels in [0, 1] (or ignore_index); pass class indices as an int64 tensor"
            )
    return g, valid


def prepare(
    input: Tensor,
    target: Tensor,
    *,
    task: Task,
    from_logits: bool,
    ignore_index: int | None,
    need_logp: bool = False,
    fused: bool = False,
) -> Prepared:
    """Validate ``(input, target)`` and convert them to :class:`Prepared`.

    Args:
        input: (N, C, H, W) logits, or probabilities when ``from_logits=False``; volumes
            (N, C, D, H, W) alike (every loss here reduces over the flattened voxels, so a
            volume is scored as its voxels, whatever their layout).
        target: (N, H, W) integer class indices (binary: {0, 1}), or (N, C, H, W) float
            one-hot / soft labels in [0, 1]; entries equal to ``ignore_index`` are ignored
            ((N, D, H, W) and (N, C, D, H, W) for volumes).
        task: binary, multiclass or multilabel.
        from_logits: whether ``input`` holds logits (sigmoid/softmax applied here).
        ignore_index: target value marking pixels to ignore, or None; never a class, i.e.
            outside ``[0, C)`` (C = 2 for binary, else the input's channels), the one rule of
            :func:`segwise.labels.check_ignore_label`.
        need_logp: also return the log-softmax (multiclass cross-entropy).
        fused: leave ``probs`` as None for multiclass logits with index targets: the caller
            computes them in :mod:`segwise.losses._fused`.

    Raises:
        ValueError: naming the argument, the bad value and the expected form.
    """
    _check_input(input, task)
    check_ignore_label(ignore_index, 2 if task is Task.BINARY else input.shape[1],
                       where="loss")
    if not isinstance(target, Tensor):
        raise ValueError(f"target must be a torch.Tensor; got {type(target).__name__}")
    n, c = input.shape[:2]
    spatial = tuple(input.shape[2:])
    sizes = ", ".join(str(v) for v in spatial)
    h, w = spatial[-2:]
    dtype = compute_dtype(input.dtype)
    x = input.to(dtype).reshape(n, c, -1)
    if len(spatial) == 3:  # a volume: every check below sees its voxels as one plane
        target = target.reshape(*target.shape[:-3], -1, w) if isinstance(target, Tensor) \
            and target.ndim >= 4 and tuple(target.shape[-3:]) == spatial else target
        h = spatial[0] * spatial[1]

    labels = dense = valid = None
    if target.ndim == 3 and target.dtype != torch.bool and not target.is_floating_point():
        if tuple(target.shape) != (n, h, w):
            raise ValueError(
                f"target shape={_shape(target)} does not match input {_shape(input)}; "
                f"expected index target ({n}, {sizes})"
            )
        if target.is_complex():
            raise ValueError(f"target dtype={target.dtype} is not valid; expected int64")
        if task is Task.MULTILABEL:
            raise ValueError(
                "task='multilabel' needs a float (N, C, H, W) multi-hot target; got class "
                f"indices of shape {_shape(target)}"
            )
        n_cls = 2 if task is Task.BINARY else c
        labels, valid = _index_target(target, n_cls, ignore_index)
        if task is Task.BINARY:  # (N, 1, L) float target; same size as the logits
            dense = (labels == 1).unsqueeze(1).to(dtype)
            labels, valid = None, (None if valid is None else valid.unsqueeze(1))
    elif target.ndim == 4 and target.is_floating_point():
        if tuple(target.shape) != (n, c, h, w):
            raise ValueError(
                f"target shape={_shape(target)} does not match input {_shape(input)}; "
                f"expected a float target ({n}, {c}, {sizes})"
            )
        dense, valid = _dense_target(target, ignore_index, dtype)
        if task is Task.MULTICLASS and valid is not None and bool(
            (valid.all(1) != valid.any(1)).any()
        ):
            raise ValueError(
                "multiclass float target ignores a pixel in some channels only; set every "
                "channel of an ignored pixel to ignore_index"
            )
    else:
        expected = {
            Task.BINARY: f"int (N, H, W)=({n}, {h}, {w}) in {{0, 1}} or float (N, 1, H, W)",
            Task.MULTICLASS: f"int64 (N, H, W)=({n}, {h}, {w}) or float ({n}, {c}, {h}, {w})",
            Task.MULTILABEL: f"float (N, C, H, W)=({n}, {c}, {h}, {w})",
        }[task]
        raise ValueError(
            f"target shape={_shape(target)} dtype={target.dtype} is not valid; expected {expected}"
        )

    logits = logp = None
    if from_logits:
        logits = x
        if fused and task is Task.MULTICLASS and labels is not None:
            probs = None
        elif task is Task.MULTICLASS:
            if need_logp:
                logp = F.log_softmax(x, dim=1)
                probs = logp.exp()
            else:
                probs = torch.softmax(x, dim=1)
        else:
            probs = torch.sigmoid(x)
    else:
        probs = x
        if probs.numel():
            bad = torch.isnan(probs).any() | (probs.amin() < 0) | (probs.amax() > 1)
            if bool(bad):
                raise ValueError(
                    "input holds values outside [0, 1] (or NaN), but from_logits=False "
                    "expects probabilities; pass logits with from_logits=True"
                )
    return Prepared(probs=probs, logits=logits, logp=logp, labels=labels, dense=dense, valid=valid)


def input_channels(input: Tensor) -> int | None:
    """Channels C of an (N, C, H, W) or (N, C, D, H, W) ``input``; None for anything else
    (checked later)."""
    return input.shape[1] if isinstance(input, Tensor) and input.ndim in (4, 5) else None


def check_class_weights(
    class_weights: Sequence[float] | Tensor | None, n: int | None, name: str = "class_weights"
) -> Tensor | None:
    """Validate per-class weights: ``n`` finite numbers >= 0, not all 0; returns float64 (n,)."""
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=torch.float64).detach().cpu()
    if w.ndim != 1 or (n is not None and w.numel() != n):
        want = "a 1-D sequence" if n is None else f"{n} values (one per class)"
        raise ValueError(f"{name} has shape {tuple(w.shape)}; expected {want}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not bool((w > 0).any()):
        raise ValueError(
            f"{name}={w.tolist()} is not valid; expected finite numbers >= 0, not all 0"
        )
    return w


def check_pixel_weights(pixel_weights: Tensor | None, input: Tensor) -> Tensor | None:
    """Validate ``pixel_weights``: (N, H, W) finite float >= 0; returns it as (N, L)."""
    if pixel_weights is None:
        return None
    n, _, h, w = input.shape
    if not isinstance(pixel_weights, Tensor) or not pixel_weights.is_floating_point():
        raise ValueError("pixel_weights must be a float tensor (N, H, W) of weights >= 0")
    if tuple(pixel_weights.shape) != (n, h, w):
        raise ValueError(
            f"pixel_weights shape={_shape(pixel_weights)} is not valid; expected ({n}, {h}, {w})"
        )
    pw = pixel_weights.detach().to(compute_dtype(input.dtype)).reshape(n, h * w)
    if pw.numel() and (not bool(torch.isfinite(pw).all()) or bool((pw < 0).any())):
        raise ValueError("pixel_weights must hold finite values >= 0")
    return pw

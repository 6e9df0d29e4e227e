"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection", eq. 5).

Definitions (``docs/dice.md`` §5b), per pixel i and class (channel) c, target mass ``g_ic``:

- multiclass (softmax): ``FL_i = sum_c w_c g_ic (1 - p_ic) ** gamma (-log p_ic)``;
- binary / multilabel (sigmoid per channel, both outcomes):
  ``FL_ic = w_c [alpha g_ic (1 - p_ic) ** gamma (-log p_ic)
  + (1 - alpha) (1 - g_ic) p_ic ** gamma (-log(1 - p_ic))]``; ``alpha=None`` drops the
  ``alpha`` / ``1 - alpha`` factors. For hard targets this is the paper's
  ``-alpha_t (1 - p_t) ** gamma log p_t``; for soft targets it is its expectation over
  ``g ~ Bernoulli(g_ic)``.
- ``mean`` = ``sum FL / sum (w_c g_ic)`` (binary/multilabel: ``sum w_c (g + 1 - g)``) over
  valid pixels: the weighted mean of :func:`~segwise.losses.functional.cross_entropy_loss`, which
  ``gamma = 0, alpha = None`` reproduces exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from segwise._validation import as_enum
from segwise.enums import Task
from segwise.losses._inputs import check_class_weights, input_channels, prepare
from segwise.losses._module import LossModule
from segwise.losses._reduce import reduce_pixels
from segwise.losses._stats import check_finite
from segwise.losses.options import Reduction

__all__ = ["FocalLoss", "focal_loss"]

Weights = Sequence[float] | Tensor | None


def _check_focal(task: Task, alpha, gamma, include_background: bool) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise ValueError(f"gamma={gamma!r} is not valid; expected a number >= 0 (0: plain CE)")
    if alpha is not None:
        if task is Task.MULTICLASS:
            raise ValueError(
                f"alpha={alpha!r} is not valid for task='multiclass'; alpha balances the two "
                "outcomes of a sigmoid channel. Weight softmax classes with class_weights"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha={alpha!r} is not valid; expected None or a number in [0, 1]")
    if task is Task.BINARY and not include_background:
        raise ValueError(
            "include_background=False is not valid for task='binary': its single channel is "
            "the foreground, so nothing would be scored"
        )


def _modulator(one_minus: Tensor, gamma: float) -> Tensor:
    """``one_minus ** gamma`` with a finite gradient where ``one_minus == 0``."""
    if gamma == 0:
        return torch.ones_like(one_minus)
    if gamma >= 1:
        return one_minus.clamp_min(0) ** gamma
    pos = one_minus > 0
    safe = torch.where(pos, one_minus, torch.ones_like(one_minus))
    return torch.where(pos, safe**gamma, torch.zeros_like(one_minus))


def _safe_log(p: Tensor, used: Tensor) -> Tensor:
    """``log p`` where ``used``, 0 elsewhere (no ``0 * log 0`` NaN in value or gradient)."""
    return torch.where(used, torch.log(torch.where(used, p, torch.ones_like(p))),
                       torch.zeros_like(p))


def focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    alpha: float | None = None,
    gamma: float = 2.0,
    class_weights: Weights = None,
    include_background: bool = True,
    reduction: Reduction | str = Reduction.MEAN,
) -> Tensor:
    """Focal loss; see the module docstring for the formula.

    Args:
        input: (N, C, H, W) logits (C = 1 for binary), or probabilities if ``from_logits=False``.
        target: (N, H, W) integer class indices (binary: {0, 1}), or (N, C, H, W) float
            one-hot / soft labels in [0, 1] (multilabel: float only).
        task: binary, multiclass (softmax) or multilabel (sigmoid per channel).
        from_logits: whether ``input`` holds logits.
        ignore_index: target value of ignored pixels (they add nothing), or None.
        alpha: weight in [0, 1] of the positive outcome of each sigmoid channel (negatives get
            ``1 - alpha``); None: no such weight. Binary and multilabel only.
        gamma: focusing exponent >= 0; 0 gives cross-entropy.
        class_weights: multiclass/multilabel (C,) weights >= 0 per class; binary (2,) =
            (background, foreground), as :func:`~segwise.losses.functional.cross_entropy_loss`.
        include_background: score class (channel) 0; False gives it weight 0.
        reduction: ``mean`` (weighted mean, see module docstring), ``sum``, or ``none``: the
            per-pixel loss, (N, H, W) for multiclass, (N, C, H, W) for binary/multilabel, 0 on
            ignored pixels.

    Returns:
        Scalar float32 (float64 for float64 input) loss >= 0, or the unreduced map.
    """
    task = as_enum(task, Task, "task")
    reduction = as_enum(reduction, Reduction, "reduction")
    _check_focal(task, alpha, gamma, include_background)
    n_ch = input_channels(input)
    cw = check_class_weights(class_weights, 2 if task is Task.BINARY else n_ch)
    prep = prepare(input, target, task=task, from_logits=from_logits, ignore_index=ignore_index,
                   need_logp=True)
    check_finite(prep.probs.sum(2))
    n, c, _length = prep.probs.shape
    dtype = prep.probs.dtype
    shape = input.shape
    if task is Task.MULTICLASS:
        w = torch.ones(c, dtype=dtype, device=prep.probs.device) if cw is None else cw.to(
            device=prep.probs.device, dtype=dtype)
        if not include_background:
            w = torch.cat([w.new_zeros(1), w[1:]])
        if prep.labels is not None:  # index targets: gather the target class, no one-hot
            lab = prep.labels
            idx = lab.clamp(max=c - 1).unsqueeze(1)
            table = torch.cat([w, w.new_zeros(1)])  # the ignore bin C gets weight 0
            mass = table[lab]  # (N, L)
            logp = (prep.logp.gather(1, idx).squeeze(1) if prep.logp is not None
                    else _safe_log(prep.probs.gather(1, idx).squeeze(1), mass > 0))
            one_minus = -torch.expm1(logp)  # 1 - p_t, accurate near p_t = 1
            terms = mass * _modulator(one_minus, gamma) * (-logp)
        else:
            mass = prep.dense * w.view(1, -1, 1)
            if prep.valid is not None:
                mass = mass * prep.valid
            logp = prep.logp if prep.logp is not None else _safe_log(prep.probs, mass > 0)
            terms = (mass * _modulator(1.0 - prep.probs, gamma) * (-logp)).sum(1)
            mass = mass.sum(1)
        out_shape = (n, shape[2], shape[3])
    else:
        g = prep.dense
        on, off = g, 1.0 - g
        if cw is not None:
            cw = cw.to(device=g.device, dtype=dtype)
            if task is Task.BINARY:
                on, off = on * cw[1], off * cw[0]
            else:
                on, off = on * cw.view(1, -1, 1), off * cw.view(1, -1, 1)
        if task is Task.MULTILABEL and not include_background:
            keep = torch.ones(c, dtype=dtype, device=g.device)
            keep[0] = 0
            on, off = on * keep.view(1, -1, 1), off * keep.view(1, -1, 1)
        if prep.valid is not None:
            on, off = on * prep.valid, off * prep.valid
        p = prep.probs
        if prep.logits is not None:
            logp, log1mp = F.logsigmoid(prep.logits), F.logsigmoid(-prep.logits)
        else:
            logp, log1mp = _safe_log(p, on > 0), _safe_log(1.0 - p, off > 0)
        a_on, a_off = (on, off) if alpha is None else (on * alpha, off * (1.0 - alpha))
        terms = (a_on * _modulator(1.0 - p, gamma) * (-logp)
                 + a_off * _modulator(p, gamma) * (-log1mp))
        mass = on + off
        out_shape = tuple(shape)
    if reduction is Reduction.NONE:
        return terms.reshape(out_shape)
    return reduce_pixels(terms, mass, reduction)


class FocalLoss(LossModule):
    """Focal loss (Lin et al. 2017) for binary, multiclass and multilabel segmentation.

    Maths: :func:`focal_loss`.

    Args:
        task: binary (1 sigmoid channel), multiclass (softmax) or multilabel (sigmoid each).
        num_classes: number of input channels to expect (binary: 1), or None.
        from_logits: ``forward`` receives logits (True) or probabilities (False).
        ignore_index: target value of ignored pixels.
        alpha: weight in [0, 1] of positives per sigmoid channel, or None (binary, multilabel).
        gamma: focusing exponent >= 0 (2 in the paper).
        class_weights: multiclass/multilabel (C,); binary (2,) = (background, foreground).
        include_background: score class (channel) 0 (not valid to disable for binary).
        reduction: :class:`Reduction` (``none``: per-pixel map).

    Shape:
        ``forward(input, target)``: input (N, C, H, W); target (N, H, W) integer indices or
        (N, C, H, W) float; returns a scalar (``mean``, ``sum``).
    """

    def __init__(
        self,
        *,
        task: Task | str,
        num_classes: int | None = None,
        from_logits: bool = True,
        ignore_index: int | None = None,
        alpha: float | None = None,
        gamma: float = 2.0,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction: Reduction | str = Reduction.MEAN,
    ) -> None:
        task = as_enum(task, Task, "task")
        _check_focal(task, alpha, gamma, include_background)
        n_weights = 2 if task is Task.BINARY else num_classes
        super().__init__(task=task, num_classes=num_classes, class_weights=class_weights,
                         n_weights=n_weights)
        self.from_logits = bool(from_logits)
        self.ignore_index = ignore_index
        self.alpha = None if alpha is None else float(alpha)
        self.gamma = float(gamma)
        self.include_background = bool(include_background)
        self.reduction = as_enum(reduction, Reduction, "reduction")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Loss of ``input`` (N, C, H, W) against ``target`` (N, H, W) or (N, C, H, W)."""
        self._check_channels(input)
        return focal_loss(input, target, task=self.task, from_logits=self.from_logits,
                          ignore_index=self.ignore_index, alpha=self.alpha, gamma=self.gamma,
                          class_weights=self._weights(),
                          include_background=self.include_background, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"task={self.task.value}, alpha={self.alpha}, gamma={self.gamma}"

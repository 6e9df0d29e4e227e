"""The Dice family of losses as pure functions (definitions: ``docs/dice.md``).

Notation, for one class ``c`` over one scoring unit (the batch, or one image; see
:class:`~segwise.losses.options.DiceScope`), summing over the valid (not ignored) pixels:

- ``P = sum(p)``, ``G = sum(g)``, ``I = sum(min(p, g))``; for a hard target ``g`` in
  ``{0, 1}``, ``min(p, g) = p * g``, so ``I`` is the textbook ``sum(p * g)``. The ``min`` (L1)
  form equals ``(sum(p) + sum(g) - sum(|p - g|)) / 2`` and makes ``Dice(p, p) = 1`` for soft
  labels too.
- With ``squared=True`` (V-Net): ``P = sum(p**2)``, ``G = sum(g**2)``, ``I = sum(p * g)``,
  which also gives ``Dice(p, p) = 1`` for soft labels.
- ``Dice = 2 I / (P + G + eps)``; ``Jaccard = I / (P + G - I + eps)``; loss ``= 1 - score``.

Index targets are never one-hot encoded: ``I`` per class is a gather of ``p`` at the target
class followed by a ``scatter_add`` by class, ``G`` per class a ``bincount``; memory stays
that of the probabilities. Everything is computed in float32 (float64 for float64 input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from segwise._validation import as_enum, check_positive
from segwise.enums import Task
from segwise.losses._inputs import (
    Prepared,
    check_class_weights,
    check_pixel_weights,
    input_channels,
    prepare,
)
from segwise.losses._reduce import reduce_units, safe_ratio
from segwise.losses._stats import DiceStatistics, check_finite, fused_sums, statistics
from segwise.losses.options import DiceScope, GDiceWeight, LossEmptyRule, Reduction

__all__ = [
    "DiceStatistics",
    "cross_entropy_loss",
    "dice_ce_loss",
    "dice_statistics",
    "generalized_dice_loss",
    "soft_dice_loss",
    "soft_jaccard_loss",
]

Weights = Sequence[float] | Tensor | None


def dice_statistics(
    input: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    squared: bool = False,
) -> DiceStatistics:
    """Per (image, class) Dice sums ``I, P, G`` and valid-pixel counts, each (N, C).

    Args:
        input: (N, C, H, W) logits, or probabilities when ``from_logits=False``.
        target: (N, H, W) integer class indices, or (N, C, H, W) float one-hot / soft labels.
        task: binary, multiclass or multilabel (:class:`segwise.enums.Task`).
        from_logits: apply sigmoid (binary, multilabel) or softmax (multiclass) to ``input``.
        ignore_index: target value of pixels removed from every sum, or None.
        squared: squared sums (V-Net) instead of linear ones.
    """
    task = as_enum(task, Task, "task")
    prep = prepare(input, target, task=task, from_logits=from_logits, ignore_index=ignore_index,
                   fused=not squared)
    return statistics(prep, squared=squared)


def _units(stats: DiceStatistics, scope: DiceScope, include_background: bool) -> tuple:
    """(I, P, G, count), each (U, K): U = 1 (batch) or N (image), K scored classes."""
    fields = (stats.intersection, stats.pred_sum, stats.target_sum, stats.count)
    if scope is DiceScope.BATCH:
        fields = tuple(f.sum(0, keepdim=True) for f in fields)
    if not include_background:
        fields = tuple(f[:, 1:] for f in fields)
    return fields


_safe_ratio = safe_ratio


def _safe_pow(x: Tensor, power: float) -> Tensor:
    """``x ** power`` for ``x >= 0`` with a finite gradient at ``x = 0`` (0 there)."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)) ** power, torch.zeros_like(x))


def region_reduce(
    score: Tensor,
    psum: Tensor,
    tsum: Tensor,
    count: Tensor,
    *,
    scope: DiceScope,
    weights: Tensor | None,
    include_background: bool,
    empty: LossEmptyRule,
    reduction: Reduction,
    power: float = 1.0,
) -> Tensor:
    """Per-unit ``(1 - score) ** power`` of a region loss, empty rule applied, then reduced.

    ``score``, ``psum``, ``tsum``, ``count`` are (U, K) as returned by :func:`_units`.
    """
    present = tsum > 0
    scored = count > 0
    if empty is LossEmptyRule.SKIP:
        scored = scored & present
    else:  # FP_RATE: empty target scores 1 - (false-positive mass) / (valid pixels)
        score = torch.where(present, score, 1.0 - _safe_ratio(psum, count))
    loss = 1.0 - score
    if power != 1.0:
        loss = _safe_pow(loss, power)
    cw = weights[1:] if (weights is not None and not include_background) else weights
    out = reduce_units(loss, scored, cw, reduction)
    return out.squeeze(0) if (reduction is Reduction.NONE and scope is DiceScope.BATCH) else out


def _overlap_loss(
    stats: DiceStatistics,
    *,
    jaccard: bool,
    scope: DiceScope,
    weights: Tensor | None,
    include_background: bool,
    empty: LossEmptyRule,
    eps: float,
    reduction: Reduction = Reduction.MEAN,
) -> Tensor:
    inter, psum, tsum, count = _units(stats, scope, include_background)
    if jaccard:
        score = _safe_ratio(inter, psum + tsum - inter + eps)
    else:
        score = _safe_ratio(2.0 * inter, psum + tsum + eps)
    return region_reduce(score, psum, tsum, count, scope=scope, weights=weights,
                         include_background=include_background, empty=empty,
                         reduction=reduction)


def _check_common(task, scope, eps, include_background, class_weights, n_classes, empty=None):
    task = as_enum(task, Task, "task")
    scope = as_enum(scope, DiceScope, "scope")
    empty = as_enum(empty, LossEmptyRule, "empty") if empty is not None else None
    check_positive(eps, "eps", allow_zero=True)
    if task is Task.BINARY and not include_background:
        raise ValueError(
            "include_background=False is not valid for task='binary': its single channel is "
            "the foreground, so nothing would be scored"
        )
    if task is Task.BINARY and class_weights is not None:
        raise ValueError(
            "class_weights are not valid for a binary Dice: it scores one class (foreground)"
        )
    weights = check_class_weights(class_weights, n_classes)
    return task, scope, empty, weights


def _overlap(input, target, *, jaccard, task, from_logits, ignore_index, scope, class_weights,
             include_background, squared, empty, eps, reduction) -> Tensor:
    reduction = as_enum(reduction, Reduction, "reduction")
    task, scope, empty, weights = _check_common(
        task, scope, eps, include_background, class_weights, input_channels(input), empty
    )
    prep = prepare(input, target, task=task, from_logits=from_logits, ignore_index=ignore_index,
                   fused=not squared)
    stats = statistics(prep, squared=squared)
    return _overlap_loss(stats, jaccard=jaccard, scope=scope, weights=weights,
                         include_background=include_background, empty=empty, eps=eps,
                         reduction=reduction)


def soft_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    scope: DiceScope | str = DiceScope.BATCH,
    class_weights: Weights = None,
    include_background: bool = True,
    squared: bool = False,
    empty: LossEmptyRule | str = LossEmptyRule.SKIP,
    eps: float = 1e-7,
    reduction: Reduction | str = Reduction.MEAN,
) -> Tensor:
    """Soft Dice loss ``1 - 2 I / (P + G + eps)``, averaged over the scored units.

    Args:
        input: (N, C, H, W) logits (C = 1 for binary), or probabilities if ``from_logits=False``.
        target: (N, H, W) integer class indices (binary: {0, 1}), or (N, C, H, W) float
            one-hot / soft labels in [0, 1] (multilabel: float only).
        task: binary (sigmoid, 1 channel), multiclass (softmax), multilabel (sigmoid per channel).
        from_logits: whether ``input`` holds logits.
        ignore_index: target value of pixels removed from numerator and denominator, or None.
        scope: one Dice per class over the whole batch, or per (image, class).
        class_weights: (C,) weights >= 0 of the per-class losses (weighted mean); multiclass and
            multilabel only.
        include_background: score class (channel) 0; not valid to disable for binary.
        squared: V-Net denominator ``sum(p**2) + sum(g**2)``.
        empty: rule for units whose target is empty (:class:`LossEmptyRule`).
        eps: added to the denominator only (numerical safety, not smoothing).
        reduction: ``mean`` (weighted mean over the scored units), ``sum``, or ``none``: the
            weighted per-unit losses, (K,) for batch scope and (N, K) for image scope, K the
            scored classes, 0 for units left out by the empty rule (:class:`Reduction`).

    Returns:
        Scalar float32 (float64 for float64 input) loss in [0, 1] (``mean``).
    """
    return _overlap(input, target, jaccard=False, task=task, from_logits=from_logits,
                    ignore_index=ignore_index, scope=scope, class_weights=class_weights,
                    include_background=include_background, squared=squared, empty=empty,
                    eps=eps, reduction=reduction)


def soft_jaccard_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    scope: DiceScope | str = DiceScope.BATCH,
    class_weights: Weights = None,
    include_background: bool = True,
    squared: bool = False,
    empty: LossEmptyRule | str = LossEmptyRule.SKIP,
    eps: float = 1e-7,
    reduction: Reduction | str = Reduction.MEAN,
) -> Tensor:
    """Soft Jaccard (IoU) loss ``1 - I / (P + G - I + eps)``; arguments as :func:`soft_dice_loss`.

    Returns:
        Scalar loss in [0, 1].
    """
    return _overlap(input, target, jaccard=True, task=task, from_logits=from_logits,
                    ignore_index=ignore_index, scope=scope, class_weights=class_weights,
                    include_background=include_background, squared=squared, empty=empty,
                    eps=eps, reduction=reduction)


def generalized_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    scope: DiceScope | str = DiceScope.BATCH,
    weight_type: GDiceWeight | str = GDiceWeight.SQUARE,
    class_weights: Weights = None,
    include_background: bool = True,
    eps: float = 1e-7,
) -> Tensor:
    """Generalized Dice loss (Sudre et al. 2017).

    ``GD = 2 sum_c w_c I_c / (sum_c w_c (P_c + G_c) + eps)``, loss ``= 1 - GD``.

    ``w_c`` follows ``weight_type`` (``1 / G_c**2`` by default), times ``class_weights`` if
    given; classes with ``G_c == 0`` get ``w_c = 0``. With ``scope='image'`` one value per
    image, averaged over the images that have a scored class; if none, the loss is 0.

    Args:
        input: (N, C, H, W) logits, or probabilities if ``from_logits=False``.
        target: as :func:`soft_dice_loss`.
        task, from_logits, ignore_index, scope, class_weights, include_background, eps: as
            :func:`soft_dice_loss`.
        weight_type: :class:`GDiceWeight`.

    Returns:
        Scalar loss in [0, 1].
    """
    task, scope, _, cw = _check_common(
        task, scope, eps, include_background, class_weights, input_channels(input)
    )
    weight_type = as_enum(weight_type, GDiceWeight, "weight_type")
    prep = prepare(input, target, task=task, from_logits=from_logits, ignore_index=ignore_index,
                   fused=True)
    inter, psum, tsum, _ = _units(statistics(prep, squared=False), scope, include_background)
    present = tsum > 0
    safe = torch.where(present, tsum, torch.ones_like(tsum))
    if weight_type is GDiceWeight.SQUARE:
        w = 1.0 / (safe * safe)
    elif weight_type is GDiceWeight.SIMPLE:
        w = 1.0 / safe
    else:
        w = torch.ones_like(tsum)
    w = torch.where(present, w, torch.zeros_like(w))
    if cw is not None:
        cw = cw[1:] if not include_background else cw
        w = w * cw.to(device=w.device, dtype=w.dtype)
    gd = _safe_ratio(2.0 * (w * inter).sum(1), (w * (psum + tsum)).sum(1) + eps)  # (U,)
    scored = (w > 0).any(1).to(gd.dtype)
    total = scored.sum()
    return ((1.0 - gd) * scored).sum() / torch.where(total > 0, total, torch.ones_like(total))


def _index_ce_weights(prep: Prepared, cw: Tensor | None, pw: Tensor | None) -> Tensor | None:
    """(N, L) CE weight per pixel for index targets (0 where ignored); None: every pixel 1."""
    lab, dtype = prep.labels, prep.logits.dtype
    v = None
    if cw is not None:  # the ignore bin C gets weight 0
        table = torch.cat([cw.to(dtype), cw.new_zeros(1).to(dtype)]).to(lab.device)
        v = table[lab]
    elif prep.valid is not None:
        v = prep.valid.to(dtype)
    if pw is not None:
        v = pw if v is None else v * pw
    return v


def _index_ce_den(prep: Prepared, u: Tensor | None, ref: Tensor) -> Tensor:
    return ref.new_tensor(float(prep.labels.numel())) if u is None else u.sum().to(ref.dtype)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return num / torch.where(den > 0, den, torch.ones_like(den))


def _cross_entropy(prep: Prepared, task: Task, cw: Tensor | None, pw: Tensor | None) -> Tensor:
    """Weighted mean of ``-log p`` over the target mass; see :func:`cross_entropy_loss`."""
    if task is Task.MULTICLASS:
        if prep.labels is not None:
            u = _index_ce_weights(prep, cw, pw)
            if prep.probs is None:  # fused path: the CE numerator comes with the Dice sums
                num = fused_sums(prep, u, True)[1]
            else:
                idx = prep.labels.clamp(max=prep.logp.shape[1] - 1).unsqueeze(1)
                nll = -prep.logp.gather(1, idx).squeeze(1)  # (N, L)
                num = nll.sum() if u is None else (u * nll).sum()
            return _ratio(num, _index_ce_den(prep, u, num))
        logp = prep.logp
        m = prep.dense  # (N, C, L) target mass, ignored pixels already 0
        if cw is not None:
            m = m * cw.to(device=m.device, dtype=m.dtype).view(1, -1, 1)
        if pw is not None:
            m = m * pw.unsqueeze(1)
        num, den = -(m * logp).sum(), m.sum()
    else:  # binary / multilabel: BCE per channel, target mass g ("on") and 1 - g ("off")
        z, g = prep.logits, prep.dense
        on, off = g, 1.0 - g
        if cw is not None:
            cw = cw.to(device=g.device, dtype=g.dtype)
            if task is Task.BINARY:  # (w_background, w_foreground)
                on, off = on * cw[1], off * cw[0]
            else:
                on, off = on * cw.view(1, -1, 1), off * cw.view(1, -1, 1)
        if prep.valid is not None:
            on, off = on * prep.valid, off * prep.valid
        if pw is not None:
            on, off = on * pw.unsqueeze(1), off * pw.unsqueeze(1)
        num = -(on * F.logsigmoid(z) + off * F.logsigmoid(-z)).sum()
        den = (on + off).sum()
    return _ratio(num, den)


def _ce_weights(task: Task, class_weights: Weights, n_channels: int | None) -> Tensor | None:
    n = 2 if task is Task.BINARY else n_channels
    return check_class_weights(class_weights, n)


def cross_entropy_loss(
    logits: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    ignore_index: int | None = None,
    class_weights: Weights = None,
    pixel_weights: Tensor | None = None,
) -> Tensor:
    """Cross-entropy (multiclass) or binary cross-entropy (binary, multilabel) from logits.

    ``CE = sum_i sum_c v_ic (-log p_ic) / sum_i sum_c v_ic`` with ``v_ic = pixel_weight_i *
    class_weight_c * g_ic`` over valid pixels; for index targets this is the weighted mean of
    ``-log p`` of the true class, as ``torch.nn.CrossEntropyLoss(weight=...)``. Binary and
    multilabel use the two outcomes of each channel (``g`` and ``1 - g``). If every weight is
    0 (e.g. all pixels ignored) the loss is 0.

    Args:
        logits: (N, C, H, W) unnormalised scores (C = 1 for binary).
        target: (N, H, W) integer class indices or (N, C, H, W) float one-hot / soft labels.
        task: binary, multiclass or multilabel.
        ignore_index: target value of ignored pixels, or None.
        class_weights: multiclass/multilabel (C,); binary (2,) = (background, foreground).
        pixel_weights: (N, H, W) weights >= 0 per pixel (e.g. the U-Net border weight map).

    Returns:
        Scalar loss >= 0.
    """
    task = as_enum(task, Task, "task")
    cw = _ce_weights(task, class_weights, input_channels(logits))
    prep = prepare(logits, target, task=task, from_logits=True, ignore_index=ignore_index,
                   need_logp=True, fused=True)
    pw = check_pixel_weights(pixel_weights, logits)
    if prep.probs is not None:
        check_finite(prep.probs.sum(2))
    return _cross_entropy(prep, task, cw, pw)


def dice_ce_loss(
    logits: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    ignore_index: int | None = None,
    scope: DiceScope | str = DiceScope.BATCH,
    class_weights: Weights = None,
    include_background: bool = True,
    squared: bool = False,
    empty: LossEmptyRule | str = LossEmptyRule.SKIP,
    eps: float = 1e-7,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    pixel_weights: Tensor | None = None,
) -> Tensor:
    """``dice_weight * soft_dice_loss + ce_weight * cross_entropy_loss``, sharing one softmax.

    The log-softmax is computed once; the Dice uses its exponential. ``class_weights``
    weight both terms (binary: (2,) = (background, foreground), used by the BCE only, since the
    binary Dice scores one class). ``pixel_weights`` (N, H, W) weight the CE term only. Other
    arguments as :func:`soft_dice_loss` and :func:`cross_entropy_loss`.

    Returns:
        Scalar loss.
    """
    check_positive(dice_weight, "dice_weight", allow_zero=True)
    check_positive(ce_weight, "ce_weight", allow_zero=True)
    task = as_enum(task, Task, "task")
    cw_ce = _ce_weights(task, class_weights, input_channels(logits))
    dice_cw = None if task is Task.BINARY else class_weights
    task, scope, empty, cw_dice = _check_common(
        task, scope, eps, include_background, dice_cw, input_channels(logits), empty
    )
    prep = prepare(logits, target, task=task, from_logits=True, ignore_index=ignore_index,
                   need_logp=True, fused=not squared)
    pw = check_pixel_weights(pixel_weights, logits)
    if prep.probs is None:  # one fused pass for the Dice sums and the CE numerator
        u = _index_ce_weights(prep, cw_ce, pw)
        stats, num = fused_sums(prep, u, True)
        ce = _ratio(num, _index_ce_den(prep, u, num))
    else:
        stats = statistics(prep, squared=squared)
        ce = _cross_entropy(prep, task, cw_ce, pw)
    dice = _overlap_loss(stats, jaccard=False, scope=scope, weights=cw_dice,
                         include_background=include_background, empty=empty, eps=eps)
    return dice_weight * dice + ce_weight * ce

"""Lovasz losses (Berman, Triki & Blaschko 2018, "The Lovasz-Softmax loss", Alg. 1 and eq. 8-12).

The Lovasz extension of the Jaccard loss of one unit (one class over the batch, or one
(image, class)), with per-pixel errors ``e`` sorted in decreasing order ``e_(1) >= e_(2) ...``
and the target ``g`` in the same order::

    J_k  = 1 - (G - sum_{j<=k} g_(j)) / (G + sum_{j<=k} (1 - g_(j)))     (G = sum g)
    loss = sum_k e_(k) (J_k - J_{k-1}),  J_0 = 0

- multiclass (Lovasz-softmax): ``e_i = |g_ic - p_ic|`` with ``p`` the softmax probabilities;
- binary / multilabel (Lovasz hinge, per channel): ``e_i = max(0, 1 - z_i (2 g_i - 1))`` with
  ``z`` the logits (the hinge needs logits: ``from_logits=False`` is refused).

Soft targets enter the same formula with real-valued ``g`` (for hard targets it is exactly the
paper's). The value does not depend on how ties are ordered. Ignored pixels are left out.
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
from segwise.losses._reduce import reduce_units, safe_ratio
from segwise.losses._stats import check_finite
from segwise.losses.dice import _check_overlap_options
from segwise.losses.options import DiceScope, LossEmptyRule, Reduction

__all__ = ["LovaszLoss", "lovasz_loss"]

Weights = Sequence[float] | Tensor | None


def _lovasz_units(
    errors: Tensor, g: Tensor, valid: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Lovasz extension per row. errors (R, M); g (R, M) float, or bool for hard targets;
    valid (R, M) bool or None (all valid). Returns (loss, G, n_valid), each (R,).

    The extension is linear in the errors for a fixed order: ``loss = sum_i e_i w_i`` with
    ``w_i`` the Jaccard increment at pixel i's rank. ``w`` is formed without autograd and
    scattered back to the pixels, so backward keeps one (R, M) tensor and no sort indices.
    """
    dtype = errors.dtype
    with torch.no_grad():
        if valid is None:
            order = torch.sort(errors, dim=1, descending=True).indices
            gs = g.gather(1, order).to(dtype)  # a 1-byte gather for hard targets
            total = gs.sum(1, keepdim=True)
            inter = total - gs.cumsum(1)
            union = total + (1.0 - gs).cumsum(1)
            count = errors.new_full((errors.shape[0],), float(errors.shape[1]))
        else:
            keys = torch.where(valid, errors, torch.full_like(errors, -torch.inf))
            order = torch.sort(keys, dim=1, descending=True).indices
            del keys
            v = valid.gather(1, order).to(dtype)
            gs = g.gather(1, order).to(dtype) * v
            total = gs.sum(1, keepdim=True)
            inter = total - gs.cumsum(1)
            union = total + ((1.0 - gs) * v).cumsum(1)
            count = valid.sum(1).to(dtype)
        jac = 1.0 - safe_ratio(inter, union)
        del inter, union, gs
        grad = torch.diff(jac, dim=1, prepend=torch.zeros_like(jac[:, :1]))
        if valid is not None:  # increments are 0 after the last valid pixel; keep it exact
            grad = grad * v
        weights = torch.zeros_like(errors).scatter_(1, order, grad)
    return (errors * weights).sum(1), total.squeeze(1), count


def _check_lovasz_options(task: Task, include_background: bool, class_weights: Weights,
                          from_logits: bool) -> None:
    """Dice's option rules, and logits for the hinge (binary, multilabel).

    Raises:
        ValueError: an option combination that is not valid, naming it.
    """
    _check_overlap_options(task, include_background, class_weights)
    if task is not Task.MULTICLASS and not from_logits:
        raise ValueError(
            f"from_logits=False is not valid for the Lovasz hinge (task='{task.value}'): the "
            "hinge margin is defined on logits; pass logits"
        )


def lovasz_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    scope: DiceScope | str = DiceScope.BATCH,
    class_weights: Weights = None,
    include_background: bool = True,
    empty: LossEmptyRule | str = LossEmptyRule.SKIP,
    reduction: Reduction | str = Reduction.MEAN,
) -> Tensor:
    """Lovasz-softmax (multiclass) or Lovasz hinge (binary, multilabel) loss.

    Args:
        input: (N, C, H, W) logits (C = 1 for binary); multiclass also accepts probabilities
            with ``from_logits=False``.
        target: (N, H, W) integer class indices, or (N, C, H, W) float one-hot / soft labels.
        task: binary, multiclass or multilabel.
        from_logits: whether ``input`` holds logits (required for the hinge).
        ignore_index: target value of ignored pixels, or None.
        scope: one unit per class over the batch (``per_image=False`` of the paper's code) or
            per (image, class) (``per_image=True``).
        class_weights: (C,) weights >= 0 of the per-class losses (not for binary).
        include_background: score class (channel) 0 (not valid to disable for binary).
        empty: ``skip``: units with an empty target are left out (the paper's
            ``classes="present"``); ``fp_rate``: they are scored by the extension itself,
            which for an empty target is the largest error of the unit (``classes="all"``).
        reduction: ``mean`` over the scored units (class-weighted), ``sum`` or ``none`` (per-unit
            losses, (K,) for batch scope, (N, K) for image scope).

    Returns:
        Scalar loss >= 0 (``mean``, ``sum``) or the per-unit losses.
    """
    task = as_enum(task, Task, "task")
    scope = as_enum(scope, DiceScope, "scope")
    empty = as_enum(empty, LossEmptyRule, "empty")
    reduction = as_enum(reduction, Reduction, "reduction")
    _check_lovasz_options(task, include_background, class_weights, from_logits)
    n_ch = input_channels(input)
    weights = check_class_weights(class_weights, n_ch)
    prep = prepare(input, target, task=task, from_logits=from_logits, ignore_index=ignore_index)
    p = prep.probs  # (N, C, L)
    check_finite(p.sum(2))
    n, c, length = p.shape
    if prep.labels is not None:  # hard targets as bool: cheap to gather
        g = F.one_hot(prep.labels, c + 1)[..., :c].permute(0, 2, 1).bool()
    else:
        g = prep.dense
    valid = None
    if prep.valid is not None:
        valid = (prep.valid.unsqueeze(1) if prep.valid.ndim == 2 else prep.valid).expand(
            n, c, length)
    gf = g.to(p.dtype)
    if task is Task.MULTICLASS:
        errors = (gf - p).abs()
    else:
        errors = F.relu(1.0 - prep.logits * (2.0 * gf - 1.0))
    del gf
    if scope is DiceScope.BATCH:  # one row per class: (C, N * L)
        def to_rows(t):
            return None if t is None else t.transpose(0, 1).reshape(c, n * length)
        units = 1
    else:  # one row per (image, class)
        def to_rows(t):
            return None if t is None else t.reshape(n * c, length)
        units = n
    rows = [to_rows(t) for t in (errors, g, valid)]
    # rows in chunks of ~4M elements: the sort's temporaries stay small (one unit per row)
    step = max(1, (1 << 22) // max(rows[0].shape[1], 1))
    parts = [
        _lovasz_units(*(None if r is None else r[i:i + step] for r in rows))
        for i in range(0, rows[0].shape[0], step)
    ]
    loss, gsum, count = (torch.cat([part[k] for part in parts]).view(units, c) for k in range(3))
    if not include_background:
        loss, gsum, count = loss[:, 1:], gsum[:, 1:], count[:, 1:]
        weights = None if weights is None else weights[1:]
    scored = count > 0
    if empty is LossEmptyRule.SKIP:
        scored = scored & (gsum > 0)
    out = reduce_units(loss, scored, weights, reduction)
    return out.squeeze(0) if (reduction is Reduction.NONE and scope is DiceScope.BATCH) else out


class LovaszLoss(LossModule):
    """Lovasz-softmax (multiclass) / Lovasz hinge (binary, multilabel), Berman et al. 2018.

    Maths: :func:`lovasz_loss`.

    Args:
        task, num_classes, from_logits, ignore_index, scope, class_weights,
            include_background, empty, reduction: as :class:`~segwise.losses.DiceLoss` (see
            :func:`lovasz_loss` for what ``empty`` means here).

    Shape:
        As :class:`~segwise.losses.DiceLoss`.
    """

    def __init__(
        self,
        *,
        task: Task | str,
        num_classes: int | None = None,
        from_logits: bool = True,
        ignore_index: int | None = None,
        scope: DiceScope | str = DiceScope.BATCH,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        empty: LossEmptyRule | str = LossEmptyRule.SKIP,
        reduction: Reduction | str = Reduction.MEAN,
    ) -> None:
        task = as_enum(task, Task, "task")
        _check_lovasz_options(task, include_background, class_weights, from_logits)
        super().__init__(task=task, num_classes=num_classes, class_weights=class_weights,
                         n_weights=num_classes)
        self.from_logits = bool(from_logits)
        self.ignore_index = ignore_index
        self.scope = as_enum(scope, DiceScope, "scope")
        self.include_background = bool(include_background)
        self.empty = as_enum(empty, LossEmptyRule, "empty")
        self.reduction = as_enum(reduction, Reduction, "reduction")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Loss of ``input`` (N, C, H, W) against ``target`` (N, H, W) or (N, C, H, W)."""
        self._check_channels(input)
        return lovasz_loss(input, target, task=self.task, from_logits=self.from_logits,
                           ignore_index=self.ignore_index, scope=self.scope,
                           class_weights=self._weights(),
                           include_background=self.include_background, empty=self.empty,
                           reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"task={self.task.value}, scope={self.scope.value}, empty={self.empty.value}"

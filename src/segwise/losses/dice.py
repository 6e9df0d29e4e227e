"""Dice, Jaccard and generalized Dice losses as thin ``nn.Module`` wrappers.

The maths lives in :mod:`segwise.losses.functional`; definitions in ``docs/dice.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from segwise._validation import as_enum, check_positive
from segwise.enums import Task
from segwise.losses import functional as LF
from segwise.losses._module import LossModule
from segwise.losses.options import DiceScope, GDiceWeight, LossEmptyRule, Reduction

__all__ = ["DiceLoss", "GeneralizedDiceLoss", "JaccardLoss"]


def _check_overlap_options(task: Task, include_background: bool, class_weights) -> None:
    if task is Task.BINARY and not include_background:
        raise ValueError(
            "include_background=False is not valid for task='binary': its single channel is "
            "the foreground, so nothing would be scored"
        )
    if task is Task.BINARY and class_weights is not None:
        raise ValueError(
            "class_weights are not valid for a binary Dice: it scores one class (foreground)"
        )


class DiceLoss(LossModule):
    """Soft Dice loss ``1 - 2 I / (P + G + eps)``.

    Maths: :func:`segwise.losses.functional.soft_dice_loss`.

    Args:
        task: binary (1 sigmoid channel), multiclass (softmax) or multilabel (sigmoid each).
        num_classes: number of input channels to expect (binary: 1), or None.
        from_logits: ``forward`` receives logits (True) or probabilities (False).
        ignore_index: target value of pixels removed from numerator and denominator.
        scope: one Dice per class over the batch, or per (image, class) then averaged.
        class_weights: (C,) weights >= 0 of the per-class losses (not for binary).
        include_background: score class 0 (not valid to disable for binary).
        squared: V-Net denominator ``sum(p**2) + sum(g**2)``.
        empty: rule for units whose target is empty (:class:`LossEmptyRule`).
        eps: added to the denominator only.
        reduction: :class:`Reduction`: ``mean`` (default), ``sum`` or ``none`` (per-unit
            losses, (K,) for batch scope, (N, K) for image scope).

    Shape:
        ``forward(input, target)``: input (N, C, H, W); target (N, H, W) integer class
        indices or (N, C, H, W) float one-hot / soft labels; returns a scalar (``mean``,
        ``sum``).
    """

    _jaccard = False

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
        squared: bool = False,
        empty: LossEmptyRule | str = LossEmptyRule.SKIP,
        eps: float = 1e-7,
        reduction: Reduction | str = Reduction.MEAN,
    ) -> None:
        task = as_enum(task, Task, "task")
        _check_overlap_options(task, include_background, class_weights)
        super().__init__(task=task, num_classes=num_classes, class_weights=class_weights,
                         n_weights=num_classes)
        check_positive(eps, "eps", allow_zero=True)
        self.from_logits = bool(from_logits)
        self.ignore_index = ignore_index
        self.scope = as_enum(scope, DiceScope, "scope")
        self.include_background = bool(include_background)
        self.squared = bool(squared)
        self.empty = as_enum(empty, LossEmptyRule, "empty")
        self.eps = float(eps)
        self.reduction = as_enum(reduction, Reduction, "reduction")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Loss of ``input`` (N, C, H, W) against ``target`` (N, H, W) or (N, C, H, W)."""
        self._check_channels(input)
        fn = LF.soft_jaccard_loss if self._jaccard else LF.soft_dice_loss
        return fn(input, target, task=self.task, from_logits=self.from_logits,
                  ignore_index=self.ignore_index, scope=self.scope,
                  class_weights=self._weights(), include_background=self.include_background,
                  squared=self.squared, empty=self.empty, eps=self.eps,
                  reduction=self.reduction)

    def extra_repr(self) -> str:
        return (
            f"task={self.task.value}, scope={self.scope.value}, empty={self.empty.value}, "
            f"squared={self.squared}, include_background={self.include_background}"
        )


class JaccardLoss(DiceLoss):
    """Soft Jaccard (IoU) loss ``1 - I / (P + G - I + eps)``; arguments as :class:`DiceLoss`."""

    _jaccard = True


class GeneralizedDiceLoss(LossModule):
    """Generalized Dice loss of Sudre et al. 2017.

    Maths: :func:`segwise.losses.functional.generalized_dice_loss`.

    Args:
        task, num_classes, from_logits, ignore_index, scope, class_weights,
            include_background, eps: as :class:`DiceLoss`.
        weight_type: class-frequency weights :class:`GDiceWeight` (default ``1 / G_c**2``).

    Shape:
        As :class:`DiceLoss`.
    """

    def __init__(
        self,
        *,
        task: Task | str,
        num_classes: int | None = None,
        from_logits: bool = True,
        ignore_index: int | None = None,
        scope: DiceScope | str = DiceScope.BATCH,
        weight_type: GDiceWeight | str = GDiceWeight.SQUARE,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        eps: float = 1e-7,
    ) -> None:
        task = as_enum(task, Task, "task")
        _check_overlap_options(task, include_background, class_weights)
        super().__init__(task=task, num_classes=num_classes, class_weights=class_weights,
                         n_weights=num_classes)
        check_positive(eps, "eps", allow_zero=True)
        self.from_logits = bool(from_logits)
        self.ignore_index = ignore_index
        self.scope = as_enum(scope, DiceScope, "scope")
        self.weight_type = as_enum(weight_type, GDiceWeight, "weight_type")
        self.include_background = bool(include_background)
        self.eps = float(eps)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Loss of ``input`` (N, C, H, W) against ``target`` (N, H, W) or (N, C, H, W)."""
        self._check_channels(input)
        return LF.generalized_dice_loss(
            input, target, task=self.task, from_logits=self.from_logits,
            ignore_index=self.ignore_index, scope=self.scope, weight_type=self.weight_type,
            class_weights=self._weights(), include_background=self.include_background,
            eps=self.eps,
        )

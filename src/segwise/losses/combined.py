"""Cross-entropy and Dice + cross-entropy losses as thin ``nn.Module`` wrappers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from segwise._validation import as_enum, check_positive
from segwise.enums import Task
from segwise.losses import functional as LF
from segwise.losses._module import LossModule
from segwise.losses.options import DiceScope, LossEmptyRule

__all__ = ["CrossEntropyLoss", "DiceCELoss"]


def _n_ce_weights(task: Task, num_classes: int | None) -> int | None:
    return 2 if task is Task.BINARY else num_classes


class CrossEntropyLoss(LossModule):
    """CE (multiclass) or BCE (binary, multilabel) from logits.

    Maths: :func:`segwise.losses.functional.cross_entropy_loss`.

    Args:
        task: binary, multiclass or multilabel.
        num_classes: number of input channels to expect (binary: 1), or None.
        ignore_index: target value of ignored pixels.
        class_weights: multiclass/multilabel (C,); binary (2,) = (background, foreground).

    Shape:
        ``forward(logits, target, *, pixel_weights=None)``: logits (N, C, H, W); target
        (N, H, W) integer indices or (N, C, H, W) float; pixel_weights (N, H, W) >= 0.
    """

    def __init__(
        self,
        *,
        task: Task | str,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | Tensor | None = None,
    ) -> None:
        task = as_enum(task, Task, "task")
        super().__init__(task=task, num_classes=num_classes, class_weights=class_weights,
                         n_weights=_n_ce_weights(task, num_classes))
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor, *, pixel_weights: Tensor | None = None):
        """Loss of ``logits`` (N, C, H, W) against ``target``; see the class docstring."""
        self._check_channels(logits)
        return LF.cross_entropy_loss(logits, target, task=self.task,
                                     ignore_index=self.ignore_index,
                                     class_weights=self._weights(),
                                     pixel_weights=pixel_weights)


class DiceCELoss(LossModule):
    """``dice_weight * Dice + ce_weight * CE`` with one shared softmax.

    Maths: :func:`segwise.losses.functional.dice_ce_loss`.

    Args:
        task, num_classes, ignore_index: as :class:`CrossEntropyLoss`.
        scope, include_background, squared, empty, eps: options of the Dice term
            (:class:`~segwise.losses.dice.DiceLoss`).
        class_weights: weights of both terms (C,); binary (2,) = (background, foreground),
            used by the BCE only.
        dice_weight: weight >= 0 of the Dice term.
        ce_weight: weight >= 0 of the (B)CE term.

    Shape:
        ``forward(logits, target, *, pixel_weights=None)``: logits (N, C, H, W); target
        (N, H, W) integer indices or (N, C, H, W) float; pixel_weights (N, H, W) >= 0
        weights the CE term only.
    """

    def __init__(
        self,
        *,
        task: Task | str,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        scope: DiceScope | str = DiceScope.BATCH,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        squared: bool = False,
        empty: LossEmptyRule | str = LossEmptyRule.SKIP,
        eps: float = 1e-7,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
    ) -> None:
        task = as_enum(task, Task, "task")
        if task is Task.BINARY and not include_background:
            raise ValueError(
                "include_background=False is not valid for task='binary': its single channel "
                "is the foreground, so nothing would be scored"
            )
        super().__init__(task=task, num_classes=num_classes, class_weights=class_weights,
                         n_weights=_n_ce_weights(task, num_classes))
        for value, name in ((eps, "eps"), (dice_weight, "dice_weight"), (ce_weight, "ce_weight")):
            check_positive(value, name, allow_zero=True)
        self.ignore_index = ignore_index
        self.scope = as_enum(scope, DiceScope, "scope")
        self.include_background = bool(include_background)
        self.squared = bool(squared)
        self.empty = as_enum(empty, LossEmptyRule, "empty")
        self.eps = float(eps)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)

    def forward(self, logits: Tensor, target: Tensor, *, pixel_weights: Tensor | None = None):
        """Loss of ``logits`` (N, C, H, W) against ``target``; see the class docstring."""
        self._check_channels(logits)
        return LF.dice_ce_loss(
            logits, target, task=self.task, ignore_index=self.ignore_index, scope=self.scope,
            class_weights=self._weights(), include_background=self.include_background,
            squared=self.squared, empty=self.empty, eps=self.eps,
            dice_weight=self.dice_weight, ce_weight=self.ce_weight, pixel_weights=pixel_weights,
        )

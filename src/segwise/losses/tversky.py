"""Tversky and focal Tversky losses: the Dice family with unequal costs for FP and FN.

Definitions (``docs/dice.md`` §3): with the per-unit sums ``I, P, G`` of the Dice family,
``FP = P - I`` and ``FN = G - I``,

- Tversky index (Salehi et al. 2017, "Tversky loss function for image segmentation using 3D
  fully convolutional deep networks", eq. 3): ``TI = I / (I + alpha FP + beta FN + eps)``;
  ``alpha = beta = 0.5`` gives Dice (with ``2 eps``), ``alpha = beta = 1`` Jaccard.
- loss per unit: ``1 - TI`` (Tversky), ``(1 - TI) ** gamma`` (focal Tversky, Abraham & Khan
  2019, eq. 4, written there as ``(1 - TI) ** (1 / gamma)``: their recommended ``4/3`` is our
  ``gamma = 0.75``).

Units, empty rule, class weights and reductions are those of :func:`segwise.losses.functional.
soft_dice_loss` (batch or image scope, ``empty="skip"`` or ``"fp_rate"``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from segwise._validation import as_enum, check_positive
from segwise.enums import Task
from segwise.losses import functional as LF
from segwise.losses._inputs import input_channels, prepare
from segwise.losses._module import LossModule
from segwise.losses._stats import statistics
from segwise.losses.dice import _check_overlap_options
from segwise.losses.options import DiceScope, LossEmptyRule, Reduction

__all__ = ["FocalTverskyLoss", "TverskyLoss", "focal_tversky_loss", "tversky_loss"]

Weights = Sequence[float] | Tensor | None


def _check_costs(alpha: float, beta: float, gamma: float) -> None:
    for value, name in ((alpha, "alpha"), (beta, "beta")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name}={value!r} is not valid; expected a number >= 0")
    if alpha + beta <= 0:
        raise ValueError(
            f"alpha={alpha}, beta={beta} is not valid; expected alpha + beta > 0 (both 0 would "
            "score every unit with any overlap as perfect)"
        )
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma <= 0:
        raise ValueError(f"gamma={gamma!r} is not valid; expected a number > 0")


def focal_tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: Task | str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    scope: DiceScope | str = DiceScope.BATCH,
    class_weights: Weights = None,
    include_background: bool = True,
    empty: LossEmptyRule | str = LossEmptyRule.SKIP,
    eps: float = 1e-7,
    reduction: Reduction | str = Reduction.MEAN,
) -> Tensor:
    """Focal Tversky loss ``(1 - I / (I + alpha FP + beta FN + eps)) ** gamma`` per unit.

    ``gamma = 1`` is the Tversky loss. ``FP = P - I`` and ``FN = G - I`` use the L1 sums of
    ``docs/dice.md`` §2 (``I = sum(min(p, g))``), so ``p = g`` scores 0 for soft labels too.

    Args:
        input: (N, C, H, W) logits (C = 1 for binary), or probabilities if ``from_logits=False``.
        target: (N, H, W) integer class indices, or (N, C, H, W) float one-hot / soft labels.
        task: binary, multiclass or multilabel.
        from_logits: whether ``input`` holds logits.
        ignore_index: target value of pixels removed from every sum, or None.
        alpha: weight >= 0 of the false positives.
        beta: weight >= 0 of the false negatives (``beta > alpha`` favours recall).
        gamma: focal exponent > 0 applied to each unit's ``1 - TI``.
        scope, class_weights, include_background, empty, eps, reduction: as
            :func:`segwise.losses.functional.soft_dice_loss`.

    Returns:
        Scalar loss in [0, 1] (``mean``); (K,) or (N, K) per-unit losses (``none``).
    """
    task = as_enum(task, Task, "task")
    reduction = as_enum(reduction, Reduction, "reduction")
    _check_costs(alpha, beta, gamma)
    _check_overlap_options(task, include_background, class_weights)
    n_ch = input_channels(input)
    task, scope, empty, weights = LF._check_common(
        task, scope, eps, include_background, class_weights, n_ch, empty
    )
    prep = prepare(input, target, task=task, from_logits=from_logits, ignore_index=ignore_index,
                   fused=True)
    inter, psum, tsum, count = LF._units(statistics(prep, squared=False), scope,
                                         include_background)
    den = inter + alpha * (psum - inter) + beta * (tsum - inter) + eps
    score = LF._safe_ratio(inter, den)
    return LF.region_reduce(score, psum, tsum, count, scope=scope, weights=weights,
                            include_background=include_background, empty=empty,
                            reduction=reduction, power=float(gamma))


def tversky_loss(input: Tensor, target: Tensor, **kwargs) -> Tensor:
    """Tversky loss ``1 - I / (I + alpha FP + beta FN + eps)`` per unit, then reduced.

    Same arguments as :func:`focal_tversky_loss` without ``gamma`` (Salehi et al. 2017).
    """
    if "gamma" in kwargs:
        raise ValueError("gamma is not an option of tversky_loss; use focal_tversky_loss")
    return focal_tversky_loss(input, target, **kwargs)


class FocalTverskyLoss(LossModule):
    """Focal Tversky loss ``(1 - TI) ** gamma`` (Abraham & Khan 2019; gamma = 1: Tversky).

    Maths: :func:`focal_tversky_loss`.

    Args:
        task, num_classes, from_logits, ignore_index, scope, class_weights,
            include_background, empty, eps, reduction: as :class:`~segwise.losses.DiceLoss`.
        alpha: weight >= 0 of the false positives.
        beta: weight >= 0 of the false negatives.
        gamma: focal exponent > 0 (the paper's ``1 / gamma``; 0.75 is its recommendation).

    Shape:
        As :class:`~segwise.losses.DiceLoss`.
    """

    _default_gamma = 0.75

    def __init__(
        self,
        *,
        task: Task | str,
        num_classes: int | None = None,
        from_logits: bool = True,
        ignore_index: int | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float | None = None,
        scope: DiceScope | str = DiceScope.BATCH,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        empty: LossEmptyRule | str = LossEmptyRule.SKIP,
        eps: float = 1e-7,
        reduction: Reduction | str = Reduction.MEAN,
    ) -> None:
        task = as_enum(task, Task, "task")
        _check_overlap_options(task, include_background, class_weights)
        super().__init__(task=task, num_classes=num_classes, class_weights=class_weights,
                         n_weights=num_classes)
        gamma = self._default_gamma if gamma is None else gamma
        _check_costs(alpha, beta, gamma)
        check_positive(eps, "eps", allow_zero=True)
        self.from_logits = bool(from_logits)
        self.ignore_index = ignore_index
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.scope = as_enum(scope, DiceScope, "scope")
        self.include_background = bool(include_background)
        self.empty = as_enum(empty, LossEmptyRule, "empty")
        self.eps = float(eps)
        self.reduction = as_enum(reduction, Reduction, "reduction")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Loss of ``input`` (N, C, H, W) against ``target`` (N, H, W) or (N, C, H, W)."""
        self._check_channels(input)
        return focal_tversky_loss(
            input, target, task=self.task, from_logits=self.from_logits,
            ignore_index=self.ignore_index, alpha=self.alpha, beta=self.beta, gamma=self.gamma,
            scope=self.scope, class_weights=self._weights(),
            include_background=self.include_background, empty=self.empty, eps=self.eps,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (f"task={self.task.value}, alpha={self.alpha}, beta={self.beta}, "
                f"gamma={self.gamma}, scope={self.scope.value}, empty={self.empty.value}")


class TverskyLoss(FocalTverskyLoss):
    """Tversky loss ``1 - I / (I + alpha FP + beta FN + eps)`` (Salehi et al. 2017).

    Arguments as :class:`FocalTverskyLoss` with ``gamma`` fixed to 1; defaults
    ``alpha = 0.3, beta = 0.7`` (the paper's best setting, weighting false negatives).
    """

    _default_gamma = 1.0

    def __init__(self, *, task: Task | str, **options) -> None:
        if options.get("gamma", 1.0) != 1.0:
            raise ValueError(
                f"gamma={options['gamma']!r} is not valid for TverskyLoss; use FocalTverskyLoss"
            )
        options.pop("gamma", None)
        super().__init__(task=task, **options)

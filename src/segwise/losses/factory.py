"""``create_loss``: the one way for the training engine to build a loss by name."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from torch import Tensor, nn

from segwise._validation import as_enum
from segwise.enums import Task
from segwise.losses.combined import CrossEntropyLoss, DiceCELoss
from segwise.losses.dice import DiceLoss, GeneralizedDiceLoss, JaccardLoss

__all__ = ["LossName", "create_loss", "loss_options"]


class LossName(str, Enum):
    """Names accepted by :func:`create_loss`."""

    DICE = "dice"
    DICECE = "dicece"
    CE = "ce"
    JACCARD = "jaccard"
    GDICE = "gdice"


_CLASSES: dict[LossName, type[nn.Module]] = {
    LossName.DICE: DiceLoss,
    LossName.DICECE: DiceCELoss,
    LossName.CE: CrossEntropyLoss,
    LossName.JACCARD: JaccardLoss,
    LossName.GDICE: GeneralizedDiceLoss,
}

# the documented options of each loss, beyond task/num_classes/ignore_index/class_weights
_OPTIONS: dict[LossName, tuple[str, ...]] = {
    LossName.DICE: ("from_logits", "scope", "include_background", "squared", "empty", "eps"),
    LossName.JACCARD: ("from_logits", "scope", "include_background", "squared", "empty", "eps"),
    LossName.DICECE: ("scope", "include_background", "squared", "empty", "eps", "dice_weight",
                      "ce_weight"),
    LossName.CE: (),
    LossName.GDICE: ("from_logits", "scope", "weight_type", "include_background", "eps"),
}


def loss_options(name: LossName | str) -> tuple[str, ...]:
    """The option names :func:`create_loss` accepts for ``name`` (besides the common ones)."""
    return _OPTIONS[as_enum(name, LossName, "name")]


def create_loss(
    name: LossName | str,
    *,
    task: Task | str,
    num_classes: int,
    ignore_index: int | None = None,
    class_weights: Sequence[float] | Tensor | None = None,
    **options: Any,
) -> nn.Module:
    """Build a loss module, called as ``loss(logits, target)``.

    Args:
        name: :class:`LossName` (``dice``, ``dicece``, ``ce``, ``jaccard``, ``gdice``).
        task: binary, multiclass or multilabel.
        num_classes: number of logit channels (binary: 1).
        ignore_index: target value of ignored pixels, or None.
        class_weights: per-class weights (C,); for binary ``ce``/``dicece`` (2,) =
            (background, foreground); not valid for a binary ``dice``/``jaccard``/``gdice``.
        **options: only the options :func:`loss_options` lists for ``name``, passed to the
            loss class (one hop).

    Returns:
        The loss ``nn.Module``; ``DiceCELoss`` and ``CrossEntropyLoss`` also take
        ``pixel_weights=`` (N, H, W) in ``forward``.

    Raises:
        ValueError: unknown name or option, or an invalid value.
    """
    name = as_enum(name, LossName, "name")
    allowed = _OPTIONS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"option(s) {unknown} are not valid for loss {name.value!r}; expected only: "
            f"{', '.join(allowed) or '(none)'}"
        )
    if num_classes is None:
        raise ValueError("num_classes=None is not valid; expected the number of logit channels")
    return _CLASSES[name](task=task, num_classes=num_classes, ignore_index=ignore_index,
                          class_weights=class_weights, **options)

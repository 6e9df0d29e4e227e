"""``create_loss``: the one way for the training engine to build a loss by name."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from torch import Tensor, nn

from segwise._validation import as_enum
from segwise.enums import Task
from segwise.labels import LabelSpace, check_ignore_label
from segwise.losses.combined import CrossEntropyLoss, DiceCELoss
from segwise.losses.dice import DiceLoss, GeneralizedDiceLoss, JaccardLoss
from segwise.losses.focal import FocalLoss
from segwise.losses.lovasz import LovaszLoss
from segwise.losses.tversky import FocalTverskyLoss, TverskyLoss
from segwise.losses.weighted_sum import WeightedSumLoss

__all__ = ["LossName", "create_loss", "loss_options"]


class LossName(str, Enum):
    """Names accepted by :func:`create_loss`."""

    DICE = "dice"
    DICECE = "dicece"
    CE = "ce"
    JACCARD = "jaccard"
    GDICE = "gdice"
    FOCAL = "focal"
    TVERSKY = "tversky"
    FOCAL_TVERSKY = "focal_tversky"
    LOVASZ = "lovasz"


_CLASSES: dict[LossName, type[nn.Module]] = {
    LossName.DICE: DiceLoss,
    LossName.DICECE: DiceCELoss,
    LossName.CE: CrossEntropyLoss,
    LossName.JACCARD: JaccardLoss,
    LossName.GDICE: GeneralizedDiceLoss,
    LossName.FOCAL: FocalLoss,
    LossName.TVERSKY: TverskyLoss,
    LossName.FOCAL_TVERSKY: FocalTverskyLoss,
    LossName.LOVASZ: LovaszLoss,
}

# the losses whose binary form takes class weights (background, foreground): the (B)CE-based
# ones; a binary region loss (Dice, Jaccard, Tversky, ...) scores the foreground only
_BINARY_CLASS_WEIGHTS = (LossName.CE, LossName.DICECE, LossName.FOCAL)

_REGION = ("from_logits", "scope", "include_background", "empty")

# the documented options of each loss, beyond task/num_classes/ignore_index/class_weights
_OPTIONS: dict[LossName, tuple[str, ...]] = {
    LossName.DICE: (*_REGION, "squared", "eps", "reduction"),
    LossName.JACCARD: (*_REGION, "squared", "eps", "reduction"),
    LossName.DICECE: ("scope", "include_background", "squared", "empty", "eps", "dice_weight",
                      "ce_weight"),
    LossName.CE: (),
    LossName.GDICE: ("from_logits", "scope", "weight_type", "include_background", "eps"),
    LossName.FOCAL: ("from_logits", "alpha", "gamma", "include_background", "reduction"),
    LossName.TVERSKY: (*_REGION, "alpha", "beta", "eps", "reduction"),
    LossName.FOCAL_TVERSKY: (*_REGION, "alpha", "beta", "gamma", "eps", "reduction"),
    LossName.LOVASZ: (*_REGION, "reduction"),
}


def _split(name: LossName | str) -> list[LossName]:
    """``"dice+focal"`` -> [DICE, FOCAL]; one name -> a list of one."""
    if isinstance(name, str) and "+" in name:
        parts = [p.strip() for p in name.split("+")]
        members = [as_enum(p, LossName, f"loss term {p!r} of {name!r}") for p in parts]
        if len(set(members)) != len(members):
            raise ValueError(f"loss {name!r} names a term twice; give it one weight instead")
        return members
    return [as_enum(name, LossName, "name")]


def loss_options(name: LossName | str) -> tuple[str, ...]:
    """The option names :func:`create_loss` accepts for ``name`` (besides the common ones).

    For a sum such as ``"dice+focal"``: the union of the terms' options.
    """
    out: list[str] = []
    for member in _split(name):
        out += [o for o in _OPTIONS[member] if o not in out]
    return tuple(out)


def create_loss(
    name: LossName | str,
    *,
    labels: LabelSpace | None = None,
    task: Task | str | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    class_weights: Sequence[float] | Tensor | None = None,
    weights: Sequence[float] | None = None,
    **options: Any,
) -> nn.Module:
    """Build a loss module, called as ``loss(logits, target)``.

    The engine passes ``labels=`` (the data's label space: task, ``out_channels`` logit
    channels, and ``pad_value``, the one label loss and metrics leave out); a direct caller
    may give ``task``, ``num_classes`` and ``ignore_index`` instead (not both forms).

    Args:
        name: a :class:`LossName` (``dice``, ``dicece``, ``ce``, ``jaccard``, ``gdice``,
            ``focal``, ``tversky``, ``focal_tversky``, ``lovasz``), or a weighted sum of
            distinct names joined by ``+`` (e.g. ``"dice+focal"``), built as
            :class:`~segwise.losses.WeightedSumLoss`.
        labels: the :class:`~segwise.labels.LabelSpace` of the data.
        task: binary, multiclass or multilabel (without ``labels``).
        num_classes: number of logit channels (binary: 1) (without ``labels``).
        ignore_index: target value of ignored pixels, or None; outside ``[0, C)`` (C = 2 for
            binary), the rule of :func:`segwise.labels.check_ignore_label` (without
            ``labels``).
        class_weights: per-class weights (C,), given to every term; for binary
            ``ce``/``dicece``/``focal`` (2,) = (background, foreground); not valid for a binary
            region loss (``dice``, ``jaccard``, ``gdice``, ``tversky``, ``lovasz``, ...).
        weights: one weight >= 0 per term of a sum (default all 1); for one name, None or
            one weight.
        **options: only the options :func:`loss_options` lists for ``name``, passed to the
            loss class (one hop); for a sum, each option goes to every term that lists it.

    Returns:
        The loss ``nn.Module``; ``DiceCELoss`` and ``CrossEntropyLoss`` also take
        ``pixel_weights=`` (N, H, W) in ``forward``.

    Raises:
        ValueError: unknown name or option, or an invalid value.
    """
    members = _split(name)
    allowed = loss_options(name)
    unknown = sorted(set(options) - set(allowed))
    label = name.value if isinstance(name, LossName) else str(name)
    if unknown:
        raise ValueError(
            f"option(s) {unknown} are not valid for loss {label!r}; expected only: "
            f"{', '.join(allowed) or '(none)'}"
        )
    if labels is not None:
        given = [k for k, v in (("task", task), ("num_classes", num_classes),
                                ("ignore_index", ignore_index)) if v is not None]
        if given:
            raise ValueError(f"create_loss: labels= already holds {', '.join(given)}; pass "
                             "either labels= or task/num_classes/ignore_index, not both")
        # the label space was checked when it was built: its own counts, no conversion here
        task, num_classes, ignore_index = labels.task, labels.out_channels, labels.pad_value
    else:
        if task is None or num_classes is None:
            raise ValueError("create_loss needs labels= (a LabelSpace), or task= and "
                             "num_classes= (the number of logit channels)")
        binary = as_enum(task, Task, "task") is Task.BINARY
        check_ignore_label(ignore_index, 2 if binary else num_classes, where=f"loss {label!r}")
    refused = [m.value for m in members if m not in _BINARY_CLASS_WEIGHTS]
    if class_weights is not None and refused and as_enum(task, Task, "task") is Task.BINARY:
        raise ValueError(
            f"class_weights are not valid for the binary loss term(s) {', '.join(refused)} of "
            f"{label!r}: a binary region loss scores the foreground only; binary class weights "
            "(background, foreground) are taken by "
            f"{', '.join(m.value for m in _BINARY_CLASS_WEIGHTS)} (e.g. loss 'dicece')")
    terms = [
        _CLASSES[m](task=task, num_classes=num_classes, ignore_index=ignore_index,
                    class_weights=class_weights,
                    **{k: v for k, v in options.items() if k in _OPTIONS[m]})
        for m in members
    ]
    if len(terms) == 1 and (weights is None or list(weights) == [1.0]):
        return terms[0]
    return WeightedSumLoss(terms, weights=weights, names=[m.value for m in members])

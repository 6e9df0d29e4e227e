"""Input checks shared by the semantic metrics, so that every metric rejects bad input alike.

Errors name the argument, the bad value and the expected form (STYLE.md, habit 11).
"""

from __future__ import annotations

from typing import Any

import torch

from segwise.labels import check_ignore_label

__all__ = ["check_class_names", "check_ignore_index", "check_label_maps", "check_num_classes"]


def check_num_classes(num_classes: int) -> int:
    """Return ``num_classes`` after checking it is an ``int >= 1``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is not valid; expected an int >= 1")
    return num_classes


def check_ignore_index(ignore_index: int | None, num_classes: int) -> int | None:
    """Return ``ignore_index`` after checking it by the one ignore-label rule
    (:func:`segwise.labels.check_ignore_label`: ``None`` or an int outside ``[0, C)``)."""
    check_ignore_label(ignore_index, num_classes, where="metric")
    return ignore_index


def check_class_names(class_names: Any, num_classes: int) -> tuple[str, ...] | None:
    """Return ``class_names`` as a tuple after checking it holds ``num_classes`` strings."""
    if class_names is None:
        return None
    names = tuple(class_names) if not isinstance(class_names, str) else (class_names,)
    if len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"class_names={class_names!r} is not valid; expected {num_classes} strings, one per "
            "class, or None"
        )
    return names


def _check_integer_tensor(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of class indices; got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        raise ValueError(
            f"{name} has dtype {x.dtype}; expected an integer (int64) label map of class indices. "
            "Turn model outputs into labels with segwise.metrics.labels_from_logits first"
        )
    return x


def check_label_maps(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch of predicted and target label maps and return them as int64.

    Args:
        pred: (N, H, W) integer predicted class indices, every value in ``[0, num_classes)``;
            volumes (N, D, H, W).
        target: (N, H, W) integer target class indices in ``[0, num_classes)`` or
            ``ignore_index``; volumes (N, D, H, W).
        num_classes: number of classes C.
        ignore_index: target value whose pixels are left out, or ``None``.

    Returns:
        ``(pred, target)`` as int64 tensors on ``target``'s device.

    Raises:
        ValueError: on non-tensors, float/complex dtypes, shapes that are not the same
            ``(N, H, W)``, predictions outside ``[0, C)`` or targets outside ``[0, C)`` that
            are not ``ignore_index``.
    """
    pred = _check_integer_tensor(pred, "pred")
    target = _check_integer_tensor(target, "target")
    if pred.ndim not in (3, 4) or target.ndim not in (3, 4):
        raise ValueError(
            f"pred has shape {tuple(pred.shape)} and target has shape {tuple(target.shape)}; "
            "expected two (N, H, W) label maps, or (N, D, H, W) for volumes (add a batch "
            "dimension with x[None] for one image)"
        )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}; "
            "expected the same (N, H, W)"
        )
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    pred = pred.long()
    target = target.long()
    if pred.numel():
        lo, hi = int(pred.min()), int(pred.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"pred contains the value {bad}; expected class indices in [0, {num_classes})"
            )
        bad_t = (target < 0) | (target >= num_classes)
        if ignore_index is not None:
            bad_t &= target != ignore_index
        if bool(bad_t.any()):
            bad = int(target[bad_t][0])
            allowed = f"[0, {num_classes})"
            if ignore_index is not None:
                allowed += f" or ignore_index={ignore_index}"
            else:
                allowed += " (pass ignore_index=... to leave a value such as 255 out)"
            raise ValueError(
                f"target contains the value {bad}; expected class indices in {allowed}"
            )
    return pred, target

"""Shared plumbing of the loss modules (private): options validated once, at construction."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segwise.enums import Task
from segwise.losses._inputs import check_class_weights

__all__ = ["LossModule"]


class LossModule(nn.Module):
    """Base of the thin loss wrappers: holds ``task``, ``num_classes`` and ``class_weights``.

    Args:
        task: the task, already converted to :class:`Task`.
        num_classes: expected number of input channels (binary: 1), or None to accept any.
        class_weights: per-class weights, validated; ``n_weights`` of them when known.
        n_weights: expected length of ``class_weights`` (None: follow ``num_classes``).
    """

    def __init__(
        self,
        *,
        task: Task,
        num_classes: int | None,
        class_weights: Sequence[float] | Tensor | None,
        n_weights: int | None,
    ) -> None:
        super().__init__()
        if num_classes is not None:
            if isinstance(num_classes, bool) or not isinstance(num_classes, int):
                raise ValueError(f"num_classes={num_classes!r} is not valid; expected an int")
            need = {Task.BINARY: "== 1", Task.MULTICLASS: ">= 2"}.get(task, ">= 1")
            ok = {Task.BINARY: num_classes == 1, Task.MULTICLASS: num_classes >= 2}.get(
                task, num_classes >= 1
            )
            if not ok:
                raise ValueError(
                    f"num_classes={num_classes} is not valid for task='{task.value}'; expected "
                    f"{need} (the number of logit channels)"
                )
        self.task = task
        self.num_classes = num_classes
        w = check_class_weights(class_weights, n_weights)
        self.register_buffer("class_weights", w, persistent=False)

    def _check_channels(self, input: Tensor) -> None:
        if (
            self.num_classes is not None
            and isinstance(input, Tensor)
            and input.ndim == 4
            and input.shape[1] != self.num_classes
        ):
            raise ValueError(
                f"input has {input.shape[1]} channels; this loss was built with "
                f"num_classes={self.num_classes}"
            )

    def _weights(self) -> Tensor | None:
        w = self.class_weights
        return None if w is None else w.to(torch.float64)

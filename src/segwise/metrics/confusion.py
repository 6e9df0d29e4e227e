"""Streaming confusion matrix: the state behind every dataset-level semantic metric."""

from __future__ import annotations

from typing import Any

import torch

from segwise.metrics._checks import check_class_names, check_ignore_index, check_num_classes
from segwise.metrics._distributed import all_reduce_sum
from segwise.metrics.functional import confusion_matrix
from segwise.metrics.scores import SegmentationScores, scores_from_confusion

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """Accumulates a (C, C) confusion matrix over a dataset, batch by batch.

    Row = target class, column = predicted class. Pixels whose target equals ``ignore_index``
    are not counted. :meth:`compute` derives every dataset-level score from the counts, so a
    class's Dice/IoU is pooled over all pixels of all images (not averaged over images; see
    :class:`segwise.metrics.PerImageDice` for that).

    Example:
        >>> cm = ConfusionMatrix(3, ignore_index=255)
        >>> cm.update(pred, target)  # doctest: +SKIP  (N, H, W) int64 label maps
        >>> cm.compute().mean_iou  # doctest: +SKIP

    Args:
        num_classes: number of classes C (>= 1).
        ignore_index: target value to leave out (e.g. 255); must lie outside ``[0, C)``.
        class_names: optional C strings, carried into :class:`SegmentationScores`.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = None,
        class_names: Any = None,
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = check_ignore_index(ignore_index, num_classes)
        self.class_names = check_class_names(class_names, num_classes)
        self._confmat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self._confmat.sum())})"
        )

    @property
    def matrix(self) -> torch.Tensor:
        """(C, C) int64 copy of the counts (row = target, column = prediction)."""
        return self._confmat.clone()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch.

        Args:
            pred: (N, H, W) integer predicted class indices in ``[0, C)``.
            target: (N, H, W) integer target class indices in ``[0, C)`` or ``ignore_index``.

        Raises:
            ValueError: on float inputs, shape mismatch or out-of-range values (the state is
                left unchanged).
        """
        counts = confusion_matrix(
            pred, target, num_classes=self.num_classes, ignore_index=self.ignore_index
        )
        if self._confmat.device != counts.device:
            self._confmat = self._confmat.to(counts.device)
        self._confmat += counts

    def compute(self, *, class_names: Any = None, empty: str = "exclude") -> SegmentationScores:
        """Scores of everything counted so far (NaN where undefined; see ``docs/metrics.md``).

        Args:
            class_names: C strings for this result; default the ones given at construction.
            empty: Dice/IoU of classes absent from both: ``exclude`` (NaN), ``one``, ``zero``
                (:class:`~segwise.metrics.MetricEmptyRule`).
        """
        names = self.class_names if class_names is None else class_names
        return scores_from_confusion(self._confmat, class_names=names, empty=empty)

    def reset(self) -> None:
        """Forget every count (keeps ``num_classes``, ``ignore_index`` and ``class_names``)."""
        self._confmat = torch.zeros_like(self._confmat)

    def _check_compatible(self, num_classes: int, ignore_index: int | None, what: str) -> None:
        if num_classes != self.num_classes or ignore_index != self.ignore_index:
            raise ValueError(
                f"{what} has num_classes={num_classes}, ignore_index={ignore_index}; expected "
                f"num_classes={self.num_classes}, ignore_index={self.ignore_index} to match"
            )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (e.g. another worker's) into this one; returns ``self``.

        Raises:
            ValueError: if ``other`` is not a ConfusionMatrix with the same ``num_classes`` and
                ``ignore_index``.
        """
        if not isinstance(other, ConfusionMatrix):
            raise ValueError(f"other is a {type(other).__name__}; expected a ConfusionMatrix")
        self._check_compatible(other.num_classes, other.ignore_index, "other")
        self._confmat += other._confmat.to(self._confmat.device)
        return self

    def all_reduce(self) -> None:
        """Sum the counts over all processes (``torch.distributed``); a no-op if not initialised.

        Every process must call it (it is a collective); afterwards each holds the total.
        """
        self._confmat = all_reduce_sum(self._confmat)

    def state_dict(self) -> dict[str, Any]:
        """Plain dict of builtins and one CPU tensor (``torch.load(weights_only=True)``-safe)."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "confmat": self._confmat.detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the counts with those of :meth:`state_dict` output.

        Raises:
            ValueError: if the state is for another ``num_classes``/``ignore_index`` or its
                ``confmat`` is not a (C, C) non-negative integer tensor.
        """
        missing = {"num_classes", "ignore_index", "confmat"} - set(state)
        if missing:
            raise ValueError(f"state is missing the keys {sorted(missing)}")
        self._check_compatible(state["num_classes"], state["ignore_index"], "state")
        m = state["confmat"]
        c = self.num_classes
        if (
            not isinstance(m, torch.Tensor)
            or tuple(m.shape) != (c, c)
            or m.is_floating_point()
            or bool((m < 0).any())
        ):
            desc = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise ValueError(
                f"state['confmat']={desc} is not valid; expected a ({c}, {c}) tensor of "
                "non-negative integer counts"
            )
        self._confmat = m.to(self._confmat.device, torch.int64).clone()

"""Streaming boundary metrics (Hausdorff, HD95, ASSD, NSD) over a dataset, mergeable.

Each image adds its per-class sufficient statistics (:func:`segwise.metrics.surface.
surface_statistics`, computed in physical units at :meth:`BoundaryMetrics.update`), so merging
workers is a concatenation and every score is recomputed exactly. Definitions:
``docs/metrics.md`` §7.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from segwise._validation import as_enum
from segwise.metrics._checks import check_class_names, check_ignore_index, check_num_classes
from segwise.metrics._distributed import all_gather_objects
from segwise.metrics.per_image import MetricEmptyRule
from segwise.metrics.surface import (
    STAT_FIELDS,
    DistanceMetric,
    _check_options,
    check_spacing,
    scores_from_statistics,
    surface_statistics,
)

__all__ = ["BoundaryMetrics", "BoundaryScores", "ImageReduction", "reduce_values"]

_NAMES = ("hd", "hd_percentile", "assd", "nsd")


def _mean(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over the defined (non-NaN) values; inf propagates; NaN if none is defined."""
    defined = ~x.isnan()
    total = torch.where(defined, x, torch.zeros_like(x))
    total = total.sum() if dim is None else total.sum(dim)
    count = defined.sum() if dim is None else defined.sum(dim)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


class ImageReduction(str, Enum):
    """How per (image, class) values ``(M, C)`` become fewer numbers; MONAI's
    ``MetricReduction`` (its name in brackets). Only defined (non-NaN) values enter; inf
    propagates.

    - ``NONE``: ``(M, C)`` as they are ("none").
    - ``MEAN``: per image the mean over its defined classes, then the mean over the images
      that have one: a scalar ("mean"). Not :attr:`BoundaryScores.mean`, which averages over
      images first, then over classes.
    - ``SUM``: the sum of every defined value: a scalar ("sum").
    - ``MEAN_IMAGES``: per class the mean over images, ``(C,)`` ("mean_batch"; equals
      :attr:`BoundaryScores.per_class`).
    - ``SUM_IMAGES``: per class the sum over images, ``(C,)`` ("sum_batch").
    - ``MEAN_CLASSES``: per image the mean over classes, ``(M,)`` ("mean_channel").
    - ``SUM_CLASSES``: per image the sum over classes, ``(M,)`` ("sum_channel").

    A mean or sum with no defined value is NaN (MONAI writes 0 there; the ``not_nans`` count
    of :func:`reduce_values`, 0, says which).
    """

    NONE = "none"
    MEAN = "mean"
    SUM = "sum"
    MEAN_IMAGES = "mean_images"
    SUM_IMAGES = "sum_images"
    MEAN_CLASSES = "mean_classes"
    SUM_CLASSES = "sum_classes"


def reduce_values(values: torch.Tensor, reduction: ImageReduction | str = ImageReduction.MEAN
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduce per (image, class) values, counting the defined ones (MONAI's ``not_nans``).

    Args:
        values: ``(M, C)`` float, NaN where undefined (e.g. :attr:`BoundaryScores.hd`).
        reduction: :class:`ImageReduction`.

    Returns:
        ``(value, not_nans)``: the reduced values (float64; scalar, ``(C,)``, ``(M,)`` or
        ``(M, C)``) and ``int64`` counts of the same shape: the defined values that entered
        each one (for ``MEAN``, the images with at least one defined class; for ``NONE``, 1
        where defined, else 0).
    """
    how = as_enum(reduction, ImageReduction, "reduction")
    x = values.double()
    if x.ndim != 2:
        raise ValueError(f"values have shape {tuple(x.shape)}; expected (images, classes)")
    defined = ~x.isnan()
    if how is ImageReduction.NONE:
        return x, defined.long()
    zeroed = torch.where(defined, x, torch.zeros_like(x))
    nan = torch.tensor(math.nan, dtype=torch.float64)

    def over(dim, mean: bool) -> tuple[torch.Tensor, torch.Tensor]:
        count = defined.sum() if dim is None else defined.sum(dim)
        total = zeroed.sum() if dim is None else zeroed.sum(dim)
        value = total / count.clamp_min(1) if mean else total
        return torch.where(count > 0, value, nan), count.long()

    if how is ImageReduction.MEAN:
        per_image, count = over(1, mean=True)
        images = count > 0
        total = torch.where(images, per_image, torch.zeros_like(per_image)).sum()
        n = images.sum()
        return torch.where(n > 0, total / n.clamp_min(1), nan), n.long()
    dim = {ImageReduction.SUM: None, ImageReduction.MEAN_IMAGES: 0,
           ImageReduction.SUM_IMAGES: 0, ImageReduction.MEAN_CLASSES: 1,
           ImageReduction.SUM_CLASSES: 1}[how]
    return over(dim, mean=how in (ImageReduction.MEAN_IMAGES, ImageReduction.MEAN_CLASSES))


@dataclass(frozen=True)
class BoundaryScores:
    """Boundary metrics of a dataset (result of :meth:`BoundaryMetrics.compute`).

    Attributes:
        hd, hd_percentile, assd, nsd: (M, C) float64 per (image, class) values: Hausdorff
            distance, its ``percentile`` (HD95 by default), average symmetric surface distance
            and normalised surface Dice at ``tolerance``; NaN where undefined (empty rule),
            inf (distances) / 0 (NSD) where exactly one of prediction and target is empty.
        per_class: ``{name: (C,) tensor}``, per class the mean over images where defined.
        mean: ``{name: float}``, the mean over classes of ``per_class`` (NaN left out).
        percentile, tolerance, directed, spacing: the settings the values were computed with
            (``spacing`` as given at construction; a batch may have overridden it).
        class_names: optional names, one per class.
        distance_metric: how distances were measured (:class:`~segwise.metrics.surface.
            DistanceMetric`).

    :attr:`not_nans` counts the images behind each ``per_class`` value and :meth:`reduce`
    gives MONAI's other reductions (sums over images, ...).
    """

    hd: torch.Tensor
    hd_percentile: torch.Tensor
    assd: torch.Tensor
    nsd: torch.Tensor
    per_class: dict[str, torch.Tensor]
    mean: dict[str, float]
    percentile: float
    tolerance: float
    directed: bool
    spacing: tuple[float, ...] | None
    class_names: tuple[str, ...] | None = None
    distance_metric: DistanceMetric = DistanceMetric.EUCLIDEAN

    @property
    def not_nans(self) -> dict[str, torch.Tensor]:
        """``{name: (C,) int64}``: per class the images where the value is defined (NaN left
        out), the denominators of ``per_class`` (MONAI's ``not_nans`` of ``mean_batch``)."""
        return {n: (~getattr(self, n).isnan()).sum(0) for n in _NAMES}

    def reduce(self, name: str, reduction: ImageReduction | str = ImageReduction.MEAN
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """One metric reduced over images and/or classes: :func:`reduce_values` of ``name``.

        Args:
            name: ``"hd"``, ``"hd_percentile"``, ``"assd"`` or ``"nsd"``.
            reduction: :class:`ImageReduction` (e.g. ``"sum_images"``).

        Returns:
            ``(value, not_nans)`` as :func:`reduce_values`.
        """
        if name not in _NAMES:
            raise ValueError(f"name={name!r} is not valid; expected one of {', '.join(_NAMES)}")
        return reduce_values(getattr(self, name), reduction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: settings, ``mean`` and ``per_class`` (NaN as None, inf as
        ``"inf"``), keyed ``hd``, ``hd95`` (or ``hd<q>``), ``assd``, ``nsd``."""

        def clean(v: float) -> float | str | None:
            return None if math.isnan(v) else ("inf" if math.isinf(v) else v)

        key = {"hd_percentile": f"hd{self.percentile:g}"}
        return {
            "percentile": self.percentile,
            "tolerance": self.tolerance,
            "directed": self.directed,
            "spacing": None if self.spacing is None else list(self.spacing),
            "distance_metric": self.distance_metric.value,
            "num_images": int(self.hd.shape[0]),
            "mean": {key.get(n, n): clean(self.mean[n]) for n in _NAMES},
            "per_class": {
                key.get(n, n): [clean(v) for v in self.per_class[n].tolist()] for n in _NAMES
            },
            "class_names": None if self.class_names is None else list(self.class_names),
            "not_nans": {key.get(n, n): v.tolist() for n, v in self.not_nans.items()},
        }


class BoundaryMetrics:
    """Streaming Hausdorff / HD95 / ASSD / NSD per (image, class), mergeable across workers.

    Example:
        >>> bm = BoundaryMetrics(3, spacing=(0.5, 0.5), tolerance=1.0)
        >>> bm.update(pred, target)  # doctest: +SKIP  (N, H, W) int64 label maps
        >>> bm.compute().mean["hd_percentile"]  # doctest: +SKIP

    Args:
        num_classes: number of classes C (>= 1).
        spacing: physical pixel size per spatial axis (2 numbers for (N, H, W) maps, 3 for
            (N, D, H, W)); None: 1 (pixel units).
        tolerance: NSD tolerance, in the units of ``spacing``.
        percentile: q of the percentile Hausdorff distance (95: HD95).
        directed: prediction-to-target distances only.
        ignore_index: target value of pixels that belong to no class (outside ``[0, C)``).
        empty: :class:`~segwise.metrics.MetricEmptyRule` when a class is absent from both.
        class_names: optional C strings.
        distance_metric: euclidean (default), chessboard or taxicab distances between pixel
            centres (:class:`~segwise.metrics.surface.DistanceMetric`), in units of ``spacing``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        spacing: Sequence[float] | float | None = None,
        tolerance: float = 1.0,
        percentile: float = 95.0,
        directed: bool = False,
        ignore_index: int | None = None,
        empty: MetricEmptyRule | str = MetricEmptyRule.EXCLUDE,
        class_names: Any = None,
        distance_metric: DistanceMetric | str = DistanceMetric.EUCLIDEAN,
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = check_ignore_index(ignore_index, num_classes)
        if percentile is None:
            raise ValueError("percentile=None is not valid; expected a number in [0, 100] "
                             "(the maximum is always reported as hd)")
        _check_options(tolerance, percentile)
        if spacing is not None:
            n = 1 if isinstance(spacing, (int, float)) else len(spacing)
            spacing = check_spacing(spacing, n)
        self.spacing = spacing
        self.tolerance = float(tolerance)
        self.percentile = float(percentile)
        self.directed = bool(directed)
        self.empty = as_enum(empty, MetricEmptyRule, "empty")
        self.class_names = check_class_names(class_names, num_classes)
        self.distance_metric = as_enum(distance_metric, DistanceMetric, "distance_metric")
        self._stats: list[torch.Tensor] = []  # each (N, C, 10) float64

    def __len__(self) -> int:
        return sum(int(s.shape[0]) for s in self._stats)

    def _config(self) -> tuple[Any, ...]:
        return (self.num_classes, self.ignore_index, self.tolerance, self.percentile,
                self.distance_metric.value)

    def update(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        *,
        spacing: Sequence[float] | float | None = None,
    ) -> None:
        """Add one batch.

        Args:
            pred: (N, *spatial) integer predicted class indices in ``[0, C)``.
            target: (N, *spatial) integer target class indices in ``[0, C)`` or
                ``ignore_index``.
            spacing: this batch's pixel size, overriding the one given at construction
                (e.g. per-scan spacing in medical images).

        Raises:
            ValueError: on bad label maps or spacing (the state is left unchanged).
        """
        stats = surface_statistics(
            pred, target, num_classes=self.num_classes,
            spacing=self.spacing if spacing is None else spacing, tolerance=self.tolerance,
            percentile=self.percentile, ignore_index=self.ignore_index,
            distance_metric=self.distance_metric,
        )  # fmt: skip
        self._stats.append(stats)

    def statistics(self) -> torch.Tensor:
        """(M, C, 10) float64 statistics of every image so far (fields ``STAT_FIELDS``)."""
        c, k = self.num_classes, len(STAT_FIELDS)
        return torch.cat(self._stats) if self._stats else torch.zeros(0, c, k, dtype=torch.float64)

    def compute(self) -> BoundaryScores:
        """Per (image, class) values and their means (see :class:`BoundaryScores`)."""
        scores = scores_from_statistics(self.statistics(), directed=self.directed,
                                        empty=self.empty)
        per_class = {n: _mean(scores[n], 0) for n in _NAMES}
        return BoundaryScores(
            **scores,
            per_class=per_class,
            mean={n: float(_mean(per_class[n])) for n in _NAMES},
            percentile=self.percentile,
            tolerance=self.tolerance,
            directed=self.directed,
            spacing=self.spacing,
            class_names=self.class_names,
            distance_metric=self.distance_metric,
        )

    def reset(self) -> None:
        """Forget every image (keeps the configuration)."""
        self._stats = []

    def _check_config(self, config: tuple[Any, ...], what: str) -> None:
        if tuple(config) != self._config():
            raise ValueError(
                f"{what} has (num_classes, ignore_index, tolerance, percentile, "
                f"distance_metric)={tuple(config)}; expected {self._config()} to match"
            )

    def merge(self, other: BoundaryMetrics) -> BoundaryMetrics:
        """Append the images of ``other`` (e.g. another worker's); returns ``self``.

        Raises:
            ValueError: if ``other`` is not a BoundaryMetrics with the same num_classes,
                ignore_index, tolerance, percentile and distance metric.
        """
        if not isinstance(other, BoundaryMetrics):
            raise ValueError(f"other is a {type(other).__name__}; expected a BoundaryMetrics")
        self._check_config(other._config(), "other")
        if other._stats:
            self._stats.append(other.statistics())
        return self

    def all_reduce(self) -> None:
        """Gather the images of all processes, in rank order, into every process; a no-op when
        ``torch.distributed`` is not initialised. Every process must call it."""
        gathered = all_gather_objects(self.statistics())
        if len(gathered) > 1:
            self._stats = [torch.cat(gathered)]

    def state_dict(self) -> dict[str, Any]:
        """Plain dict of builtins and one tensor (``torch.load(weights_only=True)``-safe)."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "tolerance": self.tolerance,
            "percentile": self.percentile,
            "distance_metric": self.distance_metric.value,
            "stats": self.statistics().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the images with those of :meth:`state_dict` output.

        Raises:
            ValueError: if the state is for another configuration or is malformed.
        """
        keys = {"num_classes", "ignore_index", "tolerance", "percentile", "stats"}
        if keys - set(state):
            raise ValueError(f"state is missing the keys {sorted(keys - set(state))}")
        self._check_config(
            (state["num_classes"], state["ignore_index"], state["tolerance"],
             state["percentile"], state.get("distance_metric", "euclidean")),
            "state")  # fmt: skip
        stats = state["stats"]
        shape = (self.num_classes, len(STAT_FIELDS))
        if not isinstance(stats, torch.Tensor) or stats.ndim != 3 or tuple(stats.shape[1:]) != (
            shape
        ):
            desc = tuple(stats.shape) if isinstance(stats, torch.Tensor) else type(stats)
            raise ValueError(
                f"state['stats']={desc} is not valid; expected a (M, {shape[0]}, {shape[1]}) "
                "float tensor"
            )
        self._stats = [stats.to("cpu", torch.float64).clone()]

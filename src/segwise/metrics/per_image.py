"""Per-image Dice: one Dice per image and class, kept by image id, for distributions and worst-k.

Dataset-level Dice (:class:`segwise.metrics.ConfusionMatrix`) pools the pixels of all images
before dividing; per-image Dice divides within each image, then averages over images. The two
differ whenever images differ in size of their objects (``docs/metrics.md`` has a hand example).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from segwise._validation import as_enum
from segwise.metrics._checks import check_class_names, check_ignore_index, check_num_classes
from segwise.metrics._distributed import all_gather_objects
from segwise.metrics.functional import batch_confusion_matrix
from segwise.metrics.options import MetricEmptyRule

__all__ = ["MetricEmptyRule", "PerImageDice", "PerImageScores"]


def _nanmean(x: torch.Tensor, dim: int) -> torch.Tensor:
    defined = ~x.isnan()
    total = torch.where(defined, x, torch.zeros_like(x)).sum(dim=dim)
    count = defined.sum(dim=dim)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


@dataclass(frozen=True)
class PerImageScores:
    """Per-image Dice of a dataset (result of :meth:`PerImageDice.compute`).

    Attributes:
        ids: image ids, in the order the images were added (merged order for merges); an
            image added without an id is ``"#k"``, k its position here.
        dice: (M, C) float64, ``dice[i, c]`` is the Dice of class c in image i; NaN where the
            class is absent from both (``MetricEmptyRule.EXCLUDE``) or the image has no counted
            pixel.
        per_image: (M,) float64, each image's mean Dice over ``classes`` (NaN values left out);
            NaN when none of them is defined.
        classes: the class indices that enter ``per_image``.
        mean: mean of the defined ``per_image`` values (the mean of the distribution).
        per_class_mean: (C,) float64, per class the mean over images where it is defined.
        class_names: optional names, one per class.
        iou: (M, C) float64 per-image IoU ``TP / (TP + FP + FN)``, same empty rule as ``dice``.
        per_image_iou: (M,) float64, each image's mean IoU over ``classes``.
        mean_iou: mean of the defined ``per_image_iou`` values.
    """

    ids: tuple[str, ...]
    dice: torch.Tensor
    per_image: torch.Tensor
    classes: tuple[int, ...]
    mean: float
    per_class_mean: torch.Tensor
    class_names: tuple[str, ...] | None = None
    iou: torch.Tensor | None = None
    per_image_iou: torch.Tensor | None = None
    mean_iou: float = math.nan

    def worst(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` images with the lowest defined per-image Dice, as ``(id, dice)``, worst
        first; ties keep the order in which images were added. NaN images are skipped."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k={k!r} is not valid; expected an int >= 0")
        defined = [(float(s), i) for i, s in enumerate(self.per_image.tolist()) if s == s]
        defined.sort(key=lambda pair: pair)  # by score, then by insertion index
        return [(self.ids[i], s) for s, i in defined[:k]]

    def quantiles(self, q: Sequence[float]) -> list[float]:
        """Quantiles (linear interpolation) of the defined per-image values; NaN if none."""
        qs = list(q)
        if not qs or not all(0.0 <= float(v) <= 1.0 for v in qs):
            raise ValueError(
                f"q={q!r} is not valid; expected a non-empty list of numbers in [0, 1]"
            )
        values = self.per_image[~self.per_image.isnan()]
        if values.numel() == 0:
            return [math.nan] * len(qs)
        out = torch.quantile(values, torch.tensor(qs, dtype=torch.float64))
        return [float(v) for v in out]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (builtin types, NaN as ``None``): ``ids``, ``per_image``,
        ``dice`` (one list of C values per image), ``mean``, ``per_class_mean``, ``classes``,
        ``class_names``."""

        def clean(values: list[float]) -> list[float | None]:
            return [None if math.isnan(v) else v for v in values]

        return {
            "ids": list(self.ids),
            "per_image": clean(self.per_image.tolist()),
            "dice": [clean(row) for row in self.dice.tolist()],
            "mean": None if math.isnan(self.mean) else self.mean,
            "per_class_mean": clean(self.per_class_mean.tolist()),
            "classes": list(self.classes),
            "class_names": None if self.class_names is None else list(self.class_names),
            "per_image_iou": None if self.per_image_iou is None else clean(
                self.per_image_iou.tolist()),
            "iou": None if self.iou is None else [clean(row) for row in self.iou.tolist()],
            "mean_iou": None if math.isnan(self.mean_iou) else self.mean_iou,
        }


class PerImageDice:
    """Streaming accumulator of each image's per-class Dice, keyed by image id.

    For image i and class c, with ``TP, FP, FN`` counted over that image's non-ignored pixels:
    ``dice[i, c] = 2TP / (2TP + FP + FN)``; when ``2TP + FP + FN == 0`` (class absent from both)
    the ``empty`` rule decides (NaN by default). Each image's score is the mean over ``classes``.

    Args:
        num_classes: number of classes C (>= 1).
        ignore_index: target value to leave out (e.g. 255); must lie outside ``[0, C)``.
        empty: :class:`MetricEmptyRule` (or its string value) for classes absent from both.
        classes: class indices averaged into each image's score; default all. For a binary
            task with label maps 0/1, ``classes=[1]`` scores the foreground only.
        class_names: optional C strings, carried into :class:`PerImageScores`.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = None,
        empty: MetricEmptyRule | str = MetricEmptyRule.EXCLUDE,
        classes: Sequence[int] | None = None,
        class_names: Any = None,
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = check_ignore_index(ignore_index, num_classes)
        self.empty = as_enum(empty, MetricEmptyRule, "empty")
        if classes is None:
            self.classes = tuple(range(num_classes))
        else:
            self.classes = tuple(classes) if not isinstance(classes, int) else (classes,)
            ok = all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes
                for c in self.classes
            )
            if not self.classes or not ok or len(set(self.classes)) != len(self.classes):
                raise ValueError(
                    f"classes={classes!r} is not valid; expected None or distinct class indices "
                    f"in [0, {num_classes})"
                )
        self.class_names = check_class_names(class_names, num_classes)
        self._ids: list[str | None] = []  # None: an image added without an id
        self._named: set[str] = set()  # the given ids, for the uniqueness check
        self._counts: list[torch.Tensor] = []  # each (N, C, 3) int64 on CPU: TP, FP, FN

    def __len__(self) -> int:
        return len(self._ids)

    def _config(self) -> tuple[Any, ...]:
        return (self.num_classes, self.ignore_index, self.empty, self.classes)

    def _add(self, ids: list[str | None], counts: torch.Tensor) -> None:
        named = [i for i in ids if i is not None]
        clash = set(named) & self._named
        if clash or len(set(named)) != len(named):
            dup = sorted(clash) or sorted({i for i in named if named.count(i) > 1})
            raise ValueError(
                f"image ids {dup[:5]} are duplicated or already present; expected unique ids "
                "(each image once; a DistributedSampler that pads shards repeats images)"
            )
        self._ids.extend(ids)
        self._named.update(named)
        self._counts.append(counts)

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, *, ids: Sequence[str] | None = None
    ) -> None:
        """Add one batch of images.

        Args:
            pred: (N, H, W) integer predicted class indices in ``[0, C)``.
            target: (N, H, W) integer target class indices in ``[0, C)`` or ``ignore_index``.
            ids: N unique image ids (the dataset item's ``"id"``). Without ids, an image is
                named ``"#k"`` after its position k in :meth:`compute`'s order (so unnamed
                images never clash in :meth:`merge`).

        Raises:
            ValueError: on bad label maps, a wrong number of ids, or an id already present.
        """
        cm = batch_confusion_matrix(
            pred, target, num_classes=self.num_classes, ignore_index=self.ignore_index
        ).cpu()
        n = cm.shape[0]
        id_list: list[str | None]
        if ids is None:
            id_list = [None] * n
        else:
            id_list = [ids] if isinstance(ids, str) else list(ids)
            if len(id_list) != n or not all(isinstance(i, str) for i in id_list):
                raise ValueError(
                    f"ids={ids!r} is not valid; expected {n} strings, one per image in the batch"
                )
        tp = cm.diagonal(dim1=1, dim2=2)  # (N, C)
        fp = cm.sum(dim=1) - tp
        fn = cm.sum(dim=2) - tp
        self._add(id_list, torch.stack([tp, fp, fn], dim=-1))

    def compute(self) -> PerImageScores:
        """Per-image and per-class Dice of every image added so far."""
        c = self.num_classes
        counts = (
            torch.cat(self._counts) if self._counts else torch.zeros(0, c, 3, dtype=torch.int64)
        )
        tp, fp, fn = counts.double().unbind(dim=-1)
        denom = 2 * tp + fp + fn
        fill = self.empty.score
        dice = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.full_like(denom, fill))
        union = tp + fp + fn
        iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(union, fill))
        if self.empty is not MetricEmptyRule.EXCLUDE:
            # An image with no counted pixel at all has nothing to score.
            nothing = counts.sum(dim=(1, 2)) == 0
            dice[nothing] = math.nan
            iou[nothing] = math.nan
        per_image = _nanmean(dice[:, list(self.classes)], dim=1)
        per_image_iou = _nanmean(iou[:, list(self.classes)], dim=1)
        defined = per_image[~per_image.isnan()]
        mean = float(defined.mean()) if defined.numel() else math.nan
        defined_iou = per_image_iou[~per_image_iou.isnan()]
        mean_iou = float(defined_iou.mean()) if defined_iou.numel() else math.nan
        return PerImageScores(
            ids=tuple(f"#{k}" if i is None else i for k, i in enumerate(self._ids)),
            dice=dice,
            per_image=per_image,
            classes=self.classes,
            mean=mean,
            per_class_mean=_nanmean(dice, dim=0),
            class_names=self.class_names,
            iou=iou,
            per_image_iou=per_image_iou,
            mean_iou=mean_iou,
        )

    def reset(self) -> None:
        """Forget every image (keeps the configuration)."""
        self._ids = []
        self._named = set()
        self._counts = []

    def _check_config(self, config: tuple[Any, ...], what: str) -> None:
        if config != self._config():
            raise ValueError(
                f"{what} has (num_classes, ignore_index, empty, classes)={config}; expected "
                f"{self._config()} to match"
            )

    def merge(self, other: PerImageDice) -> PerImageDice:
        """Append the images of ``other`` (ids must not overlap); returns ``self``.

        Raises:
            ValueError: if ``other`` is not a PerImageDice with the same configuration, or shares
                an image id.
        """
        if not isinstance(other, PerImageDice):
            raise ValueError(f"other is a {type(other).__name__}; expected a PerImageDice")
        self._check_config(other._config(), "other")
        if other._counts:
            self._add(list(other._ids), torch.cat(other._counts))
        return self

    def all_reduce(self) -> None:
        """Gather the images of all processes, in rank order, into every process; a no-op when
        ``torch.distributed`` is not initialised. Every process must call it."""
        c = self.num_classes
        mine = torch.cat(self._counts) if self._counts else torch.zeros(0, c, 3, dtype=torch.int64)
        gathered = all_gather_objects((list(self._ids), mine))
        if len(gathered) == 1:
            return
        self.reset()
        for ids, counts in gathered:
            self._add(ids, counts)

    def state_dict(self) -> dict[str, Any]:
        """Plain dict of builtins and one tensor (``torch.load(weights_only=True)``-safe)."""
        c = self.num_classes
        counts = (
            torch.cat(self._counts) if self._counts else torch.zeros(0, c, 3, dtype=torch.int64)
        )
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "empty": self.empty.value,
            "classes": list(self.classes),
            "ids": list(self._ids),
            "counts": counts.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the images with those of :meth:`state_dict` output.

        Raises:
            ValueError: if the state is for another configuration or is malformed.
        """
        keys = {"num_classes", "ignore_index", "empty", "classes", "ids", "counts"}
        if keys - set(state):
            raise ValueError(f"state is missing the keys {sorted(keys - set(state))}")
        config = (
            state["num_classes"],
            state["ignore_index"],
            as_enum(state["empty"], MetricEmptyRule, "state['empty']"),
            tuple(state["classes"]),
        )
        self._check_config(config, "state")
        counts = state["counts"]
        m = len(state["ids"])
        if (
            not isinstance(counts, torch.Tensor)
            or tuple(counts.shape) != (m, self.num_classes, 3)
            or counts.is_floating_point()
        ):
            desc = tuple(counts.shape) if isinstance(counts, torch.Tensor) else type(counts)
            raise ValueError(
                f"state['counts']={desc} is not valid; expected an integer tensor of shape "
                f"({m}, {self.num_classes}, 3)"
            )
        self.reset()
        self._add(list(state["ids"]), counts.to("cpu", torch.int64).clone())

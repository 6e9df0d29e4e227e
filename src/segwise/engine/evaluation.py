"""Evaluation over a dataset: one loop (:func:`evaluation_loop`) for training, CLI and tests.

Semantic scores (:class:`SemanticScorer`) and instance scores
(:class:`segwise.engine.instance_scoring.InstanceScorer`) plug into the same loop; the step
that predicts an item is the caller's (a logits step in training, a predictor in the CLI).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from segwise.enums import Task
from segwise.inferers.forward import forward_logits
from segwise.labels import LabelSpace

__all__ = [
    "BoundarySettings",
    "EvalResult",
    "LabelOutput",
    "Scorer",
    "SemanticScorer",
    "evaluate_model",
    "evaluation_loop",
]

BOUNDARY_KEYS = (("hd", "hd"), ("hd_percentile", "hd95"), ("assd", "assd"), ("nsd", "nsd"))


@dataclass(frozen=True)
class BoundarySettings:
    """Boundary metrics (HD, HD95, ASSD, NSD) to add to an evaluation (docs/metrics.md §7)."""

    spacing: tuple[float, ...] | None = None  # physical pixel size (rows, cols); None: pixels
    tolerance: float = 1.0  # NSD tolerance, in the units of spacing
    percentile: float = 95.0  # the q of the percentile Hausdorff distance (reported as hd95)
    distance_metric: str = "euclidean"  # euclidean, chessboard or taxicab (DistanceMetric)


@dataclass
class EvalResult:
    """Scores of one evaluation pass.

    Attributes:
        task: the task evaluated (binary summaries score the foreground class only).
        scores: dataset-level :class:`~segwise.metrics.SegmentationScores` (pooled confusion).
        per_image: :class:`~segwise.metrics.PerImageScores`, one Dice per image.
        matrix: ``(C, C)`` int64 confusion matrix, rows = ground truth, columns = prediction.
        overlays: ``(id, rgb, target, pred)`` for the first few images, for pictures.
        loss: the mean per-image loss (``loss_fn`` of :func:`evaluate_model`), else None.
        boundary: :class:`~segwise.metrics.BoundaryScores` when boundary metrics were asked
            for (``boundary=`` of :func:`evaluate_model`), else None.
    """

    task: Task
    scores: Any
    per_image: Any
    matrix: np.ndarray
    overlays: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    loss: float | None = None  # mean loss over the images, when a loss_fn was given
    boundary: Any = None  # BoundaryScores, when asked for

    def summary(self) -> dict[str, float]:
        """The headline numbers (NaN where undefined).

        ``mean_dice`` / ``mean_iou``: for a binary task the foreground class's Dice / IoU (the
        background class would inflate them); otherwise the mean over classes with a defined
        value (docs/metrics.md). ``per_image_dice`` / ``per_image_iou``: mean of the per-image
        Dice / IoU distribution.
        With boundary metrics, also ``mean_hd``, ``mean_hd95``, ``mean_assd``, ``mean_nsd``:
        the foreground class's mean over images (binary) or the mean over classes of the
        per-class means over images (inf if any image missed a class entirely).
        """
        s = self.scores
        if self.task is Task.BINARY:
            dice, iou = s.dice[1], s.iou[1]
        else:
            dice, iou = s.mean_dice, s.mean_iou
        return {
            "mean_dice": float(dice),
            "mean_iou": float(iou),
            "fw_iou": float(s.frequency_weighted_iou),
            "pixel_accuracy": float(s.pixel_accuracy),
            "mean_accuracy": float(s.mean_accuracy),
            "per_image_dice": float(self.per_image.mean),
            "per_image_iou": float(self.per_image.mean_iou),
            **self._boundary_summary(),
        }

    def _boundary_summary(self) -> dict[str, float]:
        b = self.boundary
        if b is None:
            return {}
        if self.task is Task.BINARY:
            return {f"mean_{key}": float(b.per_class[name][1]) for name, key in BOUNDARY_KEYS}
        return {f"mean_{key}": float(b.mean[name]) for name, key in BOUNDARY_KEYS}

    def _image_rows(self, names: list[str]) -> list[dict[str, Any]]:
        """One row per image: its Dice and IoU, then per class its Dice (``dice_<class>``)
        and, with boundary metrics, its HD95 and NSD (``hd95_<class>``, ``nsd_<class>``);
        binary tasks list the foreground class only. NaN (class absent from both) as None."""
        pi, b = self.per_image, self.boundary
        classes = [1] if self.task is Task.BINARY else list(range(len(names)))
        rows = []
        for i, (image_id, d, j) in enumerate(zip(pi.ids, pi.per_image.tolist(),
                                                 pi.per_image_iou.tolist(), strict=True)):
            row: dict[str, Any] = {"id": image_id, "dice": _none_if_nan(float(d)),
                                   "iou": _none_if_nan(float(j))}
            for c in classes:
                row[f"dice_{names[c]}"] = _none_if_nan(float(pi.dice[i, c]))
            if b is not None:
                for c in classes:
                    row[f"hd95_{names[c]}"] = _json_number(float(b.hd_percentile[i, c]))
                    row[f"nsd_{names[c]}"] = _json_number(float(b.nsd[i, c]))
            rows.append(row)
        return rows

    def report(self, *, worst: int = 5) -> dict[str, Any]:
        """A JSON-friendly report: summary, per-class rows, per-image distribution, worst ids."""
        s = self.scores
        names = list(s.class_names or [str(c) for c in range(s.num_classes)])
        per_class = [
            {
                "class": names[c],
                "dice": _none_if_nan(s.dice[c]),
                "iou": _none_if_nan(s.iou[c]),
                "precision": _none_if_nan(s.precision[c]),
                "recall": _none_if_nan(s.recall[c]),
                "pixels": int(s.support[c]),
                **({} if self.boundary is None else {
                    key: _json_number(self.boundary.per_class[name][c])
                    for name, key in BOUNDARY_KEYS
                }),
            }
            for c in range(s.num_classes)
        ]
        pi = self.per_image
        q = pi.quantiles([0.0, 0.25, 0.5, 0.75, 1.0])
        return {
            "summary": {k: _json_number(v) for k, v in self.summary().items()},
            "task": self.task.value,
            "per_class": per_class,
            "per_image": {
                "count": len(pi.ids),
                "mean": _none_if_nan(pi.mean),
                **{k: _none_if_nan(v) for k, v in zip(("min", "q25", "median", "q75", "max"), q,
                                                       strict=True)},
                "worst": [{"id": i, "dice": _none_if_nan(d)} for i, d in pi.worst(worst)],
                "images": self._image_rows(names),
            },
            "confusion_matrix": self.matrix.tolist(),
            **({} if self.boundary is None else {"boundary": self.boundary.to_dict()}),
        }


def _none_if_nan(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _json_number(value: float) -> float | str | None:
    """NaN -> None, inf -> "inf" (JSON has neither), else the float."""
    value = float(value)
    return "inf" if math.isinf(value) and value > 0 else _none_if_nan(value)


class Scorer(Protocol):
    """What the evaluation loop feeds: one scorer per kind of model (semantic, instance).

    ``update(item, prediction)`` takes a dataset item (the dataset contract) and the model's
    prediction for ``item["image"]``; ``all_reduce()`` sums the counts of every process;
    ``compute()`` returns the scorer's result.
    """

    def update(self, item: dict[str, Any], prediction: Any) -> None: ...

    def all_reduce(self) -> None: ...

    def compute(self) -> Any: ...


def evaluation_loop(
    dataset: Any,
    predict: Callable[[dict[str, Any]], Any],
    scorer: Scorer,
    *,
    indices: Sequence[int] | None = None,
    distributed: bool = False,
) -> Any:
    """The one evaluation loop: every item once through ``predict``, scored by ``scorer``.

    Training validation, ``segwise evaluate`` (semantic and instance) and library users share
    it; what differs is only the ``predict`` step and the :class:`Scorer`.

    Args:
        dataset: yields items per the dataset contract (``image``, ``mask``, ``id``, ...).
        predict: ``item -> prediction`` (e.g. a predictor's ``predict(item["image"])[0]``).
        scorer: accumulates the scores (:class:`SemanticScorer`, :class:`InstanceScorer`).
        indices: evaluate only these items (for sharding across processes); default all.
        distributed: sum the counts of every process before computing.

    Returns:
        ``scorer.compute()``.
    """
    with torch.no_grad():
        for i in indices if indices is not None else range(len(dataset)):
            item = dataset[i]
            scorer.update(item, predict(item))
    if distributed:
        scorer.all_reduce()
    return scorer.compute()


@dataclass(frozen=True)
class LabelOutput:
    """A semantic prediction as :class:`SemanticScorer` reads it.

    Attributes:
        labels: ``int64 (H, W)`` or ``(1, H, W)`` class indices (tensor or array).
        loss: the item's loss, when the step computed one.
    """

    labels: Any
    loss: float | None = None


class SemanticScorer:
    """Confusion matrix, per-image Dice/IoU, optional boundary metrics, loss and overlays.

    ``update(item, prediction)`` reads ``prediction.labels`` (``(H, W)`` or ``(1, H, W)``, a
    :class:`LabelOutput` or a :class:`~segwise.inference.predictor.SemanticPrediction`) and,
    when present, ``prediction.loss``. Arguments as in :func:`evaluate_model`; every count
    comes from ``labels``: ``labels.num_classes`` classes (2 for binary: background and
    foreground), ``labels.pad_value`` left out, ``labels.names`` in the report.
    """

    def __init__(self, *, labels: LabelSpace, keep_overlays: int = 0,
                 mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,),
                 boundary: BoundarySettings | None = None) -> None:
        from segwise.metrics import ConfusionMatrix, PerImageDice

        self.labels = labels
        self.task = labels.task
        self.class_names = list(labels.names)
        self.keep_overlays = keep_overlays
        self.mean, self.std = mean, std
        k, left_out = labels.num_classes, labels.pad_value
        self.confusion = ConfusionMatrix(k, ignore_index=left_out)
        self.per_image = PerImageDice(k, ignore_index=left_out,
                                      classes=[1] if labels.task is Task.BINARY else None,
                                      class_names=self.class_names)
        self.boundary = None
        if boundary is not None:
            from segwise.metrics import BoundaryMetrics

            self.boundary = BoundaryMetrics(k, spacing=boundary.spacing,
                                            tolerance=boundary.tolerance,
                                            percentile=boundary.percentile,
                                            distance_metric=boundary.distance_metric,
                                            ignore_index=left_out,
                                            class_names=self.class_names)
        self.overlays: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        self.losses: list[float] = []

    def update(self, item: dict[str, Any], prediction: Any) -> None:
        from segwise.viz import denormalize

        labels = prediction.labels
        if not isinstance(labels, torch.Tensor):
            labels = torch.from_numpy(np.asarray(labels))
        target = item["mask"].unsqueeze(0)
        pred = labels.cpu().long().reshape(target.shape)
        if getattr(prediction, "loss", None) is not None:
            self.losses.append(float(prediction.loss))
        self.confusion.update(pred, target)
        self.per_image.update(pred, target, ids=[item["id"]])
        if self.boundary is not None:
            self.boundary.update(pred, target, spacing=item.get("spacing"))
        if len(self.overlays) < self.keep_overlays and target.ndim == 4:  # a volume
            from segwise.viz import volume_slice

            d, rgb, true_slice, pred_slice = volume_slice(
                item["image"].numpy(), target[0].numpy(), pred[0].numpy(),
                pad_value=self.labels.pad_value)
            self.overlays.append((f"{item['id']} slice {d}", rgb, true_slice, pred_slice))
        elif len(self.overlays) < self.keep_overlays:
            rgb = denormalize(item["image"].numpy(), self.mean, self.std)
            self.overlays.append((item["id"], rgb, target[0].numpy(), pred[0].numpy()))

    def all_reduce(self) -> None:
        self.confusion.all_reduce()
        self.per_image.all_reduce()
        if self.boundary is not None:
            self.boundary.all_reduce()

    def compute(self) -> EvalResult:
        return EvalResult(
            task=self.task,
            scores=self.confusion.compute(class_names=self.class_names),
            per_image=self.per_image.compute(),
            matrix=self.confusion.matrix.cpu().numpy(),
            overlays=self.overlays,
            loss=float(np.mean(self.losses)) if self.losses else None,
            boundary=None if self.boundary is None else self.boundary.compute(),
        )


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Any,
    *,
    labels: LabelSpace,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tile_size: int | tuple[int, ...] | None = None,
    keep_overlays: int = 0,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
    indices: list[int] | None = None,
    distributed: bool = False,
    loss_fn: Any = None,
    boundary: BoundarySettings | None = None,
    overlap: float = 0.25,
) -> EvalResult:
    """Run ``model`` over every item of ``dataset`` (one image at a time, any size).

    The training validation: :func:`evaluation_loop` with a logits step (autocast,
    channels-last, the validation loss) and a :class:`SemanticScorer`.

    Args:
        model: the model; put in eval mode here.
        dataset: yields items per the dataset contract (``image``, ``mask``, ``id``).
        labels: the :class:`~segwise.labels.LabelSpace`: its logits-to-labels rule (binary:
            sigmoid > 0.5, multiclass: argmax), its classes (``num_classes``, 2 for binary)
            and names, and ``pad_value``, the label excluded from every metric.
        device: where the model runs.
        amp_dtype: autocast dtype or None.
        channels_last: channels-last inputs.
        tile_size: sliding-window tile for images larger than it (None: whole image); one
            side per spatial axis for volumes (the training patch).
        keep_overlays: how many images to keep for pictures.
        mean: normalisation mean (to draw the images); std: normalisation std.
        indices: evaluate only these items (for sharding across processes).
        distributed: sum the counts of every process (each evaluated its own ``indices``);
            every process then returns the same scores.
        loss_fn: when given, ``loss_fn(logits (1, out_channels, H, W), target (1, H, W))`` is
            averaged over the images into :attr:`EvalResult.loss` (the validation loss; per
            process).
        boundary: also compute the boundary metrics with these settings (slower: a k-d tree
            per image, class and direction); an item's ``spacing`` (volumes) overrides theirs.
        overlap: sliding-window overlap (0.5 for volumes, nnU-Net's).
    """
    model.eval()

    def step(item: dict[str, Any]) -> LabelOutput:
        logits = forward_logits(model, item["image"].unsqueeze(0).to(device),
                                amp_dtype=amp_dtype, channels_last=channels_last,
                                tile_size=tile_size, overlap=overlap)
        loss = None
        if loss_fn is not None:
            target = item["mask"].unsqueeze(0).to(logits.device)
            loss = float(loss_fn(logits, target))
        return LabelOutput(labels.logits_to_labels(logits).cpu(), loss)

    scorer = SemanticScorer(labels=labels, keep_overlays=keep_overlays, mean=mean, std=std,
                            boundary=boundary)
    return evaluation_loop(dataset, step, scorer, indices=indices, distributed=distributed)

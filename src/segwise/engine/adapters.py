"""Task adapters: what differs between training a semantic and an instance model.

The training loop (:func:`segwise.engine.trainer.fit`) owns everything task-independent:
optimizer, schedule, precision, DDP, checkpoints, logs, early stopping. An adapter owns the
rest, behind this contract:

- ``model_args``: the builder arguments stored in checkpoints (``kind`` selects the builder);
- ``build_model(weights)``: the network;
- ``datasets(index, data_cfg)``: ``(train, val)`` datasets;
- ``training_loss(model, batch)``: forward + loss of one batch (called under autocast), a
  :class:`StepLoss` (the total the optimizer steps on, and its named terms);
- ``validate(model, val_ds, *, indices, distributed, keep_overlays)``: one
  :class:`ValidationResult` (the summary of metrics, the validation loss, the census of what
  was predicted, the overlay pictures);
- ``default_monitor``: the summary key that selects ``best.pt`` by default;
- ``MONITORS`` (class attribute): every summary key a run may monitor (checked before the run
  writes anything, :mod:`segwise.engine.preflight`).

An adapter is built once per run, by :func:`segwise.engine.preflight.check_run` (what it keeps
for the whole run, e.g. its loss, is built when it is constructed). It returns what the loop
needs as values and keeps no per-step or per-validation state: the loop never reads an
adapter's attributes after a call.

:func:`segwise.engine.registry.make_adapter` picks the adapter for a run and
:func:`segwise.runs.builders.build_model_from_args` rebuilds a model from stored
``model_args`` for any task (the tables of adapters and model kinds live there, so that this
module and :mod:`segwise.engine.instance_adapter` do not import each other).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from segwise.engine.config import DataConfig, Monitor, RunConfig
from segwise.runs.builders import build_semantic_model

__all__ = ["AUX_LOSS_WEIGHT", "SemanticAdapter", "StepLoss", "TaskAdapter", "ValidationResult"]

AUX_LOSS_WEIGHT = 0.4  # weight of auxiliary-head losses (as in PSPNet / torchvision)


@dataclass(frozen=True)
class StepLoss:
    """What ``training_loss`` returns for one batch.

    Attributes:
        total: the scalar loss the optimizer steps on (with its autograd graph).
        terms: its named parts, detached scalars (e.g. Mask R-CNN's ``classifier``,
            ``box_reg``, ``mask``), logged as ``loss/<name>`` epoch means; empty when the loss
            has no parts worth naming.
    """

    total: torch.Tensor
    terms: Mapping[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationResult:
    """What ``validate`` returns for one pass over the validation images.

    Attributes:
        summary: metric name -> value, higher is better (``train.monitor`` is one of them).
        loss: the training loss averaged over this process's validation images, or None where
            the task does not compute one (lower is better, so it is not in ``summary``).
        census: what the model predicted, for
            :func:`segwise.engine.hints.degenerate_prediction_hint` (its documented keys), or
            None.
        overlays: ``(id, rgb, target, pred)`` of the first images, for overlays.png.
    """

    summary: dict[str, float]
    loss: float | None = None
    census: Mapping[str, Any] | None = None
    overlays: list = field(default_factory=list)


def _augmentation_preset(data_cfg: DataConfig) -> dict[str, Any]:
    """The preset's options, one set for the CPU pipeline and the on-device augmentation."""
    return {
        "crop_size": data_cfg.crop_size,
        "scale": data_cfg.scale,
        "hflip": data_cfg.hflip,
        "vflip": data_cfg.vflip,
        "rotation": data_cfg.rotation,
        "color_jitter": data_cfg.color_jitter,
    }


@dataclass
class TaskAdapter:
    """Shared state of every adapter (subclasses fill in the methods of the contract)."""

    config: RunConfig
    info: Any  # segwise.data.DataInfo
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    default_monitor: Monitor = Monitor.MEAN_DICE
    #: the loss's per-class weights as numbers, one per class (``train.class_weights``
    #: resolved by :func:`segwise.engine.preflight.check_run`), or None: unweighted
    class_weights: tuple[float, ...] | None = None

    @property
    def ignore_index(self) -> int:
        """The label loss and metrics leave out (:attr:`segwise.labels.LabelSpace.pad_value`:
        the data's ignore label, else the padding label; never a real class)."""
        return self.info.labels.pad_value

    @property
    def loss_description(self) -> str:
        """One line for the start-of-run summary."""
        t = self.config.train
        if "+" in t.loss:
            weights = t.loss_weights or [1.0] * (t.loss.count("+") + 1)
            return " + ".join(f"{w:g} x {n}" for w, n in zip(weights, t.loss.split("+"),
                                                             strict=True))
        if t.loss == "dicece":
            return f"{t.loss} (dice x{t.dice_weight}, ce x{t.ce_weight})"
        return t.loss

    def __post_init__(self) -> None:
        """Build what the adapter keeps for the whole run (e.g. its loss); default nothing."""

    def resolve(self, index: Any) -> None:
        """Learn data-derived settings from the dataset index (``segwise.data.DatasetIndex``)
        before ``model_args`` is read; called by ``make_adapter``. Default: nothing."""

    @property
    def data_derived(self) -> str | None:
        """One line on what the data decided (e.g. anchor sizes) for the banner, or None."""
        return None

    def train_transform(self, data_cfg: DataConfig) -> Any:
        """The training augmentation the data config asks for (``segwise.data`` preset)."""
        from segwise.data import train_transforms

        return train_transforms(self.info, **_augmentation_preset(data_cfg))

    def device_augment(self, data_cfg: DataConfig) -> Any:
        """The per-batch augmentation on the device (``augment_on='device'``), else None."""
        from segwise.engine.config import AugmentOn

        if data_cfg.augment_on is not AugmentOn.DEVICE:
            return None
        from segwise.data.device_augment import DeviceAugment

        return DeviceAugment(self.info, **_augmentation_preset(data_cfg),
                             seed=self.config.train.seed)

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


class SemanticAdapter(TaskAdapter):
    """One class per pixel; models from :func:`segwise.create_model`."""

    #: the validation metrics this adapter reports (``train.monitor`` must be one of them)
    MONITORS: ClassVar[tuple[Monitor, ...]] = (Monitor.MEAN_DICE, Monitor.MEAN_IOU,
                                               Monitor.PIXEL_ACCURACY, Monitor.PER_IMAGE_DICE)

    @property
    def model_args(self) -> dict[str, Any]:
        from segwise.runs.model_args import complete_model_args

        out = self.info.labels.out_channels  # 1 for binary (the label space's rule)
        m = self.config.model
        # encoder and every option resolved (defaults included), as checkpoints record them
        return complete_model_args({
            "kind": "semantic",
            "name": m.name,
            "encoder": m.encoder,
            "in_channels": self.info.in_channels,
            "num_classes": out,
            "options": dict(m.options),
        })

    def __post_init__(self) -> None:
        self.loss_fn = self._build_loss()  # once, with the adapter (the run's recipe)

    def _build_loss(self) -> nn.Module:
        from segwise.losses import create_loss, loss_options

        t = self.config.train
        return create_loss(
            t.loss,
            labels=self.info.labels,  # task, out_channels, pad_value: the label space's own
            weights=t.loss_weights,
            class_weights=self.class_weights,
            # Dice+CE's own term weights, for the losses that have them
            **{k: getattr(t, k) for k in ("dice_weight", "ce_weight") if k in loss_options(t.loss)},
        )

    def build_model(self, weights: str | None) -> nn.Module:
        return build_semantic_model(self.model_args, weights)

    def datasets(self, index: Any, data_cfg: DataConfig) -> tuple[Any, Any]:
        from segwise.data import SegmentationDataset, eval_transforms
        from segwise.engine.config import AugmentOn

        if data_cfg.augment_on is AugmentOn.DEVICE:  # items as read; see device_augment()
            from segwise.data.device_augment import ItemSize

            train = SegmentationDataset(index.train, self.info, transform=ItemSize(),
                                        cache=data_cfg.cache, normalize=False)
        else:
            train = SegmentationDataset(index.train, self.info,
                                        transform=self.train_transform(data_cfg),
                                        cache=data_cfg.cache)
        val = SegmentationDataset(
            index.val, self.info, transform=eval_transforms(self.info), cache=data_cfg.cache
        )
        return train, val

    def training_loss(self, model: nn.Module, batch: dict[str, Any]) -> StepLoss:
        # with_aux=True: always a SegmentationOutput (aux is () without auxiliary heads)
        output = model(self.to_device(batch["image"]), with_aux=True)
        target = batch["mask"].to(self.device, non_blocking=True)
        loss = self.loss_fn(output.logits.float(), target)
        for aux in output.aux:  # one tensor per auxiliary head
            loss = loss + AUX_LOSS_WEIGHT * self.loss_fn(aux.float(), target)
        return StepLoss(loss)

    def validate(
        self,
        model: nn.Module,
        val_ds: Any,
        *,
        indices: list[int],
        distributed: bool,
        keep_overlays: int,
    ) -> ValidationResult:
        from segwise.engine.evaluation import evaluate_model
        from segwise.inferers.tiling import default_tile_size

        result = evaluate_model(
            model,
            val_ds,
            labels=self.info.labels,
            device=self.device,
            amp_dtype=self.amp_dtype,
            channels_last=self.channels_last,
            tile_size=default_tile_size(self.config.data.crop_size),
            keep_overlays=keep_overlays,
            mean=tuple(self.info.mean),
            std=tuple(self.info.std),
            indices=indices,
            distributed=distributed,
            loss_fn=self.loss_fn,
        )
        census = {  # what was predicted, for the degenerate-prediction hint (engine/hints.py)
            "pixels_per_class": result.matrix.sum(axis=0).tolist(),
            "true_pixels_per_class": result.matrix.sum(axis=1).tolist(),
        }
        return ValidationResult(result.summary(), loss=result.loss, census=census,
                                overlays=result.overlays)

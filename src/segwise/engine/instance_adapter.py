"""Training adapter for instance segmentation (``train.task = instance``): one adapter for every
registered instance method.

The method (``--model NAME``, :data:`segwise.instance.methods.INSTANCE_METHODS`) is reached only
through its protocol (:mod:`segwise.instance.methods.base`): this module never asks which
method it is. What the adapter does for every method:

- parses ``model.options`` (``--model-option``) into the method's options dataclass (unknown
  keys refused, naming the allowed ones);
- measures :class:`~segwise.instance.methods.ObjectStats` from the training split's instance
  boxes (at the images' own scale, the scale the training crops are cut at) and lets the method
  fill in its data-derived defaults (e.g. Mask R-CNN's anchors); the one-line summary is printed
  in the run banner and stored with the run;
- stores ``model_args = {"kind": "instance", "method", "name", "encoder", "in_channels",
  "num_classes" (foreground), "options" (resolved, plain values), "derived"}`` in checkpoints, so
  prediction rebuilds and decodes exactly as validation did;
- items: as the dataset cleaned them (:func:`segwise.data.datasets.clean_instances`, once),
  crowd regions left out (:func:`~segwise.instance.methods.without_crowd`), then the method's
  ``prepare_item``;
- loss: the sum of the method's named terms; validation: the one evaluation loop with
  ``predict_image`` and :class:`~segwise.engine.instance_scoring.InstanceScorer`, the scorer
  of ``segwise evaluate`` (crowd regions are not objects in either).

See the adapter contract in :mod:`segwise.engine.adapters`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from segwise.engine.adapters import StepLoss, TaskAdapter, ValidationResult
from segwise.engine.config import DataConfig, Monitor
from segwise.instance.methods import measure_object_stats, predict_image, without_crowd
from segwise.runs.builders import build_instance_model

__all__ = [
    "InstanceAdapter",
    "InstanceItems",
]


class InstanceItems(torch.utils.data.Dataset):
    """An :class:`~segwise.data.InstanceDataset` with its items made ready for one method.

    Runs in the loader workers, on items the dataset has cleaned after augmentation (instances
    the crop removed dropped, boxes recomputed from the masks): crowd regions are left out
    (`without_crowd`, no second cleaning), then the method's ``prepare_item``.

    Args:
        base: the dataset yielding Instance items.
        spec: the instance method.
        options: its resolved options.
        pad_value: the semantic mask's pad / ignore label.
    """

    def __init__(self, base: Any, *, spec: Any, options: Any, pad_value: int):
        self.base = base
        self.spec = spec
        self.options = options
        self.pad_value = pad_value

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        item["instances"] = without_crowd(item["instances"])
        return self.spec.prepare_item(item, options=self.options, pad_value=self.pad_value)


class InstanceAdapter(TaskAdapter):
    """Instance segmentation with any registered method (module docstring)."""

    #: the validation metrics this adapter reports (``train.monitor`` must be one of them)
    MONITORS: ClassVar[tuple[Monitor, ...]] = (Monitor.DSB_SCORE, Monitor.AP50, Monitor.PQ)

    def __init__(self, *args: Any, **fields: Any) -> None:
        super().__init__(*args, **fields)  # the TaskAdapter fields (see make_adapter)
        from segwise.instance.methods import INSTANCE_METHODS, get_method, options_from_mapping

        self.default_monitor = Monitor.DSB_SCORE
        name = self.config.model.name
        if name not in INSTANCE_METHODS:
            raise ValueError(
                f"--model {name!r} is not an instance method; with --task instance pass "
                f"--model {' or --model '.join(INSTANCE_METHODS.names())}"
            )
        self.spec = get_method(name)
        if self.info.mask_kind.value not in ("instance", "coco"):
            raise ValueError(
                f"--task instance needs instance masks (mask kind 'instance' or 'coco'), but "
                f"{self.config.data.root} has {self.info.mask_kind.value!r} masks; see "
                "docs/data.md for the instance layouts"
            )
        if self.info.labels.num_classes < 2:
            raise ValueError(f"{self.config.data.root} has no foreground class")
        self._user_options = options_from_mapping(
            self.spec.options_type, self.config.model.options, method=name
        )
        self._args: dict[str, Any] | None = None
        self.options: Any = None

    @property
    def loss_description(self) -> str:
        """One line for the start-of-run summary."""
        return f"{self.spec.name}'s own loss terms, summed (docs/instance.md)"

    @property
    def data_derived(self) -> str:
        """What the data decided (e.g. anchors), one line for the banner."""
        return self.model_args["derived"]

    # -- model ----------------------------------------------------------------------------
    def resolve(self, index: Any) -> None:
        """Measure the training objects of ``index`` and resolve the options (once per run:
        the run's adapter is built by its preflight, :func:`segwise.engine.preflight.check_run`)."""
        crop = self.config.data.crop_size or 256
        stats = measure_object_stats(list(index.train), self.info, image_size=(crop, crop))
        self._set_options(self.spec.resolve_options(self._user_options, stats))

    def _set_options(self, options: Any) -> None:
        from segwise.instance.methods import options_to_dict
        from segwise.runs.model_args import complete_model_args

        self.options = options
        # complete_model_args: a semantic architecture named by the options (arch,
        # arch_options) is recorded with every option, as checkpoints record them
        self._args = complete_model_args({
            "kind": "instance", "method": self.spec.name, "name": self.spec.name,
            "encoder": self.config.model.encoder, "in_channels": self.info.in_channels,
            "num_classes": self.info.labels.num_classes - 1, "options": options_to_dict(options),
            "derived": self.spec.derived_summary(options),
        })

    @property
    def model_args(self) -> dict[str, Any]:
        if self._args is None:  # no data index at hand: the options' own defaults
            self._set_options(self.spec.resolve_options(self._user_options, None))
        return self._args

    def build_model(self, weights: str | None) -> nn.Module:
        return build_instance_model(self.model_args, weights)

    # -- data -----------------------------------------------------------------------------
    def datasets(self, index: Any, data_cfg: DataConfig) -> tuple[Any, Any]:
        from segwise.data import InstanceDataset, eval_transforms

        if self._args is None:
            self.resolve(index)
        transform = self.train_transform(data_cfg)
        train = InstanceItems(
            InstanceDataset(index.train, self.info, transform=transform, cache=data_cfg.cache),
            spec=self.spec, options=self.options, pad_value=self.ignore_index,
        )
        val = InstanceDataset(
            index.val, self.info, transform=eval_transforms(self.info), cache=data_cfg.cache
        )
        return train, val

    # -- training -------------------------------------------------------------------------
    def training_loss(self, model: nn.Module, batch: dict[str, Any]) -> StepLoss:
        images = self.to_device(batch["image"])
        targets = [
            {k: v.to(self.device, non_blocking=True) for k, v in inst.items()}
            for inst in batch["instances"]
        ]
        terms = self.spec.loss(model, images, targets, options=self.options, batch=batch)
        return StepLoss(sum(v.float() for v in terms.values()),
                        {k: v.detach() for k, v in terms.items()})  # logged per epoch

    def validate(
        self,
        model: nn.Module,
        val_ds: Any,
        *,
        indices: list[int],
        distributed: bool,
        keep_overlays: int,
    ) -> ValidationResult:
        """The one evaluation loop (:func:`~segwise.engine.evaluation.evaluation_loop`) with
        ``segwise evaluate``'s :class:`~segwise.engine.instance_scoring.InstanceScorer`: the
        score that picks ``best.pt`` is the one ``segwise evaluate`` reports for it."""
        from segwise.engine.evaluation import evaluation_loop
        from segwise.engine.instance_scoring import InstanceScorer
        from segwise.inferers.tiling import default_tile_size

        tile = default_tile_size(self.config.data.crop_size)
        was_training = model.training

        def predict(item: dict[str, Any]) -> Any:
            return predict_image(model, item["image"], device=self.device,
                                 amp_dtype=self.amp_dtype, tile_size=tile)

        scorer = InstanceScorer(keep_overlays=keep_overlays, mean=tuple(self.info.mean),
                                std=tuple(self.info.std))
        result = evaluation_loop(val_ds, predict, scorer, indices=indices,
                                 distributed=distributed)
        model.train(was_training)
        # census: for the trainer's degenerate-prediction hint (engine/hints.py)
        return ValidationResult(result.summary(), census=result.census(),
                                overlays=result.overlays)

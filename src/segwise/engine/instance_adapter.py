"""Training adapter for instance segmentation (``train.task = instance``).

Two methods (:class:`~segwise.instance.InstanceMethod`), chosen by ``model.name``:

- ``maskrcnn``: torchvision Mask R-CNN v2 (:func:`segwise.instance.build_maskrcnn`) for
  ``num_classes - 1`` foreground classes; the training loss is the sum of torchvision's loss
  dict. Items are already normalised, so the model's own normalisation is switched off.
- ``unet_watershed``: a semantic model (``model.options["arch"]``, default ``unet``, with
  ``model.encoder``) with 3 outputs (background / interior / boundary), trained with Dice + CE
  weighted by the U-Net border map, decoded by watershed.

``model.options`` holds, besides architecture options, the decoding options of
:class:`~segwise.instance.InstanceDecodeConfig` (``score_threshold``, ``min_area``, ...) and,
for ``unet_watershed``, the border-weight options ``w0``, ``sigma``, ``class_balance``. They
are stored in ``model_args`` (checkpoints), so prediction decodes as validation did.

See the adapter contract in :mod:`segwise.engine.adapters`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from segwise.engine.adapters import TaskAdapter
from segwise.engine.config import DataConfig, Monitor

__all__ = [
    "INSTANCE_KINDS",
    "InstanceAdapter",
    "InstanceItems",
    "build_maskrcnn_from_args",
    "build_unet_watershed_from_args",
    "clean_instances",
    "decode_config_from_args",
    "overlay_maps",
    "predict_image",
]

#: ``model_args["kind"]`` values of instance models (the CLI dispatches on them)
INSTANCE_KINDS = ("maskrcnn", "unet_watershed")

_TARGET_KEYS = ("w0", "sigma", "class_balance")
# Mask R-CNN builder options a user may set with --model-option, and their defaults (sized for
# small microscopy-like images; torchvision's own defaults are 2000/1000 proposals, 512 RoIs)
_MASKRCNN_DEFAULTS: dict[str, Any] = {
    "trainable_backbone_layers": None,
    "box_detections_per_img": 300,
    "rpn_pre_nms_top_n": [1000, 1000],
    "rpn_post_nms_top_n": [500, 500],
    "box_batch_size_per_image": 256,
}


def _decode_keys() -> tuple[str, ...]:
    from segwise.instance import InstanceDecodeConfig

    return tuple(f.name for f in dataclasses.fields(InstanceDecodeConfig))


def decode_config_from_args(args: dict[str, Any]) -> Any:
    """The :class:`~segwise.instance.InstanceDecodeConfig` stored in ``model_args``."""
    from segwise.instance import InstanceDecodeConfig

    return InstanceDecodeConfig(**dict(args.get("decode") or {}))


def build_maskrcnn_from_args(args: dict[str, Any], weights: str | None) -> nn.Module:
    """Builder of model kind ``maskrcnn`` (see ``MODEL_KINDS``)."""
    from segwise.instance import build_maskrcnn

    o = dict(args["options"])
    return build_maskrcnn(
        num_classes=args["num_classes"],
        weights=weights,
        trainable_backbone_layers=o["trainable_backbone_layers"],
        min_size=o["min_size"],
        max_size=o["max_size"],
        box_score_thresh=o.get("box_score_thresh", 0.05),
        box_detections_per_img=o["box_detections_per_img"],
        rpn_pre_nms_top_n=tuple(o["rpn_pre_nms_top_n"]),
        rpn_post_nms_top_n=tuple(o["rpn_post_nms_top_n"]),
        box_batch_size_per_image=o["box_batch_size_per_image"],
        image_mean=o["image_mean"],
        image_std=o["image_std"],
    )


def build_unet_watershed_from_args(args: dict[str, Any], weights: str | None) -> nn.Module:
    """Builder of model kind ``unet_watershed``: a 3-class semantic model."""
    from segwise.models import create_model

    return create_model(
        args["name"],
        encoder=args["encoder"],
        in_channels=args["in_channels"],
        num_classes=args["num_classes"],
        weights=weights,
        **dict(args.get("options") or {}),
    )


class InstanceItems(torch.utils.data.Dataset):
    """An :class:`~segwise.data.InstanceDataset` with its items made ready for one method.

    Runs in the loader workers, after augmentation:

    - instances that the crop removed are dropped and boxes recomputed from the masks (the
      augmentation pads instance masks with 0, see ``segwise.data.transforms.InstanceMasks``);
    - ``unet_watershed``: ``"mask"`` becomes the 3-class target (0 background, 1 interior,
      2 boundary; padded / ignored pixels keep ``pad_value``) and ``"pixel_weights" (H, W)``
      the U-Net border weight map.

    Args:
        base: the dataset yielding Instance items.
        method: the :class:`~segwise.instance.InstanceMethod`.
        pad_value: the semantic mask's pad / ignore label.
        targets: ``unet_targets_from_item`` options (``boundary_width``, ``w0``, ...).
    """

    def __init__(self, base: Any, *, method: Any, pad_value: int, targets: dict[str, Any]):
        self.base = base
        self.method = method
        self.pad_value = pad_value
        self.targets = dict(targets)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from segwise.instance import InstanceMethod, unet_targets_from_item

        item = self.base[i]
        item["instances"] = clean_instances(item["instances"])
        if self.method is InstanceMethod.UNET_WATERSHED:
            t = unet_targets_from_item(item, **self.targets)
            target = t["mask"]
            invalid = item["mask"] == self.pad_value
            item["mask"] = torch.where(invalid, torch.full_like(target, self.pad_value), target)
            item["pixel_weights"] = torch.where(invalid, 0.0, t["pixel_weights"])
        return item


def clean_instances(inst: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An item's ``"instances"`` after augmentation: emptied instances (cropped away) dropped
    and boxes recomputed from the masks (pixel-edge ``x1, y1, x2, y2``)."""
    masks = inst["masks"] == 1  # (K, H, W) 0/1 -> bool
    keep = masks.flatten(1).any(dim=1)
    masks = masks[keep]
    boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
    if len(masks):
        from torchvision.ops import masks_to_boxes

        boxes = masks_to_boxes(masks)
        boxes[:, 2:] += 1  # pixel-edge boxes, as in segwise.data
    return {"masks": masks.to(torch.uint8), "labels": inst["labels"][keep], "boxes": boxes,
            "ids": inst["ids"][keep]}


@contextmanager
def _native_size(model: nn.Module, height: int, width: int) -> Iterator[None]:
    """Let Mask R-CNN see an image at its own resolution (no internal resize)."""
    transform = model.transform
    saved = transform.min_size, transform.max_size
    transform.min_size, transform.max_size = (min(height, width),), max(height, width)
    try:
        yield
    finally:
        transform.min_size, transform.max_size = saved


@torch.no_grad()
def predict_image(
    model: nn.Module,
    image: torch.Tensor,
    *,
    model_args: dict[str, Any],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    tile_size: int | None = None,
) -> Any:
    """Instances of one normalised image, with the decoding stored in ``model_args``.

    Args:
        model: a model rebuilt from ``model_args`` (put in eval mode here).
        image: ``(C, H, W)`` float32, normalised as in training; any size.
        model_args: the checkpoint's ``model_args`` (``kind``, ``decode``).
        device: the model's device.
        amp_dtype: autocast dtype or None.
        tile_size: ``unet_watershed``: sliding-window tile for images larger than this.

    Returns:
        An :class:`~segwise.instance.InstancePrediction` of shape ``(H, W)``.
    """
    from segwise.instance import InstanceMethod, decode_unet_logits, predict_maskrcnn

    config = decode_config_from_args(model_args)
    model.eval()
    x = image.to(device)
    if model_args["kind"] == InstanceMethod.MASKRCNN.value:
        h, w = x.shape[-2:]
        autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
        with _native_size(model, h, w), autocast:
            return predict_maskrcnn(
                model,
                [x.float()],
                score_threshold=config.score_threshold,
                mask_threshold=config.mask_threshold,
            )[0]
    from segwise.engine.evaluation import forward_logits

    logits = forward_logits(model, x[None], amp_dtype=amp_dtype, tile_size=tile_size)
    return decode_unet_logits(logits, config=config)[0]


def overlay_maps(target: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Class maps with instance edges cut out (0), for the trainer's class-palette overlays."""
    return _cut_edges(target), _cut_edges(pred)


def _cut_edges(p: Any) -> np.ndarray:
    inst = p.instance_map
    padded = np.pad(inst, 1, mode="edge")
    h, w = inst.shape
    edge = np.zeros(inst.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + h, dx : dx + w] != inst
    out = np.array(p.class_map, dtype=np.int64)
    out[edge] = 0
    return out


class InstanceAdapter(TaskAdapter):
    """Instance segmentation with Mask R-CNN or U-Net + watershed (module docstring)."""

    #: the validation metrics this adapter reports (``train.monitor`` must be one of them)
    MONITORS: ClassVar[tuple[Monitor, ...]] = (Monitor.DSB_SCORE, Monitor.AP50, Monitor.PQ)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)  # the TaskAdapter fields, positionally (see make_adapter)
        from segwise._validation import as_enum
        from segwise.instance import InstanceMethod

        self.default_monitor = Monitor.DSB_SCORE
        name = self.config.model.name
        try:
            self.method = as_enum(name, InstanceMethod, "model.name")
        except ValueError as err:
            raise ValueError(
                f"--model {name!r} is not an instance method; with --task instance pass "
                f"--model maskrcnn or --model unet_watershed ({err})"
            ) from err
        if self.info.mask_kind.value not in ("instance", "coco"):
            raise ValueError(
                f"--task instance needs instance masks (mask kind 'instance' or 'coco'), but "
                f"{self.config.data.root} has {self.info.mask_kind.value!r} masks; see "
                "docs/data.md for the instance layouts"
            )
        self._args = self._model_args()

    @property
    def loss_description(self) -> str:
        """One line for the start-of-run summary."""
        from segwise.instance import InstanceMethod

        if self.method is InstanceMethod.MASKRCNN:
            return "Mask R-CNN's own losses (RPN objectness + box, classifier, box, mask), summed"
        t = self.config.train
        return (
            f"dicece on background/interior/boundary (dice x{t.dice_weight}, ce x{t.ce_weight}),"
            " CE weighted by the U-Net border weight map"
        )

    # -- model ----------------------------------------------------------------------------
    def _split_options(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        options = dict(self.config.model.options)
        decode = {k: options.pop(k) for k in _decode_keys() if k in options}
        targets = {k: options.pop(k) for k in _TARGET_KEYS if k in options}
        decode_config_from_args({"decode": decode})  # validate early, with a clear error
        return options, decode, targets

    def _model_args(self) -> dict[str, Any]:
        from segwise.instance import UNET_NUM_CLASSES, InstanceMethod

        options, decode, targets = self._split_options()
        crop = self.config.data.crop_size or 256
        c = self.info.in_channels
        if self.method is InstanceMethod.MASKRCNN:
            if targets:
                raise ValueError(
                    f"--model-option {', '.join(targets)} apply to unet_watershed only"
                )
            unknown = sorted(set(options) - set(_MASKRCNN_DEFAULTS) - {"box_score_thresh"})
            if unknown:
                raise ValueError(
                    f"--model-option {', '.join(unknown)} is not a maskrcnn option; allowed: "
                    f"{', '.join(sorted([*_MASKRCNN_DEFAULTS, 'box_score_thresh']))} and the "
                    f"decoding options {', '.join(_decode_keys())}"
                )
            if c != 3:
                raise ValueError(
                    f"maskrcnn needs 3-channel images, but {self.config.data.root} has {c}; "
                    "use --model unet_watershed"
                )
            if self.info.num_classes < 2:
                raise ValueError(f"{self.config.data.root} has no foreground class")
            opts = {**_MASKRCNN_DEFAULTS, **options, "min_size": crop, "max_size": crop,
                    "image_mean": [0.0] * c, "image_std": [1.0] * c}
            return {"kind": "maskrcnn", "name": "maskrcnn", "encoder": "resnet50_fpn_v2",
                    "in_channels": c, "num_classes": self.info.num_classes - 1,
                    "options": opts, "decode": decode}
        arch = options.pop("arch", "unet")
        return {"kind": "unet_watershed", "name": arch, "encoder": self.config.model.encoder,
                "in_channels": c, "num_classes": UNET_NUM_CLASSES, "options": options,
                "decode": decode, "targets": targets}

    @property
    def model_args(self) -> dict[str, Any]:
        return self._args

    def build_model(self, weights: str | None) -> nn.Module:
        from segwise.instance import InstanceMethod

        if self.method is InstanceMethod.MASKRCNN:
            return build_maskrcnn_from_args(self._args, weights)
        from segwise.losses import create_loss

        t = self.config.train
        self.loss_fn = create_loss(
            "dicece",
            task="multiclass",
            num_classes=self._args["num_classes"],
            ignore_index=self.ignore_index,
            dice_weight=t.dice_weight,
            ce_weight=t.ce_weight,
        )
        return build_unet_watershed_from_args(self._args, weights)

    # -- data -----------------------------------------------------------------------------
    def datasets(self, index: Any, data_cfg: DataConfig) -> tuple[Any, Any]:
        from segwise.data import InstanceDataset, eval_transforms

        transform = self.train_transform(data_cfg)
        targets = {"boundary_width": self._decode_config().boundary_width,
                    **self._args.get("targets", {})}
        train = InstanceItems(
            InstanceDataset(index.train, self.info, transform=transform, cache=data_cfg.cache),
            method=self.method, pad_value=self.ignore_index, targets=targets,
        )
        val = InstanceDataset(
            index.val, self.info, transform=eval_transforms(self.info), cache=data_cfg.cache
        )
        return train, val

    def _decode_config(self) -> Any:
        return decode_config_from_args(self._args)

    # -- training -------------------------------------------------------------------------
    def training_loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        from segwise.instance import InstanceMethod, maskrcnn_targets_from_item

        if self.method is InstanceMethod.MASKRCNN:
            images, targets = [], []
            for image, inst in zip(batch["image"], batch["instances"], strict=True):
                img, tgt = maskrcnn_targets_from_item({"image": image, "instances": inst})
                images.append(img.to(self.device, non_blocking=True))
                targets.append({k: v.to(self.device, non_blocking=True) for k, v in tgt.items()})
            losses = model(images, targets)
            return sum(v.float() for v in losses.values())
        logits = model(self.to_device(batch["image"]))  # always a tensor
        target = batch["mask"].to(self.device, non_blocking=True)
        weights = torch.stack(list(batch["pixel_weights"])).to(self.device, non_blocking=True)
        return self.loss_fn(logits.float(), target, pixel_weights=weights)

    def validate(
        self,
        model: nn.Module,
        val_ds: Any,
        *,
        indices: list[int],
        distributed: bool,
        keep_overlays: int,
    ) -> tuple[dict[str, float], list]:
        from segwise.inference.tiling import default_tile_size
        from segwise.instance import InstancePrediction
        from segwise.metrics.instance import InstanceMetrics
        from segwise.viz import denormalize

        metrics = InstanceMetrics()
        overlays: list = []
        counts: list[tuple[int, int]] = []  # (predicted, true) objects per image
        tile = default_tile_size(self.config.data.crop_size)
        was_training = model.training
        for i in indices:
            item = val_ds[i]
            pred = predict_image(
                model, item["image"], model_args=self._args, device=self.device,
                amp_dtype=self.amp_dtype, tile_size=tile,
            )
            target = InstancePrediction.from_target(clean_instances(item["instances"]))
            metrics.update(pred, target)
            counts.append((len(pred), len(target)))
            if len(overlays) < keep_overlays:
                rgb = denormalize(item["image"].numpy(), self.info.mean, self.info.std)
                overlays.append((item["id"], rgb, *overlay_maps(target, pred)))
        model.train(was_training)
        if distributed:
            metrics.all_reduce()
        r = metrics.compute()
        self.prediction_census = {  # for the trainer's degenerate-prediction hint
            "objects_per_image": [c[0] for c in counts],
            "true_objects_per_image": [c[1] for c in counts],
        }
        summary = {"dsb_score": r.dsb_score, "ap50": r.ap50, "pq": r.pq, "sq": r.sq,
                   "rq": r.rq, "f1_50": r.f1_50}
        return {k: float(v) for k, v in summary.items()}, overlays

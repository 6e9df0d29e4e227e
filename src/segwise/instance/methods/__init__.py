"""The registry of instance-segmentation methods (the protocol is in :mod:`.base`).

Each method is one package under ``segwise.instance.methods`` (``spec.py`` the method
object, ``options.py``, and its model, targets, loss and decoding modules) and one line below,
an import path resolved on first use (no registration by import side effect, no heavy import
at ``import segwise``):

- ``maskrcnn``: Mask R-CNN on any segwise encoder + FPN (`.maskrcnn.spec.MaskRCNN`);
- ``unet_watershed``: a 3-class semantic model (background / interior / boundary) split into
  objects by watershed (`.unet_watershed.spec.UNetWatershed`);
- ``yolact``: YOLACT, prototypes x coefficients (`.yolact.spec.YOLACT`);
- ``solov2``: SOLOv2, dynamic mask kernels per grid cell, Matrix NMS (`.solov2.spec.SOLOv2`).

`get_method` returns the method object; `predict_instances` decodes a batch with any method.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import torch
from torch import nn

from segwise.instance.methods.base import (
    InstanceMethodSpec,
    ObjectStats,
    options_from_mapping,
    options_from_record,
    options_to_dict,
)
from segwise.instance.representation import InstancePrediction
from segwise.models.registry import Registry

__all__ = [
    "INSTANCE_METHODS",
    "InstanceMethodSpec",
    "ObjectStats",
    "get_method",
    "options_from_mapping",
    "options_from_record",
    "options_to_dict",
    "predict_image",
    "predict_instances",
]

#: method name (``--task instance --model NAME``) -> ``"module:object"`` of its spec
INSTANCE_METHODS: Registry[str] = Registry("instance method")
INSTANCE_METHODS.register("maskrcnn", "segwise.instance.methods.maskrcnn.spec:MaskRCNN")
INSTANCE_METHODS.register(
    "unet_watershed", "segwise.instance.methods.unet_watershed.spec:UNetWatershed"
)
INSTANCE_METHODS.register("yolact", "segwise.instance.methods.yolact.spec:YOLACT")
INSTANCE_METHODS.register("solov2", "segwise.instance.methods.solov2.spec:SOLOv2")


@cache
def get_method(name: str) -> InstanceMethodSpec:
    """The method registered as ``name`` (a spec class is instantiated once).

    Raises:
        ValueError: ``name`` is not registered (naming the registered methods).
    """
    target = INSTANCE_METHODS.get(name, hint="(segwise models lists them)")
    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj() if isinstance(obj, type) else obj


@torch.inference_mode()
def predict_instances(
    model: nn.Module,
    images: torch.Tensor | Sequence[torch.Tensor],
    *,
    method: str,
    options: Any = None,
    tile_size: int | None = None,
) -> list[InstancePrediction]:
    """Instances of a batch with any registered method; the model is left in eval mode.

    Args:
        model: a model built by ``get_method(method).build(...)``.
        images: ``(N, C, H, W)`` normalised float tensor (or a list of ``(C, H, W)`` of one
            size).
        method: a registered method name.
        options: the method's options value, or a mapping of option values; default: the
            options type's defaults.
        tile_size: sliding-window tile for methods that tile (see the protocol).
    """
    spec = get_method(method)
    if options is None or isinstance(options, Mapping):
        options = options_from_mapping(spec.options_type, options, method=method)
    if not isinstance(images, torch.Tensor):
        images = torch.stack(list(images))
    model.eval()
    return spec.predict(model, images, options=options, tile_size=tile_size)


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
    """Instances of one normalised image, decoded as stored in ``model_args``.

    Args:
        model: a model rebuilt from ``model_args`` (put in eval mode here).
        image: ``(C, H, W)`` float32, normalised as in training; any size.
        model_args: the checkpoint's ``model_args`` (``method``, ``options``).
        device: the model's device.
        amp_dtype: autocast dtype or None.
        tile_size: sliding-window tile for methods that tile (dense outputs).

    Returns:
        An :class:`~segwise.instance.InstancePrediction` of shape ``(H, W)``.
    """
    spec = get_method(model_args["method"])
    options = options_from_record(spec, model_args.get("options"))
    model.eval()
    x = image.to(device)[None]
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        return spec.predict(model, x, options=options, tile_size=tile_size)[0]

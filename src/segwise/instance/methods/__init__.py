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

`get_method` returns the method object; its ``build`` returns an instance model that decodes
itself (``model.predict``, `base.InstanceModel`); `predict_image` runs it on one image.
"""

from __future__ import annotations

import importlib
from functools import cache

import torch
from torch import nn

from segwise.instance.methods.base import (
    InstanceMethodSpec,
    InstanceModel,
    ObjectStats,
    as_instance_model,
    measure_object_stats,
    options_from_mapping,
    options_from_record,
    options_to_dict,
    without_crowd,
)
from segwise.instance.representation import InstancePrediction
from segwise.models.registry import Registry

__all__ = [
    "INSTANCE_METHODS",
    "InstanceMethodSpec",
    "InstanceModel",
    "ObjectStats",
    "as_instance_model",
    "get_method",
    "measure_object_stats",
    "options_from_mapping",
    "options_from_record",
    "options_to_dict",
    "predict_image",
    "without_crowd",
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


@torch.no_grad()
def predict_image(
    model: nn.Module,
    image: torch.Tensor,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    tile_size: int | None = None,
) -> InstancePrediction:
    """Instances of one normalised image: ``model.predict`` on ``device``, under autocast.

    Args:
        model: an instance model (a method's ``build``, e.g. rebuilt from a checkpoint); it
            decodes with its own ``model.options`` and is left in eval mode.
        image: ``(C, H, W)`` float32, normalised as in training; any size.
        device: the model's device.
        amp_dtype: autocast dtype or None.
        tile_size: sliding-window tile for methods that tile (dense outputs).

    Returns:
        An :class:`~segwise.instance.InstancePrediction` of shape ``(H, W)``.
    """
    x = image.to(device)[None]
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        return model.predict(x, tile_size=tile_size)[0]

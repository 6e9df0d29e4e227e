"""Segmentation models: ``create_model(name, *, encoder, in_channels, num_classes, weights)``.

Architectures (``list_models()``): unet, unet_textbook, fcn, fcn32s, fcn16s, fcn8s, deeplabv3,
deeplabv3plus. Encoders (``list_encoders()``): ResNet-18/34/50/101, VGG-16/19 (+BN),
Xception-65, the textbook U-Net encoder, and ``"timm:<name>"``. See ``docs/models.md``.
"""

from __future__ import annotations

from segwise.models.batch_stats import BatchStatisticsError
from segwise.models.blocks import Norm, Upsampling
from segwise.models.factory import create_model, list_encoders, list_models
from segwise.models.segmentation_model import SegmentationModel, SegmentationOutput
from segwise.models.weights import WeightsUnavailableError

__all__ = [
    "BatchStatisticsError",
    "Norm",
    "SegmentationModel",
    "SegmentationOutput",
    "Upsampling",
    "WeightsUnavailableError",
    "create_model",
    "list_encoders",
    "list_models",
]

"""Data: finding, checking, reading and augmenting segmentation datasets.

Main entry points: :func:`discover_dataset` (pairs, split, :class:`DataInfo`),
:func:`inspect_dataset` (the checks behind ``segwise data inspect``), :class:`SegmentationDataset`
(the Dataset item of ``docs/contracts.md``), :func:`train_transforms` / :func:`eval_transforms`,
:func:`make_loader`, and :mod:`segwise.data.synthetic`. See ``docs/data.md``.

Importing this package imports torch and torchvision (``import segwise`` does not).
"""

from __future__ import annotations

from segwise.data.colorspace import ColorSpace
from segwise.data.datasets import (
    InstanceDataset,
    SegmentationDataset,
    normalize_image,
    normalize_tensor,
    read_mask,
)
from segwise.data.discover import discover_dataset
from segwise.data.formats import MaskKind, NonFinite, read_image
from segwise.data.info import (
    DataError,
    DataInfo,
    DatasetIndex,
    Problem,
    Sample,
    Severity,
)
from segwise.data.inspect import InspectionReport, inspect_dataset
from segwise.data.loaders import make_loader, pad_collate
from segwise.data.transforms import eval_transforms, train_transforms

__all__ = [
    "ColorSpace",
    "DataError",
    "DataInfo",
    "DatasetIndex",
    "InspectionReport",
    "InstanceDataset",
    "MaskKind",
    "NonFinite",
    "Problem",
    "Sample",
    "SegmentationDataset",
    "Severity",
    "discover_dataset",
    "eval_transforms",
    "inspect_dataset",
    "make_loader",
    "normalize_image",
    "normalize_tensor",
    "pad_collate",
    "read_image",
    "read_mask",
    "train_transforms",
]

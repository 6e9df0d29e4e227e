"""Enums shared across segwise (losses, metrics, data, engine).

Options are enums rather than free strings; every function also accepts the string value
(e.g. ``"multiclass"``) and converts it with :func:`segwise._validation.as_enum`.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Normalization", "Task"]


class Task(str, Enum):
    """What one pixel's label means.

    - ``BINARY``: one foreground class; the model emits 1 channel, probability = sigmoid.
    - ``MULTICLASS``: exactly one of C classes per pixel; C channels, probabilities = softmax.
    - ``MULTILABEL``: any subset of C classes per pixel; C channels, sigmoid per channel.
    """

    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"


class Normalization(str, Enum):
    """How image intensities are normalised before the model sees them.

    - ``DATASET``: one mean and std per channel, measured on the training images scaled to
      [0, 1] (the 2D default: ``DataInfo.mean``/``std``).
    - ``ZSCORE``: each volume by its own mean and std per channel (nnU-Net's default for MRI
      and every modality but CT: intensities have no absolute meaning across scans).
    - ``CT``: clip to the 0.5 and 99.5 percentiles of the training foreground's intensities
      (``DataInfo.clip``), then subtract that foreground's mean and divide by its std
      (``DataInfo.mean``/``std``): Hounsfield units are absolute (nnU-Net's CTNormalization,
      Isensee et al. 2021).
    """

    DATASET = "dataset"
    ZSCORE = "zscore"
    CT = "ct"

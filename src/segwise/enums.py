"""Enums shared across segwise (losses, metrics, data, engine).

Options are enums rather than free strings; every function also accepts the string value
(e.g. ``"multiclass"``) and converts it with :func:`segwise._validation.as_enum`.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ClassWeightRule", "Normalization", "Task"]


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


class ClassWeightRule(str, Enum):
    """How per-class loss weights are computed from the training split's label counts
    (:func:`segwise.data.class_weights.class_weights_from_counts`; ``docs/dice.md``).

    ``n_c``: pixels (voxels) of class ``c`` over the training masks; ``N = sum_c n_c``;
    ``K``: the number of classes, background included.

    - ``INVERSE_FREQUENCY``: ``w_c = N / (K * n_c)`` (a class of average size gets 1).
    - ``MEDIAN_FREQUENCY``: ``w_c = median_f / f_c`` with ``f_c = n_c / P_c``, ``P_c`` the
      labelled pixels of the images where ``c`` is present (Eigen & Fergus 2015).
    - ``EFFECTIVE_NUMBER``: ``w_c = (1 - beta) / (1 - beta**n_c)``, then scaled so the weights
      sum to ``K`` (Cui et al. 2019, "class-balanced loss").
    """

    INVERSE_FREQUENCY = "inverse_frequency"
    MEDIAN_FREQUENCY = "median_frequency"
    EFFECTIVE_NUMBER = "effective_number"

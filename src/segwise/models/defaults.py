"""The options an architecture is built with: complete, and as older checkpoints meant them.

A checkpoint that records only the options a user gave loads into whatever the defaults are
on the day it is loaded: change a default (say the textbook U-Net's norm) and every saved
default model rebuilds as a different network. So checkpoints record every option
(:func:`complete_build_args`, with the current defaults filled in), and checkpoints written
before that (format 1, :mod:`segwise.runs.checkpoint`) are completed with the defaults that
applied when they were written, frozen here in one table, :data:`FORMAT1_DEFAULTS`
(:func:`format1_build_args`).

Rules for whoever changes an architecture:

- changing a default: nothing to do here; recorded checkpoints carry their value;
- adding an option: its default must build what the architecture built before the option
  existed (older checkpoints do not record it and get the current default);
- ``None`` defaults that stand for a rule (``decoder_channels``, ``atrous_rates``) are recorded
  as ``None``: changing such a rule changes what recorded checkpoints build, so it needs a new
  checkpoint format version and a table like :data:`FORMAT1_DEFAULTS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from enum import Enum
from typing import Any

from segwise.models.architectures import BUILDER_ARGS, MODELS

__all__ = [
    "FORMAT1_DEFAULTS",
    "architecture_defaults",
    "complete_build_args",
    "format1_build_args",
]

#: Every architecture's default encoder and options as segwise applied them to checkpoints of
#: format 1 (segwise 0.1.0 up to 2026-11-30, which recorded only the options given). Frozen:
#: never edit a value here, whatever the builders' defaults become.
FORMAT1_DEFAULTS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "unet": ("resnet34", {"decoder_channels": None, "upsampling": "nearest", "norm": "batch",
                          "output_stride": 32, "head_kernel_size": 3}),
    "unet_textbook": ("unet_textbook", {"base_width": 64, "depth": 4, "upsampling": "transposed",
                                        "norm": "batch", "head_kernel_size": 1}),
    "fcn": ("resnet50", {"output_stride": 8, "norm": "batch", "aux": False}),
    "fcn32s": ("vgg16", {"fc_channels": 4096}),
    "fcn16s": ("vgg16", {"fc_channels": 4096}),
    "fcn8s": ("vgg16", {"fc_channels": 4096}),
    "deeplabv3": ("resnet50", {"output_stride": 8, "atrous_rates": None, "separable": False,
                               "norm": "batch", "aux": False}),
    "deeplabv3plus": ("resnet50", {"output_stride": 16, "atrous_rates": None,
                                   "separable": False, "low_level_channels": 48,
                                   "norm": "batch", "aux": False}),
}


def _plain(value: Any) -> Any:
    """A builtin for a checkpoint (loadable with ``weights_only=True``): enums as their value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def architecture_defaults(name: str) -> tuple[str, dict[str, Any]]:
    """The default encoder and options of architecture ``name`` in this segwise.

    Returns:
        ``(encoder, options)``: the encoder ``create_model(name, encoder=None)`` uses, and every
        option of the builder with its default (enums as their string value).

    Raises:
        ValueError: unknown architecture (the message lists the known ones).
    """
    spec = MODELS.get(name)
    params = inspect.signature(spec.build).parameters
    options = {
        key: _plain(p.default) for key, p in params.items()
        if key not in BUILDER_ARGS and p.default is not inspect.Parameter.empty
    }
    return spec.default_encoder, options


def complete_build_args(
    name: str, *, encoder: str | None, options: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """``encoder`` and ``options`` with this segwise's defaults filled in (what is recorded).

    The given options win; unknown option names are kept (``create_model`` refuses them with
    the list of valid ones). Values are made plain (enums as strings, sequences as lists).

    Returns:
        ``(encoder, options)`` that rebuild exactly the model ``create_model(name,
        encoder=encoder, **options)`` builds today, whatever later defaults become.
    """
    default_encoder, resolved = architecture_defaults(name)
    resolved.update({key: _plain(value) for key, value in dict(options or {}).items()})
    return (default_encoder if encoder is None else encoder), resolved


def format1_build_args(
    name: str, *, encoder: str | None, options: Mapping[str, Any] | None
) -> tuple[str | None, dict[str, Any]]:
    """``encoder`` and ``options`` of a format-1 checkpoint (only the given ones recorded),
    completed with :data:`FORMAT1_DEFAULTS`, the defaults that applied when it was written.

    An architecture the table does not know (none in segwise 0.1.0) is returned unchanged, for
    ``create_model`` to report.
    """
    if name not in FORMAT1_DEFAULTS:
        return encoder, dict(options or {})
    default_encoder, defaults = FORMAT1_DEFAULTS[name]
    return (default_encoder if encoder is None else encoder), {**defaults, **dict(options or {})}

"""``create_model``, ``list_models``, ``list_encoders``: the public entry points."""

from __future__ import annotations

import inspect
import os
from typing import Any

from torch import nn

from segwise.models.architectures import BUILDER_ARGS, MODELS
from segwise.models.encoders import ENCODERS
from segwise.models.weights import load_weights_file

__all__ = ["create_model", "list_encoders", "list_models", "resolved_options"]


def _check_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid; expected an integer >= 1")


def resolved_options(name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every option of architecture ``name`` as a build would use it: its builder's defaults
    (enums as their string value), overridden by ``options`` (for printing what a run applies;
    nothing is validated here). Checkpoints record the same (:mod:`segwise.models.defaults`).

    Raises:
        ValueError: unknown architecture name (the message lists the known ones).
    """
    from segwise.models.defaults import architecture_defaults

    return {**architecture_defaults(name)[1], **(options or {})}


def create_model(
    name: str,
    *,
    encoder: str | None = None,
    in_channels: int = 3,
    num_classes: int,
    weights: str | os.PathLike | None = None,
    **options: Any,
) -> nn.Module:
    """Build a segmentation model.

    Args:
        name: an architecture from :func:`list_models`.
        encoder: an encoder from :func:`list_encoders` or ``"timm:<name>"``; ``None`` picks
            the architecture's default.
        in_channels: channels of the input image (1 for grey, 4+ for multispectral).
        num_classes: output channels (logits).
        weights: ``None`` (random init), ``"imagenet"`` (the encoder's ImageNet weights; the
            first conv is adapted when ``in_channels != 3``), or a path to a local
            ``.pth``/``.safetensors`` state_dict (full model, encoder, or backbone keys; see
            :func:`segwise.models.weights.load_weights_file`).
        **options: the architecture's own options, passed to its builder (see docs/models.md).

    Returns:
        A :class:`~segwise.models.SegmentationModel`; ``forward(x (N, in_channels, H, W))``
        returns logits ``(N, num_classes, H, W)``, always a tensor; ``forward(x,
        with_aux=True)`` returns a ``SegmentationOutput`` (``aux`` filled with ``aux=True``).

    Raises:
        ValueError: unknown name, encoder or option, or a bad value (the message names it).
        WeightsUnavailableError: ``weights="imagenet"`` not cached and not downloadable.
    """
    spec = MODELS.get(name)
    _check_int(in_channels, "in_channels")
    _check_int(num_classes, "num_classes")
    params = inspect.signature(spec.build).parameters
    allowed = [p for p in params if p not in BUILDER_ARGS]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"option {unknown[0]}={options[unknown[0]]!r} is not valid for model {name!r}; "
            f"expected one of: {', '.join(allowed) or '(no options)'}"
        )
    path = None
    if weights is not None and weights != "imagenet":
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                f"weights={weights!r} is not valid; expected None, 'imagenet' or a file path"
            )
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"weights={path!r} is not a file (expected None, 'imagenet' or a path to a "
                ".pth/.safetensors state_dict)"
            )
    model = spec.build(
        encoder=spec.default_encoder if encoder is None else encoder,
        in_channels=in_channels,
        num_classes=num_classes,
        pretrained=weights == "imagenet",
        **options,
    )
    if path is not None:
        load_weights_file(model, path)
    return model


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, in registration order."""
    return MODELS.names()


def list_encoders() -> list[str]:
    """Registered encoder names; any timm features model also works as ``"timm:<name>"``."""
    return ENCODERS.names()

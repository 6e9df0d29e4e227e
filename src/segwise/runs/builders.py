"""Rebuild a model from the ``model_args`` a checkpoint records: one builder per model kind.

``model_args["kind"]`` selects the builder (:data:`MODEL_KINDS`): ``semantic`` models come from
:func:`segwise.models.create_model`, ``instance`` models from their method's ``build``
(:mod:`segwise.instance.methods`). Training (:mod:`segwise.engine`) and serving
(:mod:`segwise.inference`) both build through here, so a saved model loads into exactly the
network that was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from segwise.instance.methods import get_method, options_from_record
from segwise.models import create_model

__all__ = ["INSTANCE_KINDS", "MODEL_KINDS", "build_instance_model", "build_model_from_args",
           "build_semantic_model"]


def build_semantic_model(args: dict[str, Any], weights: str | None) -> nn.Module:
    """Builder of model kind ``semantic``: :func:`segwise.models.create_model` with the
    recorded name, encoder, channels, classes and options."""
    options = dict(args.get("options") or {})
    return create_model(
        args["name"],
        encoder=args["encoder"],
        in_channels=args["in_channels"],
        num_classes=args["num_classes"],
        weights=weights,
        **options,
    )


def build_instance_model(args: dict[str, Any], weights: str | None) -> nn.Module:
    """Builder of model kind ``instance``: the recorded method's ``build``, with its options
    read back from the record (:func:`segwise.instance.methods.options_from_record`)."""
    spec = get_method(args["method"])
    options = options_from_record(spec, args.get("options"))
    return spec.build(
        encoder=args.get("encoder"),
        in_channels=args["in_channels"],
        num_classes=args["num_classes"],
        options=options,
        weights=weights,
    )


#: ``model_args["kind"]`` of instance models (the CLI and the predictor dispatch on it)
INSTANCE_KINDS = ("instance",)

#: model kind (stored in checkpoints as ``model_args["kind"]``) -> builder(model_args, weights)
MODEL_KINDS: dict[str, Callable[[dict[str, Any], str | None], nn.Module]] = {
    "semantic": build_semantic_model,
    "instance": build_instance_model,
}


# instance kinds of checkpoints written before the instance-method registry
_RETIRED_KINDS = ("maskrcnn", "unet_watershed")


def build_model_from_args(args: dict[str, Any], *, weights: str | None = None) -> nn.Module:
    """Rebuild a model from the ``model_args`` stored in a checkpoint."""
    kind = args.get("kind", "semantic")
    if kind in _RETIRED_KINDS:
        raise ValueError(
            f"this checkpoint's model kind {kind!r} was written by an older segwise, before "
            "instance methods became plug-ins (kind 'instance'); its options cannot be mapped "
            f"safely: retrain it with `segwise train --task instance --model {kind}`"
        )
    if kind not in MODEL_KINDS:
        raise ValueError(
            f"model kind {kind!r} is unknown; known: {', '.join(sorted(MODEL_KINDS))}"
        )
    return MODEL_KINDS[kind](args, weights)

"""The engine's two tables: run task -> training adapter, model kind -> model builder.

Both are explicit tables of ``"package.module:name"`` import paths, resolved on use: nothing
registers itself by being imported, and a new task or instance method is one module plus one
line here. They live in their own module so that the adapters they name
(:mod:`segwise.engine.adapters`, :mod:`segwise.engine.instance_adapter`) never import each
other (``tests/test_import_cycles.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from segwise.engine.adapters import TaskAdapter
from segwise.engine.config import RunConfig, RunTask

__all__ = ["ADAPTERS", "MODEL_KINDS", "build_model_from_args", "make_adapter"]


def _resolve(target: str) -> Any:
    """``"package.module:name"`` -> the object (imported on first use)."""
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# model kind (stored in checkpoints as model_args["kind"]) -> builder(model_args, weights).
# An explicit table of import paths: nothing registers itself by being imported.
MODEL_KINDS: dict[str, str] = {
    "semantic": "segwise.engine.adapters:_semantic_model",
    "instance": "segwise.engine.instance_adapter:build_instance_model",
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
    return _resolve(MODEL_KINDS[kind])(args, weights)


# run task -> adapter class, as import paths (resolved on use)
ADAPTERS: dict[RunTask, str] = {
    RunTask.SEMANTIC: "segwise.engine.adapters:SemanticAdapter",
    RunTask.INSTANCE: "segwise.engine.instance_adapter:InstanceAdapter",
}


def make_adapter(
    config: RunConfig,
    info: Any,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    index: Any = None,
) -> TaskAdapter:
    """The adapter for ``config.train.task``; with ``index`` (the discovered dataset) it has
    resolved its data-derived settings (:meth:`TaskAdapter.resolve`)."""
    task = config.train.task
    if task not in ADAPTERS:
        raise ValueError(f"train.task={task.value!r} has no training adapter in this install")
    cls = _resolve(ADAPTERS[task])
    adapter = cls(config, info, device, amp_dtype, channels_last)
    if index is not None:
        adapter.resolve(index)
    return adapter

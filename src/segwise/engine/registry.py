"""The engine's table: run task -> training adapter (model kinds -> builders live in
:mod:`segwise.runs.builders`).

It is an explicit table of ``"package.module:name"`` import paths, resolved on use: nothing
registers itself by being imported, and a new task or instance method is one module plus one
line here. It lives in its own module so that the adapters it names
(:mod:`segwise.engine.adapters`, :mod:`segwise.engine.instance_adapter`) never import each
other (``tests/test_import_cycles.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from segwise.engine.adapters import TaskAdapter
from segwise.engine.config import RunConfig, RunTask

__all__ = ["ADAPTERS", "VOLUME_ADAPTER", "make_adapter"]


def _resolve(target: str) -> Any:
    """``"package.module:name"`` -> the object (imported on first use)."""
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# run task -> adapter class, as import paths (resolved on use)
ADAPTERS: dict[RunTask, str] = {
    RunTask.SEMANTIC: "segwise.engine.adapters:SemanticAdapter",
    RunTask.INSTANCE: "segwise.engine.instance_adapter:InstanceAdapter",
}

#: the adapter of semantic runs on volumes (``DataInfo.spatial_dims == 3``)
VOLUME_ADAPTER = "segwise.engine.volume_adapter:VolumeAdapter"


def make_adapter(
    config: RunConfig,
    info: Any,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    index: Any = None,
    class_weights: tuple[float, ...] | None = None,
) -> TaskAdapter:
    """The adapter for ``config.train.task`` (on volumes: :data:`VOLUME_ADAPTER`); with
    ``index`` (the discovered dataset) it has resolved its data-derived settings
    (:meth:`TaskAdapter.resolve`). ``class_weights``: the loss's per-class weights as numbers
    (:func:`segwise.engine.preflight.check_run` resolves them), or None.

    Raises:
        ValueError: a task without an adapter, or ``--task instance`` on volumes.
    """
    task = config.train.task
    if task not in ADAPTERS:
        raise ValueError(f"train.task={task.value!r} has no training adapter in this install")
    target = ADAPTERS[task]
    if getattr(info, "spatial_dims", 2) == 3:
        if task is not RunTask.SEMANTIC:
            raise ValueError(f"--task {task.value} is for 2D images; volumes train semantic "
                             "models (drop --task, or use --task semantic)")
        target = VOLUME_ADAPTER
    cls = _resolve(target)
    adapter = cls(config, info, device, amp_dtype, channels_last, class_weights=class_weights)
    if index is not None:
        adapter.resolve(index)
    return adapter

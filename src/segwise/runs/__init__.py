"""Runs: the saved model, read back. Checkpoint files (format, atomic writes, safe loads),
the ``model_args`` they record, rebuilding the network from them, and device resolution.

This is the layer below both training (:mod:`segwise.engine`, which writes checkpoints and
resumes from them) and serving (:mod:`segwise.inference`, whose predictor loads a run), so
neither imports the other (``tests/test_package_order.py``). Names resolve lazily (PEP 562).
"""

from __future__ import annotations

from segwise._lazy import lazy_exports

# public name -> module that defines it
_LAZY = {
    "CheckpointError": "segwise.runs.checkpoint",
    "FORMAT": "segwise.runs.checkpoint",
    "FORMAT_VERSION": "segwise.runs.checkpoint",
    "LoadedRun": "segwise.runs.checkpoint",
    "build_model_from_checkpoint": "segwise.runs.checkpoint",
    "load_checkpoint": "segwise.runs.checkpoint",
    "load_run": "segwise.runs.checkpoint",
    "run_checkpoint": "segwise.runs.checkpoint",
    "save_checkpoint": "segwise.runs.checkpoint",
    "state_digest": "segwise.runs.checkpoint",
    "weights_only_payload": "segwise.runs.checkpoint",
    "MODEL_KINDS": "segwise.runs.builders",
    "build_model_from_args": "segwise.runs.builders",
    "complete_model_args": "segwise.runs.model_args",
    "resolve_device": "segwise.runs.device",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

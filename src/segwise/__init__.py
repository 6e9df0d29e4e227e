"""segwise: image segmentation in PyTorch, with Dice done right.

``import segwise`` is cheap: it imports neither torch nor any optional library. The public
names below are resolved lazily on first use.

The front door (:mod:`segwise.api`) does in Python what the command line's verbs do:

Example:
    >>> import segwise
    >>> run = segwise.train("my_data", model="unet", epochs=30)  # doctest: +SKIP
    >>> segwise.evaluate(run.run_dir, "my_data").summary()["mean_dice"]  # doctest: +SKIP
    >>> predictor = segwise.load_predictor(run.run_dir)  # doctest: +SKIP
    >>> model = segwise.create_model("unet", encoder="resnet34", num_classes=3)  # doctest: +SKIP
"""

from __future__ import annotations

from segwise._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it (resolved on first attribute access, PEP 562)
_LAZY = {
    "train": "segwise.api",
    "evaluate": "segwise.api",
    "load_predictor": "segwise.api",
    "create_model": "segwise.models",
    "list_models": "segwise.models",
    "list_encoders": "segwise.models",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), eager=["__version__"])

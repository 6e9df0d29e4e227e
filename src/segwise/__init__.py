"""segwise: image segmentation in PyTorch, with Dice done right.

``import segwise`` is cheap: it imports neither torch nor any optional library. The public
names below are resolved lazily on first use.

Example:
    >>> import segwise
    >>> model = segwise.create_model("unet", encoder="resnet34", num_classes=3)  # doctest: +SKIP
"""

from __future__ import annotations

from segwise._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it (resolved on first attribute access, PEP 562)
_LAZY = {
    "create_model": "segwise.models",
    "list_models": "segwise.models",
    "list_encoders": "segwise.models",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), eager=["__version__"])

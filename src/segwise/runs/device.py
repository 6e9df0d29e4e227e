"""Which device a run, an evaluation or a predictor uses (``"auto"``, ``"cpu"``, ``"cuda:N"``)."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is checked."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(
            f"train.device={spec!r} is not a device; use auto, cpu or cuda[:N]"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={spec!r} but CUDA is not available; use --device cpu")
    return device

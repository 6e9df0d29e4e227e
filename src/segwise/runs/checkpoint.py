"""Checkpoints: atomic writes, safe loads, and everything needed to predict from one file.

A checkpoint is a plain dict of tensors and builtins, so it loads with
``torch.load(weights_only=True)`` (no arbitrary unpickling):

- ``format`` / ``format_version``: identifies the file (:data:`FORMAT`, :data:`FORMAT_VERSION`);
- ``segwise_version``: the library version that wrote it;
- ``config``: the resolved :class:`~segwise.engine.config.RunConfig` as a dict;
- ``data_info``: the dataset description (task, classes, colours, normalisation);
- ``model_args``: the ``create_model`` arguments, so the model can be rebuilt; since format 2
  every option with the value it was built with, defaults included (a later change of a default
  never changes what a checkpoint loads into);
- ``class_weights``: the loss's per-class weights as numbers (one per class), or ``None``
  (unweighted, and files written before it existed); ``config`` keeps what was asked (a rule
  such as ``median_frequency``, or a list), and ``--resume`` reuses these numbers;
- ``model``: the model's state dict; ``model_digest``: SHA-256 over it, checked on load;
- ``ema``: the EMA model's state dict or ``None``;
- ``training``: optimizer / scaler / epoch / step / early-stopping state and RNG states (for
  ``--resume``; not needed to predict).

``last.pt`` holds all of it; ``best.pt`` holds the weights, the config and the epoch record
but no optimizer or scaler state (:func:`weights_only_payload`): it is for predicting, and is
about a third of the size for AdamW.

Format versions (``format_version``):

- 1: ``model_args`` holds only the options the user gave (and ``encoder`` may be ``None``);
  :func:`load_checkpoint` completes them with the defaults of that time, frozen in
  :data:`segwise.models.defaults.FORMAT1_DEFAULTS`, so such a file loads into what it was
  trained as, whatever the defaults are now;
- 2: ``model_args`` holds the resolved encoder and every option of the architecture (for an
  instance method whose options name a semantic architecture, ``arch_options`` complete too).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segwise import __version__
from segwise.runs.model_args import COMPLETE_MODEL_ARGS_SINCE, complete_model_args

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "LoadedRun",
    "build_model_from_checkpoint",
    "load_checkpoint",
    "load_run",
    "run_checkpoint",
    "save_checkpoint",
    "state_digest",
    "weights_only_payload",
]

FORMAT = "segwise-checkpoint"
FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unknown format or version, corrupt, tampered)."""


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format fields and the model digest) atomically to ``path``.

    The file is written to a temporary name in the same folder, flushed to disk and renamed
    over ``path``, so a crash or kill mid-write never leaves a truncated checkpoint. It gets
    the permissions of any other new file (``0o666`` less the umask; the temporary file's own
    are ``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "segwise_version": __version__,
        **payload,
        "model_digest": state_digest(payload["model"]),
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            torch.save(full, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def weights_only_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` without the optimizer and scaler states (what ``best.pt`` keeps)."""
    training = {
        k: v for k, v in payload.get("training", {}).items() if k not in ("optimizer", "scaler")
    }
    return {**payload, "training": training}


def run_checkpoint(path: str | Path, *, flag: str = "checkpoint") -> Path:
    """The checkpoint a path names: a run folder ``RUN/`` gives ``RUN/best.pt``; any other
    path is returned as it is (:func:`load_checkpoint` says when it does not exist).

    Args:
        path: a checkpoint file or a run folder.
        flag: how messages name the path (``--checkpoint`` on the command line).

    Raises:
        FileNotFoundError: a run folder without ``best.pt`` (naming ``last.pt`` when present).
    """
    path = Path(path)
    if not path.is_dir():
        return path
    if (path / "best.pt").is_file():
        return path / "best.pt"
    if (path / "last.pt").is_file():
        raise FileNotFoundError(
            f"{flag} {path}: the run folder has no best.pt yet (no validation has "
            f"finished); pass {path / 'last.pt'} to use the latest weights"
        )
    raise FileNotFoundError(
        f"{flag} {path}: the folder holds no best.pt; pass a run folder or RUN/best.pt"
    )


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and verify a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: not a segwise checkpoint, a newer format version, unreadable or
            corrupt, holds pickled objects other than tensors and builtins, or its weights do
            not match their recorded digest (the file was modified).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist (expected RUN/best.pt or RUN/last.pt)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely: {type(err).__name__}: {str(err)[:300]}. "
            "It is corrupt, truncated, or holds objects other than tensors and builtins "
            "(segwise never unpickles arbitrary objects)."
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a segwise checkpoint (no '{FORMAT}' marker)")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}, written by segwise "
            f"{ckpt.get('segwise_version')!r}; this segwise ({__version__}) reads versions "
            f"<= {FORMAT_VERSION}. Upgrade segwise to read it."
        )
    for key in ("config", "data_info", "model_args", "model", "model_digest"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} lacks the field {key!r}; it is incomplete")
    if state_digest(ckpt["model"]) != ckpt["model_digest"]:
        raise CheckpointError(
            f"checkpoint {path}: the weights do not match their recorded SHA-256 digest; "
            "the file was modified after it was written"
        )
    if version < COMPLETE_MODEL_ARGS_SINCE:  # only the given options: complete them as of then
        ckpt["model_args"] = complete_model_args(ckpt["model_args"], as_of_format=version)
    return ckpt


def build_model_from_checkpoint(ckpt: dict[str, Any], *, use_ema: bool = True) -> torch.nn.Module:
    """Rebuild the model recorded in a loaded checkpoint and load its weights (eval mode).

    Args:
        ckpt: a dict returned by :func:`load_checkpoint`.
        use_ema: load the EMA weights when the checkpoint has them.
    """
    from segwise.runs.builders import build_model_from_args

    model = build_model_from_args(dict(ckpt["model_args"]))
    state = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(state)
    return model.eval()


@dataclass
class LoadedRun:
    """A checkpoint with its model rebuilt.

    Attributes:
        model: the network in eval mode on ``device``.
        info: the training data's ``DataInfo`` (task, classes, colours, normalisation).
        config: the resolved run config as a dict.
        model_args: the ``create_model`` arguments.
        device: where the model lives.
        checkpoint: the path it came from.
    """

    model: Any
    info: Any
    config: dict[str, Any]
    model_args: dict[str, Any]
    device: Any
    checkpoint: Path


def load_run(checkpoint: str | Path, *, device: str = "auto") -> LoadedRun:
    """Load a checkpoint, rebuild its model and its data description."""
    from segwise.data import DataInfo
    from segwise.runs.device import resolve_device

    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint)
    model = build_model_from_checkpoint(ckpt).to(dev)
    return LoadedRun(
        model=model,
        info=DataInfo.from_dict(ckpt["data_info"]),
        config=ckpt["config"],
        model_args=dict(ckpt["model_args"]),
        device=dev,
        checkpoint=Path(checkpoint),
    )

"""Pretrained weights: ImageNet backbones from timm's sources, and local state_dict files.

Two sources, chosen by ``create_model(..., weights=...)``:

- ``"imagenet"``: the encoder's ImageNet weights as published by timm (Hugging Face Hub
  ``timm/<model>.<tag>``, or the URL in timm's pretrained config). A copy already in the local
  cache is used without touching the network. Otherwise one download is tried, after a 3-second
  reachability check, and never when ``HF_HUB_OFFLINE=1`` or ``SEGWISE_OFFLINE=1`` is set; when
  it cannot happen, :class:`WeightsUnavailableError` says how to pass a local file instead.
- a path to a ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors``
  file holding a state_dict (optionally wrapped as ``{"state_dict": ...}`` or
  ``{"model": ...}``). Three key layouts are accepted, see :func:`load_weights_file`.

With ``in_channels != 3`` the first convolution's 3-channel weights are adapted the way timm
does it (:func:`timm.models.adapt_input_conv`: summed for 1 channel, repeated and rescaled for
more), both for ``"imagenet"`` and for local files.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = [
    "WeightsUnavailableError",
    "adapt_input_channels",
    "fetch_timm_weights",
    "load_full_state_dict",
    "load_state_dict_file",
    "load_weights_file",
]

_HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
_PROBE_TIMEOUT_S = 3.0


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights are neither cached locally nor downloadable right now."""


def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "SEGWISE_OFFLINE")
    )


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _unavailable(model_name: str, source: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"ImageNet weights for encoder {model_name!r} ({source}) are not in the local cache and "
        f"cannot be downloaded: {reason}. Download the file on a machine with network access "
        f"(e.g. `timm.create_model({model_name!r}, pretrained=True)` then "
        f"`torch.save(model.state_dict(), 'encoder.pth')`) and pass "
        f"it as --weights path/to/encoder.pth (or .safetensors) to `segwise train` "
        f"(weights='path/to/encoder.pth' in create_model), or copy the Hugging Face cache to "
        f"this machine."
    )


def fetch_timm_weights(model_name: str) -> Path:
    """Return a local path to timm's default ImageNet weights for ``model_name``, failing fast.

    Raises:
        ValueError: when timm publishes no pretrained weights for ``model_name``.
        WeightsUnavailableError: when the file is not cached and cannot be downloaded now.
    """
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(f"timm publishes no pretrained weights for {model_name!r}")
    if cfg.hf_hub_id:
        import huggingface_hub
        from huggingface_hub import constants

        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_FILENAMES
        for filename in names:
            cached = huggingface_hub.try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(cached, str):
                return Path(cached)
        source = f"Hugging Face Hub {cfg.hf_hub_id}"
        if _offline():
            raise _unavailable(model_name, source, "offline mode is set (HF_HUB_OFFLINE)")
        if not _reachable(constants.ENDPOINT):
            raise _unavailable(model_name, source, f"{constants.ENDPOINT} is unreachable")
        errors = []
        for filename in names:
            try:
                return Path(
                    huggingface_hub.hf_hub_download(cfg.hf_hub_id, filename, etag_timeout=5)
                )
            except Exception as err:  # try the next file name, then report all
                errors.append(f"{filename}: {err}")
        raise _unavailable(model_name, source, "; ".join(errors))
    cached_path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
    if cached_path.is_file():
        return cached_path
    if _offline():
        raise _unavailable(model_name, cfg.url, "offline mode is set (SEGWISE_OFFLINE)")
    if not _reachable(cfg.url):
        raise _unavailable(model_name, cfg.url, "the host is unreachable")
    cached_path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(cfg.url, str(cached_path), progress=False)
    return cached_path


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.safetensors`` or a torch pickle (``weights_only=True``).

    A dict wrapping the state_dict under ``"state_dict"`` or ``"model"`` is unwrapped.

    Raises:
        FileNotFoundError: naming the path when it does not exist.
        ValueError: when the file holds no tensor dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(path)!r} does not hold a state_dict of tensors")
    return state


def load_full_state_dict(
    model: nn.Module, path: str | os.PathLike, *, kind: str, setup: str
) -> None:
    """Load a file holding every key of ``model`` (a state_dict saved from the same model kind,
    encoder, classes and options), e.g. an instance method's ``--weights FILE``.

    Args:
        model: the freshly built model.
        path: a ``.safetensors`` or torch file (`load_state_dict_file`).
        kind: the model's name for the message (``"maskrcnn"``).
        setup: what it was built with, for the message (``"on encoder 'resnet50'"``).

    Raises:
        FileNotFoundError: naming the path when it does not exist.
        ValueError: naming the file and what it does not fit: missing / unexpected keys (a
            few of each) or mis-shaped tensors.
    """
    state = load_state_dict_file(path)
    hint = "pass a state_dict saved from the same encoder, classes and options"
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # mis-shaped tensors
        raise ValueError(f"{path} is not a {kind} state_dict: it does not fit {kind} {setup} "
                         f"({err}); {hint}") from err
    if missing or unexpected:
        raise ValueError(
            f"{path} is not a {kind} state_dict: it does not fit {kind} {setup}: "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}); {hint}"
        )


def adapt_input_channels(
    state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Adapt 4-D conv weights whose input-channel count alone differs from ``target``'s.

    Only a first convolution can differ that way (every later conv's input width is fixed by
    the architecture). Uses timm's rule: 1 channel = sum over RGB; C > 3 = RGB repeated and
    scaled by 3/C, so a grey or multispectral image gives activations of the same magnitude.
    """
    from timm.models import adapt_input_conv

    out = dict(state)
    for key, value in state.items():
        ref = target.get(key)
        if (
            ref is not None
            and value.ndim == 4
            and ref.ndim == 4
            and value.shape[1] != ref.shape[1]
            and value.shape[0] == ref.shape[0]
            and value.shape[2:] == ref.shape[2:]
        ):
            out[key] = adapt_input_conv(ref.shape[1], value, base_chans=value.shape[1])
    return out


def load_weights_file(model: nn.Module, path: str | os.PathLike) -> str:
    """Load a local state_dict file into ``model`` (a :class:`SegmentationModel`).

    Accepted key layouts, tried in this order:

    1. ``"model"``: the full ``model.state_dict()`` (keys ``encoder.*``, ``decoder.*``,
       ``head.*``, ``aux_head.*``); every key must match.
    2. ``"encoder"``: ``model.encoder.state_dict()`` (keys without the ``encoder.`` prefix);
       every key must match; decoder and head keep their initialisation.
    3. ``"backbone"``: the backbone's own keys (e.g. ``timm.create_model("resnet34")
       .state_dict()``, ``conv1.weight``, ...); every encoder key must be present, extra keys
       (the classifier, ``fc.*``) are ignored.

    Returns:
        The layout that was recognised: ``"model"``, ``"encoder"`` or ``"backbone"``.

    Raises:
        ValueError: naming the file, and the missing/unexpected or mis-shaped keys.
    """
    state = load_state_dict_file(path)
    model_sd = model.state_dict()
    native = "encoder." + getattr(model.encoder, "native_prefix", "")
    layouts = (("model", "", False), ("encoder", "encoder.", False), ("backbone", native, True))
    candidates = []
    for layout, prefix, allow_extra in layouts:
        mapped = {prefix + k: v for k, v in state.items()}
        scope = {k for k in model_sd if k.startswith("encoder.")} if prefix else set(model_sd)
        missing = sorted(scope - mapped.keys())
        unexpected = sorted(mapped.keys() - scope)
        fits = not missing and (allow_extra or not unexpected)
        matched = len(scope & mapped.keys())
        candidates.append((fits, matched, layout, mapped, scope, missing, unexpected))
    # a layout that fits wins; otherwise report the closest one
    fits, _, layout, mapped, scope, missing, unexpected = max(candidates, key=lambda c: c[:2])
    if not fits:
        raise ValueError(
            f"weights file {str(path)!r} does not fit this model (best guess: {layout} layout): "
            f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected keys "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}. Expected the full "
            "model.state_dict(), model.encoder.state_dict(), or the backbone's own state_dict."
        )
    mapped = {k: v for k, v in mapped.items() if k in scope}
    mapped = adapt_input_channels(mapped, model_sd)
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(model_sd[k].shape)}"
        for k, v in mapped.items()
        if v.shape != model_sd[k].shape
    ]
    if bad:
        raise ValueError(f"weights file {str(path)!r} has mis-shaped tensors: {bad[:5]}")
    model.load_state_dict(mapped, strict=layout == "model")
    return layout

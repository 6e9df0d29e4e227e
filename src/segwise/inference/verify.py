"""Checking an exported artefact against the PyTorch model it came from.

:func:`verify_export` runs an ONNX file (onnxruntime), a TorchScript file or a ``torch.export``
program at the given sizes and compares it with the same :class:`~segwise.inference.DeployModule`
in PyTorch; :func:`verify_onnx` does it for one ONNX sample. The exporters of
:mod:`segwise.inference.export` call :func:`verify_export` at
:func:`~segwise.inference.export.verification_sizes` (64x64 and 97x131 by default).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from segwise.inference.deploy import (
    ExportError,
    ExportFormat,
    InstanceDeployModule,
    _deploy,
    _eval_mode,
    _output_channels,
    _sample,
)
from segwise.inference.metadata import parse_metadata, read_onnx_metadata
from segwise.labels import LabelSpace

__all__ = ["verify_export", "verify_onnx"]


def _format_of(path: Path) -> ExportFormat:
    """ONNX files start with a protobuf, TorchScript and ``.pt2`` files are zip archives."""
    if path.suffix.lower() == ".onnx":
        return ExportFormat.ONNX
    if path.suffix.lower() == ".pt2":
        return ExportFormat.EXPORTED_PROGRAM
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names):
            return ExportFormat.TORCHSCRIPT
        return ExportFormat.EXPORTED_PROGRAM
    return ExportFormat.ONNX


def _load_runner(
    path: Path, fmt: ExportFormat
) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, object]]:
    """The artefact as a function ``(N, C, H, W) -> output``, and its segwise metadata."""
    if fmt == ExportFormat.ONNX:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = read_onnx_metadata(path)

        def run(x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
            outputs = [torch.from_numpy(o) for o in session.run(None, {"image": x.numpy()})]
            return tuple(outputs) if meta["kind"] == "instance" else outputs[0]

        return run, meta
    extra = {"segwise.json": ""}
    if fmt == ExportFormat.TORCHSCRIPT:
        loaded = torch.jit.load(str(path), _extra_files=extra)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "expected a .pt2 suffix" for other names
            loaded = torch.export.load(str(path), extra_files=extra).module()
    if not extra["segwise.json"]:
        raise ExportError(f"{path} has no segwise metadata; export it with segwise")
    return loaded, parse_metadata(json.loads(extra["segwise.json"]))


def verify_export(
    path: str | Path,
    model: nn.Module,
    *,
    sizes: Sequence[tuple[int, int]] = ((64, 64), (97, 131)),
    batch: int = 2,
    atol: float = 1e-4,
) -> float:
    """Run an artefact written by a segwise exporter and the PyTorch model, and compare.

    The format is read from the file (ONNX, TorchScript, ``torch.export``); the PyTorch side is
    wrapped exactly as the file records (normalisation, head, task). For an instance export
    (metadata ``kind == "instance"``) ``model`` is the method's ``export_module`` (decoding
    included) and its three outputs (scores, labels, masks) are each compared. The inputs are seeded
    ``torch.rand`` images ``(batch, C, H, W)``, one per size. A size the PyTorch model itself
    rejects (a model that only takes even sizes, say) is skipped; segwise models take any size.

    Args:
        path: the artefact.
        model: the PyTorch model that was exported (for an instance export, the module of
            ``method.export_module``).
        sizes: ``(H, W)`` to check; include one that is not a multiple of 32.
        batch: images per check.
        atol: largest allowed absolute difference (labels: any disagreeing pixel counts >= 1).

    Returns:
        The largest absolute difference over all sizes (and, for instances, all outputs).

    Raises:
        ExportError: when the artefact fails to run at a size, or differs by more than ``atol``,
            naming the file and the size.
    """
    path = Path(path)
    fmt = _format_of(path)
    runner, meta = _load_runner(path, fmt)
    deploy = _deploy_as_recorded(model, meta)
    worst, checked = 0.0, 0
    for size in sizes:
        x = _sample(int(meta["in_channels"]), tuple(size), batch=batch)
        with _eval_mode(model), torch.no_grad():
            try:
                expected = deploy(x)
            except RuntimeError:
                continue  # the PyTorch model itself rejects this size: nothing to compare
            try:
                got = runner(x)
            except Exception as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise ExportError(
                    f"{path}: the {fmt.value} artefact fails on a {tuple(x.shape)} input "
                    f"({type(err).__name__}: {first[:300]}); PyTorch runs it. Export again with "
                    "this segwise version, or report the model"
                ) from err
        worst = max(worst, _compare_outputs(path, fmt, got, expected, x.shape, atol))
        checked += 1
    if not checked:
        raise ExportError(
            f"{path}: the PyTorch model itself fails at every verification size "
            f"{[tuple(s) for s in sizes]}; pass sizes it accepts"
        )
    return worst


def _deploy_as_recorded(model: nn.Module, meta: dict[str, object]) -> nn.Module:
    """``model`` wrapped as the artefact's metadata records (semantic or instance)."""
    if meta.get("kind") == "instance":
        return InstanceDeployModule(
            model, in_channels=int(meta["in_channels"]), mean=meta["mean"], std=meta["std"],
            method=str(meta["method"]), max_instances=int(meta["max_instances"]),
        ).eval()
    labels = meta["labels"]
    if labels is None:  # a file that recorded its task alone (before segwise.labels)
        labels = LabelSpace.for_channels(_output_channels(model, int(meta["in_channels"]),
                                                          (64, 64)), task=meta["task"])
    return _deploy(model, meta["in_channels"], meta["mean"], meta["std"], meta["head"], labels)


def _compare_outputs(path, fmt, got, expected, shape, atol: float) -> float:
    """`_compare` of one output, or of each of an instance export's (scores, labels, masks)."""
    if not isinstance(expected, tuple):
        return _compare(path, fmt, got, expected, shape, atol)
    if not isinstance(got, (tuple, list)) or len(got) != len(expected):
        raise ExportError(f"{path}: the {fmt.value} artefact does not return the "
                          f"{len(expected)} outputs (scores, labels, masks) that PyTorch does")
    return max(_compare(path, fmt, g, e, shape, atol) for g, e in zip(got, expected, strict=True))


def _compare(path, fmt, got, expected, shape, atol: float) -> float:
    if tuple(got.shape) != tuple(expected.shape):
        raise ExportError(
            f"{path}: on a {tuple(shape)} input the {fmt.value} artefact returns "
            f"{tuple(got.shape)} but PyTorch {tuple(expected.shape)}; export again with this "
            "segwise version, or report the model"
        )
    if got.numel() == 0:
        return 0.0
    diff = float((got.double() - expected.double()).abs().max())
    if not diff <= atol:
        raise ExportError(
            f"{path}: {fmt.value} and PyTorch differ by {diff:.3g} > atol={atol:g} on a "
            f"{tuple(shape)} input; check for unsupported ops or raise atol"
        )
    return diff


def verify_onnx(
    path: str | Path, model: nn.Module, sample: torch.Tensor, *, atol: float = 1e-4
) -> float:
    """Run the ONNX file in onnxruntime and the PyTorch model on ``sample``, and compare.

    The PyTorch side is wrapped exactly as the file records (normalisation, head, task).

    Args:
        path: an ONNX file written by :func:`export_onnx`.
        model: the PyTorch model that was exported.
        sample: ``(N, C, H, W)`` float32 raw input (un-normalised when normalisation is baked in).
        atol: the largest allowed absolute difference. For a ``LABELS`` head the outputs are
            integers, so any disagreement (a pixel on an exact tie) counts at least 1.

    Returns:
        The maximum absolute difference between the two outputs.

    Raises:
        ExportError: if the file fails to run, the shapes differ or the difference is above
            ``atol`` (the message names the file and the input size).
    """
    path = Path(path)
    runner, meta = _load_runner(path, ExportFormat.ONNX)
    deploy = _deploy_as_recorded(model, meta)
    x = sample.float().cpu()
    with _eval_mode(model), torch.no_grad():
        expected = deploy(x)
    try:
        got = runner(x)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ExportError(
            f"{path}: onnxruntime fails on a {tuple(x.shape)} input ({first[:300]}); PyTorch "
            "runs it. Export again with this segwise version, or report the model"
        ) from err
    return _compare_outputs(path, ExportFormat.ONNX, got, expected, x.shape, atol)

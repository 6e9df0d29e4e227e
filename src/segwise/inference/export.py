"""Export a segmentation model to ONNX, TorchScript and torch.export, with pre/post-processing.

Every exporter wraps the model in :class:`DeployModule`, which can bake in the input
normalisation ``(x - mean) / std`` and the head (logits, probabilities or labels), so that a
deployment needs nothing but the artefact and its runtime. The ONNX file also records how it was
built in its metadata (``segwise.*`` keys), which :class:`~segwise.inference.OnnxPredictor` and
:func:`~segwise.inference.verify_onnx` read back.

Every exporter checks its artefact against PyTorch at two sizes, the trace size and one not
divisible by 32 (:func:`verification_sizes`: 97x131 for a 64x64 trace), because the model pads
inside the graph and crops back (:class:`~segwise.models.SegmentationModel`), so one artefact
serves any ``H, W`` (the checks are in :mod:`segwise.inference.verify`). An export that fails,
or whose artefact differs, raises :class:`ExportError` and removes the file it was writing, so
a retry is never blocked by it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from segwise.enums import Task
from segwise.inference.deploy import (
    DeployModule,
    ExportError,
    ExportFormat,
    _check_deploy_args,
    _deploy,
    _eval_mode,
    _removed_on_failure,
    _sample,
    read_onnx_metadata,
    verification_sizes,
)
from segwise.inference.onnx_norms import precise_norms
from segwise.inference.verify import verify_export
from segwise.inferers.options import ExportHead
from segwise.labels import LabelSpace

__all__ = [
    "DeployModule",
    "ExportError",
    "ExportFormat",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "read_onnx_metadata",
    "verification_sizes",
]

def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    in_channels: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    head: ExportHead | str = ExportHead.LOGITS,
    labels: LabelSpace | None = None,
    opset: int = 17,
    dynamic: bool = True,
    sample_size: tuple[int, ...] = (64, 64),
    verify: bool = True,
) -> Path:
    """Export ``model`` (with optional normalisation and head baked in) to an ONNX file.

    The graph has one input ``"image"`` ``(N, C, H, W)`` float32 and one output ``"output"`` (see
    :class:`DeployModule`); with ``dynamic`` the batch, height and width axes are free and the
    graph gives PyTorch's output at any ``H, W`` (the model's pad-and-crop is traced as shape
    arithmetic). A 3D model is traced on a volume (``sample_size`` ``(D, H, W)``): the input is
    ``(N, C, D, H, W)`` and depth is free too. Uses PyTorch's TorchScript-based exporter
    (``dynamo=False``), which needs no ``onnxscript``. GroupNorm and InstanceNorm layers are
    written with their statistics reduced axis by axis (:mod:`segwise.inference.onnx_norms`):
    onnxruntime's own ``InstanceNormalization`` is 10-400x less precise than PyTorch in
    float32.

    Args:
        model: the segmentation model ``(N, C, H, W) -> (N, K, H, W)`` logits.
        path: the ``.onnx`` file to write (parent folders are created).
        in_channels: ``C``.
        mean: per-channel mean to subtract inside the graph (with ``std``), or ``None``.
        std: per-channel standard deviation to divide by inside the graph, or ``None``.
        head: :class:`ExportHead`.
        labels: the :class:`~segwise.labels.LabelSpace` the model predicts (a checkpoint's
            ``info.labels``): its rules make the probabilities head (binary: two channels
            ``[1 - p, p]``) and the labels head, and it is recorded as ``segwise.labels``.
            ``None``: :meth:`LabelSpace.for_channels` of the model's output on the trace
            sample (one channel: binary, else multiclass with classes named ``"0"``, ...).
        opset: ONNX opset version.
        dynamic: make batch, height and width (and depth) dynamic (else fixed to the sample's).
        sample_size: ``(H, W)`` of the example input used for tracing (any size works);
            ``(D, H, W)`` for a 3D model.
        verify: run the file in onnxruntime at :func:`verification_sizes` (only the trace size
            when not ``dynamic``) and compare with PyTorch (``atol=1e-4``).

    Returns:
        The path written.

    Raises:
        ExportError: the export or its verification failed; the file is removed.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_deploy_args(in_channels, mean, std, head)  # a bad argument: a ValueError as is
    with _removed_on_failure(path, "ONNX export"), _eval_mode(model):
        deploy = _deploy(model, in_channels, mean, std, head, labels, sample_size)
        names = ("height", "width") if len(sample_size) == 2 else ("depth", "height", "width")
        axes = {"image": {0: "batch", **dict(enumerate(names, start=2))}}
        no_channels = deploy.head == ExportHead.LABELS and deploy.labels.task != Task.MULTILABEL
        axes["output"] = {0: "batch", **dict(enumerate(names, start=1 if no_channels else 2))}
        with warnings.catch_warnings():
            # the TorchScript-based exporter is deprecated since torch 2.9, but the dynamo one
            # needs onnxscript, which segwise does not depend on
            warnings.simplefilter("ignore", DeprecationWarning)
            # size checks frozen by the trace are caught by the verification at an odd size
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            with precise_norms(deploy):  # onnxruntime's InstanceNormalization: see there
                torch.onnx.export(
                    deploy,
                    (_sample(in_channels, sample_size),),
                    str(path),
                    dynamo=False,
                    input_names=["image"],
                    output_names=["output"],
                    opset_version=opset,
                    dynamic_axes=axes if dynamic else None,
                )
        proto = onnx.load(str(path))
        for key, value in deploy.metadata().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
        if verify:
            sizes = verification_sizes(sample_size) if dynamic else (tuple(sample_size),)
            verify_export(path, model, sizes=sizes, batch=1)
    return path


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    *,
    in_channels: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    head: ExportHead | str = ExportHead.LOGITS,
    labels: LabelSpace | None = None,
    sample_size: tuple[int, ...] = (64, 64),
    verify: bool = True,
) -> Path:
    """Trace ``model`` (wrapped in :class:`DeployModule`) to TorchScript and save it.

    Tracing records the ops run on a ``sample_size`` input; the model's pad-and-crop is traced
    as shape arithmetic, so the artefact works at any ``H, W``. With ``verify`` the saved file
    is loaded and compared with PyTorch at :func:`verification_sizes` (one size not divisible
    by 32). Load it with ``torch.jit.load(path)``; the segwise metadata is stored as the
    ``segwise.json`` extra file.

    Returns:
        The path written.

    Raises:
        ExportError: the trace failed or does not reproduce PyTorch (shape-dependent Python in
            the model; use :func:`export_onnx`); the file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_deploy_args(in_channels, mean, std, head)  # a bad argument: a ValueError as is
    with _removed_on_failure(path, "TorchScript export"):
        deploy = _deploy(model, in_channels, mean, std, head, labels, sample_size)
        with _eval_mode(model), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in 2.14
            traced = torch.jit.trace(
                deploy, (_sample(in_channels, sample_size),), check_trace=False
            )
            torch.jit.save(
                traced, str(path), _extra_files={"segwise.json": json.dumps(deploy.metadata())}
            )
        if verify:
            verify_export(path, model, sizes=verification_sizes(sample_size))
    return path


def export_program(
    model: nn.Module,
    path: str | Path,
    *,
    in_channels: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    head: ExportHead | str = ExportHead.LOGITS,
    labels: LabelSpace | None = None,
    dynamic: bool = True,
    sample_size: tuple[int, ...] = (64, 64),
    verify: bool = True,
) -> Path:
    """Export ``model`` (wrapped in :class:`DeployModule`) with ``torch.export`` and save it.

    With ``dynamic``, batch, height and width are ``Dim.AUTO`` and the export runs with
    ``torch.fx.experimental._config.backed_size_oblivious``: without it torch specialises the
    model's crop on whether the trace size needed padding and adds a guard that rejects every
    other kind of size. The program accepts any batch and any ``H, W``; with ``verify`` it is
    loaded and compared with PyTorch at :func:`verification_sizes`. Load with
    ``torch.export.load(path).module()``.

    Returns:
        The path written (``torch.export.save``; a ``.pt2`` suffix is conventional).

    Raises:
        ExportError: the export failed or does not reproduce PyTorch; the file is removed.
    """
    from torch.fx.experimental import _config as fx_config

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_deploy_args(in_channels, mean, std, head)  # a bad argument: a ValueError as is
    with _removed_on_failure(path, "torch.export"):
        deploy = _deploy(model, in_channels, mean, std, head, labels, sample_size)
        with _eval_mode(model), fx_config.patch(backed_size_oblivious=dynamic):
            auto = torch.export.Dim.AUTO
            spatial = range(2, 2 + len(sample_size))  # (H, W) or (D, H, W)
            shapes = {"x": {0: auto, **dict.fromkeys(spatial, auto)}} if dynamic else None
            program = torch.export.export(
                # batch 2: a sample of size 1 would specialise the batch axis to 1
                deploy,
                (_sample(in_channels, sample_size, batch=2),),
                dynamic_shapes=shapes,
            )
        torch.export.save(
            program, str(path), extra_files={"segwise.json": json.dumps(deploy.metadata())}
        )
        if verify:
            sizes = verification_sizes(sample_size) if dynamic else (tuple(sample_size),)
            verify_export(path, model, sizes=sizes)
    return path

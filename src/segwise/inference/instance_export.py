"""Export an instance-segmentation model with its decoding, to fixed-size outputs.

A single-stage instance method (YOLACT, SOLOv2) provides ``export_module`` (the protocol in
:mod:`segwise.instance.methods.base`): a traceable module whose decoding (NMS, mask assembly)
is part of the graph and whose outputs have a fixed size ``k = max_instances``. This module
wraps it in :class:`~segwise.inference.deploy.InstanceDeployModule` (the input normalisation in
front) and writes it as ONNX, TorchScript or a ``torch.export`` program. The artefact's contract::

    image  (N, C, H, W) float32 raw pixels in [0, 1] (normalised inside unless exported
           without normalisation)
    scores (N, k) float32, descending; 0 in the slots past the detections
    labels (N, k) int64, foreground classes 1..K (0 in empty slots)
    masks  (N, k, H, W) float32 mask probabilities (threshold them at the method's
           mask threshold, 0.5 by default)

Methods whose decoding cannot be a fixed-size graph (Mask R-CNN, U-Net + watershed) raise
:class:`~segwise.errors.ExportError` from their ``export_module``, naming the part
that cannot be exported, before anything is written. ``torch.export`` programs are written by
:mod:`segwise.inference.instance_program`: free height and width where the graph allows it,
else fixed to the sample size with the reason recorded (and other sizes refused by
:func:`~segwise.inference.instance_program.load_instance_program`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segwise._validation import as_enum
from segwise.inference.deploy import (
    ExportError,
    ExportFormat,
    InstanceDeployModule,
    _eval_mode,
    _removed_on_failure,
    _sample,
    verification_sizes,
)
from segwise.inference.instance_program import (
    ProgramShape,
    load_instance_program,
    write_program,
)
from segwise.inference.onnx_norms import precise_norms
from segwise.inference.verify import verify_export

__all__ = ["DEFAULT_MAX_INSTANCES", "InstanceExport", "default_max_instances",
           "export_instance", "instance_export_module"]

#: ``k`` when the method's options name no detections cap
DEFAULT_MAX_INSTANCES = 100
#: images per verification size
_BATCH = 2
#: option fields that hold a method's own detections cap, in the order they are looked up
_CAP_FIELDS = ("max_instances", "max_detections")


@dataclass(frozen=True)
class InstanceExport:
    """What :func:`export_instance` wrote.

    Attributes:
        path: the artefact.
        max_instances: ``k``, the output slots per image.
        max_abs_diff: the largest absolute difference to PyTorch over scores, labels and masks
            at ``sizes`` (``None`` when not verified).
        sizes: the ``(H, W)`` verified (empty when not verified).
        detections_compared: non-empty output slots (score > 0) PyTorch gave on the
            verification images (seeded noise): 0 means only empty slots were compared, as
            happens for a trained model that finds nothing in noise.
        fixed_size: ``(H, W)`` a ``torch.export`` program is fixed to (``None``: any size).
        fixed_size_reason: why it is fixed (the model line torch.export made a constant).
    """

    path: Path
    max_instances: int
    max_abs_diff: float | None
    sizes: tuple[tuple[int, int], ...]
    detections_compared: int = 0
    fixed_size: tuple[int, int] | None = None
    fixed_size_reason: str = ""


def default_max_instances(options: Any) -> int:
    """The method's own detections cap (option ``max_instances`` or ``max_detections``: 400 for
    YOLACT and SOLOv2), else :data:`DEFAULT_MAX_INSTANCES`."""
    for name in _CAP_FIELDS:
        value = getattr(options, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return DEFAULT_MAX_INSTANCES


def instance_export_module(
    model: nn.Module,
    *,
    method: str,
    options: Any = None,
    max_instances: int | None = None,
) -> tuple[nn.Module, int]:
    """The method's export module (decoding included) and its ``k``.

    Args:
        model: the instance model, as built by the method (e.g. ``load_run(ckpt).model``).
        method: the registry name (``model_args["method"]``).
        options: the method's options value, or the plain dict stored in a checkpoint
            (``model_args["options"]``), or ``None`` for the defaults.
        max_instances: ``k``, the fixed number of output slots (default
            :func:`default_max_instances`).

    Raises:
        ExportError: the method cannot be exported (its message names the part and why).
        ValueError: an unknown method, or ``max_instances < 1``.
    """
    from segwise.instance.methods import get_method, options_from_record

    spec = get_method(method)
    if options is None or isinstance(options, Mapping):
        options = options_from_record(spec, options)
    k = default_max_instances(options) if max_instances is None else max_instances
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"max_instances={k!r} is not valid; expected an int >= 1 (--max-instances)"
        )
    with _eval_mode(model):
        module = spec.export_module(model, options=options, max_instances=k)
    return module.eval(), k


def export_instance(
    model: nn.Module,
    path: str | Path,
    *,
    method: str,
    in_channels: int,
    options: Any = None,
    max_instances: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    format: ExportFormat | str = ExportFormat.ONNX,  # the CLI's --format
    opset: int = 17,
    sample_size: tuple[int, int] = (64, 64),
    metadata: Mapping[str, str] | None = None,
    verify: bool = True,
    atol: float = 1e-3,
) -> InstanceExport:
    """Export an instance model with its decoding (module docstring) to ``path``.

    Batch, height and width are free in the artefact. ONNX uses PyTorch's TorchScript-based
    exporter (``dynamo=False``; inputs ``"image"``, outputs ``"scores"``, ``"labels"``,
    ``"masks"``); TorchScript is traced (``torch.jit.load(path)``, metadata in the
    ``segwise.json`` extra file). A ``torch.export`` program (``EXPORTED_PROGRAM``,
    :func:`~segwise.inference.instance_program.write_program`) has free height and width where
    the graph allows it, else it is fixed to ``sample_size`` (recorded, with the reason, in
    ``segwise.json``; load it with ``load_instance_program``); it is then verified at
    ``sample_size`` and checked to refuse the second verification size.

    Args:
        model: the instance model (``(N, C, H, W)`` normalised images in).
        path: the file to write (parent folders are created).
        method: the instance method's registry name.
        in_channels: ``C``.
        options: see :func:`instance_export_module`.
        max_instances: ``k``; default :func:`default_max_instances`.
        mean, std: the normalisation to bake in, or both ``None``.
        format: :class:`~segwise.inference.deploy.ExportFormat`.
        opset: ONNX opset version.
        sample_size: ``(H, W)`` of the tracing input (the only size of a fixed-size program).
        metadata: extra ``segwise.*`` string key/values for the artefact (e.g. the label space).
        verify: run the artefact at :func:`verification_sizes` and compare every output with
            PyTorch (``atol``).
        atol: largest allowed absolute difference in the verification.

    Returns:
        :class:`InstanceExport` (the path, ``k`` and the verified difference).

    Raises:
        ExportError: the method cannot be exported, or the export or its verification failed;
            nothing is left at ``path``.
    """
    fmt = as_enum(format, ExportFormat, "format")
    module, k = instance_export_module(
        model, method=method, options=options, max_instances=max_instances
    )
    deploy = InstanceDeployModule(
        module, in_channels=in_channels, mean=mean, std=std, method=method, max_instances=k
    ).eval()
    meta = {**deploy.metadata(), **dict(metadata or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = (_sample(in_channels, tuple(sample_size)),)
    shape = ProgramShape()
    with _removed_on_failure(path, f"{fmt.value} export of {method}"), _eval_mode(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # checked by verification
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # ONNX Slice
            if fmt == ExportFormat.ONNX:
                _write_onnx(deploy, sample, path, opset=opset, metadata=meta)
            elif fmt == ExportFormat.EXPORTED_PROGRAM:
                shape = write_program(deploy, path, in_channels=in_channels,
                                      sample_size=tuple(sample_size), metadata=meta)
            else:
                with torch.no_grad():
                    traced = torch.jit.trace(deploy, sample, check_trace=False)
                torch.jit.save(traced, str(path), _extra_files={"segwise.json": json.dumps(meta)})
        sizes = verification_sizes(sample_size) if verify else ()
        if shape.fixed_size is not None and verify:
            sizes = (tuple(sample_size),)
            _check_refuses(path, verification_sizes(sample_size)[1], in_channels=in_channels)
        diff = verify_export(path, module, sizes=sizes, atol=atol, batch=_BATCH) if verify else None
        with torch.no_grad():  # the same seeded inputs as verify_export
            found = sum(int((deploy(_sample(in_channels, tuple(size), batch=_BATCH))[0] > 0).sum())
                        for size in sizes)
    return InstanceExport(path=path, max_instances=k, max_abs_diff=diff, sizes=tuple(sizes),
                          detections_compared=found, fixed_size=shape.fixed_size,
                          fixed_size_reason=shape.reason)


def _check_refuses(path: Path, size: tuple[int, int], *, in_channels: int) -> None:
    """The written file loads as fixed (`load_instance_program`) and refuses ``size``, with the
    reason, before running it."""
    program = load_instance_program(path)
    try:
        program(_sample(in_channels, tuple(size)))
    except ValueError as err:
        if "is fixed to" in str(err):
            return
        raise
    raise ExportError(f"{path}: the program recorded as fixed to {program.shape.fixed_size} "
                      f"ran a {size[0]}x{size[1]} image; report the model")


def _write_onnx(deploy: nn.Module, sample: tuple[torch.Tensor], path: Path, *, opset: int,
                metadata: Mapping[str, str]) -> None:
    import onnx

    with precise_norms(deploy):  # onnxruntime's InstanceNormalization is imprecise: see there
        torch.onnx.export(
            deploy,
            sample,
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["scores", "labels", "masks"],
            opset_version=opset,
            dynamic_axes={
                "image": {0: "batch", 2: "height", 3: "width"},
                "scores": {0: "batch"},
                "labels": {0: "batch"},
                "masks": {0: "batch", 2: "height", 3: "width"},
            },
        )
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))

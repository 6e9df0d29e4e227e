"""``torch.export`` programs of instance models: any image size where the graph allows it, else one.

:func:`write_program` exports an :class:`~segwise.inference.deploy.InstanceDeployModule`
(decoding included, fixed-size outputs: see :mod:`segwise.inference.instance_export`) with
batch, height and width ``Dim.AUTO`` under ``backed_size_oblivious`` (as
:func:`~segwise.inference.export.export_program` does for semantic models), then runs the program
at a second size that is not a multiple of 32. If the program refuses it (torch.export turned a
size into a constant: an op that takes a size as a plain Python number, such as
``torch.linspace(..., steps=w)`` or ``F.interpolate(scale_factor=0.5)``), it is exported again
with height and width fixed to the sample's, and that size and the reason (the segwise line that
fixed it, found while tracing) are recorded in the program's ``segwise.json`` metadata
(``segwise.fixed_size``, ``segwise.fixed_size_reason``).

:func:`load_instance_program` loads such a file and refuses, with that reason, an image of any
other size before running it (``torch.export.load(path).module()`` would fail with a bare
``Guard failed`` assertion).
"""

from __future__ import annotations

import json
import linecache
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from segwise.errors import ExportError
from segwise.inference.deploy import _sample, verification_sizes

__all__ = ["InstanceProgram", "ProgramShape", "load_instance_program", "write_program"]

#: the logger on which torch reports every shape guard it adds while tracing
_GUARD_LOGGER = "torch.fx.experimental.symbolic_shapes"
#: a guard that pins a size expression to a constant: ``Eq(<expr>, 8)``
_PINNED = re.compile(r"^Eq\(.*, -?\d+\)$")


@dataclass(frozen=True)
class ProgramShape:
    """The image sizes a program written by :func:`write_program` takes.

    Attributes:
        fixed_size: ``(H, W)`` the program is fixed to, or ``None`` for any size.
        reason: why the size is fixed (the part of the model and what torch.export did with
            it); empty when any size works.
    """

    fixed_size: tuple[int, int] | None = None
    reason: str = ""


def write_program(
    deploy: nn.Module, path: Path, *, in_channels: int, sample_size: tuple[int, int],
    metadata: Mapping[str, str],
) -> ProgramShape:
    """Export ``deploy`` with ``torch.export`` and save it to ``path`` (module docstring).

    Args:
        deploy: the :class:`~segwise.inference.deploy.InstanceDeployModule` (eval mode),
            ``images (N, C, H, W) -> (scores (N, k), labels (N, k), masks (N, k, H, W))``.
        path: the file to write (``torch.export.save``; ``.pt2`` by convention).
        in_channels: ``C``.
        sample_size: ``(H, W)`` of the trace (batch 2), and the fixed size if one is needed.
        metadata: ``segwise.*`` string key/values stored in ``segwise.json``.

    Returns:
        :class:`ProgramShape`: any size, or the fixed size and why.

    Raises:
        Whatever ``torch.export`` raises when even the fixed-size export fails (the caller
        turns it into :class:`~segwise.errors.ExportError`).
    """
    sample = _sample(in_channels, tuple(sample_size), batch=2)  # batch 1 would fix N = 1
    probe = _sample(in_channels, verification_sizes(sample_size)[1], batch=1)
    with _pinned_size_watch() as watch:
        try:
            program = _export(deploy, sample, free_size=True)
            failure = _refusal(program, probe)
            what = f"the dynamic program refused a {probe.shape[-2]}x{probe.shape[-1]} image"
        except Exception as err:  # symbolic shapes it cannot reason about: try a fixed size
            failure, what = _first_line(err), "the export with free height and width failed"
    shape = ProgramShape()
    if failure:
        where = watch.where or "an op of the model or its decoding"
        shape = ProgramShape(
            fixed_size=(int(sample_size[0]), int(sample_size[1])),
            reason=(f"torch.export fixes the image size at {where}, an op that takes the size "
                    f"as a plain number; {what} ({failure})"),
        )
        program = _export(deploy, sample, free_size=False)
    extra = {**dict(metadata),
             "segwise.fixed_size": json.dumps(None if shape.fixed_size is None
                                              else list(shape.fixed_size)),
             "segwise.fixed_size_reason": shape.reason}
    torch.export.save(program, str(path), extra_files={"segwise.json": json.dumps(extra)})
    return shape


def _export(deploy: nn.Module, sample: torch.Tensor, *, free_size: bool):
    """``torch.export.export`` with a free batch, and free ``H, W`` when ``free_size``."""
    from torch.fx.experimental import _config as fx_config

    auto = torch.export.Dim.AUTO
    axes = {0: auto, 2: auto, 3: auto} if free_size else {0: auto}
    # backed_size_oblivious: the padding's crop and the 1 x 1 coarse levels stay symbolic
    with fx_config.patch(backed_size_oblivious=True), torch.no_grad():
        return torch.export.export(deploy, (sample,), dynamic_shapes={"x": axes})


def _refusal(program, image: torch.Tensor) -> str:
    """``''`` when ``program`` runs ``image``, else the first line of its error."""
    try:
        with torch.no_grad():
            program.module()(image)
    except Exception as err:  # the guard assertion of a size-specialised program
        return _first_line(err)
    return ""


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:200]}"


class _PinnedSizeWatch(logging.Handler):
    """Records the first segwise source line at which torch.export pinned a size to a constant.

    torch logs every guard it adds (``<prefix> <guard> [guard added] ...``) while the traced
    code is on the stack, so the innermost frame of model code (:func:`_model_caller`) is the
    model or decoding line that asked for a concrete size.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.where: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.where is not None or "[guard added]" not in str(record.msg):
            return
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) < 2 or "suppressed" in str(args[0]) or not _PINNED.match(str(args[1])):
            return  # size-oblivious checks are logged as suppressed guards: they pin nothing
        self.where = _model_caller()


def _model_caller() -> str | None:
    """``<file>:<line> in <function> (`<source>`)`` of the innermost frame on the stack that is
    model code: not torch, not the standard library, not ``segwise/inference`` (paths inside
    segwise are given from ``segwise/``), or ``None``."""
    here = sys.modules[__name__]
    skip = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, logging, here))
    stdlib = os.path.dirname(os.__file__) + os.sep
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<") and not name.startswith((*skip, stdlib)):
            marker = f"{os.sep}segwise{os.sep}"
            short = ("segwise/" + name.rsplit(marker, 1)[1].replace(os.sep, "/")
                     if marker in name else name)
            source = linecache.getline(name, frame.f_lineno).strip()
            return f"{short}:{frame.f_lineno} in {frame.f_code.co_name} (`{source}`)"
        frame = frame.f_back
    return None


@contextmanager
def _pinned_size_watch() -> Iterator[_PinnedSizeWatch]:
    """Attach a :class:`_PinnedSizeWatch` to torch's guard logger for the block, without
    printing anything that was not already printed (``TORCH_LOGS`` stays in charge)."""
    logger = logging.getLogger(_GUARD_LOGGER)
    watch = _PinnedSizeWatch()
    saved = logger.level, logger.propagate, list(logger.handlers)
    quiet = not logger.isEnabledFor(logging.INFO)
    if quiet:  # INFO records reach only the watch (torch's own handlers are set aside)
        logger.handlers = [watch]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    else:
        logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        if quiet:
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
            logger.handlers = saved[2]


@dataclass(frozen=True)
class InstanceProgram:
    """An instance-model program written by ``segwise export --format exported-program``.

    ``program(images)``: ``images (N, C, H, W)`` float32 raw pixels in [0, 1] (normalised inside
    unless exported without normalisation) -> ``scores (N, k)``, ``labels (N, k)`` int64,
    ``masks (N, k, H, W)`` (the contract of :mod:`segwise.inference.instance_export`). A
    program fixed to one size refuses every other size with its reason.

    Attributes:
        path: the file.
        module: ``torch.export.load(path).module()``.
        metadata: the ``segwise.*`` key/values of its ``segwise.json``.
        shape: the sizes it takes (:class:`ProgramShape`).
    """

    path: Path
    module: nn.Module
    metadata: dict[str, str]
    shape: ProgramShape

    @property
    def in_channels(self) -> int:
        return int(self.metadata["segwise.in_channels"])

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.path} takes images (N, {self.in_channels}, H, W); got "
                f"{tuple(images.shape)}: add the batch axis or convert the channels"
            )
        fixed = self.shape.fixed_size
        if fixed is not None and tuple(images.shape[-2:]) != fixed:
            h, w = images.shape[-2:]
            raise ValueError(
                f"{self.path} is fixed to {fixed[0]}x{fixed[1]} images and got {h}x{w}: "
                f"{self.shape.reason}. Resize or crop to {fixed[0]}x{fixed[1]}, export again "
                f"with `segwise export --size {h}x{w}`, or use --format onnx (any size)"
            )
        with torch.no_grad():
            return self.module(images)


def load_instance_program(path: str | Path) -> InstanceProgram:
    """Load a ``.pt2`` instance export (:class:`InstanceProgram`).

    Raises:
        ValueError: the file has no segwise metadata, or holds a semantic model (load that with
            ``torch.export.load(path).module()``).
    """
    path = Path(path)
    extra = {"segwise.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "expected a .pt2 suffix" for other names
        loaded = torch.export.load(str(path), extra_files=extra)
    if not extra["segwise.json"]:
        raise ExportError(f"{path} has no segwise metadata; export it with `segwise export`")
    meta = json.loads(extra["segwise.json"])
    if meta.get("segwise.kind") != "instance":
        raise ValueError(f"{path} holds a semantic model, not an instance export; load it with "
                         "torch.export.load(path).module()")
    fixed = json.loads(meta.get("segwise.fixed_size", "null"))
    shape = ProgramShape(fixed_size=None if fixed is None else (int(fixed[0]), int(fixed[1])),
                         reason=str(meta.get("segwise.fixed_size_reason", "")))
    return InstanceProgram(path=path, module=loaded.module(), metadata=meta, shape=shape)

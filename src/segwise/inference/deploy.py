"""What an exported artefact is: the deploy wrapper, its metadata, and the shared errors.

:class:`DeployModule` wraps a model with the input normalisation and the head (logits,
probabilities or labels); :func:`read_onnx_metadata` reads back how an ONNX file was built.
Both the exporters (:mod:`segwise.inference.export`) and the checks of their artefacts
(:mod:`segwise.inference.verify`) build on this module, which imports neither of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import torch
from torch import nn

from segwise._validation import as_enum
from segwise.enums import Task
from segwise.errors import ExportError
from segwise.inferers.options import ExportHead

__all__ = [
    "DeployModule",
    "ExportError",
    "ExportFormat",
    "InstanceDeployModule",
    "read_onnx_metadata",
    "verification_sizes",
]

#: Largest output stride of the segwise models; the second verification size is not a multiple.
_STRIDE = 32


class ExportFormat(str, Enum):
    """The artefact kinds: ``ONNX`` (``.onnx``), ``TORCHSCRIPT`` (``.ts``/``.pt``),
    ``EXPORTED_PROGRAM`` (``torch.export``, ``.pt2``)."""

    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    EXPORTED_PROGRAM = "exported-program"


def verification_sizes(sample_size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The two ``(H, W)`` an export is checked at: ``sample_size`` and an odd size near it.

    The second size is odd in both axes (``H + 33``/``H + 32`` and ``W + 67``/``W + 66``), so it is
    not a multiple of any output stride: ``(64, 64) -> (97, 131)``. A graph that froze the trace
    size's padding or resize sizes fails there.
    """
    h, w = (int(v) for v in sample_size)
    return (h, w), (h + (33 if h % 2 == 0 else 32), w + (67 if w % 2 == 0 else 66))


class DeployModule(nn.Module):
    """``model`` with normalisation in front and the head behind, ready to export.

    ``forward(x)``: ``x (N, C, H, W)`` float32 *raw* pixels (normalised inside when ``mean`` and
    ``std`` are given); returns what :class:`ExportHead` says: ``LOGITS`` / ``PROBABILITIES``
    ``(N, K, H, W)`` float32, ``LABELS`` ``(N, H, W)`` int64 (``(N, K, H, W)`` for multilabel).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        in_channels: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        head: ExportHead | str = ExportHead.LOGITS,
        task: Task | str = Task.MULTICLASS,
    ) -> None:
        super().__init__()
        self.model = model
        self.head = as_enum(head, ExportHead, "head")
        self.task = as_enum(task, Task, "task")
        self.in_channels = in_channels
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std (one value per input channel), or neither")
        self.normalise = mean is not None
        if mean is not None and std is not None:
            if len(mean) != in_channels or len(std) != in_channels:
                raise ValueError(
                    f"mean={list(mean)} and std={list(std)} need one value per input channel "
                    f"(in_channels={in_channels})"
                )
            if any(not s > 0 for s in std):
                raise ValueError(f"std={list(std)} is not valid; every value must be > 0")
        self.mean_values = None if mean is None else [float(m) for m in mean]
        self.std_values = None if std is None else [float(s) for s in std]
        self.register_buffer("mean", torch.tensor(mean or [0.0] * in_channels).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std or [1.0] * in_channels).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            x = (x - self.mean) / self.std
        logits = self.model(x)  # (N, K, H, W)
        if self.head == ExportHead.LOGITS:
            return logits
        if self.task == Task.MULTICLASS:
            if self.head == ExportHead.PROBABILITIES:
                return logits.softmax(dim=1)
            return logits.argmax(dim=1)  # (N, H, W)
        if self.head == ExportHead.PROBABILITIES:
            return logits.sigmoid()
        labels = (logits > 0).long()  # sigmoid(z) > 0.5  <=>  z > 0
        return labels[:, 0] if self.task == Task.BINARY else labels

    def metadata(self) -> dict[str, str]:
        """How this module was built, as string key/values for an artefact's metadata."""
        return {
            "segwise.in_channels": str(self.in_channels),
            "segwise.mean": json.dumps(self.mean_values),
            "segwise.std": json.dumps(self.std_values),
            "segwise.head": self.head.value,
            "segwise.task": self.task.value,
        }


class InstanceDeployModule(nn.Module):
    """An instance method's export module with normalisation in front, ready to export.

    ``forward(x)``: ``x (N, C, H, W)`` float32 *raw* pixels (normalised inside when ``mean`` and
    ``std`` are given); returns the method's fixed-size decoding (``export_module`` of
    :class:`~segwise.instance.methods.InstanceMethodSpec`): ``scores (N, k)`` float32 in
    descending order, ``labels (N, k)`` int64 (foreground classes ``1..``, 0 in empty slots),
    ``masks (N, k, H, W)`` float32 mask probabilities; slots past the detections are zero.

    Args:
        module: ``method.export_module(model, options=..., max_instances=k)``.
        in_channels: ``C``.
        mean, std: the training normalisation, or both ``None`` (feed normalised images).
        method: the instance method's registry name (recorded in the metadata).
        max_instances: ``k`` (recorded in the metadata).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        in_channels: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        method: str,
        max_instances: int,
    ) -> None:
        super().__init__()
        self.norm = DeployModule(nn.Identity(), in_channels=in_channels, mean=mean, std=std)
        self.module = module
        self.method = str(method)
        self.max_instances = int(max_instances)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.module(self.norm(x))  # (scores, labels, masks)

    def metadata(self) -> dict[str, str]:
        """How this module was built, as string key/values for an artefact's metadata
        (``segwise.kind = "instance"``; no ``segwise.head``: the outputs are fixed)."""
        return {
            "segwise.kind": "instance",
            "segwise.method": self.method,
            "segwise.max_instances": str(self.max_instances),
            "segwise.in_channels": str(self.norm.in_channels),
            "segwise.mean": json.dumps(self.norm.mean_values),
            "segwise.std": json.dumps(self.norm.std_values),
        }


def _deploy(model, in_channels, mean, std, head, task) -> DeployModule:
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels={in_channels!r} is not valid; expected an int >= 1")
    return DeployModule(
        model, in_channels=in_channels, mean=mean, std=std, head=head, task=task
    ).eval()


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block with ``model`` in eval mode, restoring its train/eval state after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _sample(in_channels: int, size: tuple[int, int], batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, in_channels, *size, generator=torch.Generator().manual_seed(0))


@contextmanager
def _removed_on_failure(path: Path, what: str) -> Iterator[None]:
    """Delete ``path`` if the block fails; re-raise as :class:`ExportError` naming it."""
    try:
        yield
    except BaseException as err:
        path.unlink(missing_ok=True)
        if isinstance(err, ExportError) or not isinstance(err, Exception):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"{what} to {path} failed ({type(err).__name__}: {first}); nothing was written. "
            "Run with --debug for the traceback; try another format or report the model"
        ) from err


def read_onnx_metadata(path: str | Path) -> dict[str, object]:
    """The ``segwise.*`` metadata of an ONNX file written by :func:`export_onnx`.

    Returns:
        ``{"kind": "semantic", "in_channels": int, "mean": list | None, "std": list | None,
        "head": ExportHead, "task": Task}``; for an instance export (``segwise export`` of an
        instance checkpoint) ``{"kind": "instance", "in_channels", "mean", "std", "method": str,
        "max_instances": int}``.
    """
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "segwise.head" not in props and props.get("segwise.kind") != "instance":
        raise ValueError(f"{path} has no segwise metadata; was it written by export_onnx?")
    return _parse_metadata(props)


def _parse_metadata(props: dict[str, str]) -> dict[str, object]:
    if props.get("segwise.kind") == "instance":
        return {
            "kind": "instance",
            "in_channels": int(props["segwise.in_channels"]),
            "mean": json.loads(props["segwise.mean"]),
            "std": json.loads(props["segwise.std"]),
            "method": props["segwise.method"],
            "max_instances": int(props["segwise.max_instances"]),
        }
    return {
        "kind": "semantic",
        "in_channels": int(props["segwise.in_channels"]),
        "mean": json.loads(props["segwise.mean"]),
        "std": json.loads(props["segwise.std"]),
        "head": ExportHead(props["segwise.head"]),
        "task": Task(props["segwise.task"]),
    }

"""What an exported artefact is: the deploy wrapper, its metadata, and the shared errors.

:class:`DeployModule` wraps a model with the input normalisation and the head (logits,
probabilities or labels, by the label space's rules); :func:`read_onnx_metadata` (from the
torch-free :mod:`segwise.inference.metadata`) reads back how an ONNX file was built.
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
from segwise.inference.metadata import LABELS_KEY, parse_metadata, read_onnx_metadata
from segwise.inferers.options import ExportHead
from segwise.labels import LabelSpace

__all__ = [
    "DeployModule",
    "ExportError",
    "ExportFormat",
    "InputNorm",
    "InstanceDeployModule",
    "parse_metadata",
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


def verification_sizes(sample_size: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two sizes an export is checked at: ``sample_size`` and an odd size near it.

    Images ``(H, W)``: the second size is odd in both axes (``H + 33``/``H + 32`` and
    ``W + 67``/``W + 66``), so it is not a multiple of any output stride: ``(64, 64) -> (97,
    131)``. Volumes ``(D, H, W)`` (the training patch): about 1.5 times the patch, odd on every
    axis, so the graph's padding to the model's divisor is exercised: ``(16, 32, 32) -> (25,
    49, 49)``. A graph that froze the trace size's padding or resize sizes fails there.
    """
    sides = tuple(int(v) for v in sample_size)
    if len(sides) == 3:
        return sides, tuple(_odd((3 * v + 1) // 2) for v in sides)
    h, w = sides
    return (h, w), (h + (33 if h % 2 == 0 else 32), w + (67 if w % 2 == 0 else 66))


def _odd(v: int) -> int:
    return v if v % 2 else v + 1


class InputNorm(nn.Module):
    """``(x - mean) / std`` per channel, or the identity when neither is given.

    Args:
        in_channels: ``C`` of ``x (N, C, H, W)``.
        mean, std: one value per channel (``std > 0``), or both ``None``.
    """

    def __init__(self, *, in_channels: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} is not valid; expected an int >= 1")
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
        if not self.normalise:
            return x
        if x.dim() == 4:
            return (x - self.mean) / self.std
        shape = (1, -1) + (1,) * (x.dim() - 2)  # a volume (N, C, D, H, W)
        return (x - self.mean.reshape(shape)) / self.std.reshape(shape)

    def metadata(self) -> dict[str, str]:
        """``segwise.in_channels``, ``segwise.mean`` and ``segwise.std`` (``null``: none)."""
        return {
            "segwise.in_channels": str(self.in_channels),
            "segwise.mean": json.dumps(self.mean_values),
            "segwise.std": json.dumps(self.std_values),
        }


class DeployModule(nn.Module):
    """``model`` with normalisation in front and the head behind, ready to export.

    ``forward(x)``: ``x (N, C, H, W)`` float32 *raw* pixels (normalised inside when ``mean`` and
    ``std`` are given); returns what :class:`ExportHead` says, by the label space's rules:
    ``LOGITS`` the model output ``(N, out_channels, H, W)``; ``PROBABILITIES``
    :meth:`LabelSpace.probabilities <segwise.labels.LabelSpace.probabilities>` ``(N,
    num_classes, H, W)`` float32 (binary: two channels, ``[1 - p, p]``, like the predictor);
    ``LABELS`` :meth:`LabelSpace.logits_to_labels <segwise.labels.LabelSpace.logits_to_labels>`
    ``(N, H, W)`` int64 (multilabel: ``(N, K, H, W)`` 0/1, ``logit > 0`` per class). A 3D
    model takes volumes ``(N, C, D, H, W)`` and returns the same with ``D, H, W``.

    Args:
        model: ``(N, C, H, W) -> (N, out_channels, H, W)`` logits.
        in_channels: ``C``.
        labels: the :class:`~segwise.labels.LabelSpace` the model predicts (recorded in the
            metadata as ``segwise.labels``).
        mean, std: the normalisation to bake in, or both ``None``.
        head: :class:`ExportHead`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        in_channels: int,
        labels: LabelSpace,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        head: ExportHead | str = ExportHead.LOGITS,
    ) -> None:
        super().__init__()
        if not isinstance(labels, LabelSpace):
            raise ValueError(f"labels={labels!r} is not valid; expected a "
                             "segwise.labels.LabelSpace (a checkpoint's info.labels)")
        self.model = model
        self.norm = InputNorm(in_channels=in_channels, mean=mean, std=std)
        self.head = as_enum(head, ExportHead, "head")
        self.labels = labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(self.norm(x))  # (N, out_channels, H, W) or (N, K, D, H, W)
        if self.head == ExportHead.LOGITS:
            return logits
        if self.head == ExportHead.PROBABILITIES:
            return self.labels.probabilities(logits)  # (N, num_classes, H, W)
        if self.labels.task is Task.MULTILABEL:  # no single label: one 0/1 map per class
            return (logits > 0).long()  # sigmoid(z) > 0.5  <=>  z > 0
        return self.labels.logits_to_labels(logits)  # (N, H, W)

    def metadata(self) -> dict[str, str]:
        """How this module was built, as string key/values for an artefact's metadata
        (:mod:`segwise.inference.metadata`)."""
        return {
            **self.norm.metadata(),
            "segwise.head": self.head.value,
            LABELS_KEY: json.dumps(self.labels.to_dict()),
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
        self.norm = InputNorm(in_channels=in_channels, mean=mean, std=std)
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
            **self.norm.metadata(),
        }


def _output_channels(model: nn.Module, in_channels: int, size: tuple[int, ...]) -> int:
    """Channels of ``model``'s output on one seeded ``(1, in_channels, *size)`` sample."""
    with _eval_mode(model), torch.no_grad():
        return int(model(_sample(in_channels, size)).shape[1])


def _check_deploy_args(in_channels: int, mean, std, head) -> None:
    """The checks of :class:`DeployModule`'s arguments, before an exporter runs the model."""
    InputNorm(in_channels=in_channels, mean=mean, std=std)
    as_enum(head, ExportHead, "head")


def _deploy(model: nn.Module, in_channels: int, mean, std, head, labels: LabelSpace | None,
            sample_size: tuple[int, ...] = (64, 64)) -> DeployModule:
    """The export module; ``labels=None``: :meth:`LabelSpace.for_channels` of the model's
    output (one channel: binary, else multiclass with classes named by their index)."""
    _check_deploy_args(in_channels, mean, std, head)
    if labels is None:
        labels = LabelSpace.for_channels(_output_channels(model, in_channels, sample_size))
    return DeployModule(
        model, in_channels=in_channels, labels=labels, mean=mean, std=std, head=head
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


def _sample(in_channels: int, size: tuple[int, ...], batch: int = 1) -> torch.Tensor:
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

"""The label space: one value that owns what a label means, for every layer of segwise.

Data, transforms, collate, losses, metrics, the predictor, export metadata, pictures and
checkpoints all read these values from :class:`LabelSpace` instead of re-deriving them
(nnU-Net's ``LabelManager`` is the model):

- ``num_classes``: classes of the semantic target, background included (2 for binary);
- ``out_channels``: channels of the model output (1 for binary, else ``num_classes``);
- ``ignore_index``: the label value of "do not score" pixels in the mask files, or ``None``;
- ``pad_value``: the label that padded pixels get and that loss and metrics leave out; it is
  never a real class (``ignore_index`` when the data has one, else ``num_classes``);
- ``colors``: one RGB colour per class, from :func:`palette` when the data gives none;
- :meth:`LabelSpace.logits_to_labels`: the one rule from model output to class indices;
- :meth:`LabelSpace.probabilities`: the one rule from model output to class probabilities
  (binary: ``[1 - p, p]`` with ``p = sigmoid(logit)``), for torch tensors and numpy arrays
  alike, so that the torch-free ONNX predictor applies the same rule.

The validity rule for ``ignore_index`` (:func:`check_ignore_label`): ``None`` or an integer
outside ``[0, num_classes)``. An ignore label inside the class range (e.g. "void" stored as 0)
would make one value both a class the model predicts and a label nobody scores, so it is
refused when the label space is built, i.e. before a run writes anything; the message says
what to pass instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from segwise._validation import as_enum
from segwise.enums import Task

__all__ = [
    "FLAT_DATA_INFO_KEYS",
    "VOC_VOID_LABEL",
    "Color",
    "LabelSpace",
    "check_ignore_label",
    "class_probabilities",
    "labels_from_logits",
    "palette",
]

Color = tuple[int, int, int]

#: The PASCAL VOC "void" value: a mask file convention that discovery reads as the ignore label
#: when class-index masks hold 255 next to small class indices (a data format, not a pad value).
VOC_VOID_LABEL = 255

#: Largest 8-bit value: the colour scale of RGB pictures (not a label).
_MAX_8BIT = 255

#: The label keys of the flat ``DataInfo`` dicts that checkpoints and ONNX files held before the
#: label space became a ``DataInfo`` field (read by :meth:`LabelSpace.from_data_info`).
FLAT_DATA_INFO_KEYS = ("task", "num_classes", "class_names", "class_colors", "ignore_index",
                       "ignore_color")


def palette(n: int) -> tuple[Color, ...]:
    """The one default palette: the PASCAL VOC colour map for ``n`` classes.

    Class ``i``'s colour interleaves the bits of ``i`` into R, G and B from the most
    significant bit down (Everingham et al., PASCAL VOC development kit, ``labelcolormap.m``),
    so class 0 is black, colours are deterministic, and they stay distinct for up to 2**24
    classes (data with more than 255 classes included).

    Args:
        n: number of colours (>= 0).

    Returns:
        ``n`` ``(r, g, b)`` tuples with integers in ``[0, 255]``.
    """
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


def check_ignore_label(ignore_index: int | None, num_classes: int, *, where: str = "") -> None:
    """The one validity rule for an ignore label: ``None`` or an int outside ``[0, C)``.

    Args:
        ignore_index: the label value left out of loss and metrics, or ``None``.
        num_classes: classes of the semantic target C, background included.
        where: what the value came from (a file or a flag), for the message.

    Raises:
        ValueError: naming the value, why it cannot work and what to pass instead.
    """
    if ignore_index is None:
        return
    src = f"{where}: " if where else ""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"{src}ignore_index={ignore_index!r} is not valid; expected an int or "
                         "None")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"{src}ignore_index={ignore_index} lies inside the {num_classes} classes "
            f"[0, {num_classes}): the model would predict a label that nobody scores. Either "
            f"leave the ignore label unset (--ignore-index / classes.json) to learn value "
            f"{ignore_index} as a class of its own, or re-save the masks with the ignored "
            f"pixels at a value outside [0, {num_classes}) (e.g. {max(num_classes, 255)}) and "
            "pass that value"
        )


@dataclass(frozen=True)
class LabelSpace:
    """What the labels of a dataset are, in one frozen value (see the module docstring).

    Attributes:
        task: BINARY (1 output channel), MULTICLASS or MULTILABEL.
        names: one name per class, index = class (2 names for binary).
        colors: one ``(r, g, b)`` per class; empty: :func:`palette`.
        ignore_index: label value of pixels left out of loss and metrics, or ``None``.
        ignore_color: colour of ignored pixels in pictures (``None``: drawn as the image).
    """

    task: Task
    names: tuple[str, ...]
    colors: tuple[Color, ...] = ()
    ignore_index: int | None = None
    ignore_color: Color | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", as_enum(self.task, Task, "task"))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        if not self.names:
            raise ValueError("LabelSpace: names is empty; give one name per class")
        if self.task is Task.BINARY and len(self.names) != 2:
            raise ValueError(f"LabelSpace: a binary task has 2 classes (background, foreground);"
                             f" got names={list(self.names)}")
        colors = tuple(tuple(int(v) for v in c) for c in self.colors) or palette(len(self.names))
        if len(colors) != len(self.names):
            raise ValueError(f"LabelSpace: {len(colors)} colours for {len(self.names)} classes;"
                             " give one colour per class or none")
        object.__setattr__(self, "colors", colors)
        if self.ignore_color is not None:
            object.__setattr__(self, "ignore_color", tuple(int(v) for v in self.ignore_color))
        check_ignore_label(self.ignore_index, len(self.names))

    @property
    def num_classes(self) -> int:
        """Classes of the semantic target, background included (2 for binary)."""
        return len(self.names)

    @property
    def out_channels(self) -> int:
        """Channels of the model output: 1 for binary, else ``num_classes``."""
        return 1 if self.task is Task.BINARY else self.num_classes

    @property
    def pad_value(self) -> int:
        """Label of padded pixels, left out of loss and metrics; never a real class.

        ``ignore_index`` when the data has one (padded and ignored pixels are then one value),
        else ``num_classes`` (the first value after the classes; fits in 8 bits up to 255
        classes and stays distinct from every class above that).
        """
        return self.num_classes if self.ignore_index is None else self.ignore_index

    @property
    def label_range(self) -> tuple[int, int]:
        """``(lowest, highest)`` value a class-index mask can hold (classes and padding)."""
        return min(0, self.pad_value), max(self.num_classes - 1, self.pad_value)

    @property
    def fits_uint8(self) -> bool:
        """Whether every mask value (classes and padding) fits in ``uint8``."""
        lo, hi = self.label_range
        return lo >= 0 and hi <= _MAX_8BIT

    def logits_to_labels(self, logits: Any) -> Any:
        """The one rule from model output to class indices.

        Args:
            logits: ``(N, out_channels, H, W)`` torch tensor of unnormalised scores.

        Returns:
            ``(N, H, W)`` int64 class indices: binary ``logit > 0`` (sigmoid > 0.5), multiclass
            the argmax over channels (ties to the lowest class). Multilabel is refused (no
            single label per pixel).
        """
        return labels_from_logits(logits, self.task)

    def probabilities(self, scores: Any, *, from_logits: bool = True) -> Any:
        """The one rule from model output to class probabilities (:func:`class_probabilities`).

        Args:
            scores: ``(N, out_channels, H, W)`` float torch tensor or numpy array: logits, or
                the model's own probabilities when ``from_logits=False``.
            from_logits: whether ``scores`` are logits (sigmoid/softmax applied here).

        Returns:
            ``(N, num_classes, H, W)`` of the same kind: binary ``[1 - p, p]``, multiclass the
            softmax over channels, multilabel the sigmoid of each channel.
        """
        return class_probabilities(scores, self.task, from_logits=from_logits)

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (for checkpoints, configs and export metadata)."""
        return {
            "task": self.task.value,
            "names": list(self.names),
            "colors": [list(c) for c in self.colors],
            "ignore_index": self.ignore_index,
            "ignore_color": None if self.ignore_color is None else list(self.ignore_color),
            "num_classes": self.num_classes,
            "pad_value": self.pad_value,
            "out_channels": self.out_channels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelSpace:
        """Inverse of :meth:`to_dict` (the derived keys ``num_classes``, ``pad_value`` and
        ``out_channels`` are optional and checked).

        Raises:
            ValueError: on unknown keys, or derived values that disagree with the rule here.
        """
        derived = {"num_classes", "pad_value", "out_channels"}
        unknown = set(d) - set(cls.__dataclass_fields__) - derived
        if unknown:
            raise ValueError(f"LabelSpace.from_dict: unknown keys {sorted(unknown)}")
        space = cls(**{k: v for k, v in d.items() if k not in derived})
        for key in derived & set(d):
            if d[key] != getattr(space, key):
                raise ValueError(f"LabelSpace.from_dict: {key}={d[key]} was stored but the "
                                 f"label space gives {getattr(space, key)}")
        return space

    @classmethod
    def from_data_info(cls, d: dict[str, Any]) -> LabelSpace:
        """The label space of a stored ``DataInfo`` dict (a checkpoint's ``data_info``): its
        nested ``"labels"``, or the flat keys (:data:`FLAT_DATA_INFO_KEYS`) that checkpoints
        and ONNX files written before the label space was a ``DataInfo`` field hold.

        Raises:
            ValueError: on a dict with both forms or neither, or a stored ``num_classes``
                that disagrees with its class names.
        """
        flat = {k: d[k] for k in FLAT_DATA_INFO_KEYS if k in d}
        if "labels" in d:
            if flat:
                raise ValueError(f"data_info has both a nested 'labels' and the flat keys "
                                 f"{sorted(flat)}; keep one form")
            return cls.from_dict(d["labels"])
        missing = {"task", "class_names"} - set(flat)
        if missing:
            raise ValueError(f"data_info has no 'labels' and no {sorted(missing)}; expected a "
                             "dict written by DataInfo.to_dict")
        names = tuple(flat["class_names"])
        if "num_classes" in flat and int(flat["num_classes"]) != len(names):
            raise ValueError(f"data_info: num_classes={flat['num_classes']} was stored with "
                             f"{len(names)} class names {list(names)}")
        return cls(task=flat["task"], names=names,
                   colors=tuple(tuple(c) for c in flat.get("class_colors") or ()),
                   ignore_index=flat.get("ignore_index"), ignore_color=flat.get("ignore_color"))

    @classmethod
    def for_channels(cls, out_channels: int, *, task: Task | str | None = None) -> LabelSpace:
        """A label space for a model known only by its output channels (no data to name them).

        Args:
            out_channels: channels of the model output.
            task: the task; ``None``: binary for one channel, else multiclass.

        Returns:
            Binary: the classes ``("background", "foreground")``; otherwise one class per
            channel, named ``"0"``, ``"1"``, ...
        """
        task = as_enum(task, Task, "task") if task is not None else (
            Task.BINARY if out_channels == 1 else Task.MULTICLASS)
        if task is Task.BINARY:
            if out_channels != 1:
                raise ValueError(f"a binary model has 1 output channel; got {out_channels}")
            return cls(task=task, names=("background", "foreground"))
        return cls(task=task, names=tuple(str(c) for c in range(out_channels)))


def _check_scores(scores: Any, task: Task, what: str) -> tuple[bool, int]:
    """Whether ``scores`` is a numpy array (else a torch tensor), and its channels; checks its
    type, dtype, shape and channels for ``task`` (binary 1, multiclass >= 2)."""
    is_numpy = isinstance(scores, np.ndarray)
    if is_numpy:
        floating = np.issubdtype(scores.dtype, np.floating)
        what_type = scores.dtype
    else:
        import torch  # labels.py stays importable without torch; only torch input needs it

        floating = isinstance(scores, torch.Tensor) and scores.is_floating_point()
        what_type = scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__
    if not floating:
        raise ValueError(f"{what} has type/dtype {what_type}; expected a float tensor or array "
                         "(N, C, H, W)")
    if scores.ndim not in (4, 5):
        raise ValueError(f"{what} has shape {tuple(scores.shape)}; expected (N, C, H, W) (or "
                         "(N, C, D, H, W) for volumes)")
    channels = int(scores.shape[1])
    if task is Task.BINARY and channels != 1:
        raise ValueError(
            f"{what} has {channels} channels (shape {tuple(scores.shape)}); task='binary' "
            "expects (N, 1, H, W). Use task='multiclass' for C >= 2 classes"
        )
    if task is Task.MULTICLASS and channels < 2:
        raise ValueError(
            f"{what} has {channels} channel (shape {tuple(scores.shape)}); task='multiclass' "
            "expects (N, C, H, W) with C >= 2. Use task='binary' for one channel"
        )
    return is_numpy, channels


def labels_from_logits(
    logits: Any, task: Task | str, *, threshold: float = 0.5
) -> Any:
    """Turn model outputs into a label map, the input every semantic metric takes.

    - ``binary``: ``logits`` is (N, 1, H, W); a pixel is 1 where ``sigmoid(logit) > threshold``,
      computed exactly as ``logit > log(threshold / (1 - threshold))`` (no saturation of the
      sigmoid in float32). At ``threshold=0.5`` a logit of exactly 0 is background.
    - ``multiclass``: ``logits`` is (N, C, H, W) with C >= 2; the label is the argmax over C
      (ties go to the lowest class index). ``threshold`` is not used.
    - ``multilabel`` has no single label per pixel and is refused.

    Volumes ``(N, C, D, H, W)`` alike, giving ``(N, D, H, W)``.

    Args:
        logits: (N, C, H, W) unnormalised scores (log-odds for binary), a float torch tensor
            or numpy array.
        task: :class:`segwise.enums.Task` or its string value.
        threshold: probability threshold for ``binary``, strictly between 0 and 1.

    Returns:
        (N, H, W) int64 class indices, of the input's kind (tensor or array).

    Raises:
        ValueError: on a bad task, threshold, dtype or shape.
    """
    task = as_enum(task, Task, "task")
    is_numpy, _ = _check_scores(logits, task, "logits")
    if task is Task.BINARY:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not (0.0 < threshold < 1.0)
        ):
            raise ValueError(
                f"threshold={threshold!r} is not valid; expected a probability strictly "
                "between 0 and 1"
            )
        cut = math.log(threshold) - math.log1p(-threshold)  # logit(threshold)
        above = logits[:, 0] > cut
        return above.astype(np.int64) if is_numpy else above.long()
    if task is Task.MULTICLASS:
        return logits.argmax(axis=1).astype(np.int64) if is_numpy else logits.argmax(dim=1)
    raise ValueError(
        f"task={task.value!r} is not valid here; a multilabel output has no single label per "
        "pixel. Expected 'binary' or 'multiclass' (threshold each channel for multilabel)"
    )


def class_probabilities(scores: Any, task: Task | str, *, from_logits: bool = True) -> Any:
    """The one rule from model output to class probabilities, for torch and numpy alike.

    - ``binary``: ``scores`` is (N, 1, H, W); with ``p = sigmoid(logit)`` (or ``p = scores``
      when ``from_logits=False``) the result is the two classes ``[1 - p, p]``
      (background, foreground), (N, 2, H, W);
    - ``multiclass``: the softmax over the C >= 2 channels (``scores`` as given when
      ``from_logits=False``);
    - ``multilabel``: the sigmoid of each channel (independent classes).

    Volumes ``(N, C, D, H, W)`` alike.

    The argmax of the result is the label of :func:`labels_from_logits` (binary: up to pixels
    whose float sigmoid rounds to exactly 0.5, which the argmax gives to the background).

    Args:
        scores: (N, C, H, W) float torch tensor or numpy array of logits (or probabilities).
        task: :class:`segwise.enums.Task` or its string value.
        from_logits: whether ``scores`` are logits.

    Returns:
        (N, K, H, W) probabilities of the input's kind and dtype; ``K = 2`` for binary, else C.

    Raises:
        ValueError: on a bad task, dtype, shape or channel count.
    """
    task = as_enum(task, Task, "task")
    is_numpy, _ = _check_scores(scores, task, "scores")
    if is_numpy:
        return _probabilities_numpy(scores, task, from_logits=from_logits)
    import torch  # only torch input gets here

    if task is Task.MULTICLASS:
        return scores.softmax(dim=1) if from_logits else scores
    p = scores.sigmoid() if from_logits else scores
    return torch.cat([1 - p, p], dim=1) if task is Task.BINARY else p


def _probabilities_numpy(scores: np.ndarray, task: Task, *, from_logits: bool) -> np.ndarray:
    """:func:`class_probabilities` for numpy arrays (the ONNX predictor runs without torch)."""
    if task is Task.MULTICLASS:
        if not from_logits:
            return scores
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if from_logits:
        with np.errstate(over="ignore"):  # exp(-z) -> inf for very negative z: p = 0 exactly
            p = (1.0 / (1.0 + np.exp(-scores))).astype(scores.dtype, copy=False)
    else:
        p = scores
    if task is Task.BINARY:
        return np.concatenate([1 - p, p], axis=1)
    return p

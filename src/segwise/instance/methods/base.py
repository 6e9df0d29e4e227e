"""The instance-method seam: the protocol every instance-segmentation method implements.

An instance method (Mask R-CNN, U-Net + watershed, YOLACT, SOLOv2, ...) is ONE package under
``segwise.instance.methods`` whose ``spec.py`` holds one object that satisfies
`InstanceMethodSpec`, listed in the explicit registry
``segwise.instance.methods.INSTANCE_METHODS`` (no registration by import side effect). The
engine (one generic training adapter), the predictor, ``evaluate``, ``predict`` and ``export``
only ever talk to a method through this protocol, so a new method is a new package plus one
registry line, and nothing else.

Conventions shared by every method:

- Images are ``float32 (N, C, H, W)`` normalised as in training (the dataset item's
  ``"image"``), any ``H, W >= 1`` (methods pad internally to their stride and crop back).
- Targets are the dataset item's ``"instances"`` as the dataset cleaned them after augmentation
  (`segwise.data.datasets.clean_instances`, the one place that cleans them), crowd regions left
  out (`without_crowd`): ``{"masks": uint8 (K, H, W), "labels": int64 (K,) in
  [1, num_classes], "boxes": float32 (K, 4) pixel-edge xyxy, "ids": int64 (K,)}``.
- ``num_classes`` counts FOREGROUND classes (class labels ``1..num_classes``); background is
  implicit.
- Every method has its own options value: a frozen dataclass (``spec.options_type``) whose
  fields all have defaults, validated in ``__post_init__`` with a ValueError naming the bad
  value. Options hold build, target and decoding settings alike; they are stored in the
  checkpoint (`options_to_dict`: plain values, enums as their names), so prediction decodes
  exactly as validation did; `options_from_mapping` turns ``--model-option`` values (or the
  stored dict) back into the options value and refuses unknown keys, naming the allowed ones.
- ``build(encoder=None)`` means the method's own default encoder. What ``build`` returns is an
  *instance model* (`InstanceModel`, made by `as_instance_model`): the network itself, carrying
  its method name (``model.method``) and resolved options (``model.options``), that decodes
  itself: ``model.predict(images, *, tile_size=None) -> list[InstancePrediction]`` (as
  torchvision's detection models and detectron2's meta-architectures do). These are plain
  attributes of the network, not a wrapper, so its ``state_dict`` keys are the network's own.
- Added after the first draft (additions only): ``derived_summary(options)``, the banner's
  one line on what was derived from the data; ``record_defaults``, the values of options
  added to a method after its first release for stored records that lack them
  (`options_from_record`), so a checkpoint written before an option existed loads into the
  model it was trained as, not into one built with the option's new default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from segwise.instance.representation import InstancePrediction

__all__ = [
    "InstanceMethodSpec",
    "InstanceModel",
    "ObjectStats",
    "as_instance_model",
    "measure_object_stats",
    "options_from_mapping",
    "options_from_record",
    "options_to_dict",
    "without_crowd",
]


@dataclass(frozen=True)
class ObjectStats:
    """Object sizes of the training data, measured at the training scale (after resizing).

    Methods derive data-dependent defaults from it (anchor sizes and aspect ratios, FPN scale
    ranges); the engine prints what was derived at the start of a run.

    Attributes:
        sizes: ``float64 (K,)`` ``sqrt(box width * box height)`` of every training instance, px.
        aspect_ratios: ``float64 (K,)`` box ``height / width`` of every training instance.
        image_size: ``(H, W)`` of the training crops (px).
        objects_per_image: ``int64 (M,)`` instances in each training image.
    """

    sizes: np.ndarray
    aspect_ratios: np.ndarray
    image_size: tuple[int, int]
    objects_per_image: np.ndarray


#: at most this many training images are read to measure object sizes (evenly spaced)
STATS_MAX_IMAGES = 200


def measure_object_stats(samples: Any, info: Any, *, image_size: tuple[int, int]) -> ObjectStats:
    """`ObjectStats` of the instances of ``samples``, for `InstanceMethodSpec.resolve_options`.

    Reads at most `STATS_MAX_IMAGES` images' instances (evenly spaced), untransformed: the
    training crops are cut at the images' own scale, so sizes are as the model sees them.
    Crowd regions are left out.

    Args:
        samples: the training split's samples (``DatasetIndex.train``).
        info: their ``DataInfo``.
        image_size: ``(H, W)`` of the training crops (recorded in the stats).
    """
    from segwise.data import InstanceDataset

    picks = np.unique(np.linspace(0, len(samples) - 1, min(len(samples), STATS_MAX_IMAGES))
                      .round().astype(int)) if len(samples) else []
    dataset = InstanceDataset([samples[i] for i in picks], info)
    sizes, ratios, counts = [], [], []
    for i in range(len(dataset)):
        inst = dataset[i]["instances"]
        boxes = np.asarray(inst["boxes"], dtype=np.float64).reshape(-1, 4)
        if "crowd" in inst:
            boxes = boxes[~np.asarray(inst["crowd"], dtype=bool)]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        ok = (w > 0) & (h > 0)
        sizes.append(np.sqrt(w[ok] * h[ok]))
        ratios.append(h[ok] / w[ok])
        counts.append(int(ok.sum()))
    return ObjectStats(
        sizes=np.concatenate(sizes) if sizes else np.zeros(0),
        aspect_ratios=np.concatenate(ratios) if ratios else np.zeros(0),
        image_size=tuple(image_size),
        objects_per_image=np.asarray(counts, dtype=np.int64),
    )


@runtime_checkable
class InstanceMethodSpec(Protocol):
    """What one instance method provides (see the module docstring for the conventions).

    Attributes:
        name: the registry name (``--model NAME`` with ``--task instance``).
        description: one line for ``segwise models`` and the run banner.
        options_type: the method's frozen options dataclass.
        exportable: whether `export_module` is implemented (single-stage methods).
        record_defaults: option name -> the value a stored record that lacks the option was
            built with (options added after the method's first release whose new default
            differs from the old behaviour; `options_from_record`). Empty for most methods.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    options_type: ClassVar[type]
    exportable: ClassVar[bool]
    record_defaults: ClassVar[Mapping[str, Any]]

    def resolve_options(self, options: Any, stats: ObjectStats | None) -> Any:
        """``options`` with its data-derived defaults filled in (e.g. anchors from
        ``stats.sizes``); ``stats`` is None when no training data is at hand (rebuilding from a
        checkpoint, whose options are already resolved). Pure: returns a new value."""
        ...

    def derived_summary(self, options: Any) -> str:
        """One line saying what `resolve_options` derived from the data (e.g. the anchors),
        printed in the run banner and stored with the run."""
        ...

    def build(
        self,
        *,
        encoder: str,
        in_channels: int,
        num_classes: int,
        options: Any,
        weights: str | None,
    ) -> nn.Module:
        """The instance model (`as_instance_model` of the network), on any registered segwise
        encoder (or a ValueError naming an encoder the method cannot use, never a silent
        substitute).

        ``weights``: None, ``"imagenet"`` (encoder weights from local files), a method-specific
        documented alias (e.g. ``"coco"`` for torchvision's Mask R-CNN checkpoint), or a path
        to a local state_dict. Must not touch the disk when ``weights`` is None (preflight
        builds the model on the ``meta`` device)."""
        ...

    def prepare_item(self, item: dict[str, Any], *, options: Any, pad_value: int) -> dict[str, Any]:
        """Add the method's per-item training targets (runs in loader workers, after
        augmentation, the dataset's cleaning and `without_crowd`); e.g. U-Net + watershed
        turns ``"mask"`` into the 3-class target. Most methods return ``item`` unchanged."""
        ...

    def loss(
        self,
        model: nn.Module,
        images: torch.Tensor,
        targets: Sequence[Mapping[str, torch.Tensor]],
        *,
        options: Any,
        batch: Mapping[str, Any],
    ) -> dict[str, torch.Tensor]:
        """Named scalar loss terms for one training batch (the engine minimises their sum and
        logs each). ``images``: ``(N, C, H, W)`` on the model's device; ``targets``: one dict
        per image on the same device; ``batch``: the collated batch (for method targets made
        by `prepare_item`)."""
        ...

    def predict(
        self,
        model: nn.Module,
        images: torch.Tensor,
        *,
        options: Any,
        tile_size: int | None = None,
    ) -> list[InstancePrediction]:
        """Instances of each image, ``(H, W)`` each; deterministic; the caller (``model.predict``)
        has put the model in eval mode, turned gradients off and set autocast. ``tile_size``:
        methods that can tile (dense per-pixel outputs) use sliding-window inference for images
        larger than this."""
        ...

    def export_module(self, model: nn.Module, *, options: Any, max_instances: int) -> nn.Module:
        """A traceable module ``images (N, C, H, W) -> (scores (N, k), labels (N, k), masks
        (N, k, H, W))`` with decoding included up to fixed-size outputs (k = max_instances,
        zero-padded). Raises `segwise.errors.ExportError` naming the part that cannot
        be exported, and why, for methods that cannot."""
        ...


def without_crowd(instances: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset item's (cleaned) ``"instances"`` without its crowd regions: the training targets.

    A crowd region (COCO ``iscrowd``) is neither an instance to detect nor background, so no
    method trains on it as either; its pixels are already the pad label in the item's
    ``"mask"``. Selection only (the dataset cleaned the instances, and boxes stay as they are);
    instances without ``"crowd"`` are returned as they are (a shallow copy).
    """
    out = dict(instances)
    crowd = out.pop("crowd", None)
    if crowd is None:
        return out
    keep = ~torch.as_tensor(crowd, dtype=torch.bool)
    if bool(keep.all()):
        return out
    return {k: v[keep] for k, v in out.items()}


@runtime_checkable
class InstanceModel(Protocol):
    """What a method's ``build`` returns: a network that knows its method and decodes itself.

    Attributes:
        method: the registry name of its method (``get_method(model.method)``).
        options: the method's resolved options value it was built with; decoding reads it at
            each call (replace it, e.g. with another ``score_threshold``, to decode differently).
    """

    method: str
    options: Any

    def predict(
        self, images: torch.Tensor | Sequence[torch.Tensor], *, tile_size: int | None = None
    ) -> list[InstancePrediction]:
        """Instances of each image: ``images`` ``(N, C, H, W)`` normalised as in training (or a
        list of ``(C, H, W)`` of one size), on the model's device; the model is put in eval
        mode (and left there) and gradients are off. ``tile_size``: see
        `InstanceMethodSpec.predict`."""
        ...


class _Predict:
    """``model.predict`` of an instance model: the method's decoding with ``model.options``.

    A callable object holding the model (not a bound method): it survives ``copy.deepcopy``
    (the EMA model predicts with its own weights) and pickling alike.
    """

    def __init__(self, model: nn.Module, spec: InstanceMethodSpec) -> None:
        self.model = model
        self.spec = spec

    def __call__(
        self, images: torch.Tensor | Sequence[torch.Tensor], *, tile_size: int | None = None
    ) -> list[InstancePrediction]:
        if not isinstance(images, torch.Tensor):
            images = torch.stack(list(images))
        self.model.eval()
        with torch.no_grad():
            return self.spec.predict(
                self.model, images, options=self.model.options, tile_size=tile_size
            )


def as_instance_model(model: nn.Module, spec: InstanceMethodSpec, options: Any) -> nn.Module:
    """``model`` made an `InstanceModel` of ``spec`` (returned for a method's ``build``).

    Sets ``model.method``, ``model.options`` and ``model.predict`` as plain attributes of the
    network itself: no wrapper and no submodule, so ``state_dict`` keys, ``isinstance`` checks
    and every ``model.<part>`` access stay the network's own.
    """
    model.method = spec.name
    model.options = options
    model.predict = _Predict(model, spec)
    return model


def options_from_mapping(
    options_type: type,
    raw: Mapping[str, Any] | None,
    *,
    method: str,
    source: str = "--model-option",
) -> Any:
    """The options value of ``method`` from ``--model-option`` values or a stored dict.

    ``source`` names where ``raw`` came from in the error: ``"--model-option"`` for a user's
    flags, ``"checkpoint option"`` from `options_from_record`.

    Raises:
        ValueError: a key that is not a field of ``options_type`` (naming the allowed keys), or
            a bad value (from the dataclass's own validation).
    """
    raw = dict(raw or {})
    allowed = [f.name for f in dataclasses.fields(options_type)]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(
            f"{source} {', '.join(unknown)} is not a {method} option; allowed: "
            f"{', '.join(allowed)}"
        )
    return options_type(**raw)


def options_from_record(spec: InstanceMethodSpec, raw: Mapping[str, Any] | None) -> Any:
    """The options value of a stored record (a checkpoint's ``model_args["options"]``).

    Options the record lacks take ``spec.record_defaults`` where listed (the value files of
    that time were built with: an option added later), else the current default; the record's
    own values always win. Use `options_from_mapping` for options a user gives.

    Raises:
        ValueError: as `options_from_mapping` (a key that is not an option, named as a
            checkpoint option; a bad value).
    """
    raw = dict(raw or {})
    older = {k: v for k, v in spec.record_defaults.items() if k not in raw}
    return options_from_mapping(
        spec.options_type,
        older | raw,
        method=spec.name,
        source="checkpoint option",
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def options_to_dict(options: Any) -> dict[str, Any]:
    """``options`` as plain values (lists, str, numbers, None; enums as their names), the form
    stored in checkpoints (``torch.load(weights_only=True)`` reads it)."""
    return {f.name: _plain(getattr(options, f.name)) for f in dataclasses.fields(options)}

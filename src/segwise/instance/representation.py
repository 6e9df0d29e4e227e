"""`InstancePrediction`: the one output type of every instance-segmentation method.

An image's instances are held as two aligned label maps plus a per-instance table:

- ``instance_map``: ``int32 (H, W)``, 0 = background, ``ids[k]`` = the pixels of instance ``k``;
- ``class_map``: ``int64 (H, W)``, 0 = background, ``labels[k]`` on the pixels of instance ``k``;
- ``ids (K,) int64`` (sorted, unique, > 0), ``labels (K,) int64`` (>= 1), ``scores (K,) float32``
  and ``boxes (K, 4) float32`` (``x1, y1, x2, y2`` in pixel-edge coordinates: the tight box of the
  instance's pixels, ``x2 = last column + 1``, so ``width = x2 - x1``).

Instances never overlap (one ID per pixel), so a mask is stored once, in ``instance_map``;
``masks()`` and ``instances()`` derive the per-instance stack and list on demand. Overlapping
inputs (Mask R-CNN) are resolved by score: the higher-score instance wins a contested pixel.
Instances left with no pixel are dropped. Conventions are documented in ``docs/instance.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segwise._validation import check_probability
from segwise.instance._arrays import (
    _majority_class,
    _per_instance,
    _to_numpy,
    boxes_from_label_map,
    paint,
)

__all__ = ["InstancePrediction", "InstanceRecord", "boxes_from_label_map"]


@dataclass(frozen=True)
class InstanceRecord:
    """One instance of an `InstancePrediction` (a view; the mask is derived from the ID map).

    Attributes:
        id: the instance's ID in ``instance_map``.
        label: class index, >= 1.
        score: confidence in [0, 1] (1.0 for ground truth and score-less methods).
        box: ``(x1, y1, x2, y2)`` pixel-edge box of the mask.
        mask: ``bool (H, W)``, the instance's pixels.
    """

    id: int
    label: int
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray

    @property
    def area(self) -> int:
        """Number of pixels of the mask."""
        return int(self.mask.sum())


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class InstancePrediction:
    """The instances of one image (prediction or ground truth); arrays are read-only.

    Build it with a ``from_*`` constructor rather than directly; the constructor validates.

    Attributes:
        instance_map: ``int32 (H, W)``, 0 = background, else the instance ID.
        class_map: ``int64 (H, W)``, 0 = background, else the instance's class label.
        ids: ``int64 (K,)``, sorted unique IDs > 0, each present in ``instance_map``.
        labels: ``int64 (K,)``, class of each instance, >= 1.
        scores: ``float32 (K,)``, confidence of each instance in [0, 1].
        boxes: ``float32 (K, 4)``, tight pixel-edge ``x1, y1, x2, y2`` box of each mask.
    """

    instance_map: np.ndarray
    class_map: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        inst = np.asarray(self.instance_map)
        if inst.ndim != 2 or not np.issubdtype(inst.dtype, np.integer):
            raise ValueError(
                f"instance_map has shape {inst.shape} and dtype {inst.dtype}; expected an integer "
                "(H, W) label map"
            )
        k = len(self.ids)
        for name in ("labels", "scores", "boxes"):
            if len(getattr(self, name)) != k:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries; expected {k}")
        present = np.unique(inst)
        present = present[present != 0]
        ids = np.asarray(self.ids, dtype=np.int64)
        if not np.array_equal(present, ids):
            raise ValueError(
                f"ids={ids.tolist()} do not match the IDs present in instance_map "
                f"({present.tolist()}); expected the sorted non-zero IDs of the map"
            )
        if k and np.asarray(self.labels).min() < 1:
            raise ValueError(f"labels={np.asarray(self.labels).tolist()}; expected labels >= 1")
        for name, value, dtype in (
            ("instance_map", inst, np.int32),
            ("class_map", self.class_map, np.int64),
            ("ids", ids, np.int64),
            ("labels", self.labels, np.int64),
            ("scores", self.scores, np.float32),
            ("boxes", np.reshape(self.boxes, (k, 4)), np.float32),
        ):
            object.__setattr__(self, name, _readonly(np.asarray(value, dtype=dtype)))
        if self.class_map.shape != inst.shape:
            raise ValueError(f"class_map has shape {self.class_map.shape}; expected {inst.shape}")
        if not np.array_equal(self.class_map, paint(self.instance_map, ids, self.labels)):
            raise ValueError(
                "class_map disagrees with instance_map and labels; expected labels[k] on the "
                "pixels of ids[k] and 0 on background (use a from_* constructor)"
            )

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return self.instance_map.shape  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def areas(self) -> np.ndarray:
        """``int64 (K,)`` pixel count of each instance."""
        counts = np.bincount(
            np.searchsorted(self.ids, self.instance_map[self.instance_map > 0]),
            minlength=len(self.ids),
        )
        return counts.astype(np.int64)

    def masks(self) -> np.ndarray:
        """``bool (K, H, W)`` stack of instance masks, in ``ids`` order (non-overlapping)."""
        return self.instance_map[None, :, :] == self.ids[:, None, None]

    def instances(self) -> list[InstanceRecord]:
        """The per-instance list (id, label, score, box, mask), in ``ids`` order."""
        return [
            InstanceRecord(
                id=int(i),
                label=int(c),
                score=float(s),
                box=tuple(float(v) for v in b),  # type: ignore[arg-type]
                mask=self.instance_map == i,
            )
            for i, c, s, b in zip(self.ids, self.labels, self.scores, self.boxes, strict=True)
        ]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def empty(cls, shape: tuple[int, int]) -> InstancePrediction:
        """An image without instances."""
        h, w = shape
        return cls.from_label_map(np.zeros((h, w), dtype=np.int32))

    @classmethod
    def from_label_map(
        cls,
        instance_map: np.ndarray,
        *,
        class_map: np.ndarray | None = None,
        labels: Mapping[int, int] | Sequence[int] | np.ndarray | int | None = None,
        scores: Mapping[int, float] | Sequence[float] | np.ndarray | None = None,
    ) -> InstancePrediction:
        """Build from an instance label map (0 = background, other values = instance IDs).

        Args:
            instance_map: ``(H, W)`` integer map; IDs need not be consecutive.
            class_map: optional ``(H, W)`` semantic map; each instance's label is the majority
                class over its pixels (ignoring 0; 1 if all its pixels are 0).
            labels: alternatively the labels: one int for all, a ``{id: label}`` mapping or a
                sequence in sorted-ID order. Default (and no ``class_map``): 1 for all.
            scores: ``{id: score}`` or a sequence in sorted-ID order; default 1.0 for all.
        """
        inst = np.asarray(instance_map)
        if inst.ndim != 2 or not np.issubdtype(inst.dtype, np.integer):
            raise ValueError(
                f"instance_map has shape {inst.shape} and dtype {inst.dtype}; expected an "
                "integer (H, W) label map"
            )
        if inst.size and inst.min() < 0:
            raise ValueError(f"instance_map has negative ID {int(inst.min())}; expected IDs >= 0")
        if inst.size and inst.max() > np.iinfo(np.int32).max:
            raise ValueError(f"instance_map has ID {int(inst.max())}; expected IDs < 2**31")
        ids = np.unique(inst)
        ids = ids[ids != 0].astype(np.int64)
        k = len(ids)
        if class_map is not None:
            if labels is not None:
                raise ValueError("pass either class_map or labels, not both")
            lab = _majority_class(inst, np.asarray(class_map), ids)
        else:
            lab = _per_instance(labels, ids, default=1, name="labels").astype(np.int64)
        sco = _per_instance(scores, ids, default=1.0, name="scores").astype(np.float32)
        if k and (sco.min() < 0 or sco.max() > 1):
            raise ValueError(f"scores={sco.tolist()}; expected values in [0, 1]")
        return cls(
            instance_map=inst.astype(np.int32),
            class_map=paint(inst, ids, lab),
            ids=ids,
            labels=lab,
            scores=sco,
            boxes=boxes_from_label_map(inst, ids),
        )

    @classmethod
    def from_masks(
        cls,
        masks: Any,
        *,
        labels: Sequence[int] | np.ndarray | None = None,
        scores: Sequence[float] | np.ndarray | None = None,
        mask_threshold: float = 0.5,
        score_threshold: float = 0.0,
    ) -> InstancePrediction:
        """Build from a stack of (possibly overlapping, possibly soft) masks.

        Masks with score < ``score_threshold`` are dropped; a pixel belongs to a mask where the
        mask value is > ``mask_threshold`` (bool masks: where True). Where masks overlap, the
        highest-score mask wins the pixel (ties: the earlier mask). Masks left with no pixel are
        dropped. Surviving instances get IDs ``1..K`` in score-descending order.

        Args:
            masks: ``(K, H, W)`` bool/uint8/float masks (numpy array or tensor); also accepts
                ``(K, 1, H, W)`` as produced by Mask R-CNN.
            labels: ``(K,)`` class labels >= 1; default 1.
            scores: ``(K,)`` scores in [0, 1]; default 1.0.
            mask_threshold: binarisation threshold for soft masks.
            score_threshold: minimum score kept.
        """
        check_probability(mask_threshold, "mask_threshold")
        check_probability(score_threshold, "score_threshold")
        m = _to_numpy(masks)
        if m.ndim == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if m.ndim != 3:
            raise ValueError(f"masks has shape {m.shape}; expected (K, H, W) or (K, 1, H, W)")
        k, h, w = m.shape
        lab = np.ones(k, np.int64) if labels is None else _to_numpy(labels).astype(np.int64)
        sco = np.ones(k, np.float32) if scores is None else _to_numpy(scores).astype(np.float32)
        if lab.shape != (k,) or sco.shape != (k,):
            raise ValueError(
                f"labels has shape {lab.shape} and scores {sco.shape}; expected ({k},) each"
            )
        binary = m if m.dtype == bool else m > mask_threshold
        keep = sco >= score_threshold
        order = np.argsort(-sco[keep], kind="stable")
        binary, lab, sco = binary[keep][order], lab[keep][order], sco[keep][order]
        inst = np.zeros((h, w), dtype=np.int32)
        if len(binary):
            winner = np.argmax(binary, axis=0)  # first True in score order = highest score
            inst = np.where(binary.any(axis=0), winner + 1, 0).astype(np.int32)
        # renumber survivors 1..K' (instances that lost every pixel disappear)
        present = np.unique(inst)
        present = present[present != 0]
        lut = np.zeros(len(binary) + 1, dtype=np.int32)
        lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
        return cls.from_label_map(lut[inst], labels=lab[present - 1], scores=sco[present - 1])

    @classmethod
    def from_target(cls, instances: Mapping[str, Any]) -> InstancePrediction:
        """Ground truth objects from the dataset item's ``"instances"`` dict (inverse of
        `to_target`).

        Crowd regions (``"crowd"`` flags, COCO ``iscrowd: 1``) are left out: the result holds
        the non-crowd objects only. A crowd region outlines a group of objects nobody outlined
        one by one; it is not an object, and it often covers objects that were outlined (a
        label map, where the earlier mask wins a shared pixel, would hand their pixels to the
        region or cut the region into pieces). Left out rather than refused, because every
        reader of ground truth objects (training targets, the metrics) wants exactly the
        non-crowd ones; to score predictions against the regions as COCOeval does, take them
        from the same dict with `segwise.metrics.instance.split_crowd` and pass them to the
        metrics as ``crowd=`` (as `segwise.engine.instance_scoring.InstanceScorer` does).

        Args:
            instances: ``{"masks": (K, H, W) uint8/bool, "labels": (K,) >= 1, "ids": (K,)
                optional, "crowd": bool (K,) optional}`` (numpy or tensors). Without ``"ids"``
                instance ``k`` gets ID ``k + 1``. Where masks overlap the earlier one wins; a
                mask left without pixels is dropped. Scores are 1.0.
        """
        for key in ("masks", "labels"):
            if key not in instances:
                raise ValueError(
                    f"instances lacks {key!r} (keys: {sorted(instances)}); expected the Instance "
                    "item of docs/contracts.md"
                )
        m = _to_numpy(instances["masks"]).astype(bool)
        if m.ndim != 3:
            raise ValueError(f"instances masks has shape {m.shape}; expected (K, H, W)")
        k = len(m)
        lab = _to_numpy(instances["labels"]).astype(np.int64).reshape(-1)
        ids = (
            _to_numpy(instances["ids"]).astype(np.int64).reshape(-1)
            if instances.get("ids") is not None
            else np.arange(1, k + 1, dtype=np.int64)
        )
        if lab.shape != (k,) or ids.shape != (k,):
            raise ValueError(
                f"instances labels {lab.shape} / ids {ids.shape} do not fit masks {m.shape}; "
                f"expected ({k},) each"
            )
        if k and (ids.min() < 1 or len(np.unique(ids)) != k):
            raise ValueError(f"instances ids={ids.tolist()}; expected unique IDs >= 1")
        if instances.get("crowd") is not None:  # crowd regions are not objects (docstring)
            objects = ~_to_numpy(instances["crowd"]).astype(bool).reshape(-1)
            if objects.shape != (k,):
                raise ValueError(f"instances crowd flags {objects.shape} do not fit masks "
                                 f"{m.shape}; expected ({k},)")
            m, lab, ids, k = m[objects], lab[objects], ids[objects], int(objects.sum())
        inst = np.zeros(m.shape[1:], dtype=np.int64)
        if k:
            inst = np.where(m.any(axis=0), ids[np.argmax(m, axis=0)], 0)
        order = np.argsort(ids)
        present = np.isin(ids[order], inst)
        return cls.from_label_map(inst, labels=lab[order][present])

    @classmethod
    def from_maskrcnn_output(
        cls,
        output: Mapping[str, Any],
        *,
        score_threshold: float = 0.5,
        mask_threshold: float = 0.5,
    ) -> InstancePrediction:
        """Build from one torchvision Mask R-CNN output dict (eval mode).

        Args:
            output: ``{"masks": float (K, 1, H, W) in [0, 1], "labels": int64 (K,),
                "scores": float (K,), "boxes": ...}``; the detector's boxes are replaced by the
                tight boxes of the final masks.
            score_threshold: detections with score below it are dropped.
            mask_threshold: a pixel belongs to a detection where its mask probability > it.
        """
        for key in ("masks", "labels", "scores"):
            if key not in output:
                raise ValueError(
                    f"Mask R-CNN output lacks {key!r} (keys: {sorted(output)}); expected the "
                    "eval-mode output of torchvision's MaskRCNN"
                )
        check_probability(mask_threshold, "mask_threshold")
        check_probability(score_threshold, "score_threshold")
        masks, labels, scores = output["masks"], output["labels"], output["scores"]
        if hasattr(masks, "detach"):  # threshold on the model's device: bool masks move faster
            keep = scores >= score_threshold
            masks, labels, scores = masks[keep] > mask_threshold, labels[keep], scores[keep]
        return cls.from_masks(
            masks,
            labels=labels,
            scores=scores,
            mask_threshold=mask_threshold,
            score_threshold=score_threshold,
        )

    @classmethod
    def from_panoptic(
        cls, panoptic: np.ndarray, *, label_divisor: int = 1000
    ) -> InstancePrediction:
        """Inverse of `to_panoptic`: ``value = label * label_divisor + instance_id``, 0 = none.

        Instance IDs are renumbered ``1..K`` in order of panoptic value.
        """
        pan = np.asarray(panoptic).astype(np.int64)
        values, inverse = np.unique(pan, return_inverse=True)
        inverse = inverse.reshape(pan.shape)
        if values[0] != 0:
            values = np.concatenate([[0], values])
            inverse = inverse + 1
        lab = values[1:] // label_divisor
        if np.any(lab < 1):
            raise ValueError(
                f"panoptic values {values[1:][lab < 1].tolist()} have class 0; expected "
                f"label * {label_divisor} + instance_id with label >= 1"
            )
        return cls.from_label_map(inverse.astype(np.int32), labels=lab)

    # ------------------------------------------------------------------ conversions
    def to_panoptic(self, *, label_divisor: int = 1000) -> np.ndarray:
        """Single ``int64 (H, W)`` map: ``label * label_divisor + id`` (0 = background).

        The Cityscapes / Detectron2 convention. Requires ``max(ids) < label_divisor``.
        """
        if len(self.ids) and int(self.ids.max()) >= label_divisor:
            raise ValueError(
                f"label_divisor={label_divisor} is not valid for ID {int(self.ids.max())}; "
                "expected a divisor larger than every ID (e.g. call relabel() first)"
            )
        return np.where(
            self.instance_map > 0, self.class_map * label_divisor + self.instance_map, 0
        )

    def relabel(self) -> InstancePrediction:
        """The same instances with IDs renumbered ``1..K`` (in current ID order)."""
        new_ids = np.arange(1, len(self.ids) + 1, dtype=np.int32)
        return InstancePrediction.from_label_map(
            paint(self.instance_map, self.ids, new_ids), labels=self.labels, scores=self.scores
        )

    def to_rle(self) -> list[dict[str, Any]]:
        """COCO RLE (``{"size": [H, W], "counts": str}``) of each mask, in ``ids`` order.

        Needs pycocotools (the ``instance`` extra).
        """
        from segwise.instance.coco import encode_rle

        return encode_rle(self.masks())

    @classmethod
    def from_rle(
        cls,
        rles: Sequence[Mapping[str, Any]],
        *,
        labels: Sequence[int] | np.ndarray | None = None,
        scores: Sequence[float] | np.ndarray | None = None,
        shape: tuple[int, int] | None = None,
    ) -> InstancePrediction:
        """Build from COCO RLEs (overlaps resolved by score, see `from_masks`).

        ``shape`` is needed only when ``rles`` is empty.
        """
        from segwise.instance.coco import decode_rle

        if not rles:
            if shape is None:
                raise ValueError("rles is empty; pass shape=(H, W) to build an empty prediction")
            return cls.empty(shape)
        return cls.from_masks(decode_rle(rles), labels=labels, scores=scores)

    def to_coco_results(self, *, image_id: int) -> list[dict[str, Any]]:
        """COCO results entries (``segm``): image_id, category_id, segmentation, score, bbox, area.

        ``category_id`` is the class label; ``bbox`` is ``[x, y, w, h]``.
        """
        rles = self.to_rle()
        areas = self.areas
        return [
            {
                "image_id": int(image_id),
                "category_id": int(c),
                "segmentation": rle,
                "score": float(s),
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                "area": int(a),
            }
            for c, s, b, a, rle in zip(
                self.labels, self.scores, self.boxes, areas, rles, strict=True
            )
        ]

    def to_target(self) -> dict[str, np.ndarray]:
        """The dataset item's ``"instances"`` dict (masks uint8, labels, boxes, ids)."""
        return {
            "masks": self.masks().astype(np.uint8),
            "labels": self.labels.copy(),
            "boxes": self.boxes.copy(),
            "ids": self.ids.copy(),
        }

    def to_dict_list(self) -> list[dict[str, Any]]:
        """JSON-friendly per-instance list: id, label, score, box, area (no masks)."""
        return [
            {
                "id": int(i),
                "label": int(c),
                "score": float(s),
                "box": [float(v) for v in b],
                "area": int(a),
            }
            for i, c, s, b, a in zip(
                self.ids, self.labels, self.scores, self.boxes, self.areas, strict=True
            )
        ]

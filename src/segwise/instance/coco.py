"""COCO RLE encoding and COCO mask AP through pycocotools (imported lazily, inside functions).

COCO mask AP (``coco_mask_ap``) builds the ground-truth and detection dicts in memory and runs
``COCOeval(iouType="segm")``; see ``docs/instance.md`` for the definitions.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segwise._lazy import import_extra

__all__ = ["COCO_AP_KEYS", "coco_mask_ap", "decode_rle", "encode_rle"]

#: names of the first six ``COCOeval.stats`` entries, in order
COCO_AP_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def _mask_utils():
    return import_extra("pycocotools.mask", extra="instance",
                        purpose="COCO RLE and COCO AP")


def encode_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """COCO RLE of each mask.

    Args:
        masks: ``bool (K, H, W)``.

    Returns:
        ``K`` dicts ``{"size": [H, W], "counts": str}`` (counts decoded to ``str`` so that the
        result is JSON-serialisable).
    """
    mask_utils = _mask_utils()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks has shape {masks.shape}; expected (K, H, W)")
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return list(rles)


def decode_rle(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``bool (K, H, W)`` masks from COCO RLEs (compressed ``str``/``bytes`` or uncompressed)."""
    mask_utils = _mask_utils()
    if not rles:
        return np.zeros((0, 0, 0), dtype=bool)
    sizes = {tuple(rle["size"]) for rle in rles}
    if len(sizes) != 1:
        raise ValueError(f"rles have sizes {sorted(sizes)}; expected one image size")
    compressed = []
    for rle in rles:
        rle = dict(rle)
        h, w = rle["size"]
        if isinstance(rle["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, h, w)
        elif isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        compressed.append(rle)
    with warnings.catch_warnings():  # pycocotools' __array__ vs numpy 2 copy keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode(compressed)  # (H, W, K)
    return decoded.transpose(2, 0, 1).astype(bool)


def coco_mask_ap(
    gt: Sequence[Sequence[Mapping[str, Any]]],
    dt: Sequence[Sequence[Mapping[str, Any]]],
    *,
    shapes: Sequence[tuple[int, int]],
    max_detections: int = 100,
) -> dict[str, float]:
    """COCO mask AP over a set of images, with pycocotools' ``COCOeval(iouType="segm")``.

    Args:
        gt: per image, the ground-truth instances as dicts ``{"segmentation": rle,
            "category_id": int}``, with ``"iscrowd": True`` for a crowd region (COCO
            ``iscrowd: 1``: never a FN, and a detection matched to it, by intersection over
            the detection's area, is neither TP nor FP; COCOeval's own rule).
        dt: per image, the detections as dicts ``{"segmentation": rle, "category_id": int,
            "score": float}``.
        shapes: per image, ``(H, W)``.
        max_detections: the largest ``maxDets`` (COCO uses 100; crowded images such as nuclei
            need more, e.g. 1000, or the lowest-score detections are ignored).

    Returns:
        ``{"ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"}``: COCOeval's stats. A
        value that COCO leaves undefined (-1: no ground truth at all, or none in that area
        range) is returned as ``nan``. If there are ground-truth instances but no detections,
        every defined value is 0.
    """
    if not len(gt) == len(dt) == len(shapes):
        raise ValueError(
            f"gt, dt and shapes have {len(gt)}, {len(dt)} and {len(shapes)} images; expected "
            "the same number"
        )
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    mask_utils = _mask_utils()
    images, annotations, categories = [], [], set()
    for image_id, (anns, (h, w)) in enumerate(zip(gt, shapes, strict=True), start=1):
        images.append({"id": image_id, "height": int(h), "width": int(w)})
        for ann in anns:
            rle = _bytes_rle(ann["segmentation"])
            categories.add(int(ann["category_id"]))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(ann["category_id"]),
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": int(bool(ann.get("iscrowd", False))),
                }
            )
    detections = []
    for image_id, anns in enumerate(dt, start=1):
        for ann in anns:
            rle = _bytes_rle(ann["segmentation"])
            categories.add(int(ann["category_id"]))
            detections.append(
                {
                    "id": len(detections) + 1,
                    "image_id": image_id,
                    "category_id": int(ann["category_id"]),
                    "segmentation": rle,
                    "score": float(ann["score"]),
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
    nan = float("nan")
    if not annotations:
        return dict.fromkeys(COCO_AP_KEYS, nan)
    cats = [{"id": c, "name": str(c)} for c in sorted(categories)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": cats}
        coco_gt.createIndex()
        if not detections:
            # loadRes cannot take an empty list; every defined AP is 0 in that case
            return _zero_where_defined(coco_gt)
        coco_dt = COCO()
        coco_dt.dataset = {"images": images, "annotations": detections, "categories": cats}
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        # COCOeval sorts maxDets; keep COCO's 1 and 10 and find ours after sorting
        evaluator.params.maxDets = sorted({1, 10, int(max_detections)})
        evaluator.evaluate()
        evaluator.accumulate()
    column = list(evaluator.params.maxDets).index(int(max_detections))
    return _ap_stats(evaluator.eval["precision"][..., column], evaluator.params.iouThrs)


def _ap_stats(precision: np.ndarray, iou_thresholds: np.ndarray) -> dict[str, float]:
    """COCO's six AP numbers read from ``eval["precision"]`` at one maxDets.

    ``precision`` is ``(T, R, K, A)``: IoU thresholds, recall points, categories, area ranges
    (all, small, medium, large), taken at the chosen maxDets. ``COCOeval.summarize`` fixes
    maxDets=100 for AP and the area APs (giving -1 for any other limit), so the values are
    computed here the same way (mean over the defined entries; -1 marks undefined).
    """

    def mean(p: np.ndarray) -> float:
        defined = p[p > -1]
        return float(defined.mean()) if defined.size else float("nan")

    t50 = int(np.argmin(np.abs(iou_thresholds - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thresholds - 0.75)))
    return {
        "ap": mean(precision[..., 0]),
        "ap50": mean(precision[t50, ..., 0]),
        "ap75": mean(precision[t75, ..., 0]),
        "ap_small": mean(precision[..., 1]),
        "ap_medium": mean(precision[..., 2]),
        "ap_large": mean(precision[..., 3]),
    }


def _bytes_rle(rle: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(rle)
    if isinstance(out["counts"], str):
        out["counts"] = out["counts"].encode("ascii")
    return out


def _zero_where_defined(coco_gt: Any) -> dict[str, float]:
    areas = [a["area"] for a in coco_gt.dataset["annotations"] if not a["iscrowd"]]
    ranges = {"ap_small": (0, 32**2), "ap_medium": (32**2, 96**2), "ap_large": (96**2, 1e10)}
    if not areas:  # crowd regions only: nothing COCO can score
        return dict.fromkeys(COCO_AP_KEYS, float("nan"))
    out = {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    for key, (lo, hi) in ranges.items():
        out[key] = 0.0 if any(lo <= a <= hi for a in areas) else float("nan")
    return out

"""Instance targets: from instance-label images and from COCO JSON (polygons and RLE).

Per-instance classes of an instance-label image ``instances/<id>.png`` are read from an optional
sidecar ``instances/<id>.json`` (``{"<instance id>": <class index>, ...}``); without it every
instance is class 1 (binary). An RGB instance image is colour-coded (each object has its own
colour, as many annotation tools export): :func:`instance_label` reads each colour as the id
``r * 65536 + g * 256 + b``, so black (0, 0, 0) is the background, id 0; its sidecar may name
the objects by colour, ``{"#rrggbb": <class index>}``. In the semantic map of a COCO image,
overlapping pixels take the class of the smallest instance covering them (instances are
painted largest first); the instance masks themselves keep the overlap.

COCO crowd regions (``iscrowd: 1``, one RLE over a group of objects) are read too: they are in
the Instance item with ``"crowd": True`` (training leaves them out, evaluation scores them as
pycocotools does, `segwise.metrics.instance`), and their pixels that no ordinary instance
covers are *ignored* in the semantic map (the pad label, :attr:`CocoTargets.mask`), not
background: a crowd is objects nobody outlined one by one.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segwise.data.formats import grey_of_rgb, rgb_codes

__all__ = [
    "CocoFile",
    "CocoTargets",
    "instance_label",
    "instances_from_label",
    "load_coco",
    "read_instance_classes",
    "semantic_from_instances",
]


def read_instance_classes(mask_path: str | Path) -> dict[int, int] | None:
    """The sidecar ``<mask stem>.json`` next to an instance image, or ``None`` if absent."""
    sidecar = Path(mask_path).with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
        return {int(k[1:], 16) if k.startswith("#") else int(k): int(v)
                for k, v in data.items()}
    except (ValueError, AttributeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{sidecar}: expected {{'<instance id>': <class index>, ...}} (colour-coded masks: "
            f"{{'#rrggbb': <class index>, ...}}) ({err})"
        ) from err


def instance_label(raw: np.ndarray, *, source: str | Path = "<array>") -> np.ndarray:
    """The instance ids of an instance mask as stored: ``int64 (H, W)``, 0 = background.

    The one rule that ``segwise data inspect`` (through the mask's scan, which encodes colours
    the same way) and the dataset item share:

    - ``(H, W)`` integer ids: as stored;
    - ``(H, W, 3)`` whose channels are equal (grey ids saved as RGB): channel 0;
    - ``(H, W, 3)`` colour-coded: each distinct colour is one object, id
      ``r * 65536 + g * 256 + b`` (:func:`segwise.data.formats.rgb_codes`), so black is the
      background (id 0); transparent pixels were made black when the file was read.

    Raises:
        ValueError: naming ``source`` for any other shape or a float array.
    """
    raw = np.asarray(raw)
    if np.issubdtype(raw.dtype, np.floating) or not (
        raw.ndim == 2 or (raw.ndim == 3 and raw.shape[-1] >= 3)
    ):
        raise ValueError(
            f"instance mask {source} is {raw.dtype.name} {raw.shape}; expected integer ids "
            "(H, W) or a colour-coded RGB image (H, W, 3), one colour per object on black"
        )
    if raw.ndim == 2:
        return raw.astype(np.int64)
    grey = grey_of_rgb(raw)
    return (grey if grey is not None else rgb_codes(raw)).astype(np.int64)


def semantic_from_instances(
    label: np.ndarray, classes: dict[int, int] | None, *, source: str | Path = "<array>"
) -> np.ndarray:
    """Class map ``int64 (H, W)`` from an instance-label image ``(H, W)`` (0 = background)."""
    label = label.astype(np.int64)
    if classes is None:
        return (label > 0).astype(np.int64)
    ids = np.unique(label)
    ids = ids[ids > 0]
    missing = [int(i) for i in ids if int(i) not in classes]
    if missing:
        raise ValueError(
            f"instance ids {missing[:10]} of {source} have no class in its sidecar .json; add them"
        )
    if ids.size and int(ids[-1]) >= 1 << 20:  # colour-coded ids: no 16M-entry lookup table
        of_id = np.array([classes[i] for i in ids.tolist()], dtype=np.int64)
        pos = np.minimum(np.searchsorted(ids, label), ids.size - 1)
        return np.where(label > 0, of_id[pos], 0)
    lut = np.zeros(int(label.max()) + 1, dtype=np.int64)
    for i in ids.tolist():
        lut[i] = classes[i]
    return lut[label]


def instances_from_label(
    label: np.ndarray, classes: dict[int, int] | None
) -> dict[str, np.ndarray]:
    """The Instance item from an instance-label image.

    Each object is written inside its bounding box only (``scipy.ndimage.find_objects``), so
    the cost is one sort of the pixels plus the objects' boxes, not ``K * H * W`` comparisons
    (dsb2018, ~40 objects of 256x320: 0.11 s -> a few ms per image).

    Args:
        label: ``(H, W)`` integer instance ids, 0 = background; ids need not be contiguous.
        classes: instance id -> class index (1..), or ``None`` for "all class 1".

    Returns:
        ``masks uint8 (K, H, W)``, ``labels int64 (K,)``, ``boxes float32 (K, 4)`` xyxy in pixels
        (``x2, y2`` are the last covered column/row + 1), ``ids int64 (K,)`` the source ids.
    """
    from scipy import ndimage

    label = np.asarray(label)
    values, inverse = np.unique(label, return_inverse=True)
    inverse = inverse.reshape(label.shape)
    first = 1 if values.size and values[0] == 0 else 0  # index of the first object in values
    ids = values[first:].astype(np.int64)
    index = inverse + (1 - first)  # objects 1..K, background 0
    masks = np.zeros((len(ids), *label.shape), dtype=np.uint8)
    boxes = np.zeros((len(ids), 4), dtype=np.float32)
    for k, box in enumerate(ndimage.find_objects(index, max_label=len(ids))):
        if box is None:
            continue
        masks[k][box] = index[box] == k + 1
        boxes[k] = (box[1].start, box[0].start, box[1].stop, box[0].stop)
    labels = np.array([1 if classes is None else classes[int(i)] for i in ids], dtype=np.int64)
    return {"masks": masks, "labels": labels, "boxes": boxes, "ids": ids}


def _boxes(masks: np.ndarray) -> np.ndarray:
    """``float32 (K, 4)`` pixel-edge boxes of ``(K, H, W)`` masks (`segwise.data.boxes`)."""
    import torch

    from segwise.data.boxes import boxes_from_masks

    return boxes_from_masks(torch.from_numpy(masks)).numpy()


@dataclass(frozen=True, eq=False)
class CocoTargets:
    """The targets of one image of a COCO file (:meth:`CocoFile.targets`).

    Attributes:
        instances: the Instance item as numpy arrays: ``masks uint8 (K, H, W)``, ``labels int64
            (K,)``, ``boxes float32 (K, 4)``, ``ids int64 (K,)`` (annotation ids) and ``crowd
            bool (K,)`` (``iscrowd``), in the file's annotation order, crowd regions included.
        semantic: ``int64 (H, W)`` classes of the ordinary (non-crowd) instances, 0 elsewhere.
        crowd_pixels: ``bool (H, W)``: pixels inside a crowd region and in no ordinary instance.
        overlap: pixels covered by several ordinary instances.
    """

    instances: dict[str, np.ndarray]
    semantic: np.ndarray
    crowd_pixels: np.ndarray
    overlap: int

    @property
    def num_crowd(self) -> int:
        """Crowd regions (``iscrowd: 1``) of the image."""
        return int(self.instances["crowd"].sum())

    def mask(self, pad_value: int) -> np.ndarray:
        """The item's semantic ``"mask"``: ``int64 (H, W)``, crowd pixels set to ``pad_value``.

        Args:
            pad_value: the label left out of loss and metrics
                (:attr:`segwise.labels.LabelSpace.pad_value`, e.g. ``info.labels.pad_value``).
        """
        if not self.crowd_pixels.any():
            return self.semantic
        return np.where(self.crowd_pixels, np.int64(pad_value), self.semantic)


class CocoFile:
    """A COCO JSON file: categories mapped to contiguous classes 1..N (sorted by category id)."""

    def __init__(self, path: Path):
        try:
            from pycocotools.coco import COCO
        except ImportError as err:  # pragma: no cover - optional dependency
            raise ValueError(
                f"reading COCO annotations ({path}) needs pycocotools: "
                "pip install 'segwise[instance]'"
            ) from err
        import contextlib
        import io

        self.path = path
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
            self.coco = COCO(str(path))
        cats = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        self.category_ids = [c["id"] for c in cats]
        self.class_of_category = {cid: i + 1 for i, cid in enumerate(self.category_ids)}
        self.names = ("background", *(str(c["name"]) for c in cats))
        self.image_of_file = {Path(im["file_name"]).name: im for im in
                              self.coco.loadImgs(self.coco.getImgIds())}

    def targets(self, file_name: str) -> CocoTargets:
        """Instances (crowd regions flagged), semantic map and crowd pixels of one image."""
        im = self.image_of_file.get(file_name)
        if im is None:
            raise ValueError(f"{file_name} is not listed in {self.path}")
        h, w = int(im["height"]), int(im["width"])
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[im["id"]], iscrowd=None))
        masks = np.zeros((len(anns), h, w), dtype=np.uint8)
        for k, ann in enumerate(anns):
            try:
                with warnings.catch_warnings():  # pycocotools vs numpy 2 copy keyword
                    warnings.simplefilter("ignore", DeprecationWarning)
                    masks[k] = self.coco.annToMask(ann)
            except Exception as err:
                raise ValueError(
                    f"{self.path}: annotation id {ann.get('id')} of {file_name} cannot be "
                    f"decoded ({err}); fix its segmentation"
                ) from err
        labels = np.array([self.class_of_category[a["category_id"]] for a in anns], np.int64)
        ids = np.array([int(a["id"]) for a in anns], dtype=np.int64)
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
        semantic = np.zeros((h, w), dtype=np.int64)
        areas = masks.reshape(len(anns), -1).sum(axis=1)
        for k in np.argsort(-areas, kind="stable"):
            if not crowd[k]:
                semantic[masks[k] > 0] = labels[k]
        plain = masks[~crowd]
        covered = plain.any(axis=0) if len(plain) else np.zeros((h, w), dtype=bool)
        in_crowd = masks[crowd].any(axis=0) if crowd.any() else np.zeros((h, w), dtype=bool)
        overlap = int((plain.sum(axis=0) > 1).sum()) if len(plain) else 0
        inst = {"masks": masks, "labels": labels, "boxes": _boxes(masks), "ids": ids,
                "crowd": crowd}
        return CocoTargets(inst, semantic, in_crowd & ~covered, overlap)


@functools.lru_cache(maxsize=8)
def _load_coco(path: str, mtime: int) -> CocoFile:
    return CocoFile(Path(path))


def load_coco(path: str | Path) -> CocoFile:
    """Load (and cache) a COCO file. Raises ``ValueError`` naming the file when it is invalid."""
    path = Path(path)
    try:
        return _load_coco(str(path), path.stat().st_mtime_ns)
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a valid COCO annotation file ({err!r})") from err

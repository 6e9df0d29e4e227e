"""Writing an `InstancePrediction` to disk: 16-bit ID PNG, JSON list, COCO results, overlay.

`save_prediction` writes the standard set for one image:
``<stem>_instances.png`` (uint16 instance IDs, 0 = background), ``<stem>_instances.json``
(``{"height", "width", "instances": [{"id", "label", "score", "box", "area"}]}``),
``<stem>_overlay.png`` (when the image is given) and, on request, ``<stem>_coco.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segwise.instance._arrays import paint
from segwise.instance.representation import InstancePrediction
from segwise.labels import palette

__all__ = [
    "read_instance_png",
    "render_overlay",
    "save_prediction",
    "write_coco_results_json",
    "write_instance_json",
    "write_instance_png",
]


def write_instance_png(path: str | Path, prediction: InstancePrediction) -> Path:
    """Save ``instance_map`` as a 16-bit greyscale PNG (IDs must be < 65536)."""
    from PIL import Image

    ids = prediction.instance_map
    if ids.size and int(ids.max()) > 65535:
        raise ValueError(
            f"instance ID {int(ids.max())} does not fit a 16-bit PNG; expected IDs <= 65535 "
            "(call prediction.relabel() first)"
        )
    path = Path(path)
    Image.fromarray(ids.astype(np.uint16)).save(path)
    return path


def read_instance_png(path: str | Path) -> np.ndarray:
    """``int32 (H, W)`` instance map from a PNG written by `write_instance_png`."""
    from PIL import Image

    with Image.open(path) as img:
        arr = np.array(img)
    if arr.ndim != 2:
        raise ValueError(f"{path} has shape {arr.shape}; expected a single-channel ID image")
    return arr.astype(np.int32)


def write_instance_json(path: str | Path, prediction: InstancePrediction) -> Path:
    """Save the per-instance list (id, label, score, box ``x1, y1, x2, y2``, area) as JSON."""
    h, w = prediction.shape
    payload = {"height": h, "width": w, "instances": prediction.to_dict_list()}
    path = Path(path)
    path.write_text(json.dumps(payload, indent=1))
    return path


def write_coco_results_json(
    path: str | Path, predictions: Sequence[InstancePrediction], *, image_ids: Sequence[int]
) -> Path:
    """Save COCO ``segm`` results (a list of detections, RLE masks) for several images."""
    if len(predictions) != len(image_ids):
        raise ValueError(
            f"{len(predictions)} predictions and {len(image_ids)} image_ids; expected one id each"
        )
    results: list[dict[str, Any]] = []
    for pred, image_id in zip(predictions, image_ids, strict=True):
        results.extend(pred.to_coco_results(image_id=image_id))
    path = Path(path)
    path.write_text(json.dumps(results))
    return path


def _palette(n: int) -> np.ndarray:
    """``int64 (n, 3)`` colours of instances 1..n: :func:`segwise.labels.palette` without
    its black (the one palette policy)."""
    return np.array(palette(n + 1)[1:], dtype=np.int64).reshape(n, 3)


def render_overlay(
    image: np.ndarray,
    prediction: InstancePrediction,
    *,
    alpha: float = 0.45,
    contour_color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Image with each instance filled in its own colour and outlined.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` image, uint8 or float in [0, 1] (or a ``(3, H, W)``
            tensor/array, as in the dataset item; float images are min-max scaled).
        prediction: the instances.
        alpha: fill opacity in [0, 1].
        contour_color: RGB of the outlines; default the instance's colour at full opacity.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    img = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if img.shape[:2] != prediction.shape or img.shape[-1] != 3:
        raise ValueError(
            f"image has shape {image.shape}; expected (H, W), (H, W, 3) or (3, H, W) with "
            f"(H, W) = {prediction.shape}"
        )
    if img.dtype != np.uint8:
        img = img.astype(np.float64)
        lo, hi = float(img.min()), float(img.max())
        img = ((img - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(img)).astype(np.uint8)
    out = img.astype(np.float64)
    inst = prediction.instance_map
    colour_map = np.stack(
        [paint(inst, prediction.ids, c) for c in _palette(len(prediction.ids)).T], axis=-1
    ).astype(np.float64)  # (H, W, 3)
    fg = inst > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colour_map[fg]
    # contour: instance pixels with a 4-neighbour of another ID
    edge = np.zeros_like(fg)
    padded = np.pad(inst, 1, mode="edge")
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + inst.shape[0], dx : dx + inst.shape[1]] != inst
    edge &= fg
    out[edge] = contour_color if contour_color is not None else colour_map[edge]
    return np.clip(out, 0, 255).astype(np.uint8)


def save_prediction(
    out_dir: str | Path,
    stem: str,
    prediction: InstancePrediction,
    *,
    image: np.ndarray | None = None,
    coco_image_id: int | None = None,
) -> dict[str, Path]:
    """Write the standard files for one image (see module docstring).

    Args:
        out_dir: folder (created if missing).
        stem: file-name stem, e.g. the item's ``"id"``.
        prediction: the instances.
        image: the input image; with it, an overlay PNG is written.
        coco_image_id: with it, a COCO results JSON for this image is written.

    Returns:
        ``{"png", "json", "overlay"?, "coco"?}`` paths written.
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "png": write_instance_png(out / f"{stem}_instances.png", prediction),
        "json": write_instance_json(out / f"{stem}_instances.json", prediction),
    }
    if image is not None:
        paths["overlay"] = out / f"{stem}_overlay.png"
        Image.fromarray(render_overlay(image, prediction)).save(paths["overlay"])
    if coco_image_id is not None:
        paths["coco"] = write_coco_results_json(
            out / f"{stem}_coco.json", [prediction], image_ids=[coco_image_id]
        )
    return paths

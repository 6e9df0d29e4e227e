"""A deterministic synthetic dataset, written as ordinary PNG files.

Shapes on a textured, noisy background; the classes differ both by form and by
intensity/texture, so a small U-Net learns them in a couple of CPU minutes:

====  ==========  ==========================  =====================
 id    name        look                        frequency
====  ==========  ==========================  =====================
 1     disc        bright, smooth, reddish     common (3-6 per image)
 2     square      mid-grey, striped, green    rare (0-2 per image)
 3     triangle    dark, speckled, blue        very rare, small (0-1)
====  ==========  ==========================  =====================

Some objects touch (a second object is placed against an earlier one), and every object has its
own instance id. Flavours and files (layout (a) of :mod:`segwise.data.pairing`):

- ``"multiclass"``: ``images/<id>.png`` RGB, ``masks/<id>.png`` uint8 class indices 0..3,
  ``classes.json``;
- ``"binary"``: ``masks/<id>.png`` with 0/255 (all shapes are foreground);
- ``"instance"``: ``instances/<id>.png`` uint16 instance ids (0 = background) with a sidecar
  ``instances/<id>.json`` (instance id -> class), and ``classes.json``.

All flavours write ``splits.json``, so they are read exactly like user data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["FLAVOURS", "render_sample", "write_synthetic_dataset"]

FLAVOURS = ("multiclass", "binary", "instance")
CLASS_NAMES = ("background", "disc", "square", "triangle")
CLASS_COLORS = ((0, 0, 0), (230, 80, 60), (60, 200, 90), (60, 90, 230))


def _shape_mask(cls: int, cy: float, cx: float, r: float, yy: np.ndarray, xx: np.ndarray
                ) -> np.ndarray:
    if cls == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    if cls == 2:
        return (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
    top = cy - r
    return (yy >= top) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - top) * 0.6)


def render_sample(rng: np.random.Generator, size: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """One image ``uint8 (H, W, 3)``, its instance ids ``uint16 (H, W)``, and id -> class."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # background: low-frequency blotches + fine noise
    coarse = rng.normal(0, 1, (h // 16 + 2, w // 16 + 2)).astype(np.float32)
    blotch = np.kron(coarse, np.ones((16, 16), np.float32))[:h, :w]
    base = 0.4 + 0.06 * blotch + rng.normal(0, 0.04, (h, w)).astype(np.float32)
    image = np.repeat(base[..., None], 3, axis=-1)
    inst = np.zeros((h, w), np.uint16)
    classes: dict[int, int] = {}
    plan = [1] * int(rng.integers(3, 7)) + [2] * int(rng.integers(0, 3))
    plan += [3] * int(rng.random() < 0.5)
    rng.shuffle(plan)
    placed: list[tuple[float, float, float]] = []
    for k, cls in enumerate(plan, start=1):
        r = float(rng.uniform(4, 7) if cls == 3 else rng.uniform(5, 11)) * min(h, w) / 96
        if placed and rng.random() < 0.35:  # touch an earlier object
            py, px, pr = placed[int(rng.integers(len(placed)))]
            angle = rng.uniform(0, 2 * np.pi)
            cy, cx = py + (pr + r) * np.sin(angle), px + (pr + r) * np.cos(angle)
        else:
            cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        region = _shape_mask(cls, cy, cx, r, yy, xx)
        if not region.any():
            continue
        placed.append((cy, cx, r))
        inst[region] = k
        classes[k] = cls
        if cls == 1:
            tone = np.array([0.95, 0.75, 0.7], np.float32) + rng.normal(0, 0.02, 3)
            image[region] = tone
        elif cls == 2:
            stripes = 0.6 + 0.15 * np.sign(np.sin(xx[region] * 1.3))
            image[region] = stripes[:, None] * np.array([0.8, 1.0, 0.8], np.float32)
        else:
            speckle = 0.15 + rng.normal(0, 0.06, int(region.sum())).astype(np.float32)
            image[region] = speckle[:, None] * np.array([0.8, 0.9, 1.6], np.float32)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    # objects painted over entirely are gone: renumber the rest 1..N
    present = [int(i) for i in np.unique(inst) if i > 0]
    lut = np.zeros(len(plan) + 1, np.uint16)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    inst = lut[inst]
    classes = {int(lut[i]): classes[i] for i in present}
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), inst, classes


def write_synthetic_dataset(
    out_dir: str | Path,
    *,
    flavour: str = "multiclass",
    num_images: int = 64,
    size: tuple[int, int] = (96, 96),
    seed: int = 0,
    val_fraction: float = 0.25,
) -> Path:
    """Write the synthetic dataset as PNG files; the same seed writes the same bytes.

    Args:
        out_dir: folder to create (may exist; files of the same names are overwritten).
        flavour: ``"multiclass"``, ``"binary"`` or ``"instance"`` (see the module docstring).
        num_images: number of images (>= 2).
        size: ``(H, W)`` of each image.
        seed: the random seed.
        val_fraction: share of images listed as ``val`` in ``splits.json``.

    Returns:
        ``out_dir`` as a ``Path``, ready for :func:`segwise.data.discover_dataset`.
    """
    from PIL import Image

    if flavour not in FLAVOURS:
        raise ValueError(f"flavour={flavour!r} is not valid; expected one of {FLAVOURS}")
    if num_images < 2:
        raise ValueError(f"num_images={num_images!r} is not valid; expected >= 2")
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f"size={size!r} is not valid; expected at least (16, 16)")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    label_dir = out / ("instances" if flavour == "instance" else "masks")
    label_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"synth_{i:04d}" for i in range(num_images)]
    for sid in ids:
        image, inst, classes = render_sample(rng, (h, w))
        Image.fromarray(image).save(out / "images" / f"{sid}.png")
        if flavour == "instance":
            Image.fromarray(inst).save(label_dir / f"{sid}.png")
            (label_dir / f"{sid}.json").write_text(
                json.dumps({str(k): v for k, v in sorted(classes.items())}))
            continue
        lut = np.zeros(int(inst.max()) + 1, np.uint8)
        for k, c in classes.items():
            lut[k] = c
        semantic = lut[inst]
        if flavour == "binary":
            semantic = np.where(semantic > 0, 255, 0).astype(np.uint8)
        Image.fromarray(semantic).save(label_dir / f"{sid}.png")
    if flavour != "binary":
        (out / "classes.json").write_text(json.dumps(
            {"names": list(CLASS_NAMES), "colors": [list(c) for c in CLASS_COLORS]}, indent=1))
    n_val = max(1, round(num_images * val_fraction))
    (out / "splits.json").write_text(
        json.dumps({"train": ids[n_val:], "val": ids[:n_val]}, indent=1))
    return out

"""Class tables: ``classes.json`` files, known layouts (CamVid), and default colours.

``classes.json`` (at the dataset root) may be either

- ``{"names": [...], "colors": [[r, g, b], ...], "ignore_index": 255, "ignore_color": [r, g, b]}``
  (``colors``, ``ignore_index`` and ``ignore_color`` optional), or
- ``{"classes": [{"id": 0, "name": "background", "color": [0, 0, 0]}, ...], ...}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from segwise.labels import palette

__all__ = [
    "CAMVID_CLASSES",
    "ClassTable",
    "default_colors",
    "load_classes_file",
]

Color = tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """Names and colours of the classes (index = class), plus the ignore label if any."""

    names: tuple[str, ...]
    colors: tuple[Color, ...]
    ignore_index: int | None
    ignore_color: Color | None
    source: str


#: CamVid (SegNet tutorial version): 11 classes, 11 = void (ignored).
CAMVID_CLASSES = ClassTable(
    names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist"),
    colors=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
            (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
            (0, 128, 192)),
    ignore_index=11,
    ignore_color=(0, 0, 0),
    source="known layout: CamVid (SegNet version)",
)


def default_colors(n: int) -> tuple[Color, ...]:
    """The default class colours: :func:`segwise.labels.palette` (the one palette policy)."""
    return palette(n)


def _color(value: object, where: str) -> Color:
    if not (isinstance(value, list | tuple) and len(value) == 3
            and all(isinstance(v, int) and 0 <= v <= 255 for v in value)):
        raise ValueError(f"{where}: colour {value!r} is not [r, g, b] with integers 0..255")
    return (int(value[0]), int(value[1]), int(value[2]))


def load_classes_file(path: str | Path) -> ClassTable:
    """Read a ``classes.json`` file (see the module docstring for the two accepted forms).

    Raises:
        ValueError: naming the file and the bad entry.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read class table {path}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'names' or 'classes'")
    if "classes" in data:
        entries = sorted(data["classes"], key=lambda e: int(e["id"]))
        ids = [int(e["id"]) for e in entries]
        if ids != list(range(len(ids))):
            raise ValueError(f"{path}: class ids must be 0..N-1 without gaps, got {ids}")
        names = [str(e["name"]) for e in entries]
        raw_colors = [e.get("color") for e in entries]
    elif "names" in data:
        names = [str(n) for n in data["names"]]
        raw_colors = data.get("colors") or [None] * len(names)
    else:
        raise ValueError(f"{path}: expected a key 'names' or 'classes'")
    if len(raw_colors) != len(names):
        raise ValueError(f"{path}: {len(names)} names but {len(raw_colors)} colours")
    fallback = default_colors(len(names))
    colors = tuple(
        fallback[i] if c is None else _color(c, f"{path} class {i}")
        for i, c in enumerate(raw_colors)
    )
    ignore_index = data.get("ignore_index")
    if ignore_index is not None and not isinstance(ignore_index, int):
        raise ValueError(f"{path}: ignore_index={ignore_index!r} must be an integer or null")
    ignore_color = data.get("ignore_color")
    return ClassTable(
        names=tuple(names),
        colors=colors,
        ignore_index=ignore_index,
        ignore_color=None if ignore_color is None else _color(ignore_color, f"{path} ignore"),
        source=path.name,
    )

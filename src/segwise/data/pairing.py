"""Finding image/mask pairs in the supported folder layouts, and splitting them.

Layouts (checked in this order):

- a pairs file (``.csv`` with columns ``image,mask[,split]``, or ``.txt`` with two paths per line),
  paths relative to the file's folder;
- ``ROOT/train`` + ``ROOT/trainannot`` (+ ``val``/``valannot``), CamVid style;
- ``ROOT/images`` + ``ROOT/instances`` (instance-label images, like dsb2018);
- ``ROOT/images`` + ``ROOT/annotations.json`` (or ``ROOT/annotations/*.json``): COCO;
- ``ROOT/images`` + ``ROOT/masks`` (or ``labels``, ``annotations``): paired by file stem; a mask
  may be ``<stem>.<ext>``, ``<stem>_mask.<ext>``, ``<stem>_label.<ext>`` or a folder ``<stem>/``
  holding several annotators' masks.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segwise.data.formats import IMAGE_SUFFIXES, MASK_SUFFIXES
from segwise.data.info import Problem, Sample, Severity

__all__ = ["Layout", "find_layout", "split_samples"]

_MASK_DIRS = ("masks", "labels", "annotations")
_MASK_SUFFIX_TAGS = ("", "_mask", "_label", "_gt")
#: Files that may sit next to images and masks without being either (sidecars, listings).
_SIDECAR_SUFFIXES = (".json", ".txt", ".csv", ".md", ".yaml", ".yml")


@dataclass
class Layout:
    """What :func:`find_layout` found: the pairs, and any split the layout itself defines."""

    name: str
    samples: list[Sample]
    fixed_split: dict[str, set[str]] | None = None  # "train"/"val" -> ids, from folders or file
    problems: list[Problem] = field(default_factory=list)
    unpaired: list[Path] = field(default_factory=list)
    coco_file: Path | None = None


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def _unsupported(folder: Path, suffixes: tuple[str, ...], what: str,
                 layout: Layout) -> dict[str, Path]:
    """Files in ``folder`` that are neither ``suffixes`` nor sidecars, reported; by stem."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if (not p.is_file() or p.name.startswith(".") or p.suffix.lower() in suffixes
                or p.suffix.lower() in _SIDECAR_SUFFIXES):
            continue
        found[p.stem] = p
        layout.unpaired.append(p)
        layout.problems.append(Problem(
            Severity.WARNING, "unsupported_file", str(p),
            f"{p.suffix or 'no extension'} is not a supported {what} format "
            f"({', '.join(suffixes)}); this file is left out (convert it to PNG)"))
    return found


def _pair_by_stem(image_dir: Path, mask_dir: Path, layout: Layout, *, allow_dirs: bool) -> None:
    images = _files(image_dir, IMAGE_SUFFIXES)
    _unsupported(image_dir, IMAGE_SUFFIXES, "image", layout)
    odd_masks = _unsupported(mask_dir, MASK_SUFFIXES, "mask", layout)
    masks: dict[str, Path] = {}
    for p in sorted(mask_dir.iterdir()):
        if (p.is_file() and p.suffix.lower() in MASK_SUFFIXES) or (allow_dirs and p.is_dir()):
            stem = p.stem if p.is_file() else p.name
            if stem in masks:
                layout.problems.append(Problem(
                    Severity.ERROR, "duplicate_mask", str(p),
                    f"two masks share the stem {stem!r} ({masks[stem].name}, {p.name}); "
                    "keep one of them"))
            masks[stem] = p
    folded: dict[str, list[str]] = {}
    for stem in masks:
        folded.setdefault(stem.casefold(), []).append(stem)
    seen: dict[str, Path] = {}
    used: set[str] = set()
    for img in images:
        if img.stem in seen:
            layout.problems.append(Problem(
                Severity.ERROR, "duplicate_image", str(img),
                f"two images share the stem {img.stem!r} ({seen[img.stem].name}, {img.name}); "
                "rename or remove one"))
            continue
        seen[img.stem] = img
        match = next((img.stem + tag for tag in _MASK_SUFFIX_TAGS if img.stem + tag in masks),
                     None)
        if match is None:
            match = _match_ignoring_case(img, folded, used, layout)
        if match is None:
            layout.unpaired.append(img)
            odd = next((odd_masks[img.stem + t] for t in _MASK_SUFFIX_TAGS
                        if img.stem + t in odd_masks), None)
            reason = (f"its mask {odd} has an unsupported format ({odd.suffix})" if odd else
                      f"no mask named {img.stem}.* (or {img.stem}_mask.*, _label.*, _gt.*) "
                      f"in {mask_dir}")
            layout.problems.append(Problem(
                Severity.WARNING, "image_without_mask", str(img),
                f"{reason}; this image is left out"))
            continue
        used.add(match)
        layout.samples.append(Sample(img.stem, img, masks[match]))
    for stem, p in masks.items():
        if stem not in used:
            layout.unpaired.append(p)
            layout.problems.append(Problem(
                Severity.WARNING, "mask_without_image", str(p),
                f"no image named {stem}.* in {image_dir}; this mask is left out"))


def _match_ignoring_case(img: Path, folded: dict[str, list[str]], used: set[str],
                         layout: Layout) -> str | None:
    """A mask whose stem equals the image's except for letter case, if there is exactly one."""
    for tag in _MASK_SUFFIX_TAGS:
        candidates = [c for c in folded.get((img.stem + tag).casefold(), []) if c not in used]
        if len(candidates) == 1:
            layout.problems.append(Problem(
                Severity.INFO, "paired_ignoring_case", str(img),
                f"paired with mask {candidates[0]}.* although the names differ in letter case"))
            return candidates[0]
    return None


def _read_pairs_file(path: Path) -> Layout:
    layout = Layout("pairs-file", [])
    base = path.parent
    split: dict[str, set[str]] = {"train": set(), "val": set()}
    has_split = False
    with path.open(newline="") as fh:
        if path.suffix.lower() == ".csv":
            rows = list(csv.reader(fh))
        else:
            rows = [line.split() for line in fh if line.strip() and not line.startswith("#")]
    if rows and rows[0] and rows[0][0].strip().lower() in ("image", "image_path"):
        rows = rows[1:]
    for n, row in enumerate(rows, start=1):
        row = [c.strip() for c in row]
        if len(row) < 2:
            raise ValueError(f"{path} line {n}: expected 'image,mask[,split]', got {row!r}")
        img, mask = base / row[0], base / row[1]
        missing = [p for p in (img, mask) if not p.exists()]
        if missing:
            layout.unpaired.extend(p for p in (img, mask) if p.exists())
            layout.problems.append(Problem(
                Severity.WARNING, "missing_file", str(missing[0]),
                f"listed in {path.name} line {n} but not found; this pair is left out"))
            continue
        layout.samples.append(Sample(img.stem, img, mask))
        if len(row) >= 3 and row[2]:
            if row[2] not in split:
                raise ValueError(f"{path} line {n}: split {row[2]!r} is not 'train' or 'val'")
            split[row[2]].add(img.stem)
            has_split = True
    if has_split:
        layout.fixed_split = split
    return layout


def find_layout(root: Path) -> Layout:
    """Find the pairs under ``root`` (a folder or a pairs file).

    Raises:
        FileNotFoundError: when ``root`` does not exist.
        ValueError: when no supported layout is found, saying which ones are supported.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset not found: {root}")
    if root.is_file():
        if root.suffix.lower() in (".csv", ".txt"):
            return _read_pairs_file(root)
        raise ValueError(f"{root}: a pairs file must be .csv or .txt")
    if (root / "train").is_dir() and (root / "trainannot").is_dir():
        layout = Layout("camvid", [], fixed_split={"train": set(), "val": set()})
        for part in ("train", "val"):
            img_dir, ann_dir = root / part, root / f"{part}annot"
            if not img_dir.is_dir():
                continue
            if not ann_dir.is_dir():
                raise ValueError(f"{img_dir} exists but {ann_dir} does not; add the masks")
            before = len(layout.samples)
            _pair_by_stem(img_dir, ann_dir, layout, allow_dirs=False)
            layout.fixed_split[part] = {s.id for s in layout.samples[before:]}
        return layout
    images = root / "images"
    if not images.is_dir():
        raise ValueError(
            f"no supported layout in {root}: expected images/ with masks/ (or labels/, "
            "annotations/, instances/), train/ with trainannot/, or a pairs .csv file; "
            "see docs/data.md"
        )
    if (root / "instances").is_dir():
        layout = Layout("images+instances", [])
        _pair_by_stem(images, root / "instances", layout, allow_dirs=False)
        return layout
    coco = _find_coco(root)
    if coco is not None:
        return _coco_layout(images, coco)
    for name in _MASK_DIRS:
        if (root / name).is_dir():
            layout = Layout(f"images+{name}", [])
            _pair_by_stem(images, root / name, layout, allow_dirs=True)
            return layout
    raise ValueError(
        f"{root} has images/ but no masks/, labels/, annotations/, instances/ or "
        "annotations.json; add the masks in one of these (see docs/data.md)"
    )


def _find_coco(root: Path) -> Path | None:
    if (root / "annotations.json").is_file():
        return root / "annotations.json"
    ann = root / "annotations"
    if ann.is_dir():
        jsons = sorted(ann.glob("*.json"))
        others = [p for p in ann.iterdir() if p.suffix.lower() in MASK_SUFFIXES]
        if len(jsons) == 1 and not others:
            return jsons[0]
    return None


def _coco_layout(images: Path, coco: Path) -> Layout:
    layout = Layout("images+coco", [], coco_file=coco)
    data = json.loads(coco.read_text())
    listed = {Path(im["file_name"]).name for im in data.get("images", [])}
    for img in _files(images, IMAGE_SUFFIXES):
        if img.name in listed:
            layout.samples.append(Sample(img.stem, img, coco))
        else:
            layout.unpaired.append(img)
            layout.problems.append(Problem(
                Severity.WARNING, "image_without_mask", str(img),
                f"not listed in {coco.name}; this image is left out"))
    present = {p.name for p in images.iterdir()}
    for name in sorted(listed - present):
        layout.problems.append(Problem(
            Severity.WARNING, "mask_without_image", str(images / name),
            f"listed in {coco.name} but the image is missing; its annotations are left out"))
    return layout


def split_samples(
    samples: list[Sample],
    *,
    root: Path,
    fixed: dict[str, set[str]] | None,
    val_fraction: float,
    seed: int,
) -> tuple[list[Sample], list[Sample], str, list[Problem], list[Sample]]:
    """Split samples into train and val: ``splits.json`` > the layout's own split > seeded.

    ``splits.json`` may also list ``test`` ids (held out from training, for ``segwise evaluate
    --split test``); a file listing only ``test`` is valid (an evaluation-only dataset).

    The seeded split sorts ids, shuffles them with ``numpy.random.default_rng(seed)`` and puts
    ``round(n * val_fraction)`` (at least 1 when ``n >= 2`` and ``val_fraction > 0``) into val.

    Returns:
        ``(train, val, source, problems, test)``; samples in no split are reported, not
        dropped silently.
    """
    problems: list[Problem] = []
    splits_file = root / "splits.json" if root.is_dir() else None
    if splits_file is not None and splits_file.is_file():
        data = json.loads(splits_file.read_text())
        if not isinstance(data, dict) or not {"train", "val", "test"} & set(data):
            raise ValueError(f"{splits_file}: expected {{'train': [ids], 'val': [ids]}} "
                             "(and/or 'test': [ids])")
        fixed = {part: set(map(str, data.get(part, []))) for part in ("train", "val", "test")}
        source = "splits.json"
        known = {s.id for s in samples}
        for part, ids in fixed.items():
            for missing in sorted(ids - known)[:20]:
                problems.append(Problem(
                    Severity.WARNING, "split_id_missing", str(splits_file),
                    f"{part} id {missing!r} has no image/mask pair; it is skipped"))
    elif fixed is not None:
        source = "folders" if root.is_dir() else "pairs file"
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction!r} is not valid; expected [0, 1)")
        ids = sorted(s.id for s in samples)
        order = np.random.default_rng(seed).permutation(len(ids))
        n_val = round(len(ids) * val_fraction)
        if val_fraction > 0 and len(ids) >= 2:
            n_val = max(1, n_val)
        fixed = {"val": {ids[i] for i in order[:n_val]}, "train": {ids[i] for i in order[n_val:]}}
        source = f"seeded (val_fraction={val_fraction}, seed={seed})"
    overlap = fixed["train"] & fixed["val"]
    if overlap:
        raise ValueError(
            f"ids in both train and val ({source}): {sorted(overlap)[:5]}; fix the split"
        )
    test_ids = fixed.get("test", set())
    clash = (fixed["train"] | fixed["val"]) & test_ids
    if clash:
        raise ValueError(
            f"ids in test and in train or val ({source}): {sorted(clash)[:5]}; fix the split"
        )
    train = sorted((s for s in samples if s.id in fixed["train"]), key=lambda s: s.id)
    val = sorted((s for s in samples if s.id in fixed["val"]), key=lambda s: s.id)
    test = sorted((s for s in samples if s.id in test_ids), key=lambda s: s.id)
    for s in samples:
        if s.id not in fixed["train"] and s.id not in fixed["val"] and s.id not in test_ids:
            problems.append(Problem(
                Severity.WARNING, "not_in_split", str(s.image_path),
                f"in neither the train nor the val list ({source}); it is left out"))
    return train, val, source, problems, test

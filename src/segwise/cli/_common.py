"""Pieces shared by the verbs (output-path safety)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["check_new_path", "evaluation_inputs"]


def check_new_path(path: Path, *, overwrite: bool, what: str) -> None:
    """Refuse to overwrite an existing file or non-empty folder unless ``overwrite``."""
    exists = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if exists and not overwrite:
        raise FileExistsError(
            f"{what} {path} already exists; choose another path or pass --overwrite"
        )


def evaluation_inputs(args: Any) -> tuple[Any, list[Any], Path]:
    """What ``segwise evaluate`` needs, for semantic and instance checkpoints alike.

    Loads ``args.checkpoint``, refuses an existing report folder (unless ``args.overwrite``),
    finds ``args.data`` with the checkpoint's classes and picks ``args.split``.

    Returns:
        ``(loaded run, samples of the split, report folder)``.

    Raises:
        FileNotFoundError: ``args.data`` is not a folder.
        FileExistsError: the report folder holds files.
        ValueError: the split is empty or the data has more classes than the checkpoint.
    """
    from segwise.data import discover_dataset
    from segwise.engine.checkpoint import load_run

    loaded = load_run(args.checkpoint, device=args.device)
    info = loaded.info
    root = Path(args.data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root} is not a folder")
    out = Path(args.out) if args.out else (
        loaded.checkpoint.parent / f"eval-{root.resolve().name}-{args.split}"
    )
    check_new_path(out, overwrite=args.overwrite, what="report folder")
    index = discover_dataset(
        root,
        mask_kind=info.mask_kind,
        ignore_index=info.ignore_index,
        num_classes=info.num_classes,
        class_names=list(info.class_names),
    )
    splits = {"val": index.val, "train": index.train, "all": [*index.train, *index.val]}
    samples = splits[args.split]
    if not samples:
        raise ValueError(f"--data {root} has no images in split {args.split!r}; try --split all")
    if index.info.num_classes > info.num_classes:
        raise ValueError(
            f"--data {root} has {index.info.num_classes} classes but the checkpoint was trained "
            f"on {info.num_classes} ({list(info.class_names)})"
        )
    return loaded, samples, out

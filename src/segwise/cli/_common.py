"""Pieces shared by the verbs: output-path safety, checkpoint paths, the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "check_new_folder",
    "check_new_path",
    "console",
    "evaluation_inputs",
    "resolve_checkpoint",
]


def console() -> Any:
    """A rich console that does not wrap lines mid-phrase when stdout is not a terminal.

    In a terminal rich fits the window; in a log file or pipe it would wrap at 80 columns,
    so there text is not wrapped (``soft_wrap``) and tables get 200 columns.
    """
    import sys

    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=200, soft_wrap=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """``--checkpoint``: a run folder gives its ``best.pt``
    (:func:`segwise.runs.checkpoint.run_checkpoint`); a file path is returned as it is."""
    from segwise.runs.checkpoint import run_checkpoint

    return run_checkpoint(path, flag="--checkpoint")


def check_new_folder(path: Path, *, flag: str = "--out") -> None:
    """Refuse an output folder path that names an existing file."""
    if path.is_file():
        raise FileExistsError(
            f"{flag} {path} is an existing file; outputs are written into a folder: name a "
            "folder (new or existing) instead"
        )


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
    finds ``args.data`` with the checkpoint's classes and picks ``args.split`` as
    :func:`segwise.evaluate` does (:func:`segwise.api.evaluation_samples`: the held-out share
    drawn with the run's own ``val_fraction`` and seed).

    Returns:
        ``(loaded run, samples of the split, report folder)``.

    Raises:
        FileNotFoundError: ``args.data`` is not a folder.
        FileExistsError: the report folder holds files.
        ValueError: the split is empty or the data has more classes than the checkpoint.
    """
    from segwise.api import EvalSplit, evaluation_samples
    from segwise.runs.checkpoint import load_run

    loaded = load_run(args.checkpoint, device=args.device)
    root = Path(args.data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root} is not a folder")
    out = Path(args.out) if args.out else (
        loaded.checkpoint.parent / f"eval-{root.resolve().name}-{args.split}"
    )
    check_new_folder(out)
    check_new_path(out, overwrite=args.overwrite, what="report folder")
    samples = evaluation_samples(loaded, root, EvalSplit(args.split), where=f"--data {root}")
    return loaded, samples, out

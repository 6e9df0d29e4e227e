"""Pieces shared by the verbs (output-path safety)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_new_path"]


def check_new_path(path: Path, *, overwrite: bool, what: str) -> None:
    """Refuse to overwrite an existing file or non-empty folder unless ``overwrite``."""
    exists = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if exists and not overwrite:
        raise FileExistsError(
            f"{what} {path} already exists; choose another path or pass --overwrite"
        )

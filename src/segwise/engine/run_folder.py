"""The run folder's rules: which folders a new run may use, and one writer at a time.

- A new run needs a new or empty folder, or one left by a run that stopped before its first
  checkpoint (only files segwise itself writes, and no ``last.pt``): such a folder is cleared
  and reused, so a run that failed at start-up can simply be started again.
- A lock file (``RUN/.lock``, holding the writer's process id) keeps two processes (a
  forgotten run and a ``--resume``) from writing one folder; a lock whose process is gone is
  taken over.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = [
    "LOCK_NAME",
    "RUN_FILES",
    "RunFolderLock",
    "check_new_run_folder",
    "check_resumable",
    "interrupted_message",
]

LOCK_NAME = ".lock"

#: What a run writes into its folder (anything else is the user's and is never touched).
RUN_FILES = frozenset({
    "config.yaml", "data_info.json", "model_args.json", "metrics.jsonl", "metrics.csv",
    "curves.png", "overlays.png", "tensorboard", "last.pt", "best.pt", LOCK_NAME,
})


#: Files only a segwise run writes: a folder is cleared for reuse only if it holds one of them.
_RUN_MARKS = frozenset({"data_info.json", "model_args.json", "metrics.jsonl", "last.pt", "best.pt",
                        LOCK_NAME})


def check_new_run_folder(run_dir: Path, *, clear: bool = True) -> None:
    """Make ``run_dir`` ready for a new run, or refuse with what to do instead.

    Args:
        run_dir: the run folder.
        clear: remove what a run that never saved a checkpoint left (False on the non-main
            processes of a multi-process run: they only check).

    Raises:
        FileExistsError: the folder holds a checkpoint (``--resume`` it) or files segwise did
            not write (choose another ``--out``).
    """
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    names = {p.name for p in run_dir.iterdir()}
    foreign = sorted(n for n in names if n not in RUN_FILES and not n.endswith(".tmp"))
    if not foreign and not names & _RUN_MARKS:
        foreign = sorted(names)  # e.g. the user's own config.yaml: nothing proves segwise wrote it
    if foreign:
        raise FileExistsError(
            f"run folder {run_dir} already holds files that are not a segwise run "
            f"({', '.join(foreign[:3])}); pass a new --out"
        )
    if "last.pt" in names:
        raise FileExistsError(
            f"run folder {run_dir} already holds a run (last.pt); continue it with "
            f"--resume {run_dir}, or pass a new --out"
        )
    if "best.pt" in names:
        raise FileExistsError(
            f"run folder {run_dir} already holds a trained model (best.pt); pass a new --out"
        )
    for name in names if clear else ():  # a run that stopped before its first checkpoint
        if name == LOCK_NAME:
            continue
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunFolderLock:
    """``RUN/.lock`` while a process writes the run (a context manager).

    Args:
        run_dir: the run folder (created if missing).
        enabled: False on non-main processes of a multi-process run (they write nothing).

    Raises:
        FileExistsError: another live process holds the lock (the message names its pid).
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True) -> None:
        self.path = run_dir / LOCK_NAME
        self.enabled = enabled
        self.held = False

    def __enter__(self) -> RunFolderLock:
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise FileExistsError(
                        f"run folder {self.path.parent} is being written by process {pid}; "
                        f"wait for it or stop it. If no such run is going on, delete {self.path}"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise FileExistsError(f"cannot lock {self.path}; delete it if no run is going on")

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def check_resumable(run_dir: Path) -> None:
    """Raise ``FileNotFoundError`` saying why ``run_dir`` cannot be resumed, if it cannot."""
    if (run_dir / "last.pt").is_file():
        return
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--resume {run_dir}: no such run folder")
    raise FileNotFoundError(
        f"--resume {run_dir}: the run stopped before its first epoch was saved (no last.pt), "
        f"so there is nothing to continue; start it again with --out {run_dir} (the folder "
        "is reused)"
    )


def interrupted_message(run_dir: Path, state: Any) -> str:
    """What Ctrl-C left behind and how to go on (``state``: the trainer's, or None)."""
    if state is None or state.epoch == 0:
        return (
            f"interrupted before the first epoch was saved: nothing to resume. Start again "
            f"with --out {run_dir} (the folder is reused)."
        )
    best = f", best.pt is epoch {state.best_epoch}" if state.best_epoch is not None else ""
    # state.step is the live step (mid-epoch); last.pt holds the step of the last saved epoch
    saved = state.history[-1].get("step", state.step) if state.history else state.step
    return (
        f"interrupted in epoch {state.epoch + 1}: {run_dir / 'last.pt'} holds epoch "
        f"{state.epoch} (step {saved}){best}. Continue with: "
        f"segwise train --resume {run_dir}"
    )

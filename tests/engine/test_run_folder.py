"""Run folders: reuse after a failed start, refusal with the way out, one writer at a time."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from segwise.engine.run_folder import (
    RunFolderLock,
    check_new_run_folder,
    check_resumable,
    interrupted_message,
)


def test_folder_of_a_failed_start_is_cleared_and_reused(tmp_path):
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    (run / "tensorboard" / "events.out").write_text("x")
    for name in ("config.yaml", "data_info.json", "model_args.json"):
        (run / name).write_text("x")
    check_new_run_folder(run)
    assert run.is_dir() and not any(run.iterdir())


def test_folder_with_a_checkpoint_or_foreign_files_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"already holds a run \(last.pt\).*--resume"):
        check_new_run_folder(run)
    (run / "last.pt").unlink()
    (run / "best.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="trained model"):
        check_new_run_folder(run)
    (run / "best.pt").unlink()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"not a segwise run \(notes.txt\)"):
        check_new_run_folder(run)
    assert (run / "notes.txt").read_text() == "mine"


def test_users_own_config_alone_is_never_cleared(tmp_path):
    """`--config my_run/config.yaml --out my_run`: a config.yaml with no file that only a run
    writes may be the user's own; refused by name, never deleted."""
    run = tmp_path / "my_run"
    run.mkdir()
    (run / "config.yaml").write_text("mine")
    with pytest.raises(FileExistsError, match=r"not a segwise run \(config.yaml\)"):
        check_new_run_folder(run)
    assert (run / "config.yaml").read_text() == "mine"


def test_resume_without_last_pt_says_to_start_again(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        check_resumable(tmp_path / "missing")
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no last.pt.*start it again with --out"):
        check_resumable(tmp_path / "run")


def test_lock_refuses_a_live_writer_and_takes_over_a_stale_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{os.getppid()}\n")  # our parent: alive, not us
    lock = RunFolderLock(run)
    with pytest.raises(FileExistsError, match=f"being written by process {os.getppid()}"):
        lock.__enter__()
    assert not lock.held
    (run / ".lock").write_text("999999999\n")  # no such process
    with RunFolderLock(run):
        assert (run / ".lock").read_text().strip() == str(os.getpid())
    assert not (run / ".lock").exists()


def test_interrupted_messages(tmp_path):
    assert "nothing to resume" in interrupted_message(tmp_path, None)
    # live step 35 (mid-epoch 4); last.pt holds epoch 3's last record, step 30
    state = SimpleNamespace(epoch=3, step=35, best_epoch=2,
                            history=[{"epoch": 2, "step": 20}, {"epoch": 3, "step": 30}])
    text = interrupted_message(tmp_path, state)
    assert "interrupted in epoch 4" in text and "holds epoch 3 (step 30)" in text
    assert "best.pt is epoch 2" in text and f"segwise train --resume {tmp_path}" in text

from __future__ import annotations

import os

import pytest
import torch

from segwise.runs.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    state_digest,
)


def _payload():
    return {
        "config": {"train": {"epochs": 1}},
        "data_info": {"num_classes": 2},
        "model_args": {"name": "unet"},
        "model": {
            "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
            "b": torch.zeros(2),
            "n": torch.tensor(7),  # 0-d buffers (BatchNorm num_batches_tracked)
            "h": torch.ones(2, dtype=torch.bfloat16),
        },
    }


def test_round_trip_and_digest(tmp_path):
    path = save_checkpoint(tmp_path / "run" / "last.pt", _payload())
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt["model"]["w"], _payload()["model"]["w"])
    assert ckpt["format_version"] == FORMAT_VERSION
    assert ckpt["model_digest"] == state_digest(_payload()["model"])
    # no temporary files are left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_digest_sees_any_change():
    a = _payload()["model"]
    b = _payload()["model"]
    b["w"][0, 0] = 0.5
    assert state_digest(a) != state_digest(b)
    c = {"w": a["w"].double(), "b": a["b"]}
    assert state_digest(a) != state_digest(c)


def test_tampered_weights_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["w"] += 1
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="do not match their recorded SHA-256"):
        load_checkpoint(path)


def test_unknown_version_and_foreign_files(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    ckpt = torch.load(path, weights_only=True)
    ckpt["format_version"] = FORMAT_VERSION + 1
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError,
                       match=f"format version {FORMAT_VERSION + 1}.*Upgrade segwise"):
        load_checkpoint(path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a segwise checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_objects_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "segwise-checkpoint", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(path)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(path)

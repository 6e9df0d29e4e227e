"""Messages that point at the file and the flag, and small truths (issue 31, items 3 and 4)."""

from __future__ import annotations

import os
import stat

import pytest

from segwise.cli.main import main
from segwise.engine.callbacks import TrainingState
from segwise.engine.run_folder import interrupted_message

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def binary_run(tiny_binary, tmp_path_factory, fast_flags):
    run = tmp_path_factory.mktemp("i31") / "run"
    code = main(["train", "--data", str(tiny_binary), "--out", str(run), *fast_flags,
                 "--epochs", "1", "--device", "cpu", "--batch-size", "4", "--crop-size", "48",
                 "--workers", "0", "--quiet"])
    assert code == 0
    return run


def test_export_takes_a_run_folder(binary_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(binary_run), "--out", str(out)]) == 0
    assert out.is_file() and "verified" in capsys.readouterr().out


def test_evaluate_on_other_data_names_the_checkpoints_data(binary_run, tiny_multiclass,
                                                          tiny_binary, capsys):
    code = main(["evaluate", "--checkpoint", str(binary_run), "--data", str(tiny_multiclass),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not read as the data the checkpoint was trained on: task binary, 2 classes" in err
    assert str(tiny_binary) in err and "binary masks" in err


def test_resume_with_epochs_is_refused_with_the_way(binary_run, capsys):
    before = (binary_run / "last.pt").stat().st_mtime_ns
    code = main(["train", "--resume", str(binary_run), "--epochs", "5"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--epochs cannot change it" in err and "start a new run" in err
    assert (binary_run / "last.pt").stat().st_mtime_ns == before


def test_checkpoints_have_the_permissions_of_the_other_files(binary_run):
    config = stat.S_IMODE((binary_run / "config.yaml").stat().st_mode)
    for name in ("best.pt", "last.pt"):
        assert stat.S_IMODE((binary_run / name).stat().st_mode) == config, name
    mask = os.umask(0)
    os.umask(mask)
    assert config == 0o666 & ~mask


def test_ctrl_c_names_the_saved_step_not_the_live_one(tmp_path):
    state = TrainingState(epoch=1, step=5, best_epoch=1, history=[{"epoch": 1, "step": 2}])
    text = interrupted_message(tmp_path, state)  # stopped at step 5, in epoch 2
    assert f"{tmp_path / 'last.pt'} holds epoch 1 (step 2), best.pt is epoch 1" in text


def test_nonfinite_flag_reaches_discovery(tiny_binary, fast_flags, monkeypatch, tmp_path):
    import segwise.data
    from segwise.cli.main import build_parser
    from segwise.cli.train import config_dict_from_args

    args = build_parser().parse_args(["train", "--data", str(tiny_binary), "--nonfinite",
                                      "ignore", *fast_flags])
    assert config_dict_from_args(args)["data"]["nonfinite"] == "ignore"
    seen = {}

    def discover(root, **options):
        seen.update(options)
        raise ValueError("stop here")

    monkeypatch.setattr(segwise.data, "discover_dataset", discover)
    assert main(["train", "--data", str(tiny_binary), "--nonfinite", "ignore",
                 "--out", str(tmp_path / "r"), *fast_flags]) == 2
    assert seen["nonfinite"] == "ignore" and not (tmp_path / "r").exists()


def test_distance_metric_reaches_the_boundary_metrics(binary_run, tiny_binary, monkeypatch,
                                                      tmp_path):
    import segwise.metrics

    real, seen = segwise.metrics.BoundaryMetrics, []

    def boundary(*args, **kwargs):
        seen.append(kwargs["distance_metric"])
        return real(*args, **kwargs)

    monkeypatch.setattr(segwise.metrics, "BoundaryMetrics", boundary)
    assert main(["evaluate", "--checkpoint", str(binary_run), "--data", str(tiny_binary),
                 "--metrics", "dice,hd95", "--distance-metric", "chessboard", "--device", "cpu",
                 "--out", str(tmp_path / "e")]) == 0
    assert seen == ["chessboard"]

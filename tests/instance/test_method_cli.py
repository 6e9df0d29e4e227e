"""Every registered instance method through the command line: train (stopped after epoch 1)
-> resume -> evaluate -> predict, on tiny synthetic data."""

from __future__ import annotations

import json

import pytest

from segwise.cli.main import main
from segwise.instance.methods import INSTANCE_METHODS

from .conftest import tiny_options

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_instance(tmp_path_factory):
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_instance_methods")
    return write_synthetic_dataset(
        root / "data", flavour="instance", num_images=6, size=(48, 48), seed=1
    )


@pytest.mark.parametrize("method", INSTANCE_METHODS.names())
def test_train_resume_evaluate_predict(method, tiny_instance, tmp_path, capsys):
    from segwise.engine.config import config_from_dict
    from segwise.engine.trainer import fit

    run = tmp_path / "run"
    # a run stopped after epoch 1 (as an interrupted one is), resumed by the CLI
    config = config_from_dict({
        "model": {"name": method, "encoder": "resnet18", "options": tiny_options(method)},
        "data": {"root": str(tiny_instance), "crop_size": 48, "batch_size": 2, "workers": 0},
        "train": {"task": "instance", "epochs": 2, "device": "cpu", "max_steps_per_epoch": 1},
    })
    assert len(fit(config, run, stop_after_epoch=1, quiet=True).history) == 1
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    assert "\nderived   " in capsys.readouterr().out  # what the data decided, in the banner
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "epoch" in r][-2:] == [1, 2]
    assert {"val_dsb_score", "val_ap50", "val_pq"} <= set(records[-1])
    args = json.loads((run / "model_args.json").read_text())
    assert args["kind"] == "instance" and args["method"] == method
    # evaluate and predict decode as validation did (the stored options)
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_instance),
                 "--out", str(out), "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["summary"]["dsb_score"] <= 1.0
    images = sorted((tiny_instance / "images").iterdir())[:2]
    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "last.pt"), *map(str, images),
                 "--out", str(pred), "--device", "cpu"]) == 0
    for img in images:
        listed = json.loads((pred / f"{img.stem}_instances.json").read_text())
        assert (listed["height"], listed["width"]) == (48, 48)

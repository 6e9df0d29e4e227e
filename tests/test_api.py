"""The Python front door: ``segwise.train`` -> ``segwise.evaluate`` -> ``segwise.load_predictor``.

One tiny real run (the fast textbook U-Net, one epoch on 12 synthetic 48x48 images, CPU) is
scored through the front door and checked against what the run recorded and what
``segwise evaluate`` reports for the same checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import segwise

FRONT_DOOR = ("train", "evaluate", "load_predictor")


def test_front_door_names_resolve_and_are_listed():
    import segwise.api

    for name in FRONT_DOOR:
        assert name in segwise.__all__
        assert name in dir(segwise)
        assert getattr(segwise, name) is getattr(segwise.api, name)
        assert callable(getattr(segwise, name))


@pytest.fixture(scope="module")
def trained(tiny_multiclass, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "run"
    result = segwise.train(
        tiny_multiclass, model="unet_textbook", model_options={"base_width": 8, "depth": 3},
        epochs=1, crop_size=48, batch_size=4, workers=0, device="cpu", out=out, quiet=True,
    )
    return result


def test_train_returns_the_run(trained):
    assert trained.run_dir.is_dir()
    assert (trained.run_dir / "best.pt").is_file()
    assert trained.best_epoch == 1
    assert 0.0 <= trained.best_score <= 1.0


def test_evaluate_gives_the_runs_score_and_the_clis(trained, tiny_multiclass, tmp_path, capsys):
    from segwise.cli.main import main

    result = segwise.evaluate(trained.run_dir, tiny_multiclass, device="cpu")  # a run folder
    summary = result.summary()
    # the run's best score is its validation mean Dice on the same val images
    assert summary["mean_dice"] == pytest.approx(trained.best_score, abs=1e-6)
    assert main(["evaluate", "--checkpoint", str(trained.run_dir / "best.pt"),
                 "--data", str(tiny_multiclass), "--out", str(tmp_path / "eval"), "--json",
                 "--device", "cpu"]) == 0
    cli = json.loads(capsys.readouterr().out)
    report = result.report()
    assert report["summary"] == cli["summary"]
    assert report["per_class"] == cli["per_class"]
    assert report["confusion_matrix"] == cli["confusion_matrix"]


def test_load_predictor_predicts_one_image(trained, tiny_multiclass):
    predictor = segwise.load_predictor(trained.run_dir / "best.pt", device="cpu")
    image = sorted((tiny_multiclass / "images").iterdir())[0]
    [pred] = predictor.predict(str(image))
    k = predictor.label_space.num_classes  # 4 classes, background included
    assert pred.labels.shape == (48, 48)
    assert pred.labels.dtype == np.int64 and pred.labels.min() >= 0 and pred.labels.max() < k
    assert pred.probabilities.shape == (k, 48, 48)


def test_bad_options_are_refused_before_anything_is_written(trained, tiny_multiclass, tmp_path):
    out = tmp_path / "refused"
    with pytest.raises(ValueError, match="train.task='panoptic'.*'semantic', 'instance'"):
        segwise.train(tiny_multiclass, task="panoptic", out=out)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        segwise.train(tmp_path / "nowhere", out=out)
    with pytest.raises(ValueError, match="no dataset"):
        segwise.train(None, out=out)
    assert not out.exists()
    with pytest.raises(ValueError, match="split='dev'.*'val', 'train', 'test', 'all'"):
        segwise.evaluate(trained.run_dir, tiny_multiclass, split="dev")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        segwise.evaluate(tmp_path / "missing.pt", tiny_multiclass)
    with pytest.raises(ValueError, match="threads="):
        segwise.load_predictor(trained.run_dir, threads=2)


def test_cli_evaluate_scores_the_images_the_run_validated_on(tiny_multiclass, tmp_path, capsys):
    """Data without a split file: `segwise evaluate --split val` draws the held-out share with
    the run's own seed (it used the default seed, so a run trained with another scored other
    images than it validated on)."""
    import shutil

    from segwise.cli.main import main
    from segwise.data import discover_dataset

    data = tmp_path / "data"  # the tiny data without its split file: the run draws val
    shutil.copytree(tiny_multiclass, data)
    for split_file in data.glob("split*"):
        split_file.unlink()
    ids = {seed: sorted(s.id for s in discover_dataset(data, seed=seed).val) for seed in (0, 3)}
    assert ids[0] != ids[3]  # the two draws differ, so the check below can fail
    run = segwise.train(
        data, model="unet_textbook", model_options={"base_width": 8, "depth": 3},
        epochs=1, crop_size=48, batch_size=4, workers=0, device="cpu", seed=3,
        out=tmp_path / "run", quiet=True,
    )
    assert main(["evaluate", "--checkpoint", str(run.run_dir), "--data", str(data),
                 "--out", str(tmp_path / "eval"), "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(row["id"] for row in report["per_image"]["images"]) == ids[3]
    assert report["summary"]["mean_dice"] == pytest.approx(run.best_score, abs=1e-6)

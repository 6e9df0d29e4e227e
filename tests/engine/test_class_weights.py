"""``train.class_weights`` / ``--class-weights``: parsed, checked before anything is written,
resolved from the training split, printed, stored in checkpoints and reused on resume."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from segwise.cli.main import main
from segwise.data import discover_dataset
from segwise.data.class_weights import class_weights_from_counts
from segwise.engine.config import ClassWeightRule, config_from_dict
from segwise.engine.preflight import check_run
from segwise.losses import create_loss
from segwise.runs.checkpoint import load_checkpoint, save_checkpoint


def _train(config, **values):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **values))


# ---- the config and the flag ----

def test_yaml_and_flag_forms_parse_and_round_trip():
    assert config_from_dict({"train": {"class_weights": "1,2,5"}}).train.class_weights == (
        1.0, 2.0, 5.0)
    listed = config_from_dict({"train": {"class_weights": [1, 2.5]}})
    assert listed.train.class_weights == (1.0, 2.5)
    assert listed.to_dict()["train"]["class_weights"] == [1.0, 2.5]
    rule = config_from_dict({"train": {"class_weights": "median_frequency"}})
    assert rule.train.class_weights is ClassWeightRule.MEDIAN_FREQUENCY
    assert rule.to_dict()["train"]["class_weights"] == "median_frequency"  # what was asked
    assert config_from_dict(rule.to_dict()).train == rule.train


@pytest.mark.parametrize(("values", "message"), [
    ({"class_weights": "1,-2,5"}, r"class_weights=1,-2,5 is not valid; expected finite"),
    ({"class_weights": [1, float("nan")]}, r"class_weights=1,nan is not valid"),
    ({"class_weights": "0,0"}, r"not all 0"),
    ({"class_weights": "median"}, r"'median' is not valid.*median_frequency"),
    ({"class_weights": "1,1", "task": "instance"}, r"for semantic runs"),
    ({"class_weights": "median_frequency", "class_weights_beta": 0.9},
     r"only with class_weights=effective_number"),
    ({"class_weights": "effective_number", "class_weights_beta": 1.0}, r"0 <= beta < 1"),
])
def test_bad_values_are_refused_by_the_config(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict({"train": values})


# ---- check_run: resolved before anything is written ----

def test_a_list_of_the_wrong_length_is_refused_before_anything_is_written(
        tiny_multiclass, fast_flags, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", str(tiny_multiclass), "--out", str(out), *fast_flags,
                 "--class-weights", "1,2", "--quiet"])
    assert code == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert "--class-weights has 2 value(s)" in err
    assert "4 classes (background, disc, square, triangle)" in err


@pytest.mark.parametrize("weights", ["1,-1,1,1", "1,nan,1,1"])
def test_negative_or_nan_weights_are_refused_before_anything_is_written(
        tiny_multiclass, fast_flags, tmp_path, capsys, weights):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_multiclass), "--out", str(out), *fast_flags,
                 "--class-weights", weights, "--quiet"]) == 2
    assert not out.exists()
    assert "finite numbers >= 0" in capsys.readouterr().err


def test_a_given_list_goes_to_the_loss_as_it_is(fast_config, tiny_multiclass):
    recipe = check_run(fast_config(tiny_multiclass, class_weights=[1, 2, 3, 4]))
    assert recipe.adapter.class_weights == (1.0, 2.0, 3.0, 4.0)
    assert recipe.adapter.loss_fn.class_weights.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_binary_data_takes_two_weights_for_ce_based_losses(fast_config, tiny_binary):
    recipe = check_run(fast_config(tiny_binary, class_weights=[1, 3]))  # dicece: the BCE
    assert recipe.adapter.loss_fn.class_weights.tolist() == [1.0, 3.0]
    with pytest.raises(ValueError, match=r"has 1 value\(s\).*background,foreground"):
        check_run(fast_config(tiny_binary, class_weights=[3]))
    with pytest.raises(ValueError, match=r"binary loss term\(s\) dice .*scores the foreground"):
        check_run(fast_config(tiny_binary, class_weights=[1, 3], loss="dice"))


def test_a_rule_is_computed_on_the_training_split_only(fast_config, tiny_multiclass):
    recipe = check_run(fast_config(tiny_multiclass, class_weights="inverse_frequency"))
    index = discover_dataset(tiny_multiclass)
    expected = class_weights_from_counts([index.class_pixels[s.id] for s in index.train],
                                         num_classes=4, rule="inverse_frequency").values
    assert recipe.adapter.class_weights == pytest.approx(expected, rel=1e-12)
    # not the counts over every split (discovery's class_pixel_counts)
    every = class_weights_from_counts([dict(enumerate(index.info.class_pixel_counts))],
                                      num_classes=4, rule="inverse_frequency").values
    assert recipe.adapter.class_weights != pytest.approx(every, rel=1e-6)


def test_a_class_absent_from_training_is_named_and_gets_the_smallest_weight(
        fast_config, tmp_path):
    import json

    from segwise.data.synthetic import write_synthetic_dataset
    from segwise.notices import SegwiseNotice

    root = write_synthetic_dataset(tmp_path / "data", num_images=8, size=(32, 32))
    index = discover_dataset(root)
    ids = [s.id for s in index.samples]
    rare = [i for i in ids if 3 in index.class_pixels[i]]  # the triangles
    assert rare and len(rare) < len(ids) - 1
    (root / "splits.json").write_text(json.dumps(
        {"train": [i for i in ids if i not in rare], "val": rare}))
    with pytest.warns(SegwiseNotice, match=r"class\(es\) 3 \(triangle\) have no pixels"):
        recipe = check_run(fast_config(root, class_weights="median_frequency"))
    weights = recipe.adapter.class_weights
    assert weights[3] == weights[0] == min(weights[:3])  # background's, the smallest


def test_weights_of_one_give_exactly_the_unweighted_loss(fast_config, tiny_multiclass):
    recipe = check_run(fast_config(tiny_multiclass, class_weights=[1, 1, 1, 1]))
    plain = create_loss("dicece", labels=recipe.index.info.labels)
    logits = torch.randn(2, 4, 16, 16)
    target = torch.randint(0, 4, (2, 16, 16))
    assert torch.equal(recipe.adapter.loss_fn(logits, target), plain(logits, target))


# ---- a tiny real run: banner, config.yaml, checkpoint, resume ----

def test_a_run_prints_stores_and_resumes_with_the_resolved_numbers(
        tiny_multiclass, fast_flags, tmp_path, capsys):
    import yaml

    from segwise.engine.run_start import resume_recipe

    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_multiclass), "--out", str(out), *fast_flags,
                 "--class-weights", "median_frequency", "--max-steps", "2", "--epochs", "1",
                 "--crop-size", "48", "--batch-size", "4", "--device", "cpu"]) == 0
    index = discover_dataset(tiny_multiclass)
    expected = class_weights_from_counts([index.class_pixels[s.id] for s in index.train],
                                         num_classes=4, rule="median_frequency").values
    banner = capsys.readouterr().out
    line = next(x for x in banner.splitlines() if x.startswith("weights "))
    assert "median_frequency on the training split" in line
    for name, w in zip(index.info.labels.names, expected, strict=True):
        assert f"{name}={w:.4g}" in line

    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["class_weights"] == (
        "median_frequency")  # what was asked
    for name in ("last.pt", "best.pt"):
        ckpt = load_checkpoint(out / name)
        assert ckpt["config"]["train"]["class_weights"] == "median_frequency"
        assert ckpt["class_weights"] == pytest.approx(expected, rel=1e-12)  # the numbers

    # resume reuses the stored numbers (changed here by hand), it does not compute the rule again
    ckpt = load_checkpoint(out / "last.pt")
    save_checkpoint(out / "last.pt", {**ckpt, "class_weights": [0.5, 1.0, 2.0, 4.0]})
    recipe, _ = resume_recipe(out)
    assert recipe.adapter.class_weights == (0.5, 1.0, 2.0, 4.0)
    assert recipe.adapter.loss_fn.class_weights.tolist() == [0.5, 1.0, 2.0, 4.0]

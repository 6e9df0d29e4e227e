from __future__ import annotations

import pytest

from segwise.engine.config import (
    AmpMode,
    OptimizerName,
    RunConfig,
    ScheduleName,
    config_from_dict,
    load_yaml,
)


def test_defaults_round_trip_through_dict():
    config = RunConfig()
    again = config_from_dict(config.to_dict())
    assert again == config
    d = config.to_dict()
    assert d["optim"]["optimizer"] == "adamw"  # enums become their values
    assert d["data"]["scale"] == [0.5, 2.0]


def test_strings_become_enums_and_tuples():
    config = config_from_dict(
        {"optim": {"optimizer": "SGD", "schedule": "poly"}, "train": {"amp": "bf16"},
         "data": {"scale": [0.75, 1.5]}}
    )
    assert config.optim.optimizer is OptimizerName.SGD
    assert config.optim.schedule is ScheduleName.POLY
    assert config.train.amp is AmpMode.BF16
    assert config.data.scale == (0.75, 1.5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"optimm": {}}, r"unknown config section.*optimm"),
        ({"optim": {"learning_rate": 1}}, r"optim\.learning_rate.*allowed in 'optim'"),
        ({"optim": {"optimizer": "adam"}}, r"optim\.optimizer='adam'.*'adamw', 'sgd'"),
        ({"optim": {"lr": 0}}, r"optim\.lr=0 "),
        ({"optim": {"ema_decay": 1.0}}, r"optim\.ema_decay=1\.0"),
        ({"data": {"val_fraction": 1.5}}, r"data\.val_fraction=1\.5"),
        ({"data": {"scale": [2.0, 1.0]}}, r"data\.scale"),
        ({"train": {"epochs": 0}}, r"train\.epochs=0"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(values)


def test_load_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        load_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml must hold a mapping"):
        load_yaml(listy)
    good = tmp_path / "good.yaml"
    good.write_text("optim:\n  lr: 0.01\n")
    assert config_from_dict(load_yaml(good)).optim.lr == 0.01

"""``--augment-on device`` through the training loop (on the CPU here), the loader line of
the start-of-run banner, and the config checks of the new data options."""

from __future__ import annotations

import dataclasses

import pytest

from segwise.engine.config import AugmentOn, config_from_dict
from segwise.engine.trainer import fit


@pytest.mark.slow
def test_device_augmentation_trains_repeatably_and_says_so(tiny_multiclass, tmp_path,
                                                           fast_config, capsys):
    base = fast_config(tiny_multiclass, epochs=1)
    config = dataclasses.replace(base, data=dataclasses.replace(
        base.data, augment_on=AugmentOn.DEVICE, resident=True, rotation=10.0,
        color_jitter=0.2))
    first = fit(config, tmp_path / "a")
    out = capsys.readouterr().out
    assert "on=device (decoded train set resident on the device)" in out
    assert "resident  the decoded train set" in out and "stays on cpu" in out
    assert "loader    workers=0 pin_memory=False" in out
    second = fit(config, tmp_path / "b", quiet=True)
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    # through the loader instead of resident data: same kind of batches, still trains
    loader_cfg = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                      resident=False))
    third = fit(loader_cfg, tmp_path / "c", quiet=True)
    assert len(third.history) == 1 and third.history[-1]["train_loss"] > 0


def test_new_data_options_are_checked():
    with pytest.raises(ValueError, match="augment_on='device'"):
        config_from_dict({"data": {"resident": True}})
    with pytest.raises(ValueError, match="semantic runs"):
        config_from_dict({"data": {"augment_on": "device"}, "train": {"task": "instance"}})
    with pytest.raises(ValueError, match="augment_on"):
        config_from_dict({"data": {"augment_on": "gpu"}})
    with pytest.raises(ValueError, match="prefetch_factor"):
        config_from_dict({"data": {"prefetch_factor": 0}})
    cfg = config_from_dict({"data": {"augment_on": "device", "pin_memory": False}})
    assert cfg.data.augment_on is AugmentOn.DEVICE and cfg.to_dict()["data"]["augment_on"] == \
        "device"


@pytest.mark.slow
def test_resume_with_device_augmentation_is_exact(tiny_multiclass, tmp_path, fast_config):
    """The augmenter is re-seeded from (seed, epoch) every epoch, as the loader is."""
    base = fast_config(tiny_multiclass, epochs=2, max_steps_per_epoch=2)
    config = dataclasses.replace(base, data=dataclasses.replace(
        base.data, augment_on=AugmentOn.DEVICE, resident=True, rotation=10.0,
        color_jitter=0.2))
    straight = fit(config, tmp_path / "straight", quiet=True)
    fit(config, tmp_path / "split", quiet=True, stop_after_epoch=1)
    resumed = fit(None, tmp_path / "split", resume=True, quiet=True)
    assert [h["train_loss"] for h in resumed.history] == \
        [h["train_loss"] for h in straight.history]

"""``segwise train`` on volumes: a real tiny run, the defaults it derives, what it refuses."""

from __future__ import annotations

import json
import re

import pytest
import torch

from segwise.cli.main import main
from segwise.engine.config import DataConfig
from segwise.engine.setup import derive_data_defaults

TINY = ["--model", "unet3d", "--model-option", "base_width=4", "--model-option", "depth=2",
        "--patch-size", "8,8,8", "--batch-size", "2", "--epochs", "1", "--max-steps", "2",
        "--threads", "1", "--quiet"]


def test_a_tiny_volume_run_trains_validates_and_records_what_predicts(volume_data, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(volume_data), "--out", str(out), *TINY]) == 0
    info = json.loads((out / "data_info.json").read_text())
    assert info["spatial_dims"] == 3 and info["normalization"] == "zscore"
    assert info["median_size"] == [12, 14, 10] and info["spacing"] == [1.0, 1.0, 1.0]
    ckpt = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    assert ckpt["config"]["data"]["patch_size"] == [8, 8, 8]
    assert ckpt["model_args"]["options"]["spacing"] == [1.0, 1.0, 1.0]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert 0.0 <= rows[-1]["val_mean_dice"] <= 1.0 and rows[-1]["step"] == 2
    assert (out / "overlays.png").is_file()


def test_volume_defaults_round_the_median_shape_up_to_multiples_of_8():
    class Info:
        spatial_dims = 3
        median_size = (35, 50, 35)

    cfg = derive_data_defaults(DataConfig(), Info(), torch.device("cpu"))
    assert cfg.patch_size == (40, 56, 40)  # nnU-Net's patch for MSD Hippocampus
    assert cfg.batch_size == 2**19 // (40 * 56 * 40)  # 5: the CPU voxel budget
    Info.median_size = (300, 512, 512)
    big = derive_data_defaults(DataConfig(), Info(), torch.device("cpu"))
    assert big.patch_size == (128, 128, 128) and big.batch_size == 2


@pytest.mark.parametrize("extra, message", [
    (["--model", "deeplabv3plus"], "takes 2D images.*resenc_unet3d.*unet3d"),
    (["--task", "instance", "--model", "unet_watershed"], "volumes train semantic models"),
    (["--augment-on", "device"], "--augment-on device is for 2D images"),
])
def test_what_volumes_cannot_take_is_refused_before_anything_is_written(
        volume_data, tmp_path, capsys, extra, message):
    out = tmp_path / "refused"
    assert main(["train", "--data", str(volume_data), "--out", str(out), "--max-steps", "1",
                 "--quiet", *extra]) != 0
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_a_3d_model_on_images_is_refused(tmp_path, capsys):
    from segwise.data.synthetic import write_synthetic_dataset

    root = write_synthetic_dataset(tmp_path / "images", num_images=4, size=(32, 32))
    assert main(["train", "--data", str(root), "--model", "unet3d", "--out",
                 str(tmp_path / "r"), "--quiet"]) != 0
    assert "takes volumes (N, C, D, H, W)" in capsys.readouterr().err


@pytest.mark.parametrize("preset, expected", [
    ("light", (True, False, None, False)),
    ("nnunet", (True, True, (0.7, 1.4), True)),
    ("none", None),
])
def test_volume_augment_presets(volume_data, preset, expected):
    from segwise.data import discover_dataset
    from segwise.engine.config import RunConfig, config_from_dict
    from segwise.engine.volume_adapter import VolumeAdapter

    config = config_from_dict({"data": {"volume_augment": preset, "patch_size": [8, 8, 8]}})
    assert isinstance(config, RunConfig)
    adapter = VolumeAdapter(config, discover_dataset(volume_data).info, torch.device("cpu"),
                            None, False)
    aug = adapter.train_transform(config.data)
    if expected is None:
        assert aug is None
    else:
        assert (aug.flips, aug.rotate_in_plane, aug.scale, aug.intensity) == expected

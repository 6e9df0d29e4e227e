"""The volume predictor of a run trained on volumes: against a direct forward of the model,
padding of small volumes, flips over three axes, and what it refuses (issue 26)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import segwise
from segwise.data.volume_norm import channels_first, normalize_volume
from segwise.data.volumes import read_volume
from segwise.inference import (
    VOLUME_TTA_FLIPS,
    PredictionKind,
    PredictOptions,
    Predictor,
    VolumeOptions,
    VolumePredictor,
)
from segwise.runs.checkpoint import load_run

from .volume_runs import image_run, volume_info, volume_run, write_volume


def _direct(run, path) -> torch.Tensor:
    """Softmax of one forward of the run's model over the whole normalised volume."""
    loaded = load_run(run / "best.pt", device="cpu")
    x = normalize_volume(channels_first(read_volume(path).array), loaded.info.normalization)
    with torch.no_grad():
        return loaded.model(torch.from_numpy(x)[None]).softmax(1)[0]


def test_a_patch_that_covers_the_volume_is_one_forward_of_the_model(tmp_path):
    run = volume_run(tmp_path / "run", patch=(16, 12, 20))
    path = write_volume(tmp_path / "case_7.nii.gz", (16, 12, 20))
    predictor = segwise.load_predictor(run, device="cpu")
    assert isinstance(predictor, VolumePredictor) and isinstance(predictor, Predictor)
    assert predictor.kind is PredictionKind.SEMANTIC  # labels and probabilities per voxel
    assert predictor.options == VolumeOptions(patch_size=(16, 12, 20))  # the run's patch
    pred = predictor.predict_volume(path, probabilities=True)
    expected = _direct(run, path)
    assert pred.name == "case_7" and pred.labels.dtype == np.int64
    assert pred.labels.shape == (16, 12, 20) and pred.probabilities.shape == (3, 16, 12, 20)
    np.testing.assert_allclose(pred.probabilities, expected.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(pred.labels, expected.argmax(0).numpy())
    assert len(np.unique(pred.labels)) > 1  # the check is not vacuous
    assert pred.volume is not None and pred.volume.path == path


def test_a_volume_smaller_than_the_patch_is_padded_and_cropped_back(tmp_path):
    run = volume_run(tmp_path / "run", patch=(32, 32, 32))
    path = write_volume(tmp_path / "small.nii.gz", (19, 23, 29))
    pred = segwise.load_predictor(run, device="cpu").predict_volume(path, probabilities=True)
    assert pred.labels.shape == (19, 23, 29)
    # the sliding window pads (tile - size) // 2 before, the rest after, with zeros
    loaded = load_run(run / "best.pt", device="cpu")
    x = normalize_volume(channels_first(read_volume(path).array), loaded.info.normalization)
    pads = [(32 - n) // 2 for n in (19, 23, 29)]
    padded = F.pad(torch.from_numpy(x)[None], (pads[2], 32 - 29 - pads[2], pads[1],
                                               32 - 23 - pads[1], pads[0], 32 - 19 - pads[0]))
    with torch.no_grad():
        probs = loaded.model(padded).softmax(1)[0]
    crop = probs[:, pads[0]:pads[0] + 19, pads[1]:pads[1] + 23, pads[2]:pads[2] + 29]
    np.testing.assert_allclose(pred.probabilities, crop.numpy(), rtol=0, atol=1e-6)


def test_a_larger_volume_is_tiled_into_blended_patches(tmp_path):
    run = volume_run(tmp_path / "run", patch=(16, 16, 16))
    path = write_volume(tmp_path / "big.nii.gz", (37, 20, 24))
    options = VolumeOptions(overlap=0.25, tile_batch_size=3)
    pred = segwise.load_predictor(run, device="cpu", options=options).predict_volume(
        path, probabilities=True)
    assert pred.labels.shape == (37, 20, 24)
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(pred.labels, pred.probabilities.argmax(0))


def test_flips_average_the_probabilities_of_all_eight_flipped_views(tmp_path):
    run = volume_run(tmp_path / "run", patch=(16, 12, 20))
    path = write_volume(tmp_path / "case.nii.gz", (16, 12, 20))
    options = VolumeOptions(flips=VOLUME_TTA_FLIPS)
    pred = segwise.load_predictor(run, device="cpu", options=options).predict_volume(
        path, probabilities=True)
    loaded = load_run(run / "best.pt", device="cpu")
    x = torch.from_numpy(normalize_volume(channels_first(read_volume(path).array),
                                          loaded.info.normalization))[None]
    views = []
    with torch.no_grad():
        for k in range(4):
            for dims in itertools.combinations((2, 3, 4), k):
                flipped = x.flip(dims) if dims else x
                out = loaded.model(flipped).softmax(1)
                views.append(out.flip(dims) if dims else out)
    assert len(views) == 8
    mean = torch.stack(views).mean(0)[0]
    assert not torch.allclose(views[0], views[-1], atol=1e-3)  # the model is not symmetric
    np.testing.assert_allclose(pred.probabilities, mean.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(pred.labels, mean.argmax(0).numpy())


def test_flips_change_nothing_for_a_pointwise_model():
    """A 1x1x1 convolution commutes with every flip: a wrong inverse would misplace voxels."""
    torch.manual_seed(0)
    model = nn.Conv3d(1, 3, 1).eval()
    volume = np.random.default_rng(0).normal(size=(11, 13, 7)).astype(np.float32)
    cpu = torch.device("cpu")
    plain = VolumePredictor(model, volume_info(), device=cpu,
                            options=VolumeOptions(patch_size=(8, 8, 8)))
    flipped = VolumePredictor(model, volume_info(), device=cpu,
                              options=VolumeOptions(patch_size=(8, 8, 8), flips=VOLUME_TTA_FLIPS))
    a = plain.predict_volume(volume, probabilities=True)
    b = flipped.predict_volume(volume, probabilities=True)
    assert a.volume is None and a.name == "volume_0"
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_binary_runs_give_two_class_probabilities(tmp_path):
    run = volume_run(tmp_path / "run", patch=(8, 8, 8), classes=("background", "lesion"))
    path = write_volume(tmp_path / "b.nii.gz", (8, 8, 8))
    pred = segwise.load_predictor(run, device="cpu").predict_volume(path, probabilities=True)
    assert pred.probabilities.shape == (2, 8, 8, 8)
    np.testing.assert_array_equal(pred.labels, (pred.probabilities[1] > 0.5).astype(np.int64))


def test_wrong_channels_name_the_file_and_the_run(tmp_path):
    run = volume_run(tmp_path / "run")
    path = write_volume(tmp_path / "two.nii.gz", (8, 8, 8), channels=2)
    predictor = segwise.load_predictor(run, device="cpu")
    with pytest.raises(ValueError, match=r"two\.nii\.gz: has 2 channel\(s\).*1-channel volumes"):
        predictor.predict_volume(path)


def test_what_a_volume_run_refuses(tmp_path):
    run = volume_run(tmp_path / "run")
    predictor = segwise.load_predictor(run, device="cpu")
    image = tmp_path / "slice.png"
    image.write_bytes(b"")
    with pytest.raises(ValueError, match=r"slice\.png is not a volume.*trained on volumes"):
        predictor.predict_volume(image)
    with pytest.raises(ValueError, match=r"patch_size=\(8, 8\) is not valid"):
        VolumeOptions(patch_size=(8, 8))
    with pytest.raises(ValueError, match=r"tensor must be a normalised float volume \(C, D, H, "
                                         r"W\) with C = 1, got \(2, 4, 4, 4\)"):
        predictor.predict_volume(torch.zeros(2, 4, 4, 4))


def test_two_dimensional_options_and_normalised_tensors_as_segwise_evaluate_passes_them(
        tmp_path):
    """``segwise evaluate`` builds the predictor with PredictOptions and feeds dataset items
    (normalised tensors): a tile side is a cubic patch, the 2D default overlap becomes 0.5."""
    run = volume_run(tmp_path / "run", patch=(16, 16, 16))
    predictor = segwise.load_predictor(run, device="cpu", options=PredictOptions(tile_size=8))
    assert predictor.options == VolumeOptions(patch_size=(8, 8, 8), overlap=0.5)
    assert segwise.load_predictor(run, device="cpu", options=PredictOptions(
        overlap=0.3, flips=("depth",))).options == VolumeOptions(
            patch_size=(16, 16, 16), overlap=0.3, flips=("depth",))
    path = write_volume(tmp_path / "v.nii.gz", (10, 12, 9))
    x = normalize_volume(channels_first(read_volume(path).array), "zscore")
    [from_tensor] = predictor.predict(torch.from_numpy(x)[None])  # (N, C, D, H, W)
    from_file = predictor.predict_volume(path)
    assert from_tensor.name == "volume_0" and from_tensor.volume is None
    np.testing.assert_array_equal(from_tensor.labels, from_file.labels)


def test_a_two_dimensional_run_refuses_volumes(tmp_path):
    predictor = segwise.load_predictor(image_run(tmp_path / "run2d"), device="cpu")
    path = write_volume(tmp_path / "scan.nii.gz", (8, 8, 8))
    with pytest.raises(ValueError, match=r"scan\.nii\.gz is a volume.*trained on 2D images"):
        predictor.predict(path)

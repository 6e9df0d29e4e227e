"""Resampling to the training spacing (issue 26, item 3): hand-checked shapes, labels that keep
their physical extent, training patches on the resampled grid, predictions back on the input's
grid, and a tiny train -> evaluate -> predict on volumes of two spacings."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from tests.inference.volume_runs import AFFINE, volume_run, write_volume
from tests.volumes.conftest import blob_pair, write_nifti, write_volume_dataset
from tests.volumes.test_volume_training import TINY

import segwise
from segwise.api import evaluation_parts, predict_step
from segwise.cli.main import main
from segwise.data import discover_dataset
from segwise.data.resample import (
    SPACING_TOLERANCE,
    needs_resampling,
    resample_image,
    resample_labels,
    resample_probabilities,
    target_shape,
)
from segwise.data.volume_dataset import VolumeDataset, VolumePatchDataset
from segwise.data.volume_norm import channels_first, normalize_volume
from segwise.data.volumes import read_volume
from segwise.runs.checkpoint import load_run

nib = pytest.importorskip("nibabel")


def _centres(n: int, spacing: float) -> np.ndarray:
    """Physical positions (mm) of the voxel centres along one axis (align_corners=False)."""
    return (np.arange(n) + 0.5) * spacing


# --- the pure functions -----------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "spacing", "target", "expected"), [
    ((10, 20, 30), (3.0, 1.0, 1.0), (1.5, 1.0, 1.0), (20, 20, 30)),  # 30 mm / 1.5 mm
    ((12, 14, 5), (1.0, 1.0, 2.0), (1.0, 1.0, 1.0), (12, 14, 10)),
    ((5, 5, 5), (1.0, 1.0, 1.0), (3.0, 3.0, 3.0), (2, 2, 2)),  # 5 mm / 3 mm = 1.67 -> 2
    ((1, 1, 1), (1.0, 1.0, 1.0), (10.0, 10.0, 10.0), (1, 1, 1)),  # 0.1 rounds to 0: at least 1
])
def test_target_shape_hand_values(shape, spacing, target, expected):
    assert target_shape(shape, spacing, target) == expected


def test_target_shape_refuses_what_is_not_a_spacing():
    with pytest.raises(ValueError, match="one voxel size per axis"):
        target_shape((4, 4, 4), (1.0, 1.0), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="finite and > 0"):
        target_shape((4, 4, 4), (1.0, 0.0, 1.0), (1.0, 1.0, 1.0))


def test_needs_resampling_uses_discoverys_one_percent():
    assert SPACING_TOLERANCE == 0.01
    from segwise.data import volume_discover

    assert volume_discover.SPACING_TOLERANCE is SPACING_TOLERANCE  # one owner
    assert not needs_resampling((1.0, 1.0, 1.009), (1.0, 1.0, 1.0))
    assert needs_resampling((1.0, 1.0, 1.011), (1.0, 1.0, 1.0))
    assert needs_resampling((1.0, 1.0, 2.0), (1.0, 1.0, 1.0))
    assert not needs_resampling((1.0, 1.0, 2.0), ())  # a run that recorded no spacing


@pytest.mark.parametrize(("n", "spacing", "target", "lo", "hi"), [
    (10, 3.0, 1.5, 2, 6),     # upsampling x2: slices 2..5 cover [6, 18) mm
    (30, 0.7, 1.0, 10, 21),   # downsampling by 0.7: [7, 14.7) mm
    (20, 1.0, 2.5, 3, 14),    # downsampling by 2.5: [3, 14) mm
])
def test_a_labelled_box_keeps_its_physical_extent_within_a_voxel(n, spacing, target, lo, hi):
    labels = np.zeros((n, 6, 6), np.int64)
    labels[lo:hi, 1:5, 1:5] = 2
    labels[0, 0, 0] = 255  # an ignore label is resampled like a class
    shape = target_shape(labels.shape, (spacing, 1.0, 1.0), (target, 1.0, 1.0))
    out = resample_labels(labels, shape)
    assert out.shape == shape and out.dtype == np.int64
    assert set(np.unique(out)) <= {0, 2, 255}
    inside = np.flatnonzero(out[:, 3, 3] == 2)
    assert inside.size and np.all(np.diff(inside) == 1)  # one run of voxels
    first, last = _centres(shape[0], target)[[inside[0], inside[-1]]]
    start, end = lo * spacing, hi * spacing  # the box's faces, mm
    assert abs((first - target / 2) - start) <= target and abs((last + target / 2) - end) <= target
    assert abs(inside.size * target - (end - start)) <= target
    assert np.array_equal(out[:, 1:5, 1:5] == 2, np.broadcast_to(out[:, 3:4, 3:4] == 2,
                                                                 (shape[0], 4, 4)))


def _covered(n: int, spacing: float, inside, ss: int = 3) -> np.ndarray:
    """Labels of a shape on an ``n``-cube grid: voxels at least half inside (``ss``^3 samples
    per voxel); ``inside(x, y, z)`` takes positions in mm."""
    axis = (np.arange(n * ss) + 0.5) / ss * spacing
    share = torch.from_numpy(inside(*np.meshgrid(axis, axis, axis, indexing="ij")))
    share = torch.nn.functional.avg_pool3d(share.float()[None, None], ss)[0, 0]
    return (share >= 0.5).numpy().astype(np.int64)


def test_labels_linear_on_one_hot_keep_thin_plates_better_than_nearest():
    """The decision in segwise.data.resample: oblique plates 1-2 mm thick drawn at 0.8 mm,
    resampled to 1 mm, against the same plates drawn at 1 mm; nearest neighbour (centre
    aligned, ``nearest-exact``) for comparison."""
    rng = np.random.default_rng(0)
    ours, nearest = [], []
    for _ in range(8):
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        centre, half = rng.uniform(8, 16, 3), rng.uniform(0.5, 1.0)

        def plate(x, y, z, normal=normal, centre=centre, half=half):
            return np.abs(sum(n * (a - c) for n, a, c in zip(normal, (x, y, z), centre,
                                                             strict=True))) < half

        source, truth = _covered(30, 0.8, plate), _covered(24, 1.0, plate) == 1
        near = torch.nn.functional.interpolate(torch.from_numpy(source)[None, None].float(),
                                               size=(24, 24, 24), mode="nearest-exact")
        for out, scores in ((resample_labels(source, (24, 24, 24)), ours),
                            (near[0, 0].numpy(), nearest)):
            got = out == 1
            scores.append(2 * np.sum(got & truth) / (got.sum() + truth.sum()))
    assert np.mean(ours) > np.mean(nearest) + 0.02
    assert all(a >= b - 0.02 for a, b in zip(ours, nearest, strict=True))


def test_a_linear_ramp_is_resampled_exactly_inside_and_tensors_stay_tensors():
    # intensity = physical position along D (mm); trilinear is exact for it between the
    # outermost voxel centres (outside them the edge value is held)
    spacing, target = 3.0, 1.5
    image = np.broadcast_to(_centres(10, spacing)[:, None, None], (10, 4, 5))[None]
    image = image.astype(np.float32)
    out = resample_image(image, (20, 4, 5))
    assert out.shape == (1, 20, 4, 5) and out.dtype == np.float32
    centres = _centres(20, target)
    inner = (centres >= spacing / 2) & (centres <= 10 * spacing - spacing / 2)
    np.testing.assert_allclose(out[0, inner, 2, 2], centres[inner], atol=1e-4)
    as_tensor = resample_image(torch.from_numpy(image), (20, 4, 5))
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), out)


def test_probabilities_there_and_back_are_close_to_identity():
    shape = (24, 20, 16)
    d, h, w = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    field = 1 / (1 + np.exp(-4 * (np.sin(3 * d) + np.cos(2 * h) - w)))  # smooth, in (0, 1)
    probs = np.stack([1 - field, field]).astype(np.float32)  # (2, D, H, W)
    there = resample_probabilities(probs, target_shape(shape, (1.0, 1.0, 2.0), (1.0, 1.3, 1.0)))
    assert there.shape == (2, 24, 15, 32)
    back = resample_probabilities(there, shape)
    assert back.shape == probs.shape
    np.testing.assert_allclose(back.sum(0), 1.0, atol=1e-5)  # convex weights: still sums to 1
    inner = (slice(None), slice(2, -2), slice(2, -2), slice(2, -2))
    assert np.abs(back - probs)[inner].max() < 0.02


# --- training data --------------------------------------------------------------------------

def _mixed_dataset(root, *, case: str = "case_000"):
    """Six 1 mm volumes (12, 14, 10); ``case`` is (12, 14, 5) at (1, 1, 2) mm instead."""
    write_volume_dataset(root)
    image, labels = blob_pair(np.random.default_rng(9), (12, 14, 5))
    write_nifti(root / "imagesTr" / f"{case}_0000.nii.gz", image, spacing=(1.0, 1.0, 2.0))
    write_nifti(root / "labelsTr" / f"{case}.nii.gz", labels, spacing=(1.0, 1.0, 2.0))
    return root, labels


def test_training_patches_come_from_the_resampled_volume(tmp_path):
    root, labels = _mixed_dataset(tmp_path / "v")
    with pytest.warns(UserWarning, match="resampled to the median spacing"):
        index = discover_dataset(root)
    assert index.info.spacing == (1.0, 1.0, 1.0) and index.train[0].id == "case_000"
    expected = resample_labels(labels.astype(np.int64), (12, 14, 10))  # twice as long on W
    ds = VolumePatchDataset(index.train, index.info, patch_size=(12, 14, 10),
                            foreground_fraction=0.0)
    np.random.seed(0)
    item = ds[0]  # the patch is the whole volume: start 0 on every axis
    assert item["image"].shape == (1, 12, 14, 10)
    assert np.array_equal(item["mask"].numpy(), expected)  # no padding: the volume is 10 long
    # forced foreground: positions on the resampled labels (W up to 9, not 4)
    positions = np.concatenate(list(ds._positions(0).values()))
    assert positions[:, 2].max() > 4
    assert np.all(expected[tuple(positions.T)] > 0)
    small = VolumePatchDataset(index.train, index.info, patch_size=(3, 3, 3),
                               foreground_fraction=1.0)
    assert all(int(small[0]["mask"][1, 1, 1]) in (1, 2) for _ in range(20))


def test_validation_scores_on_the_training_grid_and_evaluation_on_the_files(tmp_path):
    root, labels = _mixed_dataset(tmp_path / "v", case="case_005")  # a val volume
    with pytest.warns(UserWarning, match="resampled"):
        index = discover_dataset(root)
    val = VolumeDataset(index.val, index.info, resample=True)[1]
    assert val["id"] == "case_005" and val["image"].shape == (1, 12, 14, 10)
    assert val["mask"].shape == (12, 14, 10) and val["spacing"] == (1.0, 1.0, 1.0)
    own = VolumeDataset(index.val, index.info, resample=False)[1]
    assert own["image"].shape == (1, 12, 14, 5) and own["spacing"] == (1.0, 1.0, 2.0)
    assert np.array_equal(own["mask"].numpy(), labels)
    assert VolumeDataset(index.val, index.info)[1]["spacing"] == (1.0, 1.0, 1.0)  # default


# --- prediction -------------------------------------------------------------------------------

def _resampled_affine() -> np.ndarray:
    """:data:`AFFINE` with the last axis' voxels half as long (1.25 mm, the run's is 2.5)."""
    affine = AFFINE.copy()
    affine[2, 2] = 1.25
    return affine


def test_the_predictor_resamples_to_the_runs_spacing_and_comes_back(tmp_path):
    run = volume_run(tmp_path / "run", patch=(16, 16, 16))  # spacing (0.7, 0.9, 2.5)
    path = write_volume(tmp_path / "fine.nii.gz", (19, 23, 29), seed=3)
    img = nib.load(path)
    fine = nib.Nifti1Image(np.asarray(img.dataobj), _resampled_affine())
    nib.save(fine, path)
    predictor = segwise.load_predictor(run, device="cpu")
    pred = predictor.predict_volume(path, probabilities=True)
    assert pred.labels.shape == (19, 23, 29) and pred.probabilities.shape == (3, 19, 23, 29)
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, atol=1e-5)

    # by hand: normalise, resample to the run's grid, predict there, back, argmax
    volume = read_volume(path)
    assert volume.spacing == pytest.approx((0.7, 0.9, 1.25))
    x = normalize_volume(channels_first(volume.array), predictor.info.normalization)
    shape = target_shape(x.shape[1:], volume.spacing, predictor.info.spacing)
    assert shape == (19, 23, 14)  # 14.5 rounds half to even, as numpy (and nnU-Net)
    on_run = predictor.predict_volume(torch.from_numpy(resample_image(x, shape)),
                                      probabilities=True)  # no spacing: the run's
    back = resample_probabilities(on_run.probabilities, (19, 23, 29))
    np.testing.assert_allclose(pred.probabilities, back, atol=1e-6)
    np.testing.assert_array_equal(pred.labels, back.argmax(0))
    assert len(np.unique(pred.labels)) > 1

    # a normalised tensor with its spacing (segwise evaluate's step) gives the same
    step = predict_step(predictor)({"image": torch.from_numpy(x), "spacing": volume.spacing})
    np.testing.assert_array_equal(step.labels, pred.labels)
    with pytest.raises(ValueError, match=r"volume_0: spacing=\(1\.0, 1\.0\) is not valid"):
        predictor.predict_volume(torch.from_numpy(x), spacing=(1.0, 1.0))

    # the written label volume is on the input's grid, with its affine
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run), str(path), "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    written = nib.load(out / "fine.nii.gz")
    assert written.shape == (19, 23, 29)
    assert np.array_equal(written.affine, nib.load(path).affine)
    np.testing.assert_array_equal(np.asarray(written.dataobj), pred.labels)


def test_train_evaluate_predict_on_volumes_of_two_spacings(tmp_path):
    root, labels = _mixed_dataset(tmp_path / "v", case="case_005")
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--out", str(run), *TINY]) == 0
    assert json.loads((run / "data_info.json").read_text())["spacing"] == [1.0, 1.0, 1.0]

    report = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(root), "--out",
                 str(report), "--json"]) == 0
    rows = list(csv.DictReader((report / "per_image.csv").open()))
    assert [r["id"] for r in rows] == ["case_004", "case_005"]

    # evaluate's parts: the file's grid and spacing, a prediction on that grid
    loaded = load_run(run / "best.pt", device="cpu")
    predictor = segwise.load_predictor(run, device="cpu")
    with pytest.warns(UserWarning, match="resampled"):
        samples = discover_dataset(root).val
    dataset, _ = evaluation_parts(loaded, "semantic", samples)
    item = dataset[1]
    assert item["image"].shape == (1, 12, 14, 5) and item["spacing"] == (1.0, 1.0, 2.0)
    assert predict_step(predictor)(item).labels.shape == (12, 14, 5)

    pred = tmp_path / "pred"
    source = root / "imagesTr" / "case_005_0000.nii.gz"
    assert main(["predict", "--checkpoint", str(run), str(source), "--out", str(pred),
                 "--quiet"]) == 0
    written = nib.load(pred / source.name)
    assert written.shape == labels.shape
    assert np.array_equal(written.affine, nib.load(source).affine)

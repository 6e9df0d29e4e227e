"""``segwise data inspect`` on volumes: the JSON report's dataset level, per-volume rows and
problems on tiny NIfTI files written here, the verb's exit code and text, and the real MSD
Hippocampus copy in ``../shared/data`` (skipped when absent)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from segwise.cli.main import main  # noqa: E402
from segwise.data import Severity, inspect_dataset  # noqa: E402

SHAPE = (6, 7, 5)


def _write(path, array, spacing=(1.0, 1.0, 1.0), shift=0.0):
    affine = np.diag([*spacing, 1.0])
    affine[0, 3] = shift  # mm along x
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def _labels(dtype=np.uint8):
    labels = np.zeros(SHAPE, dtype=dtype)
    labels[1:4, 2:5, 1:3] = 1  # 18 foreground voxels of 210
    return labels


def _dataset(root, cases=("a", "b", "c"), modality="MRI"):
    """``cases`` pairs of 6x7x5 volumes in imagesTr/labelsTr, a dataset.json naming 2 classes."""
    rng = np.random.default_rng(0)
    for case in cases:
        _write(root / "imagesTr" / f"{case}.nii.gz", rng.normal(size=SHAPE).astype(np.float32))
        _write(root / "labelsTr" / f"{case}.nii.gz", _labels())
    meta = {"labels": {"0": "background", "1": "tumour"}}
    if modality:
        meta["modality"] = {"0": modality}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def _row(report, case):
    [row] = [r for r in report.to_dict()["volumes"] if r["id"] == case]
    return row


def test_clean_volumes_report_dataset_level_and_rows(tmp_path):
    report = inspect_dataset(_dataset(tmp_path))
    data = report.to_dict()
    assert data["problem_counts"]["error"] == 0
    s = data["summary"]
    assert (s["layout"], s["spatial_dims"], s["volumes_read"]) == ("msd", 3, 3)
    assert s["train"] + s["val"] == 3 and s["split"].startswith("seeded")
    assert s["shape_min"] == s["shape_median"] == s["shape_max"] == list(SHAPE)
    assert s["spacing_median"] == [1.0, 1.0, 1.0]
    assert s["orientations"] == {"RAS": 3} and s["dtypes"] == {"float32": 3}
    assert s["anisotropy"] == {"max": 1.0, "threshold": 3.0, "over_threshold": 0}
    assert s["classes_source"] == "dataset.json"
    assert [(c["name"], c["voxels"]) for c in s["classes"]] == [
        ("background", 3 * 192), ("tumour", 3 * 18)]
    assert s["foreground_fraction"] == pytest.approx(18 / 210)
    n = s["normalization"]
    assert n["rule"] == "zscore" and "'MRI'" in n["reason"] and "dataset.json" in n["reason"]
    assert "2D" not in json.dumps(s) and "size_min" not in s  # the volume shape, not 2D's
    rows = data["volumes"]
    assert [r["id"] for r in rows if r["split"] == "train"] == sorted(
        sp.id for sp in report.index.train)
    row = _row(report, "a")
    assert row["shape"] == list(SHAPE) and row["spacing"] == [1.0, 1.0, 1.0]
    assert (row["orientation"], row["dtype"], row["channels"]) == ("RAS", "float32", 1)
    assert row["label_values"] == [0, 1] and row["label_voxels"] == [192, 18]
    assert row["anisotropy"] == 1.0 and row["problems"] == []
    assert row["image"].endswith("imagesTr/a.nii.gz")


def test_shifted_label_affine_is_a_geometry_mismatch_naming_both_files(tmp_path):
    root = _dataset(tmp_path)
    _write(root / "labelsTr" / "b.nii.gz", _labels(), shift=2.5)
    report = inspect_dataset(root)
    [p] = [p for p in report.errors if p.code == "geometry_mismatch"]
    assert p.file.endswith("labelsTr/b.nii.gz")
    assert "imagesTr/b.nii.gz" in p.message and "labelsTr/b.nii.gz" in p.message
    assert "[1, 0, 0, 2.5]" in p.message and "[1, 0, 0, 0]" in p.message  # both affines
    assert _row(report, "b")["problems"] == ["geometry_mismatch"]
    assert _row(report, "b")["shape"] is None  # the pair is not read
    assert report.to_dict()["summary"]["volumes_read"] == 2


def test_float_labels_with_whole_values_are_accepted(tmp_path):
    root = _dataset(tmp_path)
    _write(root / "labelsTr" / "c.nii.gz", _labels(np.float32))
    report = inspect_dataset(root)
    assert report.errors == []
    assert _row(report, "c")["label_values"] == [0, 1]


def test_a_half_label_is_refused_naming_the_file_and_voxel(tmp_path):
    root = _dataset(tmp_path)
    labels = _labels(np.float32)
    labels[2, 3, 4] = 0.5
    _write(root / "labelsTr" / "c.nii.gz", labels)
    report = inspect_dataset(root)
    [p] = report.errors
    assert p.code == "unreadable_mask" and p.file.endswith("labelsTr/c.nii.gz")
    assert "voxel (2, 3, 4)" in p.message and "0.5" in p.message
    assert _row(report, "c")["problems"] == ["unreadable_mask"]


def test_a_thick_slice_volume_is_anisotropic(tmp_path):
    root = _dataset(tmp_path, cases=("a", "b", "c", "d"))  # the median spacing stays 1 mm
    rng = np.random.default_rng(1)
    _write(root / "imagesTr" / "a.nii.gz", rng.normal(size=SHAPE).astype(np.float32),
           spacing=(1.0, 1.0, 4.0))
    _write(root / "labelsTr" / "a.nii.gz", _labels(), spacing=(1.0, 1.0, 4.0))
    report = inspect_dataset(root)
    s = report.to_dict()["summary"]
    assert s["anisotropy"]["max"] == 4.0 and s["anisotropy"]["over_threshold"] == 1
    assert s["spacing_max"] == [1.0, 1.0, 4.0] and s["spacing_min"] == [1.0, 1.0, 1.0]
    row = _row(report, "a")
    assert row["anisotropy"] == 4.0 and row["spacing"] == [1.0, 1.0, 4.0]
    assert row["spacing_differs"] and not _row(report, "b")["spacing_differs"]
    assert "spacing_differs" in {p.code for p in report.problems
                                 if p.severity == Severity.INFO}  # resampled: a notice


@pytest.mark.parametrize(("modality", "option", "rule", "says"), [
    ("CT", "auto", "ct", "'CT'"),
    (None, "auto", "zscore", "no modality"),
    ("CT", "zscore", "zscore", "normalization='zscore' given"),
])
def test_the_intensity_rule_says_why(tmp_path, modality, option, rule, says):
    report = inspect_dataset(_dataset(tmp_path, modality=modality), normalization=option)
    n = report.to_dict()["summary"]["normalization"]
    assert n["rule"] == rule and says in n["reason"]
    assert (n["clip"] is not None) == (rule == "ct")


def test_cli_exit_code_text_and_json(tmp_path, capsys):
    root = _dataset(tmp_path)
    assert main(["data", "inspect", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["training"]["patch_size"] == [8, 8, 8]  # median rounded up to 8
    assert set(data["summary"]["training"]["batch_size"]) == {"cpu", "cuda"}
    assert len(data["volumes"]) == 3
    _write(root / "labelsTr" / "b.nii.gz", _labels(), shift=2.5)
    assert main(["data", "inspect", str(root)]) == 1
    out = capsys.readouterr().out
    assert "labelsTr/b.nii.gz" in out and "imagesTr/b.nii.gz" in out
    assert "geometry_mismatch" in out and "RAS" in out


@pytest.mark.shared_data
@pytest.mark.slow
def test_msd_hippocampus(shared_data):
    root = shared_data / "msd_hippocampus"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    report = inspect_dataset(root)
    data = report.to_dict()
    s = data["summary"]
    assert data["problem_counts"]["error"] == 0
    assert s["volumes_read"] == 220 and len(data["volumes"]) == 220
    assert (s["train"], s["val"], s["split"]) == (190, 30, "splits.json")
    assert s["orientations"] == {"RAS": 220}
    # the dtypes as stored, counted from the headers here (the copy's README says 55 uint8
    # images; the files hold 43)
    stored = Counter(str(nib.load(p).header.get_data_dtype())
                     for p in sorted((root / "images").glob("*.nii.gz")))
    assert s["dtypes"] == dict(stored) and s["dtypes"]["uint8"] > 0
    assert s["spacing_median"] == s["spacing_min"] == s["spacing_max"] == [1.0, 1.0, 1.0]
    assert s["anisotropy"]["max"] == 1.0 and s["anisotropy"]["over_threshold"] == 0
    assert s["shape_median"] == [35, 50, 35]
    assert [c["name"] for c in s["classes"]] == ["background", "Anterior", "Posterior"]
    assert 0.03 < s["foreground_fraction"] < 0.08
    assert s["normalization"]["rule"] == "zscore" and "MRI" in s["normalization"]["reason"]

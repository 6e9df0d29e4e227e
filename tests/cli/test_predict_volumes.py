"""``segwise predict`` with a run trained on volumes: NIfTI in, NIfTI out with the input's
geometry; refusals before anything is written (issue 26)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import segwise
from segwise.cli.main import main

from ..inference.volume_runs import AFFINE, image_run, volume_run, write_volume


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return volume_run(tmp_path_factory.mktemp("volume-run") / "run", patch=(16, 16, 16))


def test_a_folder_of_two_volumes_gives_two_label_volumes_on_the_input_grid(run, tmp_path,
                                                                           capsys):
    scans = tmp_path / "imagesTs"
    a = write_volume(scans / "case_001.nii.gz", (19, 23, 29), seed=1)
    write_volume(scans / "case_002.nii", (16, 20, 12), seed=2)
    (scans / "notes.txt").write_text("not a volume, not listed")
    out = tmp_path / "pred"
    code = main(["predict", "--checkpoint", str(run), str(scans), "--out", str(out),
                 "--device", "cpu", "--largest-component"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "case_001: 19x23x29 voxels in" in printed and "case_002: 16x20x12 voxels" in printed
    assert sorted(p.name for p in out.iterdir()) == ["case_001.nii.gz", "case_002.nii.gz",
                                                     "summary.json"]
    written = nib.load(out / "case_001.nii.gz")
    source = nib.load(a)
    assert np.array_equal(written.affine, source.affine)  # bit for bit
    assert np.allclose(written.affine, AFFINE, atol=1e-5)  # (stored as float32 by NIfTI)
    assert written.header.get_sform(coded=True)[1] == source.header.get_sform(coded=True)[1]
    assert written.get_data_dtype() == np.uint8 and written.shape == (19, 23, 29)
    labels = np.asarray(written.dataobj)
    expected = segwise.load_predictor(run, device="cpu").predict_volume(a).labels
    from segwise.inference import keep_largest_component

    np.testing.assert_array_equal(labels, keep_largest_component(expected, spatial_dims=3))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0
    assert summary["results"][0]["spacing"] == pytest.approx([0.7, 0.9, 2.5])

    # again: nothing is overwritten; --quiet drops the per-volume lines
    assert main(["predict", "--checkpoint", str(run), str(scans), "--out", str(out)]) == 2
    assert "outputs already exist" in capsys.readouterr().err
    code = main(["predict", "--checkpoint", str(run), str(a), "--out", str(out), "--overwrite",
                 "--quiet", "--tta", "--probabilities", "--device", "cpu"])
    assert code == 0
    assert "case_001:" not in capsys.readouterr().out
    assert np.load(out / "case_001_prob.npy").shape == (3, 19, 23, 29)


def test_a_volume_run_refuses_images_and_image_only_flags(run, tmp_path, capsys):
    png = tmp_path / "slice.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(run), str(png), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "slice.png is not a volume" in err and "trained on volumes" in err
    folder = tmp_path / "pngs"
    folder.mkdir()
    assert main(["predict", "--checkpoint", str(run), str(folder), "--out", str(out)]) == 2
    assert "holds no volumes (.nii.gz, .nii, .nrrd" in capsys.readouterr().err
    volume = write_volume(tmp_path / "v.nii.gz", (8, 8, 8))
    for flags, message in ((["--overlay"], "--overlay does not apply to runs trained on volumes"),
                           (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a CUDA")):
        assert main(["predict", "--checkpoint", str(run), str(volume), "--out", str(out),
                     *flags]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's own refusal
        main(["predict", "--checkpoint", str(run), str(volume), "--out", str(out),
              "--tile-size", "8x8"])
    assert "is not a tile size; write N (pixels), or DxHxW" in capsys.readouterr().err
    assert not out.exists()  # refused before anything was written


def test_an_nrrd_volume_gives_a_nifti_label_volume_on_its_grid(run, tmp_path, capsys):
    pytest.importorskip("SimpleITK")
    from segwise.data.volumes import read_volume, write_labels

    source = read_volume(write_volume(tmp_path / "src.nii.gz", (12, 10, 9)))
    intensities = np.arange(12 * 10 * 9, dtype=np.int32).reshape(12, 10, 9) % 97
    nrrd = write_labels(tmp_path / "scans" / "ct_007.nrrd", intensities, like=source)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(run), str(nrrd.parent), "--out", str(out),
                 "--device", "cpu", "--amp", "bf16"]) == 0
    assert "ct_007: 12x10x9 voxels" in capsys.readouterr().out
    written = nib.load(out / "ct_007.nii.gz")
    assert written.shape == (12, 10, 9)
    np.testing.assert_allclose(written.affine, read_volume(nrrd).affine, atol=1e-5)


def test_wrong_channels_fail_that_volume_naming_it(run, tmp_path, capsys):
    scans = tmp_path / "scans"
    write_volume(scans / "good.nii.gz", (8, 8, 8))
    write_volume(scans / "two.nii.gz", (8, 8, 8), channels=2)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(run), str(scans), "--out", str(out),
                 "--device", "cpu"]) == 1
    printed = capsys.readouterr().out
    assert "two.nii.gz: has 2 channel(s)" in printed and "1-channel volumes" in printed
    assert (out / "good.nii.gz").is_file() and not (out / "two.nii.gz").exists()


def test_a_two_dimensional_run_refuses_volumes_naming_them(tmp_path, capsys):
    run2d = image_run(tmp_path / "run2d")
    scans = tmp_path / "scans"
    volume = write_volume(scans / "scan.nii.gz", (8, 8, 8))
    out = tmp_path / "out"
    for given in (volume, scans):
        assert main(["predict", "--checkpoint", str(run2d), str(given), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "scan.nii.gz" in err and "trained on 2D images" in err
    assert not out.exists()

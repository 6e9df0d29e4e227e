"""One test per problem that ``segwise data inspect`` reports, and the verb itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segwise.cli.main import main
from segwise.data import DataError, Severity, inspect_dataset


def _codes(report, severity=None):
    return {p.code for p in report.problems if severity is None or p.severity == severity}


def _ok(files, root, n=3):
    return files.dataset(root, {f"s{i}": files.labels([0, 1]) for i in range(n)})


def test_clean_dataset_has_no_errors(tmp_path, files):
    report = inspect_dataset(_ok(files, tmp_path))
    assert report.errors == [] and report.raise_if_fatal() == []
    s = report.summary()
    assert (s["train"], s["val"], s["mask_kind"]) == (2, 1, "binary")
    assert s["size_min"] == [8, 10] and s["channels"] == {"3": 3}


def test_image_without_mask_is_left_out_with_a_warning(tmp_path, files):
    root = _ok(files, tmp_path)
    files.png(root / "images" / "lonely.png", files.rgb())
    report = inspect_dataset(root)
    [p] = [p for p in report.problems if p.code == "image_without_mask"]
    assert p.severity == Severity.WARNING and p.file.endswith("lonely.png")
    assert "left out" in p.message
    assert root / "images" / "lonely.png" in report.index.unpaired
    assert all(s.id != "lonely" for s in report.index.samples)


def test_mask_without_image(tmp_path, files):
    root = _ok(files, tmp_path)
    files.png(root / "masks" / "orphan.png", files.labels([0, 1]))
    [p] = [p for p in inspect_dataset(root).problems if p.code == "mask_without_image"]
    assert p.file.endswith("orphan.png")


def test_size_mismatch_is_fatal_and_names_both_files(tmp_path, files):
    root = _ok(files, tmp_path)
    files.png(root / "masks" / "s1.png", files.labels([0, 1], h=9, w=10))
    report = inspect_dataset(root)
    [p] = [p for p in report.errors if p.code == "size_mismatch"]
    assert p.file.endswith("s1.png") and "(9, 10)" in p.message and "(8, 10)" in p.message
    with pytest.raises(DataError, match=r"masks/s1\.png"):
        report.raise_if_fatal()


def test_unreadable_image_and_mask(tmp_path, files):
    root = _ok(files, tmp_path, n=4)
    (root / "images" / "s1.png").write_bytes(b"garbage")
    (root / "masks" / "s2.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    report = inspect_dataset(root)
    files_by_code = {(p.code, p.file.split("/")[-2] + "/" + p.file.split("/")[-1])
                     for p in report.errors}
    assert ("unreadable_image", "images/s1.png") in files_by_code
    assert ("unreadable_mask", "masks/s2.png") in files_by_code


def test_truncated_image_found_only_by_decoding(tmp_path, files):
    root = _ok(files, tmp_path)
    path = root / "images" / "s1.png"
    files.png(path, files.rgb(64, 64))
    path.write_bytes(path.read_bytes()[:-200])  # header intact, data cut
    assert "unreadable_image" in _codes(inspect_dataset(root), Severity.ERROR)


def test_unexpected_label_values(tmp_path, files):
    root = tmp_path
    files.dataset(root, {"a": files.labels([0, 1, 2]), "b": files.labels([0, 1, 7])})
    report = inspect_dataset(root, num_classes=3)
    [p] = [p for p in report.errors if p.code == "unexpected_labels"]
    assert p.file.endswith("b.png") and "[7]" in p.message


def test_binary_override_with_non_binary_values(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 3]), "b": files.labels([0, 1])})
    report = inspect_dataset(tmp_path, mask_kind="binary")
    assert [p.file.endswith("a.png") for p in report.errors] == [True]


def test_heavy_imbalance_suggests_dice_ce(tmp_path, files):
    m = np.zeros((40, 40), np.uint8)
    m[0, 0] = 1
    files.dataset(tmp_path, {"a": m, "b": m})
    [p] = [p for p in inspect_dataset(tmp_path).warnings if p.code == "class_imbalance"]
    assert "dicece" in p.message and "foreground" in p.message


def test_alpha_is_a_notice_per_file(tmp_path, files):
    root = _ok(files, tmp_path)
    files.png(root / "images" / "s0.png", np.dstack([files.rgb(), files.rgb()[..., :1]]))
    with pytest.warns(UserWarning, match="alpha"):
        report = inspect_dataset(root)
    [p] = [p for p in report.problems if p.code == "alpha_dropped"]
    assert p.severity == Severity.INFO and p.file.endswith("s0.png")
    assert report.index.info.in_channels == 3


def test_channel_mismatch_is_fatal(tmp_path, files):
    import tifffile

    root = _ok(files, tmp_path, n=4)
    (root / "images" / "s1.png").unlink()
    tifffile.imwrite(root / "images" / "s1.tif", np.zeros((8, 10, 5), np.uint8),
                     photometric="minisblack", planarconfig="contig")
    [p] = [p for p in inspect_dataset(root).errors if p.code == "channel_mismatch"]
    assert p.file.endswith("s1.tif") and "5 channels" in p.message


def test_discover_stops_on_errors_and_warns_about_the_rest(tmp_path, files):
    from segwise.data import discover_dataset

    root = _ok(files, tmp_path)
    files.png(root / "images" / "lonely.png", files.rgb())
    with pytest.warns(UserWarning, match=r"lonely\.png.*left out"):
        discover_dataset(root)
    files.png(root / "masks" / "s1.png", files.labels([0, 1], h=9))
    with pytest.raises(DataError, match=r"(?s)1 problem.*masks/s1\.png.*segwise data inspect"):
        discover_dataset(root)
    assert discover_dataset(root, strict=False).problems  # recorded, not raised


def test_cli_json_and_exit_codes(tmp_path, files, capsys):
    root = _ok(files, tmp_path)
    assert main(["data", "inspect", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["mask_kind"] == "binary" and data["problem_counts"]["error"] == 0
    assert data["info"]["labels"]["num_classes"] == 2
    files.png(root / "masks" / "s1.png", files.labels([0, 1], h=9))
    assert main(["data", "inspect", str(root)]) == 1
    out = capsys.readouterr().out
    assert "size_mismatch" not in out and "s1.png" in out and "error" in out


def test_cli_missing_folder_is_a_user_error(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "nope")]) == 2
    assert "dataset not found" in capsys.readouterr().err

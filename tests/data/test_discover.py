"""Layouts, pairing, splits and DataInfo."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segwise.data import DataInfo, discover_dataset
from segwise.enums import Task


@pytest.mark.parametrize("mask_dir", ["masks", "labels", "annotations"])
def test_images_plus_mask_folder_paired_by_stem(tmp_path, files, mask_dir):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 1])},
                  mask_dir=mask_dir)
    index = discover_dataset(tmp_path)
    assert index.layout == f"images+{mask_dir}" and index.split_source == "splits.json"
    assert [s.id for s in index.train] == ["b"] and [s.id for s in index.val] == ["a"]
    assert index.train[0].mask_path.parent.name == mask_dir


def test_mask_suffix_tags_are_paired(tmp_path, files):
    files.png(tmp_path / "images" / "a.png", files.rgb())
    files.png(tmp_path / "masks" / "a_mask.png", files.labels([0, 1]))
    files.png(tmp_path / "images" / "b.png", files.rgb())
    files.png(tmp_path / "masks" / "b_mask.png", files.labels([0, 1]))
    index = discover_dataset(tmp_path)
    assert {s.mask_path.name for s in index.samples} == {"a_mask.png", "b_mask.png"}


def test_camvid_style_folders_split_by_folder(tmp_path, files):
    tmp_path = tmp_path / "roads"
    for part, ids in (("train", ["x", "y"]), ("val", ["z"])):
        for sid in ids:
            files.png(tmp_path / part / f"{sid}.png", files.rgb())
            files.png(tmp_path / f"{part}annot" / f"{sid}.png", files.labels([0, 2, 3]))
    index = discover_dataset(tmp_path)
    assert index.layout == "camvid" and index.split_source == "folders"
    assert [s.id for s in index.train] == ["x", "y"] and [s.id for s in index.val] == ["z"]
    assert index.info.labels.num_classes == 4  # not named camvid: classes inferred


def test_pairs_csv_with_split_column(tmp_path, files):
    for sid in ("a", "b", "c"):
        files.png(tmp_path / "img" / f"{sid}.png", files.rgb())
        files.png(tmp_path / "gt" / f"{sid}.png", files.labels([0, 1]))
    csv = tmp_path / "pairs.csv"
    csv.write_text("image,mask,split\nimg/a.png,gt/a.png,train\nimg/b.png,gt/b.png,val\n"
                   "img/c.png,gt/c.png,train\n")
    index = discover_dataset(csv)
    assert index.layout == "pairs-file"
    assert [s.id for s in index.train] == ["a", "c"] and [s.id for s in index.val] == ["b"]


def test_pairs_file_missing_entry_is_reported(tmp_path, files):
    files.png(tmp_path / "a.png", files.rgb())
    files.png(tmp_path / "a_m.png", files.labels([0, 1]))
    files.png(tmp_path / "b.png", files.rgb())
    files.png(tmp_path / "b_m.png", files.labels([0, 1]))
    (tmp_path / "pairs.txt").write_text("a.png a_m.png\nb.png b_m.png\nc.png c_m.png\n")
    index = discover_dataset(tmp_path / "pairs.txt")
    assert len(index.samples) == 2
    assert any(p.code == "missing_file" and "c.png" in p.file for p in index.problems)


def test_seeded_split_is_deterministic_and_complete(tmp_path, files):
    files.dataset(tmp_path, {f"s{i:02d}": files.labels([0, 1]) for i in range(10)},
                  splits=False)
    a = discover_dataset(tmp_path, val_fraction=0.3, seed=1)
    b = discover_dataset(tmp_path, val_fraction=0.3, seed=1)
    c = discover_dataset(tmp_path, val_fraction=0.3, seed=2)
    assert [s.id for s in a.val] == [s.id for s in b.val] and len(a.val) == 3
    assert {s.id for s in a.val} != {s.id for s in c.val}
    assert len(a.train) + len(a.val) == 10 and a.split_source.startswith("seeded")


def test_split_file_lists_unknown_and_misses_samples(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 1]),
                             "c": files.labels([0, 1])}, splits=False)
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["a", "ghost"], "val": ["b"]}))
    index = discover_dataset(tmp_path)
    codes = {(p.code, p.file.split("/")[-1]) for p in index.problems}
    assert ("split_id_missing", "splits.json") in codes and ("not_in_split", "c.png") in codes


def test_no_layout_says_what_is_supported(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ValueError, match="no supported layout.*masks/"):
        discover_dataset(tmp_path)


def test_info_round_trips_through_builtins(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 1, 2]), "b": files.labels([0, 2])})
    info = discover_dataset(tmp_path, class_names=["bg", "x", "y"]).info
    d = info.to_dict()
    assert json.loads(json.dumps(d)) == d  # builtins only
    assert DataInfo.from_dict(d) == info
    assert info.labels.names == ("bg", "x", "y") and info.labels.task == Task.MULTICLASS
    assert len(info.mean) == 3 and all(0 <= m <= 1 for m in info.mean)
    assert info.median_size == (8, 10) and sum(info.class_pixel_counts) == 160
    with pytest.raises(ValueError, match="unknown keys"):
        DataInfo.from_dict({**d, "extra": 1})


def test_mean_std_match_numpy(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 1])})
    index = discover_dataset(tmp_path)
    assert [s.id for s in index.train] == ["b"]  # statistics come from training images only
    arr = files.rgb(seed=1).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(index.info.mean, arr.mean(0), rtol=1e-5)
    np.testing.assert_allclose(index.info.std, arr.std(0), rtol=1e-4)


def test_num_classes_disagreeing_with_class_file(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 2])})
    (tmp_path / "classes.json").write_text(json.dumps({"names": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match="num_classes=5"):
        discover_dataset(tmp_path, num_classes=5)

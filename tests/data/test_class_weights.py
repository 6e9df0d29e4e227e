"""Class weights from label counts: hand-computed rules, and the per-image counts discovery
keeps for them (images and volumes)."""

from __future__ import annotations

import numpy as np
import pytest

from segwise.data import discover_dataset
from segwise.data.class_weights import class_weights_from_counts, counts_from_values
from segwise.enums import ClassWeightRule

# Three images, K = 3 classes; 255 is the ignore label (left out of every count):
#   A: class 0 x 6, class 1 x 2, ignore x 4  -> 8 labelled pixels
#   B: class 0 x 3, class 2 x 1              -> 4 labelled pixels
#   C: class 0 x 1, class 1 x 3              -> 4 labelled pixels
# n_0 = 6 + 3 + 1 = 10, n_1 = 2 + 3 = 5, n_2 = 1, N = 16
COUNTS = [{0: 6, 1: 2, 255: 4}, {0: 3, 2: 1}, {0: 1, 1: 3}]


def _weights(rule, counts=COUNTS, k=3, **kw):
    return class_weights_from_counts(counts, num_classes=k, rule=rule, **kw)


def test_inverse_frequency_by_hand():
    # w_c = N / (K n_c): 16 / 30, 16 / 15, 16 / 3
    found = _weights("inverse_frequency")
    assert found.values == pytest.approx([16 / 30, 16 / 15, 16 / 3], rel=1e-12)
    assert found.absent == ()


def test_median_frequency_by_hand():
    # P_c = labelled pixels of the images holding c: P_0 = 8 + 4 + 4 = 16, P_1 = 8 + 4 = 12,
    # P_2 = 4. f_0 = 10/16 = 0.625, f_1 = 5/12, f_2 = 1/4; median f = 5/12.
    # w_0 = (5/12) / (5/8) = 2/3, w_1 = 1, w_2 = (5/12) / (1/4) = 5/3
    found = _weights(ClassWeightRule.MEDIAN_FREQUENCY)
    assert found.values == pytest.approx([2 / 3, 1.0, 5 / 3], rel=1e-12)


def test_effective_number_by_hand():
    # beta = 0.5: raw w_c = (1 - 0.5) / (1 - 0.5**n_c):
    #   n_0 = 10: 0.5 / (1 - 1/1024) = 512/1023; n_1 = 5: 0.5 / (1 - 1/32) = 16/31; n_2 = 1: 1
    # scaled so the three sum to K = 3: w_c = raw_c * 3 / S, S = 512/1023 + 16/31 + 1
    s = 512 / 1023 + 16 / 31 + 1
    found = _weights("effective_number", beta=0.5)
    assert found.values == pytest.approx([512 / 1023 * 3 / s, 16 / 31 * 3 / s, 3 / s],
                                         rel=1e-12)
    assert sum(found.values) == pytest.approx(3.0, rel=1e-12)


def test_effective_number_default_beta_saturates_on_large_classes():
    # beta = 0.9999: beta**n < 1e-4 from n ~ 92,000 on, so two large classes weigh the same
    # (to 1e-4) and a small one more: the documented pixel-count behaviour
    found = _weights("effective_number", counts=[{0: 500_000, 1: 200_000, 2: 100}])
    w0, w1, w2 = found.values
    assert w0 == pytest.approx(w1, rel=1e-4)
    assert w2 > 10 * w0
    assert sum(found.values) == pytest.approx(3.0)


def test_beta_zero_weighs_every_present_class_one():
    assert _weights("effective_number", beta=0.0).values == pytest.approx([1.0, 1.0, 1.0])


@pytest.mark.parametrize("rule", list(ClassWeightRule))
def test_a_class_absent_from_training_gets_the_smallest_present_weight(rule):
    # K = 4, class 3 never appears: it gets the smallest weight of classes 0-2, here class 0's
    # under every rule (the most pixels, and the highest f_c = 10/16 for median frequency)
    found = _weights(rule, k=4)
    assert found.absent == (3,)
    assert found.values[3] == found.values[0] == min(found.values[:3])
    assert all(np.isfinite(found.values)) and min(found.values) > 0


def test_refusals_name_the_problem():
    with pytest.raises(ValueError, match="no labelled pixel"):
        _weights("inverse_frequency", counts=[{255: 10}, {}])
    with pytest.raises(ValueError, match="beta=1.0"):
        _weights("effective_number", beta=1.0)
    with pytest.raises(ValueError, match="'mean_frequency'"):
        _weights("mean_frequency")
    with pytest.raises(ValueError, match=">= 0"):
        _weights("inverse_frequency", counts=[{0: -1, 1: 3}])


def test_counts_from_values_drops_the_ignore_label_and_empty_values():
    assert counts_from_values([0, 1, 2, 255], [5, 3, 0, 2], num_classes=3) == {0: 5, 1: 3}


def test_discovery_keeps_each_masks_class_pixels(tiny_multiclass):
    from segwise.data import read_mask

    index = discover_dataset(tiny_multiclass)
    k = index.info.labels.num_classes
    total = np.zeros(k, np.int64)
    for s in index.samples:
        mask = read_mask(s.mask_path, index.info)
        counted = np.bincount(mask.ravel(), minlength=k)[:k]
        assert index.class_pixels[s.id] == {c: int(n) for c, n in enumerate(counted) if n}
        total += counted
    assert tuple(total) == index.info.class_pixel_counts  # all splits, summed


def test_volume_discovery_keeps_each_volumes_class_voxels(tmp_path):
    pytest.importorskip("nibabel")
    from tests.volumes.conftest import write_volume_dataset

    from segwise.data.volumes import read_labels

    index = discover_dataset(write_volume_dataset(tmp_path / "vols"))
    assert index.info.spatial_dims == 3
    for s in index.samples:
        labels = np.asarray(read_labels(s.mask_path).array)
        values, counts = np.unique(labels, return_counts=True)
        assert index.class_pixels[s.id] == dict(zip(values.tolist(), counts.tolist(),
                                                    strict=True))
    # the same pure function serves volumes: median frequency over the training volumes
    found = class_weights_from_counts([index.class_pixels[s.id] for s in index.train],
                                      num_classes=3, rule="median_frequency")
    assert len(found.values) == 3 and found.absent == ()
    assert found.values[0] < found.values[1]  # background is the frequent class


def test_rare_class_note_names_classes_under_one_percent():
    from segwise.data.class_weights import rare_class_note

    names = ("background", "road", "pole", "sign")
    # 10,000 labelled pixels: pole 50 (0.5 %) and sign 100 (exactly 1 %, not under it)
    note = rare_class_note([9_000, 850, 50, 100], names)
    assert note.startswith("rare classes (under 1 % of the labelled pixels): pole 0.5 %;")
    assert "--class-weights median_frequency" in note and "sign" not in note
    assert rare_class_note([900, 100, 0], names[:3]) is None  # absent classes: not "rare"
    assert rare_class_note([0, 0], names[:2]) is None


def test_data_inspect_suggests_class_weights_for_rare_classes(tiny_multiclass, capsys):
    import json

    from segwise.cli.main import main

    assert main(["data", "inspect", str(tiny_multiclass), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["rare_classes"].startswith("rare classes (under 1 % of the labelled "
                                              "pixels): triangle")
    assert main(["data", "inspect", str(tiny_multiclass)]) == 0
    assert "median_frequency" in capsys.readouterr().out

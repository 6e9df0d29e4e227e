"""LabelSpace: the one owner of classes, colours, ignore and pad labels, output channels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from segwise.data import DataInfo
from segwise.labels import LabelSpace, check_ignore_label, palette
from segwise.metrics import ConfusionMatrix


def test_palette_is_the_voc_colour_map_by_hand():
    # class i: bits (b2 b1 b0) of i go to (B G R) at bit 7; 8 = 0b1000 goes to bit 6 of R
    assert palette(9) == ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128),
                          (128, 0, 128), (0, 128, 128), (128, 128, 128), (64, 0, 0))
    assert len(set(palette(300))) == 300  # distinct beyond 8 bits of classes


@pytest.mark.parametrize(("task", "names", "ignore", "pad", "channels"), [
    ("binary", ("bg", "fg"), None, 2, 1),
    ("multiclass", ("a", "b", "c", "d"), None, 4, 4),
    ("multiclass", ("a", "b", "c"), 255, 255, 3),
    ("multiclass", tuple(f"c{i}" for i in range(300)), None, 300, 300),
])
def test_pad_value_is_never_a_class_and_out_channels(task, names, ignore, pad, channels):
    space = LabelSpace(task=task, names=names, ignore_index=ignore)
    assert space.pad_value == pad
    assert not 0 <= space.pad_value < space.num_classes
    assert space.out_channels == channels
    assert space.colors == palette(len(names))


def test_ignore_label_inside_the_class_range_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"ignore_index=0 lies inside the 4 classes \[0, 4\)"
                                         r".*leave the ignore label unset.*re-save the masks"):
        LabelSpace(task="multiclass", names=("void", "a", "b", "c"), ignore_index=0)
    with pytest.raises(ValueError, match="expected an int or None"):
        check_ignore_label(True, 3)
    check_ignore_label(-1, 3)  # outside the range: fine
    check_ignore_label(3, 3)


def test_round_trip_and_stored_derived_values_are_checked():
    space = LabelSpace(task="multiclass", names=("a", "b"), colors=((1, 2, 3), (4, 5, 6)),
                       ignore_index=9, ignore_color=(7, 8, 9))
    d = space.to_dict()
    assert d["pad_value"] == 9 and d["out_channels"] == 2
    assert LabelSpace.from_dict(d) == space
    with pytest.raises(ValueError, match="pad_value=255 was stored"):
        LabelSpace.from_dict({**d, "pad_value": 255})
    with pytest.raises(ValueError, match="unknown keys"):
        LabelSpace.from_dict({**d, "extra": 1})


def _info(labels: LabelSpace) -> DataInfo:
    return DataInfo(labels=labels, in_channels=1, mask_kind="index", mean=(0.5,), std=(0.2,))


def test_data_info_holds_its_label_space_as_a_field():
    space = LabelSpace(task="multiclass", names=("a", "b", "c"))
    info = _info(space)
    assert info.labels is space  # a field: the same value on every access, never rebuilt
    assert info.labels.pad_value == 3 and info.labels.colors == palette(3)
    with pytest.raises(ValueError, match="labels=.* expected a segwise.labels.LabelSpace"):
        DataInfo(labels={"task": "binary"}, in_channels=1, mask_kind="index", mean=(0.5,),
                 std=(0.2,))


def test_data_info_round_trip_nests_the_label_space():
    space = LabelSpace(task="multiclass", names=("a", "b"), colors=((1, 2, 3), (4, 5, 6)),
                       ignore_index=255, ignore_color=(9, 9, 9))
    info = DataInfo(labels=space, in_channels=2, mask_kind="color", mean=(0.5, 0.25),
                    std=(0.2, 0.1), class_pixel_counts=(7, 3), median_size=(32, 48),
                    classes_source="classes.json")
    d = info.to_dict()
    assert d == {
        "labels": {"task": "multiclass", "names": ["a", "b"], "colors": [[1, 2, 3], [4, 5, 6]],
                   "ignore_index": 255, "ignore_color": [9, 9, 9], "num_classes": 2,
                   "pad_value": 255, "out_channels": 2},
        "in_channels": 2, "mask_kind": "color", "mean": [0.5, 0.25], "std": [0.2, 0.1],
        "class_pixel_counts": [7, 3], "median_size": [32, 48], "classes_source": "classes.json",
        "spatial_dims": 2, "spacing": [], "normalization": "dataset", "clip": None,
    }
    assert DataInfo.from_dict(json.loads(json.dumps(d))) == info


def test_volume_data_info_round_trips_spacing_and_ct_window():
    space = LabelSpace(task="multiclass", names=("bg", "liver", "tumour"))
    info = DataInfo(labels=space, in_channels=1, mask_kind="index", mean=(80.0,), std=(40.0,),
                    median_size=(90, 256, 256), spatial_dims=3, spacing=(2.5, 0.8, 0.8),
                    normalization="ct", clip=(-60.0, 220.0))
    back = DataInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert back == info and back.normalization.value == "ct" and back.clip == (-60.0, 220.0)
    with pytest.raises(ValueError, match="clip"):
        DataInfo(labels=space, in_channels=1, mask_kind="index", mean=(0.0,), std=(1.0,),
                 spatial_dims=3, normalization="ct")
    with pytest.raises(ValueError, match="spacing"):
        DataInfo(labels=space, in_channels=1, mask_kind="index", mean=(0.0,), std=(1.0,),
                 spatial_dims=3, spacing=(1.0, 1.0))


#: a checkpoint's ``data_info`` as segwise wrote it before the label space became a field
OLD_FLAT_DATA_INFO = {
    "task": "binary", "num_classes": 2, "class_names": ["background", "nucleus"],
    "class_colors": [[0, 0, 0], [255, 0, 0]], "in_channels": 3, "ignore_index": None,
    "mask_kind": "binary", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.2, 0.2],
    "class_pixel_counts": [900, 100], "median_size": [64, 64], "ignore_color": None,
    "classes_source": "binary masks",
}


def test_data_info_reads_the_old_flat_form():
    info = DataInfo.from_dict(OLD_FLAT_DATA_INFO)
    assert info.labels == LabelSpace(task="binary", names=("background", "nucleus"),
                                     colors=((0, 0, 0), (255, 0, 0)))
    assert (info.labels.num_classes, info.labels.out_channels, info.labels.pad_value) == (2, 1, 2)
    assert (info.in_channels, info.mask_kind.value, info.mean) == (3, "binary", (0.4, 0.5, 0.6))
    assert info.class_pixel_counts == (900, 100) and info.classes_source == "binary masks"
    assert DataInfo.from_dict(info.to_dict()) == info  # written again in the nested form
    with pytest.raises(ValueError, match="num_classes=3 was stored with 2 class names"):
        DataInfo.from_dict({**OLD_FLAT_DATA_INFO, "num_classes": 3})
    with pytest.raises(ValueError, match="both a nested 'labels' and the flat keys"):
        DataInfo.from_dict({**info.to_dict(), "task": "binary"})
    with pytest.raises(ValueError, match="unknown keys \\['extra'\\]"):
        DataInfo.from_dict({**OLD_FLAT_DATA_INFO, "extra": 1})
    with pytest.raises(ValueError, match="ignore_index=0 lies inside the 2 classes"):
        DataInfo.from_dict({**OLD_FLAT_DATA_INFO, "ignore_index": 0})


def test_logits_to_labels_rule():
    binary = LabelSpace(task="binary", names=("bg", "fg"))
    z = torch.tensor([-1.0, 0.0, 2.0]).view(1, 1, 1, 3)
    assert binary.logits_to_labels(z).tolist() == [[[0, 0, 1]]]  # logit 0 is background
    multi = LabelSpace(task="multiclass", names=("a", "b", "c"))
    z = torch.tensor([[1.0, 3.0, 3.0], [0.0, 0.0, 5.0]]).T.reshape(1, 3, 1, 2)
    assert multi.logits_to_labels(z).tolist() == [[[1, 2]]]  # tie 1 vs 2 in pixel 0 -> 1


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_probability_rule_by_hand(kind):
    def as_kind(values, shape):
        t = torch.tensor(values, dtype=torch.float32).reshape(shape)
        return t if kind == "torch" else t.numpy()

    def listed(x):
        return np.asarray(x, dtype=np.float64).round(6).tolist()

    binary = LabelSpace(task="binary", names=("bg", "fg"))
    # p = sigmoid(z) = 1/2, 3/4, 1/4 for z = 0, ln 3, -ln 3; the classes are [1 - p, p]
    probs = binary.probabilities(as_kind([0.0, math.log(3), -math.log(3)], (1, 1, 1, 3)))
    assert type(probs) is type(as_kind([0.0], (1, 1, 1, 1)))
    assert listed(probs) == [[[[0.5, 0.25, 0.75]], [[0.5, 0.75, 0.25]]]]
    assert listed(binary.probabilities(as_kind([0.2], (1, 1, 1, 1)), from_logits=False)) == [
        [[[0.8]], [[0.2]]]]
    multi = LabelSpace(task="multiclass", names=("a", "b", "c"))
    # softmax of (0, ln 2, ln 5) = (1, 2, 5) / 8
    probs = multi.probabilities(as_kind([0.0, math.log(2), math.log(5)], (1, 3, 1, 1)))
    assert listed(probs) == [[[[0.125]], [[0.25]], [[0.625]]]]
    assert probs.dtype == (torch.float32 if kind == "torch" else np.float32)
    many = LabelSpace(task="multilabel", names=("a", "b"))
    assert listed(many.probabilities(as_kind([0.0, math.log(3)], (1, 2, 1, 1)))) == [
        [[[0.5]], [[0.75]]]]
    with pytest.raises(ValueError, match="task='binary' expects \\(N, 1, H, W\\)"):
        binary.probabilities(as_kind([0.0, 1.0], (1, 2, 1, 1)))
    with pytest.raises(ValueError, match="task='multiclass' expects"):
        multi.probabilities(as_kind([0.0], (1, 1, 1, 1)))


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_argmax_of_the_probabilities_is_the_label_rule(kind):
    z = torch.tensor([-3.0, -0.1, 0.0, 0.1, 4.0]).reshape(1, 1, 1, 5)
    z = z if kind == "torch" else z.numpy()
    binary = LabelSpace(task="binary", names=("bg", "fg"))
    labels = binary.logits_to_labels(z)
    assert np.asarray(labels).tolist() == [[[0, 0, 0, 1, 1]]]
    assert np.asarray(binary.probabilities(z).argmax(1)).tolist() == [[[0, 0, 0, 1, 1]]]


def test_confusion_matrix_above_255_classes_with_the_pad_label():
    space = LabelSpace(task="multiclass", names=tuple(f"c{i}" for i in range(300)))
    cm = ConfusionMatrix(space.num_classes, ignore_index=space.pad_value)
    target = torch.tensor([[[255, 299, space.pad_value]]])
    pred = torch.tensor([[[255, 0, 7]]])
    cm.update(pred, target)
    m = cm.matrix
    assert int(m.sum()) == 2 and m[255, 255] == 1 and m[299, 0] == 1  # 255 is a real class


def test_the_two_empty_rules_have_distinct_names_and_the_old_ones_still_import():
    from segwise import losses, metrics

    assert not hasattr(losses, "EmptyRule") and not hasattr(metrics, "EmptyRule")  # old alias gone
    assert losses.LossEmptyRule is not metrics.MetricEmptyRule
    assert losses.LossEmptyRule.__name__ == "LossEmptyRule"
    assert metrics.MetricEmptyRule.__name__ == "MetricEmptyRule"

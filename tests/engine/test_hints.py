"""Degenerate predictions are named in plain words; healthy ones are not."""

from __future__ import annotations

from segwise.engine.hints import degenerate_prediction_hint

NAMES = ["background", "disc", "square"]


def test_semantic_background_only():
    hint = degenerate_prediction_hint(
        {"pixels_per_class": [100, 0, 0], "true_pixels_per_class": [80, 15, 5]}, NAMES)
    assert hint.startswith("predicts background everywhere") and "undertrained" in hint


def test_semantic_one_class():
    hint = degenerate_prediction_hint(
        {"pixels_per_class": [0, 100, 0], "true_pixels_per_class": [80, 15, 5]}, NAMES)
    assert "one class everywhere (class 1 (disc))" in hint and "masks hold 3" in hint


def test_semantic_healthy_or_uninformative():
    assert degenerate_prediction_hint(
        {"pixels_per_class": [70, 30, 0], "true_pixels_per_class": [80, 15, 5]}, NAMES) is None
    # the masks hold background only: predicting background is right
    assert degenerate_prediction_hint(
        {"pixels_per_class": [100, 0, 0], "true_pixels_per_class": [100, 0, 0]}, NAMES) is None
    assert degenerate_prediction_hint(None) is None


def test_instance_nothing_or_one_object():
    assert "no object in any of the 2" in degenerate_prediction_hint(
        {"objects_per_image": [0, 0], "true_objects_per_image": [5, 7]})
    assert "at most one object per image (the masks hold up to 7)" in (
        degenerate_prediction_hint({"objects_per_image": [1, 1],
                                    "true_objects_per_image": [5, 7]}))
    assert degenerate_prediction_hint(
        {"objects_per_image": [4, 6], "true_objects_per_image": [5, 7]}) is None


# issue 31: "one class everywhere" and "foreground everywhere" when a few pixels escape
CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement"]


def test_one_class_almost_everywhere_names_it_with_the_shares():
    # Road: 97 % of the predictions, 30 % of the masks (a CamVid model painting Road)
    hint = degenerate_prediction_hint(
        {"pixels_per_class": [10, 10, 0, 970, 10], "true_pixels_per_class": [200, 300, 10,
                                                                               300, 190]},
        CAMVID)
    assert "one class almost everywhere (class 3 (Road) on 97 % of the pixels, where the " \
        "masks have 30 %)" in hint
    assert "train longer" in hint and "--class-weights median_frequency" in hint
    assert "check that the loss falls" in hint


def test_the_thresholds_are_strict_and_documented():
    from segwise.engine.hints import DOMINANT_PREDICTED_SHARE, DOMINANT_TRUE_SHARE

    assert (DOMINANT_PREDICTED_SHARE, DOMINANT_TRUE_SHARE) == (0.95, 0.60)
    assert "95 %" in degenerate_prediction_hint.__doc__
    assert "60 %" in degenerate_prediction_hint.__doc__
    true = [500, 250, 250]
    # 95 % exactly is not "more than 95 %"; 96 % is
    assert degenerate_prediction_hint({"pixels_per_class": [950, 25, 25],
                                       "true_pixels_per_class": true}, NAMES) is None
    assert "background almost everywhere (on 96 % of the pixels, where the masks have 50 %)" \
        in degenerate_prediction_hint({"pixels_per_class": [960, 20, 20],
                                       "true_pixels_per_class": true}, NAMES)
    # a class that is 60 % or more of the masks may well take 96 % of the predictions
    assert degenerate_prediction_hint({"pixels_per_class": [960, 20, 20],
                                       "true_pixels_per_class": [600, 200, 200]}, NAMES) is None


def test_binary_foreground_almost_everywhere():
    hint = degenerate_prediction_hint(
        {"pixels_per_class": [2, 998], "true_pixels_per_class": [800, 200]},
        ["background", "foreground"])
    assert hint.startswith("predicts foreground almost everywhere (on 99.8 % of the pixels, "
                           "where the masks have 20 %)")


def test_a_real_class_zero_is_not_called_background():
    # CamVid's Sky is class 0: Sky on every pixel is "one class everywhere", not background
    hint = degenerate_prediction_hint(
        {"pixels_per_class": [1000, 0, 0, 0, 0], "true_pixels_per_class": [200, 300, 10,
                                                                             300, 190]},
        CAMVID)
    assert "one class everywhere (class 0 (Sky))" in hint and "background" not in hint


def test_instance_foreground_almost_everywhere():
    # a watershed model whose foreground covers the image, cut into a few objects
    hint = degenerate_prediction_hint(
        {"objects_per_image": [3, 2], "true_objects_per_image": [12, 9],
         "pixels_per_class": [10, 4598], "true_pixels_per_class": [3900, 708]})
    assert hint.startswith("predicts foreground almost everywhere (on 99.8 % of the pixels, "
                           "where the masks have 15 %)")
    assert "train longer" in hint and "class-weights" not in hint  # refused for instance runs
    # the object rules come first; healthy pixel counts say nothing
    assert "no object" in degenerate_prediction_hint(
        {"objects_per_image": [0, 0], "true_objects_per_image": [12, 9],
         "pixels_per_class": [4608, 0], "true_pixels_per_class": [3900, 708]})
    assert degenerate_prediction_hint(
        {"objects_per_image": [10, 8], "true_objects_per_image": [12, 9],
         "pixels_per_class": [3800, 808], "true_pixels_per_class": [3900, 708]}) is None


def test_instance_scorer_counts_background_and_object_pixels():
    import numpy as np
    import torch

    from segwise.engine.instance_scoring import InstanceScorer
    from segwise.instance import InstancePrediction

    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :2, :2] = True  # an object of 4 pixels
    masks[1, 4:, 4:] = True  # a crowd region of 16 pixels: counted as objects
    item = {"id": "x", "image": torch.zeros(3, 8, 8),
            "instances": {"masks": masks, "labels": torch.tensor([1, 1]),
                          "ids": torch.tensor([1, 2]), "crowd": torch.tensor([False, True])}}
    everywhere = InstancePrediction.from_label_map(np.ones((8, 8), np.int32))
    scorer = InstanceScorer()
    scorer.update(item, everywhere)
    census = scorer.compute().census()
    assert census["pixels_per_class"] == [0, 64]
    assert census["true_pixels_per_class"] == [44, 20]
    assert census["objects_per_image"] == [1] and census["true_objects_per_image"] == [1]

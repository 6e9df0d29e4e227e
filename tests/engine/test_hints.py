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

"""Matrix NMS: decays computed by hand for both kernels (SOLOv2 section 3.3.3)."""

from __future__ import annotations

import math

import pytest
import torch

from segwise.instance.matrix_nms import mask_iou_matrix, matrix_nms


def _masks(*pixel_sets, width=4):
    """One 1 x ``width`` mask per pixel set."""
    out = torch.zeros(len(pixel_sets), 1, width)
    for k, pixels in enumerate(pixel_sets):
        out[k, 0, list(pixels)] = 1
    return out


# A = {0, 1}, B = {0, 1, 2}, C = {3}, D = {2, 3} on a 1 x 4 image:
# IoU(A, B) = 2/3, IoU(B, D) = 1/4, IoU(A, D) = 0, IoU(C, D) = 1/2, IoU(A, C) = IoU(B, C) = 0.
A, B, C, D = {0, 1}, {0, 1, 2}, {3}, {2, 3}


def test_iou_matrix_by_hand():
    iou = mask_iou_matrix(_masks(A, B, D).flatten(1))
    expected = torch.tensor([[1, 2 / 3, 0], [2 / 3, 1, 1 / 4], [0, 1 / 4, 1]])
    torch.testing.assert_close(iou, expected)


def test_gaussian_decay_with_compensation():
    # ranked A (0.9) > B (0.8) > D (0.7), one class.
    # B: only A is above it; iou_{*,A} = 0, so decay_B = exp(-2 (2/3)^2) / exp(0) = exp(-8/9).
    # D: min over i in {A, B} of f(iou_iD) / f(iou_{*,i}):
    #    i = A: f(0) / f(0) = 1;  i = B: exp(-2/16) / exp(-8/9) = exp(8/9 - 1/8) > 1  -> decay 1:
    #    B overlaps D, but B is itself mostly suppressed by A, so D keeps its score.
    masks = _masks(A, B, D)
    out = matrix_nms(masks, torch.tensor([1, 1, 1]), torch.tensor([0.9, 0.8, 0.7]), sigma=2.0)
    torch.testing.assert_close(out, torch.tensor([0.9, 0.8 * math.exp(-8 / 9), 0.7]))


def test_gaussian_decay_without_compensation():
    # ranked C (0.9) > D (0.6): decay_D = exp(-2 (1/2)^2) = exp(-1/2).
    out = matrix_nms(_masks(C, D), torch.tensor([2, 2]), torch.tensor([0.9, 0.6]), sigma=2.0)
    torch.testing.assert_close(out, torch.tensor([0.9, 0.6 * math.exp(-0.5)]))
    # sigma is the coefficient: sigma = 0.5 gives exp(-0.5 / 4)
    out = matrix_nms(_masks(C, D), torch.tensor([2, 2]), torch.tensor([0.9, 0.6]), sigma=0.5)
    torch.testing.assert_close(out, torch.tensor([0.9, 0.6 * math.exp(-0.125)]))


def test_linear_decay_by_hand():
    # B: (1 - 2/3) / (1 - 0) = 1/3.  D: min(1, (1 - 1/4) / (1 - 2/3) = 9/4) = 1.
    out = matrix_nms(_masks(A, B, D), torch.tensor([1, 1, 1]), torch.tensor([0.9, 0.8, 0.7]),
                     kernel="linear")
    torch.testing.assert_close(out, torch.tensor([0.9, 0.8 / 3, 0.7]))
    # C (0.9) > D (0.6): D decays to 0.6 * (1 - 1/2)
    out = matrix_nms(_masks(C, D), torch.tensor([1, 1]), torch.tensor([0.9, 0.6]), kernel="linear")
    torch.testing.assert_close(out, torch.tensor([0.9, 0.3]))


def test_input_order_classes_and_batch():
    # unsorted input: the result is in input order; a different class never decays
    masks = _masks(D, A, B)
    out = matrix_nms(masks, torch.tensor([1, 1, 1]), torch.tensor([0.7, 0.9, 0.8]),
                     kernel="linear")
    torch.testing.assert_close(out, torch.tensor([0.7, 0.9, 0.8 / 3]))
    out = matrix_nms(masks, torch.tensor([1, 1, 2]), torch.tensor([0.7, 0.9, 0.8]),
                     kernel="linear")
    # B is class 2: alone in its class; D is class 1 under A (iou 0): nothing decays
    torch.testing.assert_close(out, torch.tensor([0.7, 0.9, 0.8]))
    batched = matrix_nms(torch.stack([_masks(A, B, D), _masks(C, D, A)]),
                         torch.ones(2, 3, dtype=torch.long),
                         torch.tensor([[0.9, 0.8, 0.7], [0.9, 0.6, 0.5]]), kernel="linear")
    torch.testing.assert_close(batched, torch.tensor([[0.9, 0.8 / 3, 0.7], [0.9, 0.3, 0.5]]))


def test_identical_masks_and_empty_input():
    # two identical masks: the lower one decays to 0 (linear) / exp(-2) (Gaussian)
    masks = _masks(A, A)
    lin = matrix_nms(masks, torch.tensor([1, 1]), torch.tensor([0.9, 0.5]), kernel="linear")
    torch.testing.assert_close(lin, torch.tensor([0.9, 0.0]))
    gau = matrix_nms(masks, torch.tensor([1, 1]), torch.tensor([0.9, 0.5]))
    torch.testing.assert_close(gau, torch.tensor([0.9, 0.5 * math.exp(-2)]))
    empty = matrix_nms(torch.zeros(0, 4, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert empty.shape == (0,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kernel"):
        matrix_nms(_masks(A), torch.tensor([1]), torch.tensor([0.5]), kernel="box")
    with pytest.raises(ValueError, match="sigma"):
        matrix_nms(_masks(A), torch.tensor([1]), torch.tensor([0.5]), sigma=0.0)
    with pytest.raises(ValueError, match="expected"):
        matrix_nms(_masks(A, B), torch.tensor([1]), torch.tensor([0.5, 0.4]))

"""Fast NMS (YOLACT section 3.3): hand-computed IoUs and suppressions."""

from __future__ import annotations

import pytest
import torch

from segwise.instance.nms import fast_nms_keep, multiclass_fast_nms, pairwise_iou

# three 10x10 boxes sliding right by 1 px: IoU(A, B) = IoU(B, C) = 90/110, IoU(A, C) = 80/120
A, B, C = [0.0, 0, 10, 10], [1.0, 0, 11, 10], [2.0, 0, 12, 10]
FAR = [50.0, 50, 60, 60]


def test_pairwise_iou_hand_values_and_zero_area():
    iou = pairwise_iou(torch.tensor([A, B, C]), torch.tensor([A, C, [3.0, 3, 3, 3]]))
    expected = torch.tensor(
        [[1.0, 80 / 120, 0.0], [90 / 110, 90 / 110, 0.0], [80 / 120, 1.0, 0.0]]
    )
    torch.testing.assert_close(iou, expected)
    # two zero-area boxes: 0, not NaN
    zero = torch.tensor([[3.0, 3, 3, 3]])
    assert pairwise_iou(zero, zero).item() == 0.0


def test_fast_nms_suppressed_box_still_suppresses():
    boxes = torch.tensor([A, B, C, FAR])  # sorted by score
    # threshold 0.5: B (0.818 with A) and C (0.667 with A) go
    assert fast_nms_keep(boxes, iou_threshold=0.5).tolist() == [True, False, False, True]
    # threshold 0.7: C overlaps A by 0.667 <= 0.7 but B by 0.818; greedy NMS would keep C
    # (B is gone), Fast NMS removes it (the paper's approximation: column max over all above)
    assert fast_nms_keep(boxes, iou_threshold=0.7).tolist() == [True, False, False, True]
    # threshold 0.85: nothing overlaps that much
    assert fast_nms_keep(boxes, iou_threshold=0.85).all()
    # only higher-scored boxes suppress: the same boxes in reverse order keep C, remove B and A
    assert fast_nms_keep(boxes.flip(0), iou_threshold=0.7).tolist() == [True, True, False, False]


def test_fast_nms_batched_groups_are_independent():
    boxes = torch.tensor([[A, B, FAR], [A, FAR, B]])  # (2 groups, 3, 4)
    keep = fast_nms_keep(boxes, iou_threshold=0.5)
    assert keep.tolist() == [[True, False, True], [True, True, False]]


def test_multiclass_fast_nms_hand_case():
    boxes = torch.tensor([A, B, FAR, C])
    # class 1 likes A and B (B is suppressed by A); class 2 likes B and FAR
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.02, 0.6], [0.3, 0.01]])
    s, lab, idx = multiclass_fast_nms(
        boxes, scores, iou_threshold=0.5, top_k=3, max_detections=5, score_threshold=0.05
    )
    # class 1 top-3: A 0.9, B 0.8 (IoU 0.818 with A: out), C 0.3 (IoU 0.667 with A: out)
    # class 2 top-3 above 0.05: B 0.7, FAR 0.6, A 0.1 (IoU with B 0.818: out)
    torch.testing.assert_close(s, torch.tensor([0.9, 0.7, 0.6, 0.0, 0.0]))
    assert lab.tolist() == [1, 2, 2, 0, 0]
    assert idx.tolist() == [0, 1, 2, 0, 0]


def test_multiclass_fast_nms_fewer_candidates_than_slots_and_batch():
    boxes = torch.tensor([[A, FAR], [FAR, A]])  # batch of 2 images, 2 candidates each
    scores = torch.tensor([[[0.9], [0.4]], [[0.5], [0.0]]])
    s, lab, idx = multiclass_fast_nms(
        boxes, scores, iou_threshold=0.5, top_k=4, max_detections=6
    )
    assert s.shape == lab.shape == idx.shape == (2, 6)
    torch.testing.assert_close(s[0, :3], torch.tensor([0.9, 0.4, 0.0]))
    assert lab.tolist() == [[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    assert idx.tolist() == [[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_fast_nms_never_keeps_more_than_greedy(threshold):
    # Fast NMS removes a superset of what greedy NMS removes (torchvision.ops.nms)
    from torchvision.ops import nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(60, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + 5 + torch.rand(60, 2, generator=g) * 10], dim=1)
    scores = torch.rand(60, generator=g)
    order = scores.argsort(descending=True)
    fast = set(order[fast_nms_keep(boxes[order], iou_threshold=threshold)].tolist())
    greedy = set(nms(boxes, scores, threshold).tolist())
    assert fast <= greedy
    assert fast  # the best box always survives

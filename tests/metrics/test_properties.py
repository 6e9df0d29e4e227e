"""Hypothesis properties of the semantic metrics (small inputs, few examples: CPU budget)."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segwise.metrics import (
    ConfusionMatrix,
    PerImageDice,
    batch_confusion_matrix,
    confusion_matrix,
    dice_score,
    iou_score,
)

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def mask_pairs(draw, max_len=24):
    n = draw(st.integers(1, max_len))
    bits = st.lists(st.integers(0, 1), min_size=n, max_size=n)
    return torch.tensor(draw(bits)), torch.tensor(draw(bits))


@st.composite
def label_batches(draw, num_classes=3):
    n = draw(st.integers(1, 3))
    h = draw(st.integers(1, 4))
    w = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    pred = torch.randint(0, num_classes, (n, h, w), generator=g)
    # target values include the ignore value 255 now and then
    target = torch.randint(0, num_classes + 1, (n, h, w), generator=g)
    target[target == num_classes] = 255
    return pred, target


@SETTINGS
@given(mask_pairs())
def test_dice_in_unit_interval_symmetric_and_iou_related(pair):
    p, t = pair
    d = dice_score(p, t).item()
    j = iou_score(p, t).item()
    assert 0.0 <= d <= 1.0 and 0.0 <= j <= 1.0
    assert d == dice_score(t, p).item()
    assert j == iou_score(t, p).item()
    assert math.isclose(j, d / (2 - d), abs_tol=1e-12)
    assert (d == 1.0) == bool(torch.equal(p, t))


@SETTINGS
@given(mask_pairs(), st.integers(0, 2**31 - 1))
def test_dice_invariant_to_pixel_permutation(pair, seed):
    p, t = pair
    perm = torch.randperm(p.numel(), generator=torch.Generator().manual_seed(seed))
    assert dice_score(p[perm], t[perm]).item() == dice_score(p, t).item()


@SETTINGS
@given(label_batches(), label_batches())
def test_merge_equals_update_on_concatenation(a, b):
    (pa, ta), (pb, tb) = a, b
    if pa.shape[1:] != pb.shape[1:]:
        pb, tb = pb[:, :1, :1].expand(-1, *pa.shape[1:]), tb[:, :1, :1].expand(-1, *pa.shape[1:])
    left = ConfusionMatrix(3, ignore_index=255)
    left.update(pa, ta)
    right = ConfusionMatrix(3, ignore_index=255)
    right.update(pb, tb)
    whole = ConfusionMatrix(3, ignore_index=255)
    whole.update(torch.cat([pa, pb]), torch.cat([ta, tb]))
    assert torch.equal(left.merge(right).matrix, whole.matrix)

    pi_left = PerImageDice(3, ignore_index=255)
    pi_left.update(pa, ta, ids=[f"a{i}" for i in range(len(pa))])
    pi_right = PerImageDice(3, ignore_index=255)
    pi_right.update(pb, tb, ids=[f"b{i}" for i in range(len(pb))])
    pi_whole = PerImageDice(3, ignore_index=255)
    ids = [f"a{i}" for i in range(len(pa))] + [f"b{i}" for i in range(len(pb))]
    pi_whole.update(torch.cat([pa, pb]), torch.cat([ta, tb]), ids=ids)
    merged = pi_left.merge(pi_right).compute()
    assert merged.ids == pi_whole.compute().ids
    assert torch.equal(merged.dice.nan_to_num(-1), pi_whole.compute().dice.nan_to_num(-1))


@SETTINGS
@given(label_batches())
def test_confusion_matrix_counts_every_non_ignored_pixel_once(batch):
    pred, target = batch
    m = confusion_matrix(pred, target, num_classes=3, ignore_index=255)
    assert int(m.sum()) == int((target != 255).sum())
    per_image = batch_confusion_matrix(pred, target, num_classes=3, ignore_index=255)
    assert torch.equal(per_image.sum(dim=0), m)
    # a naive per-pixel loop agrees with the single bincount
    naive = torch.zeros(3, 3, dtype=torch.long)
    for p, t in zip(pred.flatten().tolist(), target.flatten().tolist(), strict=True):
        if t != 255:
            naive[t, p] += 1
    assert torch.equal(naive, m)


@SETTINGS
@given(label_batches(num_classes=2))
def test_two_class_metrics_agree_with_binary_functional(batch):
    pred, target = batch
    valid = target != 255
    fg_pred, fg_target = pred[valid] == 1, target[valid] == 1
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(pred, target)
    s = cm.compute()
    if bool(fg_pred.any() | fg_target.any()):
        assert math.isclose(s.dice[1], dice_score(fg_pred, fg_target).item(), abs_tol=1e-12)
        assert math.isclose(s.iou[1], iou_score(fg_pred, fg_target).item(), abs_tol=1e-12)
    else:
        assert math.isnan(s.dice[1])  # dataset rule: absent from both is undefined
    # per image, with the ONE rule, foreground Dice equals the binary dice_score per image
    acc = PerImageDice(2, ignore_index=255, empty="one", classes=[1])
    acc.update(pred, target)
    r = acc.compute()
    for i in range(pred.shape[0]):
        v = valid[i]
        if not bool(v.any()):
            assert math.isnan(r.per_image[i].item())
            continue
        expected = dice_score(pred[i][v] == 1, target[i][v] == 1).item()
        assert math.isclose(r.per_image[i].item(), expected, abs_tol=1e-12)

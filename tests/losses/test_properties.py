"""Hypothesis properties of the Dice family."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segwise.losses import functional as LF

FAST = settings(max_examples=25, deadline=None)


@st.composite
def problems(draw):
    """(task, input probabilities or logits, target, from_logits) on a tiny random problem."""
    task = draw(st.sampled_from(["binary", "multiclass", "multilabel"]))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    c = 1 if task == "binary" else draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**16))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0, 1e4]))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64) * scale
    if task == "multilabel" or draw(st.booleans()):  # float (soft or hard) target
        if task == "multiclass":
            t = torch.softmax(torch.randn(n, c, h, w, generator=gen, dtype=torch.float64), 1)
        else:
            t = torch.rand(n, c, h, w, generator=gen, dtype=torch.float64)
        if draw(st.booleans()):
            t = t.round() if task != "multiclass" else t.argmax(1, keepdim=True).eq(
                torch.arange(c).view(1, -1, 1, 1)).to(t.dtype)  # fmt: skip
    else:
        t = torch.randint(0, 2 if task == "binary" else c, (n, h, w), generator=gen)
    return task, x, t


OPTIONS = st.fixed_dictionaries(
    {
        "scope": st.sampled_from(["batch", "image"]),
        "squared": st.booleans(),
        "empty": st.sampled_from(["skip", "fp_rate"]),
    }
)


@FAST
@given(problems(), OPTIONS, st.sampled_from(["dice", "jaccard"]))
def test_loss_in_unit_interval(problem, options, kind):
    task, x, t = problem
    fn = LF.soft_dice_loss if kind == "dice" else LF.soft_jaccard_loss
    loss = fn(x, t, task=task, **options).item()
    assert 0.0 <= loss <= 1.0
    gd = LF.generalized_dice_loss(x, t, task=task, scope=options["scope"]).item()
    assert 0.0 <= gd <= 1.0


@FAST
@given(problems(), OPTIONS)
def test_invariant_to_pixel_permutation(problem, options):
    task, x, t = problem
    h, w = x.shape[-2:]
    perm = torch.randperm(h * w)

    def shuffle(a):
        return a.reshape(*a.shape[:-2], h * w)[..., perm].reshape(a.shape)

    a = LF.soft_dice_loss(x, t, task=task, **options)
    b = LF.soft_dice_loss(shuffle(x), shuffle(t), task=task, **options)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@FAST
@given(
    st.integers(0, 2**16),
    st.integers(2, 4),
    st.sampled_from(["batch", "image"]),
    st.integers(0, 3),
)
def test_zero_iff_perfect_multiclass(seed, c, scope, n_flips):
    """Multiclass (softmax): loss 0 exactly when every pixel's probabilities equal its one-hot."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(0, c, (2, 3, 3), generator=gen)
    p = torch.nn.functional.one_hot(t, c).permute(0, 3, 1, 2).double()
    for _ in range(n_flips):  # move some probability mass at random pixels
        i, j, k = (int(torch.randint(0, s, (1,), generator=gen)) for s in (2, 3, 3))
        q = torch.rand(c, generator=gen, dtype=torch.float64)
        p[i, :, j, k] = q / q.sum()
    perfect = bool(torch.equal(p.argmax(1), t) and torch.all((p == 0) | (p == 1)))
    for fn in (LF.soft_dice_loss, LF.soft_jaccard_loss, LF.generalized_dice_loss):
        loss = fn(p, t, task="multiclass", from_logits=False, scope=scope, eps=0.0).item()
        assert (loss == 0.0) == perfect, fn.__name__


@FAST
@given(problems(), OPTIONS)
def test_prediction_equal_to_target_gives_zero(problem, options):
    """Hard or soft targets: p == g gives loss 0 (both the L1 and the squared form)."""
    task, _, t = problem
    if not t.is_floating_point():
        return
    loss = LF.soft_dice_loss(t, t, task=task, from_logits=False, eps=0.0, **options)
    assert loss.item() < 1e-12


@FAST
@given(problems(), st.sampled_from(["batch", "image"]))
def test_finite_gradients(problem, scope):
    task, x, t = problem
    x = x.clone().requires_grad_(True)
    LF.dice_ce_loss(x, t, task=task, scope=scope).backward()
    assert torch.isfinite(x.grad).all()


@FAST
@given(problems())
def test_ignored_pixels_change_nothing(problem):
    """Marking extra pixels as ignored equals removing them (numerator and denominator)."""
    task, x, t = problem
    if t.is_floating_point() or task != "multiclass":
        return
    n, c, h, _ = x.shape
    xi = torch.cat([x, torch.randn(n, c, h, 1, dtype=x.dtype) * 5], dim=3)
    ti = torch.cat([t, torch.full((n, h, 1), 255)], dim=2)
    for fn in (LF.soft_dice_loss, LF.soft_jaccard_loss, LF.generalized_dice_loss,
               LF.cross_entropy_loss, LF.dice_ce_loss):  # fmt: skip
        a = fn(x, t, task=task)
        b = fn(xi, ti, task=task, ignore_index=255)
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), fn.__name__

"""SOLOv2 learns: a short training on the built-in synthetic instance data must reach an AP50
that a broken loss or decoder cannot.

Measured (150 steps of batch 4, 64 px, resnet18 from scratch, CPU): AP50 0.38 (DSB score 0.15)
on 16 held-out images; with the mask targets mirrored (a broken mask loss) AP50 is 0.00, and the
test fails. The floor, 0.2, leaves room for numeric differences between machines.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segwise.data.synthetic import render_sample
from segwise.instance.methods.base import ObjectStats
from segwise.instance.methods.solov2 import SOLOv2, SOLOv2Options
from segwise.metrics.instance import InstanceMetrics

pytestmark = pytest.mark.slow

SIZE = 64
AP50_FLOOR = 0.2


def _sample(seed):
    image, inst, classes = render_sample(np.random.default_rng(seed), (SIZE, SIZE))
    ids = np.array(sorted(classes), dtype=np.int64)
    masks = torch.from_numpy((inst[None] == ids[:, None, None]).astype(np.uint8))
    labels = torch.tensor([classes[i] for i in ids], dtype=torch.long)
    x = (torch.from_numpy(image).permute(2, 0, 1).float() / 255.0 - 0.5) / 0.25
    return x, {"masks": masks, "labels": labels}, inst.astype(np.int32)


def _stats(samples):
    sizes = []
    for _, target, _ in samples:
        for mask in target["masks"].numpy().astype(bool):
            ys, xs = np.nonzero(mask)
            sizes.append(np.sqrt((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
    return ObjectStats(sizes=np.array(sizes), aspect_ratios=np.ones(len(sizes)),
                       image_size=(SIZE, SIZE),
                       objects_per_image=np.array([len(t["labels"]) for _, t, _ in samples]))


def test_solov2_learns_synthetic_instances():
    train = [_sample(seed) for seed in range(64)]
    val = [_sample(1000 + seed) for seed in range(16)]
    method = SOLOv2()
    # grids sized for 64 px images (the paper's 40..12 are for 800 px); ranges from the data
    options = method.resolve_options(
        SOLOv2Options(grids=(16, 12, 8, 6, 4), fpn_channels=32, head_channels=32,
                      stacked_convs=2, mask_channels=16, kernel_dims=32),
        _stats(train),
    )
    torch.manual_seed(0)
    model = method.build(encoder="resnet18", in_channels=3, num_classes=3, options=options,
                         weights=None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(150):
        picked = rng.choice(len(train), 4, replace=False)
        images = torch.stack([train[i][0] for i in picked])
        terms = method.loss(model, images, [train[i][1] for i in picked], options=options,
                            batch={})
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    model.eval()
    predictions = method.predict(model, torch.stack([v[0] for v in val]), options=options)
    metrics = InstanceMetrics()
    for prediction, (_, _, truth) in zip(predictions, val, strict=True):
        metrics.update(prediction, truth)
    result = metrics.compute()
    assert result.ap50 > AP50_FLOOR, (result.ap50, result.dsb_score)

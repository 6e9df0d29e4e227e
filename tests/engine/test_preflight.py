"""check_run: every name and option is checked before a run writes anything."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from segwise.engine.config import Monitor
from segwise.engine.preflight import check_run
from segwise.models import create_model
from segwise.models.architectures import MODELS
from segwise.models.batch_stats import BatchStatisticsError, single_value_norms


def _with(config, section, **values):
    return dataclasses.replace(
        config, **{section: dataclasses.replace(getattr(config, section), **values)})


def test_a_good_config_returns_the_index_and_decode_figures(fast_config, tiny_multiclass):
    checked = check_run(fast_config(tiny_multiclass))
    assert len(checked.index.train) + len(checked.index.val) + len(checked.index.test) == 12
    assert checked.decoded == 12


@pytest.mark.parametrize(("section", "values", "message"), [
    ("model", {"name": "unett"}, "unett"),
    ("model", {"encoder": "resnet344"}, "resnet344"),
    ("model", {"options": {"bogus": 1}}, "bogus"),
    ("model", {"weights": "/no/such/file.pth"}, "/no/such/file.pth"),
    ("train", {"monitor": Monitor.DSB_SCORE}, "dsb_score is not reported by a semantic run"),
    ("data", {"ignore_index": 1}, "ignore_index=1 lies inside"),
])
def test_each_bad_option_is_refused_by_name(fast_config, tiny_multiclass, section, values,
                                            message):
    config = _with(fast_config(tiny_multiclass), section, **values)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check_run(config)



def _batch_norms(model):
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _real_single_value_layers(model, size):
    """The batch-norm layers that see one value per channel in a real CPU forward."""
    seen = {}

    def record(name):
        def hook(_module, args):
            seen.setdefault(name, args[0][0, 0].numel())  # returns None: input unchanged
        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in _batch_norms(model)]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return [name for name, n in seen.items() if n == 1]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "options"), [
    *((name, {}) for name in MODELS.names()
      if name != "unet_textbook" and MODELS.get(name).spatial_dims == 2),
    ("unet", {"output_stride": 16}), ("deeplabv3plus", {"output_stride": 8}),
    ("unet_textbook", {"norm": "batch", "base_width": 8, "depth": 5}),
])
def test_the_meta_batch_statistics_check_sees_what_a_real_forward_sees(name, options):
    """The shape-only (meta device) forward finds the same single-value batch-norm layers as a
    real forward, for every registered architecture on a stride-32 encoder, other output
    strides, and crops that are not a multiple of the encoder's divisor."""
    encoder = None if name == "unet_textbook" else "resnet18"
    model = create_model(name, encoder=encoder, num_classes=3, **options)
    for size in (32, 45, 64):
        meta = [name for name, _ in single_value_norms(model.train(), (3, size, size))]
        assert model.training  # the check leaves the mode as it found it
        assert meta == _real_single_value_layers(model, size)


def test_batch_statistics_are_checked_before_anything_is_written(fast_config, tiny_multiclass):
    """A batch-1 run whose deepest map is 1x1 is refused by check_run, with the layer and the
    fix (tests/cli/test_validate_first.py checks the folder through the CLI)."""
    config = _with(_with(fast_config(tiny_multiclass), "model", name="unet", encoder="resnet18",
                         options={}), "data", batch_size=1, crop_size=32)
    with pytest.raises(ValueError, match=r"batch-norm layer 'encoder\..*--batch-size 2 or "
                                         r"more, or --crop-size 64"):
        check_run(config)


def test_a_model_trained_from_python_names_the_layer_and_the_fixes():
    """Issue 25, item 4: a user's own loop (no CLI) gets the layer, its map size and the two
    fixes instead of PyTorch's "Expected more than 1 value per channel when training"."""
    model = create_model("unet", encoder="resnet18", num_classes=2).train()
    with pytest.raises(BatchStatisticsError, match=r"'encoder\.backbone\.layer4\.0\.bn1' sees a "
                       r"1x1 map for a batch of one 32x32 image.*2 or more images per batch.*"
                       r"larger images"):
        model(torch.rand(1, 3, 32, 32))
    assert model.training  # the check leaves the mode as it found it
    model(torch.rand(2, 3, 32, 32))  # two images: trainable, no error
    model(torch.rand(1, 3, 64, 64))  # one image with a 2x2 deepest map: trainable
    model.eval()(torch.rand(1, 3, 32, 32))  # eval uses running statistics: never refused

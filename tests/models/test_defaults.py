"""The options recorded in checkpoints: today's defaults, and the frozen format-1 table."""

from __future__ import annotations

import inspect

import pytest

from segwise.models import Norm, create_model
from segwise.models.architectures import BUILDER_ARGS, MODELS
from segwise.models.defaults import (
    FORMAT1_DEFAULTS,
    architecture_defaults,
    complete_build_args,
    format1_build_args,
)


def test_architecture_defaults_are_every_option_as_plain_values():
    encoder, options = architecture_defaults("unet_textbook")
    assert encoder == "unet_textbook"
    assert options == {"base_width": 64, "depth": 4, "upsampling": "transposed",
                       "norm": "group", "head_kernel_size": 1}
    for name in MODELS.names():
        params = inspect.signature(MODELS.get(name).build).parameters
        assert set(architecture_defaults(name)[1]) == set(params) - BUILDER_ARGS, name


def test_complete_build_args_given_values_win_and_enums_become_strings():
    encoder, options = complete_build_args(
        "deeplabv3plus", encoder="resnet18", options={"norm": Norm.GROUP, "atrous_rates": (1, 2)}
    )
    assert encoder == "resnet18"
    assert options["norm"] == "group" and options["atrous_rates"] == [1, 2]
    assert options["output_stride"] == 16 and options["low_level_channels"] == 48
    assert complete_build_args("fcn", encoder=None, options=None) == (
        "resnet50", {"output_stride": 8, "norm": "batch", "aux": False})


def test_completed_options_build_the_same_network():
    _, options = complete_build_args("unet_textbook", encoder=None, options={"base_width": 4})
    a = create_model("unet_textbook", num_classes=2, base_width=4)
    b = create_model("unet_textbook", num_classes=2, **options)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [
        (k, v.shape) for k, v in b.state_dict().items()]


def test_format1_table_names_only_options_that_still_exist():
    # an option removed from a builder would make format-1 files unloadable: caught here
    for name, (_, options) in FORMAT1_DEFAULTS.items():
        assert set(options) <= set(architecture_defaults(name)[1]), name


def test_format1_build_args_use_the_frozen_table_not_todays_defaults(monkeypatch):
    from segwise.models.architectures import build_unet_textbook

    monkeypatch.setitem(build_unet_textbook.__kwdefaults__, "norm", "instance")
    assert complete_build_args("unet_textbook", encoder=None, options={})[1]["norm"] == "instance"
    encoder, options = format1_build_args("unet_textbook", encoder=None, options={"depth": 2})
    assert encoder == "unet_textbook"
    assert options == {"base_width": 64, "depth": 2, "upsampling": "transposed",
                       "norm": "batch", "head_kernel_size": 1}
    assert format1_build_args("later_model", encoder=None, options={"x": 1}) == (None, {"x": 1})
    with pytest.raises(ValueError, match="later_model"):
        complete_build_args("later_model", encoder=None, options=None)

"""Checkpoints record every architecture option, so a later change of a default never changes
what a saved model loads into; format-1 files (only the options given) load as they did."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segwise.models import create_model
from segwise.models.architectures import build_unet_textbook
from segwise.runs.checkpoint import (
    FORMAT,
    build_model_from_checkpoint,
    load_checkpoint,
    load_run,
    save_checkpoint,
    state_digest,
)
from segwise.runs.model_args import complete_model_args

# a small textbook U-Net, given options only (what a format-1 checkpoint recorded)
_GIVEN = {"base_width": 4, "depth": 2}


def _args(options: dict) -> dict:
    return {"kind": "semantic", "name": "unet_textbook", "encoder": None, "in_channels": 3,
            "num_classes": 2, "options": options}


def _payload(model: nn.Module, model_args: dict) -> dict:
    return {
        "config": {"model": {"name": "unet_textbook", "options": dict(_GIVEN)}},
        "data_info": {"task": "multiclass"},
        "model_args": model_args,
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "ema": None,
    }


def _write_format1(path, model: nn.Module) -> None:
    """A checkpoint as segwise wrote it before format 2: only the given options recorded."""
    payload = _payload(model, _args(dict(_GIVEN)))
    torch.save({"format": FORMAT, "format_version": 1, "segwise_version": "0.1.0", **payload,
                "model_digest": state_digest(payload["model"])}, path)


@pytest.fixture
def default_norm_becomes_instance(monkeypatch):
    """Simulate a later segwise whose textbook U-Net defaults to InstanceNorm."""
    monkeypatch.setitem(build_unet_textbook.__kwdefaults__, "norm", "instance")


def _norms(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))}


def test_complete_model_args_records_every_option_and_the_encoder():
    args = complete_model_args(_args({"base_width": 4, "norm": "group"}))
    assert args["encoder"] == "unet_textbook"
    assert args["options"] == {"base_width": 4, "depth": 4, "upsampling": "transposed",
                               "norm": "group", "head_kernel_size": 1}
    # the other fields are kept as they are
    assert {k: args[k] for k in ("kind", "name", "in_channels", "num_classes")} == {
        "kind": "semantic", "name": "unet_textbook", "in_channels": 3, "num_classes": 2}


def test_instance_arch_options_are_completed_and_other_kinds_kept():
    args = {"kind": "instance", "method": "unet_watershed", "encoder": None,
            "options": {"arch": "unet", "arch_options": {"norm": "instance"}, "w0": 10.0}}
    out = complete_model_args(args)
    assert out["options"]["arch_options"] == {"decoder_channels": None, "upsampling": "nearest",
                                              "norm": "instance", "output_stride": 32,
                                              "head_kernel_size": 3}
    assert out["options"]["w0"] == 10.0 and out["encoder"] is None
    maskrcnn = {"kind": "instance", "method": "maskrcnn", "options": {"anchor_sizes": [8, 16]}}
    assert complete_model_args(maskrcnn) == maskrcnn
    unknown = _args({"norm": "batch"}) | {"name": "no_such_model"}
    assert complete_model_args(unknown) == unknown  # left for create_model to report


def test_format1_checkpoint_loads_into_the_defaults_of_its_time(
    tmp_path, default_norm_becomes_instance
):
    torch.manual_seed(0)
    trained = create_model("unet_textbook", num_classes=2, norm="batch", **_GIVEN)
    assert _norms(create_model("unet_textbook", num_classes=2, **_GIVEN)) == {nn.InstanceNorm2d}
    path = tmp_path / "old.pt"
    _write_format1(path, trained)
    ckpt = load_checkpoint(path)
    assert ckpt["model_args"]["options"]["norm"] == "batch"  # completed as of format 1
    model = build_model_from_checkpoint(ckpt)  # strict load: BatchNorm's running stats fit
    assert _norms(model) == {nn.BatchNorm2d}
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), trained.eval()(x))


def test_complete_checkpoint_keeps_its_options_when_a_default_changes(tmp_path, monkeypatch):
    monkeypatch.setitem(build_unet_textbook.__kwdefaults__, "norm", "batch")
    torch.manual_seed(0)
    trained = create_model("unet_textbook", num_classes=2, **_GIVEN)
    path = save_checkpoint(tmp_path / "new.pt", _payload(trained, complete_model_args(
        _args(dict(_GIVEN)))))
    monkeypatch.setitem(build_unet_textbook.__kwdefaults__, "norm", "instance")
    ckpt = load_checkpoint(path)
    assert ckpt["model_args"]["options"]["norm"] == "batch"
    assert _norms(build_model_from_checkpoint(ckpt)) == {nn.BatchNorm2d}


@pytest.mark.slow
def test_training_records_every_option_and_resumes_across_a_default_change(
    tiny_binary, tmp_path, monkeypatch, fast_config
):
    from segwise.engine.trainer import fit

    monkeypatch.setitem(build_unet_textbook.__kwdefaults__, "norm", "batch")
    run = tmp_path / "run"
    fit(fast_config(tiny_binary, epochs=2), run, quiet=True, stop_after_epoch=1)
    args = load_checkpoint(run / "last.pt")["model_args"]
    assert args["encoder"] == "unet_textbook"
    assert args["options"] == {"base_width": 8, "depth": 3, "upsampling": "transposed",
                               "norm": "batch", "head_kernel_size": 1}
    monkeypatch.setitem(build_unet_textbook.__kwdefaults__, "norm", "instance")
    resumed = fit(None, run, resume=True, quiet=True)  # rebuilds BatchNorm, loads its state
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    loaded = load_run(run / "best.pt", device="cpu")
    assert loaded.model_args["options"]["norm"] == "batch"
    assert _norms(loaded.model) == {nn.BatchNorm2d}


def test_resume_config_takes_the_recorded_options(default_norm_becomes_instance):
    from segwise.engine.config import config_from_dict
    from segwise.engine.run_start import _config_from_checkpoint

    # format 1, semantic: the config holds only the options given; resume uses the record
    config = config_from_dict({"model": {"name": "unet_textbook", "options": dict(_GIVEN)}})
    ckpt = {"config": config.to_dict(),
            "model_args": complete_model_args(_args(dict(_GIVEN)), as_of_format=1)}
    resumed = _config_from_checkpoint(ckpt)
    assert resumed.model.encoder == "unet_textbook"
    assert resumed.model.options["norm"] == "batch" and resumed.model.options["depth"] == 2
    # instance: the method's semantic architecture as recorded; its other options as given
    config = config_from_dict({"model": {"name": "unet_watershed", "options": {
        "arch": "unet_textbook", "w0": 5.0}}, "train": {"task": "instance"}})
    args = {"kind": "instance", "method": "unet_watershed", "name": "unet_watershed",
            "encoder": None, "in_channels": 3, "num_classes": 1,
            "options": {"arch": "unet_textbook", "arch_options": {}, "w0": 5.0, "sigma": 5.0}}
    ckpt = {"config": config.to_dict(), "model_args": complete_model_args(args, as_of_format=1)}
    options = _config_from_checkpoint(ckpt).model.options
    assert options["arch_options"]["norm"] == "batch" and options["w0"] == 5.0
    assert "sigma" not in options  # resolved again by the method, as the run did

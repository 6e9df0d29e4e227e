"""Weights: local .pth/.safetensors files (model, encoder and backbone layouts), in_channels
adaptation, and ``weights="imagenet"`` failing fast when nothing is cached and offline."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from segwise.models import WeightsUnavailableError, create_model
from segwise.models.weights import load_weights_file


def _save(state, path):
    state = {k: v.contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)


def _outputs_equal(a, b):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_full_model_file(tmp_path, suffix):
    source = create_model("deeplabv3plus", encoder="resnet18", num_classes=4)
    path = tmp_path / f"model{suffix}"
    _save(source.state_dict(), path)
    torch.manual_seed(1)
    loaded = create_model("deeplabv3plus", encoder="resnet18", num_classes=4, weights=path)
    assert _outputs_equal(source, loaded)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_encoder_file_keeps_decoder_init(tmp_path, suffix):
    source = create_model("unet", encoder="resnet18", num_classes=2)
    path = tmp_path / f"encoder{suffix}"
    _save(source.encoder.state_dict(), path)
    torch.manual_seed(1)
    loaded = create_model("fcn", encoder="resnet18", num_classes=3, weights=path)
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[key], value)


def test_backbone_file_from_timm_with_wrapped_dict(tmp_path):
    import timm

    backbone = timm.create_model("resnet18")  # includes fc.*, which the encoder ignores
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": backbone.state_dict()}, path)
    model = create_model("unet", encoder="resnet18", num_classes=2)
    assert load_weights_file(model, path) == "backbone"
    assert torch.equal(model.encoder.backbone.conv1.weight, backbone.conv1.weight)


def test_vgg_backbone_file_and_grey_input(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"], batch_norm=False)  # torchvision vgg16().features
    path = tmp_path / "vgg16.safetensors"
    _save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model = create_model(
        "fcn8s", encoder="vgg16", in_channels=1, num_classes=2, fc_channels=8, weights=path
    )
    first = model.encoder.features[0].weight
    assert first.shape == (64, 1, 3, 3)
    assert torch.allclose(first, features[0].weight.sum(dim=1, keepdim=True))


def test_multispectral_input_adapts_rgb_weights(tmp_path):
    source = create_model("unet", encoder="resnet18", num_classes=2)
    path = tmp_path / "model.pth"
    torch.save(source.state_dict(), path)
    model = create_model("unet", encoder="resnet18", in_channels=4, num_classes=2, weights=path)
    rgb = source.encoder.backbone.conv1.weight
    adapted = model.encoder.backbone.conv1.weight
    assert adapted.shape == (64, 4, 7, 7)
    # timm's rule: RGB repeated over the 4 channels and scaled by 3/4
    assert torch.allclose(adapted[:, :3], rgb * 0.75)
    assert torch.allclose(adapted[:, 3], rgb[:, 0] * 0.75)


def test_mismatched_file_names_the_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(create_model("unet", encoder="resnet18", num_classes=2).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit this model"):
        create_model("fcn", encoder="resnet18", num_classes=2, weights=path)
    torch.save(create_model("unet", encoder="resnet18", num_classes=2).state_dict(), path)
    with pytest.raises(ValueError, match=r"mis-shaped.*head\.classifier\.weight"):
        create_model("unet", encoder="resnet18", num_classes=5, weights=path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_model("unet", encoder="resnet18", num_classes=2, weights=tmp_path / "missing.pth")


@pytest.mark.parametrize("encoder", ["resnet18", "vgg16"])
def test_imagenet_offline_fails_fast_with_instructions(monkeypatch, encoder):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)

    def no_download(*args, **kwargs):  # must never be reached in offline mode
        raise AssertionError("tried to download")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    with pytest.raises(WeightsUnavailableError, match=r"weights='path/to/encoder.pth'"):
        create_model("unet", encoder=encoder, num_classes=2, weights="imagenet")


def test_imagenet_unreachable_host_fails_fast(monkeypatch):
    import huggingface_hub

    from segwise.models import weights

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("SEGWISE_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(weights, "_reachable", lambda url: False)
    with pytest.raises(WeightsUnavailableError, match="unreachable"):
        weights.fetch_timm_weights("resnet18")


def test_imagenet_uses_cached_file_without_network(tmp_path, monkeypatch):
    """A cached file is loaded as-is (timm's own loader adapts it): nothing else is tried."""
    import huggingface_hub
    import timm

    source = timm.create_model("resnet18")
    path = tmp_path / "model.safetensors"
    _save(source.state_dict(), path)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: str(path))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", None)
    model = create_model(
        "unet", encoder="resnet18", in_channels=1, num_classes=2, weights="imagenet"
    )
    expected = source.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.encoder.backbone.conv1.weight, expected)


def test_textbook_unet_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="weights='imagenet' is not valid"):
        create_model("unet_textbook", num_classes=2, weights="imagenet")

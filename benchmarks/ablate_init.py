"""Ablation: why segwise's U-Net/ResNet-34 learned slower than smp's Unet (issue 17).

One change at a time on top of a baseline, trained by the hand-written loop of
``bench_convergence.py`` (same crops in the same order, same loss, AdamW lr 1e-3 + cosine,
no warmup, same torch seed for the weights). Each arm also records the std of the logits at
initialisation on an N(0, 1) batch (train-mode BatchNorm).

Arms (``--arms``; ``legacy`` is segwise's U-Net as built before the fix: 1x1 head and
PyTorch's default ``kaiming_uniform_(a=sqrt(5))`` everywhere outside the encoder):

- ``legacy``            the baseline
- ``head3x3``           3x3 head (PyTorch default init), like smp's head size
- ``head_xavier``       1x1 head, xavier-uniform weight + zero bias (smp ``initialize_head``)
- ``head_kaiming``      1x1 head, ``kaiming_normal_(fan_in, linear)`` weight + zero bias
- ``head3x3_xavier``    3x3 head, xavier-uniform + zero bias (smp's head exactly)
- ``head_bias0``        1x1 head, default weight, zero bias
- ``decoder_kaiming``   decoder convs ``kaiming_uniform_(fan_in, relu)``, zero bias (smp
                        ``initialize_decoder``)
- ``decoder_kaiming_out`` decoder convs ``kaiming_normal_(fan_out, relu)`` (torchvision/timm)
- ``no_zero_init_last`` encoder residual blocks' last BN gamma = 1 instead of 0
- ``bilinear``          bilinear instead of nearest upsampling in the decoder
- ``bn_momentum``       BN momentum 0.01 / eps 1e-3 in the decoder (Keras-style)
- ``smp_like``          head3x3_xavier + decoder_kaiming + no_zero_init_last
- ``current``           ``create_model("unet", encoder="resnet34")`` as the library builds it now
- ``smp``               ``smp.Unet("resnet34", encoder_weights=None)``
- ``current_no_zero_init_last``  ``current`` with the encoder's last BN gammas at 1 (torchvision's
                        ResNet init, which smp's encoder keeps) instead of timm's 0
- ``current_decoder_kaiming``    ``current`` with the decoder convs scaled by sqrt(6): the same
                        draws, at He's scale ``kaiming_uniform_(fan_in, relu)`` (smp's)
- ``current_smp_init``  both of the above: every weight at smp's scale, the same draws
- ``dlv3p_current``     ``create_model("deeplabv3plus", encoder="resnet50", separable=True)``
                        as built now (separable as smp's, as in bench_convergence.py)
- ``dlv3p_decoder_kaiming``  ``dlv3p_current`` with the norm-followed decoder convs at He's
                        scale (same draws, times sqrt(6))
- ``dlv3p_smp``         ``smp.DeepLabV3Plus("resnet50", encoder_weights=None)``
- ``{unet,dlv3p,fcn}_norm_default`` / ``..._norm_he``: the model as built (U-Net/ResNet-34,
                        DeepLabv3+/ResNet-50 separable, FCN/ResNet-50), its norm-followed
                        decoder convs re-drawn from torch seed ``seed + 2000`` at PyTorch's
                        default scale ``U(+-1/sqrt(fan_in))`` or He's ``U(+-sqrt(6/fan_in))``:
                        the same draws, only the scale differs, whatever the library's own
                        default is (the ``current_*`` arms are relative to it)
- ``fcn_tv``            torchvision ``fcn_resnet50(weights=None, weights_backbone=None)``
- ``current_from_smp``  ``current`` loaded with ``smp``'s initial weights (the same seed's
                        draws, state dicts matched in order, every shape checked): the control
                        that says whether anything but the initial weights differs in training

Usage:
    .venv/bin/python benchmarks/ablate_init.py --steps 60 --crop 64 --batch 8 --seeds 0 \\
        --out ablate_init.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_convergence as bc


def _legacy(model: nn.Module) -> None:
    """Decoder and a 1x1 head with PyTorch's default init (segwise before issue 17)."""
    for module in model.decoder.modules():
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d)):
            module.reset_parameters()
    old = model.head.classifier
    model.head.classifier = nn.Conv2d(old.in_channels, old.out_channels, 1)


def _head(model: nn.Module, kernel: int, init: str) -> None:
    old = model.head.classifier
    conv = nn.Conv2d(old.in_channels, old.out_channels, kernel, padding=kernel // 2)
    if init == "xavier":
        nn.init.xavier_uniform_(conv.weight)
        nn.init.zeros_(conv.bias)
    elif init == "kaiming":
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")
        nn.init.zeros_(conv.bias)
    elif init == "bias0":
        nn.init.zeros_(conv.bias)
    model.head.classifier = conv


def _decoder(model: nn.Module, mode: str) -> None:
    for module in model.decoder.modules():
        if isinstance(module, nn.Conv2d):
            if mode == "fan_in":
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _rescale_decoder(model: nn.Module, factor: float) -> None:
    """Multiply every norm-followed decoder conv weight by ``factor``: PyTorch's default init
    is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, He's uniform ``U(-sqrt(6/fan_in), ...)``, so
    ``factor = sqrt(6)`` gives He's scale with the same draws. (Every U-Net decoder conv is
    norm-followed; DeepLab's ASPP pooling conv is not and already has He's scale.)"""
    from segwise.models.init import norm_followed_convs

    with torch.no_grad():
        for module in norm_followed_convs(model.decoder):
            module.weight.mul_(factor)


def _redraw_normed_decoder(model: nn.Module, seed: int, *, he: bool) -> None:
    """Re-draw every norm-followed decoder conv from ``seed``: ``U(-b, b)`` with ``b =
    1/sqrt(fan_in)`` (PyTorch's default) or ``b = sqrt(6/fan_in)`` (He, fan-in, ReLU); the
    same uniform draws either way (``kaiming_uniform_`` scales one ``uniform_`` call)."""
    from segwise.models.init import norm_followed_convs

    normed = norm_followed_convs(model.decoder)
    convs = [m for m in model.decoder.modules() if m in normed]  # module order: fixed draws
    torch.manual_seed(seed + 2000)
    with torch.no_grad():
        for conv in convs:
            if he:
                nn.init.kaiming_uniform_(conv.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.kaiming_uniform_(conv.weight, a=5**0.5)


_SCALE_ARCHS = {
    "unet": ("unet", "resnet34", {}),
    "dlv3p": ("deeplabv3plus", "resnet50", {"separable": True}),
    "fcn": ("fcn", "resnet50", {}),
}


def _no_zero_init_last(model: nn.Module) -> None:
    for module in model.encoder.modules():
        last = getattr(module, "bn3", None) or getattr(module, "bn2", None)
        if hasattr(module, "conv1") and hasattr(module, "downsample") and last is not None:
            nn.init.ones_(last.weight)


def _from_smp(seed: int) -> nn.Module:
    """segwise's U-Net/ResNet-34 holding smp ``Unet``'s initial weights drawn from ``seed``."""
    from segwise.models import create_model

    torch.manual_seed(seed)
    peer, _ = bc.build("smp.Unet-resnet34", 1)
    model = create_model("unet", encoder="resnet34", num_classes=1)
    ours, theirs = model.state_dict(), peer.state_dict()
    if len(ours) != len(theirs):
        raise RuntimeError(f"{len(ours)} tensors in segwise's U-Net, {len(theirs)} in smp's")
    for (key, value), (peer_key, peer_value) in zip(ours.items(), theirs.items(), strict=True):
        same_kind = key.rsplit(".", 1)[-1] == peer_key.rsplit(".", 1)[-1]
        if value.shape != peer_value.shape or not same_kind:
            raise RuntimeError(f"{key} {tuple(value.shape)} vs {peer_key} {peer_value.shape}")
    model.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    return model


def build_arm(arm: str, seed: int) -> tuple[nn.Module, object]:
    """Build the U-Net/ResNet-34 variant ``arm`` from torch seed ``seed``."""
    from segwise.models import create_model

    torch.manual_seed(seed)
    if arm == "smp":
        return bc.build("smp.Unet-resnet34", 1)
    if arm == "current_from_smp":
        return _from_smp(seed), lambda out: out
    if arm == "fcn_tv":
        return bc.build("torchvision.fcn_resnet50", 1)
    if arm.endswith(("_norm_default", "_norm_he")):
        arch, encoder, options = _SCALE_ARCHS[arm.split("_norm_")[0]]
        model = create_model(arch, encoder=encoder, num_classes=1, **options)
        _redraw_normed_decoder(model, seed, he=arm.endswith("_he"))
        return model, lambda out: out
    if arm == "dlv3p_smp":
        return bc.build("smp.DeepLabV3Plus-resnet50", 1)
    if arm.startswith("dlv3p_"):
        model = create_model("deeplabv3plus", encoder="resnet50", num_classes=1, separable=True)
        if arm == "dlv3p_decoder_kaiming":
            _rescale_decoder(model, 6**0.5)
        elif arm != "dlv3p_current":
            raise ValueError(f"arm={arm!r} is not valid")
        return model, lambda out: out
    options = {"upsampling": "bilinear"} if arm == "bilinear" else {}
    model = create_model("unet", encoder="resnet34", num_classes=1, **options)
    if arm == "current":
        return model, lambda out: out
    if arm.startswith("current_"):
        if arm in ("current_no_zero_init_last", "current_smp_init"):
            _no_zero_init_last(model)
        if arm in ("current_decoder_kaiming", "current_smp_init"):
            _rescale_decoder(model, 6**0.5)
        return model, lambda out: out
    _legacy(model)
    torch.manual_seed(seed + 1000)  # replaced layers draw from their own stream
    if arm == "head3x3":
        _head(model, 3, "default")
    elif arm == "head_xavier":
        _head(model, 1, "xavier")
    elif arm == "head_kaiming":
        _head(model, 1, "kaiming")
    elif arm == "head3x3_xavier":
        _head(model, 3, "xavier")
    elif arm == "head_bias0":
        _head(model, 1, "bias0")
    elif arm == "decoder_kaiming":
        _decoder(model, "fan_in")
    elif arm == "decoder_kaiming_out":
        _decoder(model, "fan_out")
    elif arm == "no_zero_init_last":
        _no_zero_init_last(model)
    elif arm == "bn_momentum":
        for module in model.decoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum, module.eps = 0.01, 1e-3
    elif arm == "smp_like":
        _head(model, 3, "xavier")
        _decoder(model, "fan_in")
        _no_zero_init_last(model)
    elif arm not in ("legacy", "bilinear"):
        raise ValueError(f"arm={arm!r} is not valid")
    return model, lambda out: out


ARMS = [
    "legacy",
    "head3x3",
    "head_xavier",
    "head_kaiming",
    "head3x3_xavier",
    "head_bias0",
    "decoder_kaiming",
    "decoder_kaiming_out",
    "no_zero_init_last",
    "bilinear",
    "bn_momentum",
    "smp_like",
    "current",
    "smp",
    "current_no_zero_init_last",
    "current_decoder_kaiming",
    "current_smp_init",
    "dlv3p_current",
    "dlv3p_decoder_kaiming",
    "dlv3p_smp",
    *(f"{a}_norm_{s}" for a in _SCALE_ARCHS for s in ("default", "he")),
    "fcn_tv",
    "current_from_smp",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--std-only", action="store_true", help="init statistics only")
    parser.add_argument("--data", type=Path, default=bc.DATA)
    parser.add_argument("--out", type=Path, default=Path("ablate_init.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = (
        None if args.std_only else bc.load_task("dsb2018", args.data, n_train=args.n_train, n_val=0)
    )
    at = [args.steps // 3, 2 * args.steps // 3, args.steps]
    rows = []
    for seed in args.seeds:
        plan = (
            None
            if task is None
            else bc.crop_plan(task, steps=args.steps, batch=args.batch, crop=args.crop, seed=seed)
        )
        for arm in args.arms:
            model, to_logits = build_arm(arm, seed)
            std = bc.init_logit_std(model, to_logits, batch=args.batch, crop=args.crop)
            row = {"arm": arm, "seed": seed, "init_logit_std": std}
            if task is not None:
                torch.manual_seed(seed)
                start = time.perf_counter()
                losses = bc.train(model, to_logits, task, plan, crop=args.crop)
                row |= bc.summarise(losses, at) | {
                    "seconds": time.perf_counter() - start,
                    "losses": losses,
                }
            bc.record_row(rows, row, args)


if __name__ == "__main__":
    main()

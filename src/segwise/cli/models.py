"""``segwise models``: list architectures, their options, and encoders; count parameters."""

from __future__ import annotations

import argparse

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "models"
HELP = "list model architectures and encoders, or count a model's parameters"
DESCRIPTION = """\
List the architectures accepted by create_model / --model, with their default encoder and
options, then the instance models (segwise train --task instance --model NAME), and the
registered encoders (any timm features model also works as timm:<name>).

Examples:
  segwise models                      # architectures and their options
  segwise models --encoders           # encoders
  segwise models --count unet --encoder resnet34 --num-classes 3
"""



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoders", action="store_true", help="list encoders instead")
    parser.add_argument(
        "--count", metavar="MODEL", help="build MODEL (random init) and print its parameter count"
    )
    parser.add_argument("--encoder", default=None, help="encoder for --count (default: model's)")
    parser.add_argument("--in-channels", type=int, default=3, help="input channels for --count")
    parser.add_argument("--num-classes", type=int, default=2, help="classes for --count")


def run(args: argparse.Namespace) -> int:
    import inspect

    from segwise.models import create_model
    from segwise.models.architectures import MODELS
    from segwise.models.encoders import ENCODERS, TIMM_PREFIX

    if args.count:
        model = create_model(
            args.count,
            encoder=args.encoder,
            in_channels=args.in_channels,
            num_classes=args.num_classes,
        )
        total = sum(p.numel() for p in model.parameters())
        print(f"{args.count}: {total:,} parameters ({total / 1e6:.2f} M)")
        return 0
    if args.encoders:
        for name in ENCODERS:
            spec = ENCODERS.get(name)
            weights = "imagenet" if spec.imagenet else "no pretrained weights"
            print(f"{name:<15} {spec.description} [{weights}]")
        print(f"{TIMM_PREFIX + '<name>':<15} any timm model supporting features_only=True")
        return 0
    for name in MODELS:
        spec = MODELS.get(name)
        params = inspect.signature(spec.build).parameters.values()
        options = ", ".join(
            f"{p.name}={getattr(p.default, 'value', p.default)!r}"
            for p in params
            if p.default is not inspect.Parameter.empty
        )
        dims = " [3D: input (N, C, D, H, W)]" if spec.spatial_dims == 3 else ""
        print(f"{name:<15} {spec.description} (default encoder: {spec.default_encoder}){dims}")
        print(f"{'':<15} options: {options or '-'}")
    from segwise.instance.methods import INSTANCE_METHODS, get_method

    print("\ninstance models (segwise train --task instance --model NAME):")
    for name in INSTANCE_METHODS:
        print(f"{name:<15} {get_method(name).description}")
    return 0

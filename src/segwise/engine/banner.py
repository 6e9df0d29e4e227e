"""The start-of-run banner: every value a run uses, with the ones segwise chose marked."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["describe_run"]


def _resolved_encoder(model_args: dict[str, Any]) -> str:
    if model_args.get("encoder"):
        return str(model_args["encoder"])
    try:
        from segwise.models.architectures import MODELS

        return f"{MODELS.get(model_args['name']).default_encoder} (the model's default)"
    except Exception:  # instance models and unknown names: the builder decides
        return "the model's default"


def _warmup(warmup_epochs: float | None) -> str:
    """The optimizer line's warmup: the epochs given, or the default's rule."""
    if warmup_epochs is None:
        return "1 ep at most 5 % of the run (default)"
    return f"{warmup_epochs} ep"


def _resolved_options(model_args: dict[str, Any]) -> dict[str, Any]:
    """The architecture's options with its defaults filled in (the user's win)."""
    options = dict(model_args.get("options", {}))
    try:
        from segwise.models.factory import resolved_options

        options = resolved_options(model_args["name"], options)
    except Exception:  # instance models: their builders live elsewhere; show what was given
        pass
    return {key: getattr(value, "value", value) for key, value in options.items()}  # enums


def _loader(user_data, device) -> str:
    """The loader settings: the user's, the rest from ``loader_settings`` (as the run uses)."""
    from segwise.data.loaders import loader_settings

    u = user_data
    return loader_settings(device, workers=u.workers, pin_memory=u.pin_memory,
                           persistent_workers=u.persistent_workers,
                           prefetch_factor=u.prefetch_factor).describe()


def _head(model_args: dict) -> str:
    """The head, truthfully: a semantic model's output channels; an instance method's
    foreground classes (its head's channels are the method's own, e.g. the watershed U-Net's
    interior/border/background maps, so no single count is printed as the head's)."""
    if model_args.get("kind") == "instance":
        return (f"foreground_classes={model_args['num_classes']} (the head's channels are "
                f"{model_args.get('method', 'the method')}'s own)")
    return f"out_channels={model_args['num_classes']}"


def _derived(summary: str) -> str:
    """The adapter's data-derived values; "from the training data" only where some are."""
    return summary if summary.startswith("nothing") else f"{summary} (from the training data)"


def _class_weights(asked: Any, weights: tuple[float, ...] | None, names: Any) -> list[str]:
    """The ``weights`` line: the numbers the loss uses, per class name, and where they came
    from (a rule on the training split, or the list given); none without class weights."""
    if weights is None:
        return []
    source = (f"{asked.value} on the training split" if hasattr(asked, "value")
              else "as given")
    per_class = ", ".join(f"{n}={w:.4g}" for n, w in zip(names, weights, strict=True))
    return [f"weights   class weights ({source}): {per_class}"]


def describe_run(config, user_data, info, adapter, device, amp_dtype, channels_last, ctx) -> str:
    """The start-of-run banner: every value the run uses, ``(auto)`` where derived."""
    model_args = adapter.model_args
    d, o, t = config.data, config.optim, config.train
    labels = info.labels

    def auto(name: str) -> str:
        value = getattr(d, name)
        return f"{value} (auto)" if getattr(user_data, name) is None else str(value)

    weights = config.model.weights or "none: random init (--weights imagenet for pretrained)"
    scale = "off" if tuple(d.scale) == (1.0, 1.0) else f"{d.scale[0]:g}-{d.scale[1]:g}"
    volumes = getattr(info, "spatial_dims", 2) == 3
    crop = f"patch={auto('patch_size')}" if volumes else f"crop={auto('crop_size')}"
    augment = (f"augment   volumes: --volume-augment {d.volume_augment.value} (see derived), "
               f"flips={d.hflip}" if volumes
               else f"augment   scale={scale} hflip={d.hflip} vflip={d.vflip} "
                    f"rotation={d.rotation} color_jitter={d.color_jitter} "
                    f"on={d.augment_on.value}"
                    f"{' (decoded train set resident on the device)' if d.resident else ''}")
    lines = [
        f"data      {d.root}: task={labels.task.value}, classes={labels.num_classes} "
        f"{list(labels.names)}, in_channels={info.in_channels}, ignore={labels.ignore_index}, "
        f"mask kind={info.mask_kind.value}",
        f"model     {model_args['name']} encoder={_resolved_encoder(model_args)} "
        f"weights={weights} {_head(model_args)} "
        f"options={_resolved_options(model_args)} (init: docs/models.md, Initialisation)",
        f"loss      {adapter.loss_description}",
        *_class_weights(t.class_weights, adapter.class_weights, labels.names),
        *([f"derived   {_derived(adapter.data_derived)}"] if adapter.data_derived else []),
        f"optimizer {o.optimizer.value} lr={o.lr} wd={o.weight_decay} "
        f"schedule={o.schedule.value} warmup={_warmup(o.warmup_epochs)}, "
        f"clip={o.grad_clip if o.grad_clip is not None else 'off'}, ema={o.ema_decay}",
        f"train     epochs={t.epochs} {crop} batch={auto('batch_size')} "
        f"workers={auto('workers')} seed={t.seed} task={t.task.value} "
        f"val_every={t.val_every} monitor={(t.monitor or adapter.default_monitor).value}",
        augment,
        f"loader    {_loader(user_data, device)}",
        f"device    {device} amp={amp_dtype} channels_last={channels_last} "
        f"compile={t.compile} processes={ctx.world_size} threads={torch.get_num_threads()}",
    ]
    return "\n".join(lines)

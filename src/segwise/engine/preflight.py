"""Plan and check a run before it writes anything: the recipe the run then uses as it is.

:func:`segwise.engine.trainer.fit` calls :func:`check_run` before it creates the run folder, so
a run refused for a misspelt ``--model``, ``--encoder``, ``--model-option``, ``--loss``,
``--monitor``, ``--ignore-index``, a missing ``--data`` folder or ``--weights`` file, data that
cannot be trained on, or a batch-norm layer that would see one value per channel, leaves
nothing on disk; the corrected retry with the same ``--out`` just works. (nnU-Net and MONAI
runners fail late; this is the "check everything, then write" habit of ``STYLE.md``.)

What is checked and built, in order (each check raises with the bad value and the fix):

1. the config's own values (:meth:`RunConfig.validate`: ranges, loss names and weights) and
   a ``--weights`` file;
2. the data (:func:`segwise.data.discover_dataset`, strict): layout, pairs, label values, the
   label space's ignore rule; a training and a validation split exist; every image decodes;
   ``train.class_weights`` as numbers, one per class (a list as given, or its rule computed
   on the training split; a resumed run reuses the numbers stored in its checkpoint);
3. where the run computes (device, mixed precision) and the data defaults that follow
   (crop and batch size, loader settings: :func:`~segwise.engine.setup.derive_data_defaults`);
4. the task's adapter, built once: it accepts the data and the options (e.g. instance masks
   for ``--task instance``), resolves its data-derived options and builds its loss;
   ``train.monitor`` is a metric this task reports;
5. the model, built once with its start weights (every builder argument checked);
6. batch statistics (:func:`check_batch_statistics`): a forward on PyTorch's ``meta`` device
   (shapes only, no arithmetic) finds a batch-norm layer that would see a single value per
   channel.

The result, a :class:`RunRecipe`, is what :func:`segwise.engine.run_start.start_run` runs:
nothing is built twice. A resumed run checks the config stored in its checkpoint the same way
(``resume=True``: no start weights, the checkpoint holds them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segwise.engine import distributed as dist_utils
from segwise.engine.config import DataConfig, RunConfig
from segwise.engine.setup import derive_data_defaults, resolve_amp, seed_everything
from segwise.models.batch_stats import single_value_norms
from segwise.runs.device import resolve_device

__all__ = ["RunRecipe", "check_batch_statistics", "check_run"]


@dataclass(frozen=True)
class RunRecipe:
    """The checked plan of a run: built once by :func:`check_run`, run as it is.

    Attributes:
        config: the run configuration with the data defaults filled in (config.yaml).
        user_data: the data section as given (the banner marks what segwise chose).
        index: the discovered dataset (:class:`segwise.data.DatasetIndex`).
        adapter: the task adapter (:mod:`segwise.engine.adapters`), options resolved from the
            data, loss built.
        model: the network on the CPU with its start weights (none when resuming: the
            checkpoint holds them); the run moves it to ``device`` and trains it.
        device: where the run computes (this process's GPU in a distributed run).
        amp_dtype: the autocast dtype, or None.
        use_scaler: whether fp16 needs a gradient scaler.
        channels_last: channels-last inputs and weights.
        monitor: the summary key that selects ``best.pt``.
        decoded: images decoded by the start-up check.
        decode_seconds: how long that took.
    """

    config: RunConfig
    user_data: DataConfig
    index: Any
    adapter: Any
    model: nn.Module
    device: torch.device
    amp_dtype: torch.dtype | None
    use_scaler: bool
    channels_last: bool
    monitor: str
    decoded: int
    decode_seconds: float


def check_run(config: RunConfig, *, resume: bool = False,
              class_weights: Sequence[float] | None = None) -> RunRecipe:
    """Check a run completely and build what it runs, writing nothing (module docstring).

    Sets the process's thread count (``train.threads``) and seeds it (``train.seed``: the
    start weights are the seed's), as the run would.

    Args:
        config: the run configuration.
        resume: the config of a run being resumed: its ``--weights`` file is not checked or
            loaded (the checkpoint holds the weights; the start file may be gone).
        class_weights: a resumed run's class weights as its checkpoint stores them (numbers,
            one per class): used as they are, the rule is not computed again.

    Returns:
        The :class:`RunRecipe`.

    Raises:
        ValueError: a bad option, with its value and the allowed ones (``DataError``, a
            ``ValueError``, for the data).
        FileNotFoundError: the data folder or the ``--weights`` file does not exist.
    """
    from segwise.engine.registry import make_adapter

    config.validate()
    if not resume:
        _check_weights_file(config)
    index, decoded, seconds = _check_data(config)
    config = _check_dimensions(config, index.info)
    weights = _check_class_weights(config, index, stored=class_weights)
    t_cfg = config.train
    if t_cfg.threads is not None:
        torch.set_num_threads(t_cfg.threads)
    device = dist_utils.process_device(resolve_device(t_cfg.device))
    amp_dtype, use_scaler = resolve_amp(t_cfg.amp, device)
    channels_last = device.type == "cuda" if t_cfg.channels_last is None else t_cfg.channels_last
    data = derive_data_defaults(config.data, index.info, device)
    resolved = dataclasses.replace(config, data=data)
    adapter = make_adapter(resolved, index.info, device=device, amp_dtype=amp_dtype,
                           channels_last=channels_last, index=index, class_weights=weights)
    monitor = _check_monitor(config, adapter)
    seed_everything(t_cfg.seed)
    model = adapter.build_model(None if resume else config.model.weights)
    if index.info.spatial_dims == 2:
        check_batch_statistics(model, batch_size=min(data.batch_size, len(index.train)),
                               crop_size=data.crop_size, in_channels=index.info.in_channels)
    return RunRecipe(config=resolved, user_data=config.data, index=index, adapter=adapter,
                     model=model, device=device, amp_dtype=amp_dtype, use_scaler=use_scaler,
                     channels_last=channels_last, monitor=monitor, decoded=decoded,
                     decode_seconds=seconds)


def _check_weights_file(config: RunConfig) -> None:
    weights = config.model.weights
    # "coco": Mask R-CNN's documented alias for torchvision's COCO checkpoint (its builder
    # finds the file in the torch hub cache or says where to put it)
    named = (None, "imagenet", *(("coco",) if config.train.task.value == "instance" else ()))
    if weights not in named and not Path(str(weights)).is_file():
        raise FileNotFoundError(f"--weights {weights} does not exist; pass an existing .pth / "
                                ".safetensors file, 'imagenet', or nothing")


def _check_data(config: RunConfig) -> tuple[Any, int, float]:
    """The strict dataset index, with a training and a validation split, every image decoded;
    the index, the images decoded and the seconds that took."""
    from segwise.data import discover_dataset
    from segwise.engine.data_check import decode_every_image

    index = discover_dataset(
        config.data.root,
        mask_kind=config.data.mask_kind,
        ignore_index=config.data.ignore_index,
        val_fraction=config.data.val_fraction,
        seed=config.train.seed,
        nonfinite=config.data.nonfinite,
        normalization=config.data.normalization,
    )
    if not index.train:
        raise ValueError(f"no training images found in {config.data.root}")
    if not index.val:
        raise ValueError(
            f"no validation images in {config.data.root}: add a split file or raise "
            "--val-fraction (at least one image must be held out)"
        )
    if index.info.spatial_dims == 3:  # discovery read every volume and its labels
        return index, len(index.samples), 0.0
    decoded, seconds = decode_every_image(index.samples, config.data.root)
    return index, decoded, seconds


def _check_dimensions(config: RunConfig, info: Any) -> RunConfig:
    """The model takes the data's dimensions: on volumes the default ``unet`` becomes
    ``unet3d``; any other 2D model on volumes, a 3D model on images, or 2D-only options
    (``--augment-on device``) are refused, naming the models that fit."""
    from segwise.engine.config import AugmentOn, ModelConfig
    from segwise.engine.volume_adapter import DEFAULT_VOLUME_MODEL
    from segwise.models.architectures import MODELS

    if config.train.task.value != "semantic" or config.model.name not in MODELS:
        return config  # instance methods and unknown names: their own checks say why
    dims = MODELS.get(config.model.name).spatial_dims
    fits = sorted(n for n in MODELS if MODELS.get(n).spatial_dims == info.spatial_dims)
    if dims == info.spatial_dims:
        pass
    elif (info.spatial_dims == 3 and config.model.name == ModelConfig().name
          and config.model.encoder is None):  # the 2D default left as it is
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, name=DEFAULT_VOLUME_MODEL))
    elif info.spatial_dims == 3:
        raise ValueError(f"--model {config.model.name} takes 2D images, but "
                         f"{config.data.root} holds volumes; use one of {', '.join(fits)}")
    else:
        raise ValueError(f"--model {config.model.name} takes volumes (N, C, D, H, W), but "
                         f"{config.data.root} holds 2D images; use e.g. unet, deeplabv3plus")
    if info.spatial_dims == 3 and config.data.augment_on is AugmentOn.DEVICE:
        raise ValueError("--augment-on device is for 2D images; volumes are augmented per "
                         "patch on the CPU (drop --augment-on)")
    return config


def _check_class_weights(config: RunConfig, index: Any, *,
                         stored: Sequence[float] | None) -> tuple[float, ...] | None:
    """``train.class_weights`` as numbers, one per class (background included): ``stored`` (a
    resumed run's), a list as given, or the rule computed on the training split's
    per-image class counts (:func:`segwise.data.class_weights.class_weights_from_counts`,
    images and volumes alike). Any other length than the data's class count is refused,
    naming the classes; classes absent from the training split are named in a notice."""
    from segwise.data.class_weights import DEFAULT_BETA, class_weights_from_counts
    from segwise.notices import Level, notify

    t, labels = config.train, index.info.labels
    if t.class_weights is None:
        return None
    k, names = labels.num_classes, labels.names
    if stored is not None:
        values = tuple(float(v) for v in stored)
    elif isinstance(t.class_weights, tuple):
        values = t.class_weights
    else:
        rule = t.class_weights.value
        found = class_weights_from_counts(
            [index.class_pixels.get(s.id, {}) for s in index.train], num_classes=k,
            rule=t.class_weights, beta=DEFAULT_BETA if t.class_weights_beta is None
            else t.class_weights_beta)
        if found.absent:
            absent = ", ".join(f"{c} ({names[c]})" for c in found.absent)
            notify(Level.INFO, f"class weights: class(es) {absent} have no pixels in the "
                               f"{len(index.train)} training images; {rule} gives them the "
                               "smallest weight of the present classes (docs/dice.md)")
        values = found.values
    if len(values) != k:
        order = "background,foreground" if labels.task.value == "binary" else "in this order"
        raise ValueError(
            f"--class-weights has {len(values)} value(s) but {config.data.root} has {k} "
            f"classes ({', '.join(names)}); give one weight per class, background included "
            f"({order}), e.g. {','.join(['1'] * k)}")
    return values


def _check_monitor(config: RunConfig, adapter: Any) -> str:
    """``train.monitor`` (or the adapter's default) as a summary key; refused when the task
    does not report it."""
    monitor = config.train.monitor
    allowed = type(adapter).MONITORS
    if monitor is not None and monitor not in allowed:
        raise ValueError(
            f"--monitor {monitor.value} is not reported by a {config.train.task.value} run; "
            f"choose one of {', '.join(m.value for m in allowed)}"
        )
    return (monitor or adapter.default_monitor).value


def check_batch_statistics(
    model: nn.Module, *, batch_size: int, crop_size: int, in_channels: int
) -> None:
    """Refuse a run where a batch-norm layer would see one value per channel.

    Only checked for ``batch_size == 1`` on a segmentation model with batch norm (the models
    of :func:`segwise.create_model`, and instance methods built on one), with
    :func:`segwise.models.batch_stats.single_value_norms` (a ``meta``-device forward of a
    ``(1, C, crop, crop)`` image: shapes only), whatever the architecture, encoder depth, output
    stride or padding to the encoder's divisor. The model refuses the same batch itself when
    trained from Python (:class:`~segwise.models.batch_stats.BatchStatisticsError`); here the
    message names the command-line fixes, before anything is written.

    Raises:
        ValueError: naming the layer, the batch and crop size, and the fix.
    """
    from segwise.models import SegmentationModel

    if batch_size != 1 or not isinstance(model, SegmentationModel):
        return
    single = single_value_norms(model, (in_channels, crop_size, crop_size))
    if not single:
        return
    divisor = int(getattr(model.encoder, "divisor", 32))
    fix = "use --batch-size 2 or more"
    if crop_size <= divisor and not single_value_norms(
            model, (in_channels, 2 * divisor, 2 * divisor)):
        fix += f", or --crop-size {2 * divisor} or more"
    raise ValueError(
        f"batch size 1 with {crop_size} px crops gives batch-norm layer {single[0][0]!r} a "
        f"single value per channel ({len(single)} such layer(s)), which cannot be trained; {fix}"
    )



"""Run configuration: small frozen dataclasses, one comment per field.

YAML lives only at the command-line edge: :func:`config_from_dict` validates a nested plain
dict (from YAML and/or flags) into a :class:`RunConfig`, and :meth:`RunConfig.to_dict` turns it
back into builtins for the run folder and every checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from segwise._validation import as_enum, check_positive, check_probability
from segwise.enums import ClassWeightRule

__all__ = [
    "AmpMode",
    "AugmentOn",
    "ClassWeightRule",
    "DataConfig",
    "ModelConfig",
    "Monitor",
    "OptimConfig",
    "OptimizerName",
    "RunConfig",
    "RunTask",
    "ScheduleName",
    "TrainConfig",
    "VolumeAugmentPreset",
    "config_from_dict",
    "load_yaml",
]


class OptimizerName(str, Enum):
    ADAMW = "adamw"
    SGD = "sgd"


class ScheduleName(str, Enum):
    COSINE = "cosine"  # half-cosine from lr to min_lr after warmup
    POLY = "poly"  # (1 - t)^power after warmup, DeepLab's schedule
    CONSTANT = "constant"  # lr after warmup


class AmpMode(str, Enum):
    AUTO = "auto"  # bf16 on GPUs that support it, fp16 + GradScaler on older GPUs, off on CPU
    BF16 = "bf16"
    FP16 = "fp16"
    OFF = "off"


class AugmentOn(str, Enum):
    """Where training augmentation runs."""

    CPU = "cpu"  # per item, in the loader processes (segwise.data.train_transforms)
    DEVICE = "device"  # per batch, on the training device (segwise.data.device_augment)


class VolumeAugmentPreset(str, Enum):
    """How training patches of volumes are augmented (:mod:`segwise.data.volume_augment`)."""

    LIGHT = "light"  # flips on each axis: what short CPU budgets learn fastest with
    NNUNET = "nnunet"  # + in-plane 90-degree turns, scaling, brightness/contrast/gamma/noise
    NONE = "none"  # patches as cut


class RunTask(str, Enum):
    """What a run trains: per-pixel classes, or classes plus instance IDs."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"


class Monitor(str, Enum):
    """Validation metric that selects ``best.pt`` and drives early stopping (higher is better).

    Semantic runs report the first four, instance runs the last three (docs/metrics.md,
    docs/instance.md).
    """

    MEAN_DICE = "mean_dice"
    MEAN_IOU = "mean_iou"
    PIXEL_ACCURACY = "pixel_accuracy"
    PER_IMAGE_DICE = "per_image_dice"
    DSB_SCORE = "dsb_score"
    AP50 = "ap50"
    PQ = "pq"


@dataclass(frozen=True)
class ModelConfig:
    name: str = "unet"  # architecture, see `segwise models`
    encoder: str | None = None  # backbone; None: the architecture's default (`segwise models`)
    weights: str | None = None  # None, "imagenet", or a local .pth/.safetensors file
    options: dict[str, Any] = field(default_factory=dict)  # architecture-specific arguments


@dataclass(frozen=True)
class DataConfig:
    root: str = ""  # dataset folder (see docs/data.md for the layouts)
    mask_kind: str = "auto"  # mask format; "auto" detects it
    ignore_index: int | None = None  # label ignored in loss and metrics (None: from the data)
    val_fraction: float = 0.2  # used only when the data defines no split
    nonfinite: str = "refuse"  # NaN/inf pixels of float images: refuse (error per file), ignore
    crop_size: int | None = None  # training crop; None derives it from the image sizes
    batch_size: int | None = None  # None derives it from crop size and device
    workers: int | None = None  # DataLoader workers; None picks from the CPU count and device
    pin_memory: bool | None = None  # page-locked batches; None: on for CUDA
    persistent_workers: bool | None = None  # keep workers between epochs; None: with workers
    prefetch_factor: int | None = None  # batches each worker loads ahead; None: 4 with workers
    augment_on: AugmentOn = AugmentOn.CPU  # cpu: per item in the loader; device: per batch
    resident: bool = False  # augment_on=device: keep the decoded train set on the device
    cache: bool = False  # keep decoded images in memory (small datasets)
    hflip: bool = True  # random horizontal flip
    vflip: bool = False  # random vertical flip (microscopy, aerial)
    rotation: float = 0.0  # max random rotation in degrees
    scale: tuple[float, float] = (0.5, 2.0)  # random rescale range before cropping
    color_jitter: float = 0.0  # brightness/contrast/saturation jitter strength
    # volumes (3D data) only:
    patch_size: tuple[int, ...] | None = None  # (D, H, W) training patch; None: from the data
    foreground_fraction: float = 1 / 3  # share of patches centred on a labelled voxel
    normalization: str = "auto"  # intensities: auto (ct for CT, else zscore), zscore, ct
    volume_augment: VolumeAugmentPreset = VolumeAugmentPreset.LIGHT  # light, nnunet, none

    def __post_init__(self) -> None:
        if isinstance(self.patch_size, list):  # from YAML / flags
            object.__setattr__(self, "patch_size", tuple(self.patch_size))


@dataclass(frozen=True)
class OptimConfig:
    optimizer: OptimizerName = OptimizerName.ADAMW
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-4
    momentum: float = 0.9  # SGD only
    schedule: ScheduleName = ScheduleName.COSINE
    warmup_epochs: float | None = None  # linear warmup from 0, in epochs; None: 1, <= 5 % of run
    min_lr: float = 0.0  # floor of cosine/poly
    poly_power: float = 0.9
    grad_clip: float | None = 1.0  # max global grad norm; None disables
    ema_decay: float | None = None  # e.g. 0.999 keeps an EMA of weights used for validation


@dataclass(frozen=True)
class TrainConfig:
    task: RunTask = RunTask.SEMANTIC  # semantic, or instance (models maskrcnn / unet_watershed)
    epochs: int = 50
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    amp: AmpMode = AmpMode.AUTO
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False  # torch.compile the model
    loss: str = "dicece"  # see segwise.losses.LossName; a weighted sum as "dice+focal"
    loss_weights: tuple[float, ...] | None = None  # one per term of a sum loss (None: all 1)
    dice_weight: float = 1.0  # Dice term weight in Dice+CE
    ce_weight: float = 1.0  # cross-entropy term weight in Dice+CE
    # per-class loss weights (CE/focal and the Dice family's class weighting): one number per
    # class, background included (binary: background,foreground), or a ClassWeightRule computed
    # from the training split (docs/dice.md, "Class weights from the data"); None: unweighted
    class_weights: tuple[float, ...] | ClassWeightRule | None = None
    class_weights_beta: float | None = None  # effective_number's beta; None: 0.9999
    monitor: Monitor | None = None  # None: mean_dice (semantic), dsb_score (instance)
    patience: int | None = None  # early stopping after this many epochs without improvement
    val_every: int = 1  # validate every k epochs (and always after the last)
    overlays: int = 4  # validation images drawn in overlays.png
    max_steps_per_epoch: int | None = None  # cap on steps (quick runs, smoke tests)
    max_steps: int | None = None  # total optimizer-step budget; the schedule ends there
    time_limit: float | None = None  # seconds; the schedule is fitted to it, the run stops in it
    threads: int | None = None  # CPU threads for torch (None: torch's default)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_weights", _class_weights_value(self.class_weights))


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (enums as their values), safe for YAML, JSON and checkpoints."""
        return _to_builtins(dataclasses.asdict(self))

    def validate(self) -> RunConfig:
        """Check value ranges; returns self so it can be chained."""
        o, t, d = self.optim, self.train, self.data
        check_positive(o.lr, "optim.lr")
        check_positive(o.weight_decay, "optim.weight_decay", allow_zero=True)
        if o.warmup_epochs is not None:
            check_positive(o.warmup_epochs, "optim.warmup_epochs", allow_zero=True)
        check_positive(o.min_lr, "optim.min_lr", allow_zero=True)
        if o.grad_clip is not None:
            check_positive(o.grad_clip, "optim.grad_clip")
        if o.ema_decay is not None and not 0.0 < o.ema_decay < 1.0:
            raise ValueError(f"optim.ema_decay={o.ema_decay!r} is not valid; expected 0 < x < 1")
        check_positive(t.epochs, "train.epochs")
        check_positive(t.val_every, "train.val_every")
        for name in ("max_steps", "time_limit", "threads", "max_steps_per_epoch"):
            if getattr(t, name) is not None:
                check_positive(getattr(t, name), f"train.{name}")
        if t.patience is not None:
            check_positive(t.patience, "train.patience")
        check_positive(t.dice_weight, "train.dice_weight", allow_zero=True)
        check_positive(t.ce_weight, "train.ce_weight", allow_zero=True)
        _check_loss(t.loss, t.loss_weights)
        _check_class_weights(t)
        check_probability(d.val_fraction, "data.val_fraction")
        for name in ("crop_size", "batch_size"):
            value = getattr(d, name)
            if value is not None:
                check_positive(value, f"data.{name}")
        if d.patch_size is not None and (
                len(d.patch_size) != 3 or not all(isinstance(v, int) and v >= 1
                                                  for v in d.patch_size)):
            raise ValueError(f"data.patch_size={d.patch_size!r} is not valid; expected 3 "
                             "integers >= 1 (D, H, W), e.g. 40,56,40")
        check_probability(d.foreground_fraction, "data.foreground_fraction")
        if d.normalization not in ("auto", "zscore", "ct"):
            raise ValueError(f"data.normalization={d.normalization!r} is not valid; expected "
                             "auto, zscore or ct")
        if d.prefetch_factor is not None:
            check_positive(d.prefetch_factor, "data.prefetch_factor")
        if d.resident and d.augment_on is not AugmentOn.DEVICE:
            raise ValueError("data.resident=True needs data.augment_on='device' (--augment-on "
                             "device): resident data is augmented where it lives")
        if d.augment_on is AugmentOn.DEVICE and t.task is RunTask.INSTANCE:
            raise ValueError("data.augment_on='device' is for semantic runs; instance runs "
                             "augment on the CPU (drop --augment-on device)")
        if len(d.scale) != 2 or not 0 < d.scale[0] <= d.scale[1]:
            raise ValueError(
                f"data.scale={d.scale!r} is not valid; expected (low, high) with 0 < low <= high"
            )
        return self


def _check_loss(loss: str, weights: Any) -> None:
    """``train.loss`` names known losses; ``train.loss_weights`` has one weight per term."""
    from segwise.losses import loss_options

    try:
        loss_options(loss)
    except ValueError as err:
        raise ValueError(f"train.loss={loss!r} is not valid: {err}") from None
    if weights is None:
        return
    terms = str(loss).count("+") + 1
    values = list(weights) if isinstance(weights, list | tuple) else [weights]
    ok = len(values) == terms and all(
        isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w < float("inf")
        for w in values
    ) and any(w > 0 for w in values)
    if not ok:
        raise ValueError(
            f"train.loss_weights={weights!r} is not valid for loss {loss!r}; expected {terms} "
            "finite weight(s) >= 0, not all 0 (one per term, e.g. 1,0.5 for dice+focal)"
        )


_RULES = ", ".join(r.value for r in ClassWeightRule)


def _class_weights_value(value: Any) -> Any:
    """``train.class_weights`` as given (YAML, flag or Python) -> a rule, a tuple, or None:
    ``"median_frequency"`` -> the rule; ``"1,2,5"`` or ``[1, 2, 5]`` -> ``(1.0, 2.0, 5.0)``.
    Numbers are checked by :meth:`RunConfig.validate`."""
    if value is None or isinstance(value, ClassWeightRule):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text in {r.value for r in ClassWeightRule}:
            return ClassWeightRule(text)
        try:
            return tuple(float(v) for v in text.split(","))
        except ValueError:
            raise ValueError(
                f"train.class_weights={value!r} is not valid; expected one number per class "
                f"(background included), e.g. 1,2,5, or a rule: {_RULES}") from None
    if isinstance(value, list | tuple):
        return tuple(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                     for v in value)
    return value


def _check_class_weights(t: TrainConfig) -> None:
    """A list of weights holds finite numbers >= 0, not all 0 (its length is checked against
    the data's classes by :func:`segwise.engine.preflight.check_run`); ``class_weights_beta``
    only with ``effective_number``; instance runs take no class weights."""
    w, beta = t.class_weights, t.class_weights_beta
    if w is not None and t.task is RunTask.INSTANCE:
        raise ValueError("train.class_weights (--class-weights) is for semantic runs; an "
                         "instance method weights its own loss terms: drop --class-weights")
    if isinstance(w, tuple):
        ok = len(w) > 0 and all(
            isinstance(v, float) and 0.0 <= v < float("inf") for v in w) and any(
            v > 0 for v in w)
        if not ok:
            shown = ",".join(f"{v:g}" if isinstance(v, float) else repr(v) for v in w) or "[]"
            raise ValueError(
                f"train.class_weights={shown} is not valid; expected finite numbers >= 0, not "
                "all 0, one per class (background included; binary: background,foreground), "
                f"e.g. 1,2,5; or a rule: {_RULES}")
    elif w is not None and not isinstance(w, ClassWeightRule):
        raise ValueError(f"train.class_weights={w!r} is not valid; expected a list of numbers "
                         f"(one per class, background included) or a rule: {_RULES}")
    if beta is not None:
        if w is not ClassWeightRule.EFFECTIVE_NUMBER:
            raise ValueError(f"train.class_weights_beta={beta!r} is used only with "
                             "class_weights=effective_number; drop it or use that rule")
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 <= beta < 1:
            raise ValueError(f"train.class_weights_beta={beta!r} is not valid; expected "
                             "0 <= beta < 1 (the default 0.9999 is Cui et al.'s)")


def _to_builtins(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _to_builtins(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_builtins(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# fields whose default is None but whose values are enums
_OPTIONAL_ENUMS: dict[tuple[str, str], type[Enum]] = {("train", "monitor"): Monitor}

_SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "train": TrainConfig}


def _coerce(cls: type, section: str, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"allowed in '{section}': {', '.join(sorted(fields))}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        enum_cls = _OPTIONAL_ENUMS.get((section, key))
        if isinstance(default, Enum):
            value = as_enum(value, type(default), f"{section}.{key}")
        elif enum_cls is not None and value is not None:
            value = as_enum(value, enum_cls, f"{section}.{key}")
        elif isinstance(default, tuple) and isinstance(value, list | tuple):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from nested plain dicts.

    Args:
        values: ``{"model": {...}, "data": {...}, "optim": {...}, "train": {...}}``; every
            section and key is optional, missing ones take their defaults.

    Raises:
        ValueError: on an unknown section or key (naming it and the allowed ones) or a bad value.
    """
    unknown = sorted(set(values) - set(_SECTIONS))
    if unknown:
        raise ValueError(
            f"unknown config section(s) {unknown}; allowed: {', '.join(_SECTIONS)}"
        )
    sections = {
        name: _coerce(cls, name, dict(values.get(name) or {})) for name, cls in _SECTIONS.items()
    }
    return RunConfig(**sections).validate()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML run config into nested dicts, with errors that name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {path} must hold a mapping of sections, got {type(data).__name__}"
        )
    return data

"""The Python front door: train, evaluate and predict in three calls, as the command line does.

Example:
    >>> import segwise
    >>> run = segwise.train("my_data", model="unet", epochs=30)  # doctest: +SKIP
    >>> result = segwise.evaluate(run.run_dir, "my_data")  # doctest: +SKIP
    >>> result.summary()["mean_dice"]  # doctest: +SKIP
    >>> predictor = segwise.load_predictor(run.run_dir, device="cpu")  # doctest: +SKIP
    >>> [pred] = predictor.predict("scan.png")  # doctest: +SKIP

Each call does what its verb does (``segwise train``, ``segwise evaluate``, ``segwise
predict``) with the same validation and the same code: :func:`train` builds a
:class:`~segwise.engine.config.RunConfig` and hands it to :func:`segwise.engine.trainer.fit`;
:func:`evaluate` scores with the one evaluation loop
(:func:`segwise.engine.evaluation.evaluation_loop`) and the checkpoint's predictor;
:func:`load_predictor` returns :func:`segwise.inference.load_predictor`'s predictor (or the
ONNX one). Nothing here imports torch until a function is called, so ``import segwise`` stays
cheap. This module sits between the command line and the engine (``tests/test_package_order.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segwise._validation import as_enum

if TYPE_CHECKING:
    from segwise.engine.config import Monitor, RunConfig, RunTask
    from segwise.engine.evaluation import BoundarySettings, EvalResult
    from segwise.engine.instance_scoring import InstanceEvalResult
    from segwise.engine.trainer import FitResult
    from segwise.inference import PredictOptions, Predictor

__all__ = ["EvalSplit", "evaluate", "load_predictor", "train"]


class EvalSplit(str, Enum):
    """Which images of a dataset :func:`evaluate` scores (``segwise evaluate --split``)."""

    VAL = "val"  # the held-out images: the split file's, else the run's val_fraction and seed
    TRAIN = "train"
    TEST = "test"  # the ids listed under "test" in splits.json
    ALL = "all"


# keyword of train() -> (config section, key), as the command line's flags map onto the config
_TRAIN_OPTIONS: dict[str, tuple[str, str]] = {
    "model": ("model", "name"),
    "encoder": ("model", "encoder"),
    "weights": ("model", "weights"),
    "task": ("train", "task"),
    "epochs": ("train", "epochs"),
    "crop_size": ("data", "crop_size"),
    "batch_size": ("data", "batch_size"),
    "workers": ("data", "workers"),
    "lr": ("optim", "lr"),
    "loss": ("train", "loss"),
    "monitor": ("train", "monitor"),
    "device": ("train", "device"),
    "seed": ("train", "seed"),
    "max_steps": ("train", "max_steps"),
    "time_limit": ("train", "time_limit"),
}


def train(
    data: str | Path | None,
    *,
    model: str | None = None,
    encoder: str | None = None,
    weights: str | None = None,
    model_options: Mapping[str, Any] | None = None,
    task: RunTask | str | None = None,
    epochs: int | None = None,
    crop_size: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    lr: float | None = None,
    loss: str | None = None,
    monitor: Monitor | str | None = None,
    device: str | None = None,
    seed: int | None = None,
    max_steps: int | None = None,
    time_limit: float | None = None,
    config: RunConfig | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    callbacks: Sequence[Any] = (),
) -> FitResult:
    """Train a segmentation model on a dataset folder (``segwise train``).

    Every option left as ``None`` takes its value from ``config`` when given, else the
    default written below (the defaults of :class:`~segwise.engine.config.RunConfig`, the same
    as the command line's); options given here win over ``config``, as flags win over
    ``--config``. Defaults derived from the data (task, classes, channels, crop, batch) are
    printed at start unless ``quiet``. Everything is checked before the run folder is written,
    so a refused run leaves nothing on disk.

    Args:
        data: the dataset folder (layouts: docs/data.md); None to use ``config.data.root``.
        model: architecture (``segwise.list_models()``); default ``"unet"``.
        encoder: backbone (``segwise.list_encoders()``); default: the architecture's own.
        weights: encoder weights, ``"imagenet"`` or a local ``.pth``/``.safetensors`` file;
            default: random initialisation.
        model_options: architecture options (``--model-option KEY=VALUE``), e.g.
            ``{"output_stride": 8}``; merged over ``config.model.options``.
        task: ``RunTask.SEMANTIC`` (default) or ``RunTask.INSTANCE`` (or their values).
        epochs: training epochs; default 50.
        crop_size: training crop side in pixels; default derived from the image sizes.
        batch_size: images per step; default derived from the crop and the device.
        workers: DataLoader worker processes; default from the CPUs and the device (0 keeps
            loading in this process).
        lr: peak learning rate; default 1e-3.
        loss: ``"dicece"`` (default) or another name of ``segwise train --loss``, or a sum such
            as ``"dice+focal"`` (docs/dice.md).
        monitor: the validation score that picks ``best.pt``
            (:class:`~segwise.engine.config.Monitor`); default ``mean_dice`` (semantic) or
            ``dsb_score`` (instance).
        device: ``"auto"`` (default), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: default 0; the same seed gives the same metrics on CPU with ``workers=0``.
        max_steps: total optimizer-step budget; the learning-rate schedule ends there.
        time_limit: wall-clock budget in seconds; the steps, warmup, schedule and bounded
            validations are planned from it after the first few steps (docs/cli.md), and the
            run stops cleanly if it runs out.
        config: a full :class:`~segwise.engine.config.RunConfig` for everything else
            (augmentation, optimizer, schedule, ...).
        out: the run folder; default ``runs/MODEL-TIMESTAMP`` under the working directory.
            It must be new or empty (or left by a run that stopped before its first epoch).
        quiet: print nothing (notices still reach Python's ``warnings``).
        callbacks: extra training callbacks (hooks: :func:`segwise.engine.trainer.fit`).

    Returns:
        The :class:`~segwise.engine.trainer.FitResult`: ``run_dir`` (holding ``best.pt``,
        ``last.pt``, ``metrics.jsonl``, ``curves.png``), ``best_score`` (the monitored
        validation score of ``best.pt``), ``best_epoch`` and the per-epoch ``history``.

    Raises:
        ValueError: no dataset given, or an unknown or out-of-range option (naming it and the
            allowed values).
        FileNotFoundError: ``data`` is not a folder.
        FileExistsError: ``out`` holds another run or foreign files.
        segwise.data.DataError: the data has fatal problems (listed with their files).
        segwise.engine.trainer.TrainingDivergedError: the loss became NaN or infinite.
    """
    from segwise.engine.config import config_from_dict
    from segwise.engine.trainer import fit

    values: dict[str, dict[str, Any]] = config.to_dict() if config is not None else {}
    given = {"model": model, "encoder": encoder, "weights": weights, "task": task,
             "epochs": epochs, "crop_size": crop_size, "batch_size": batch_size,
             "workers": workers, "lr": lr, "loss": loss, "monitor": monitor, "device": device,
             "seed": seed, "max_steps": max_steps, "time_limit": time_limit}
    for name, value in given.items():
        if value is not None:
            section, key = _TRAIN_OPTIONS[name]
            values.setdefault(section, {})[key] = value
    if model_options:
        values.setdefault("model", {}).setdefault("options", {}).update(dict(model_options))
    if data is not None:
        values.setdefault("data", {})["root"] = str(data)
    run_config = config_from_dict(values)  # validates every value, with the name of the bad one
    root = run_config.data.root
    if not root:
        raise ValueError("no dataset: pass train(data=DIR, ...) or a config with data.root")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"data={root!r} is not a folder; pass a dataset folder "
                                "(layouts: docs/data.md)")
    if out is None:
        out = Path("runs") / f"{run_config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return fit(run_config, Path(out), quiet=quiet, callbacks=callbacks)


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: EvalSplit | str = EvalSplit.VAL,
    device: str = "auto",
    options: PredictOptions | None = None,
    boundary: BoundarySettings | None = None,
) -> EvalResult | InstanceEvalResult:
    """Score a checkpoint on a labelled dataset (``segwise evaluate``, without the report files).

    The scores are the ones ``segwise evaluate`` prints and writes: the same predictor, the
    same evaluation loop and the same scorer. Definitions: docs/metrics.md (semantic) and
    docs/instance.md (instance).

    Args:
        checkpoint: ``RUN/best.pt``, ``RUN/last.pt`` or a run folder (its ``best.pt``).
        data: the labelled dataset folder; read with the checkpoint's classes and mask kind.
        split: which images (:class:`EvalSplit` or its value); ``val`` is the split file's,
            else the held-out share the run drew with its own ``val_fraction`` and seed.
        device: ``"auto"`` (default), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        options: tiling and test-time flips
            (:class:`~segwise.inferers.options.PredictOptions`); default: the tile from the
            training crop, no flips (as ``segwise evaluate``).
        boundary: also compute HD, HD95, ASSD and NSD with these settings
            (:class:`~segwise.engine.evaluation.BoundarySettings`: pixel spacing, NSD
            tolerance); semantic checkpoints only.

    Returns:
        For a semantic checkpoint an :class:`~segwise.engine.evaluation.EvalResult`:
        ``summary()`` gives the headline numbers (``mean_dice``, ``mean_iou``, ``fw_iou``,
        ``pixel_accuracy``, ``per_image_dice``, ...), ``report(worst=5)`` the dict that
        ``segwise evaluate`` writes to ``scores.json``, ``matrix`` the ``(C, C)`` confusion
        matrix (rows: ground truth). For an instance checkpoint an
        :class:`~segwise.engine.instance_scoring.InstanceEvalResult`: ``metrics`` (DSB score,
        AP50, PQ/SQ/RQ, COCO mask AP) and one ``per_image`` row per image.

    Raises:
        FileNotFoundError: ``checkpoint`` or ``data`` does not exist, or a run folder has no
            ``best.pt``.
        ValueError: an unknown ``split``, an empty split, data with more classes than the
            checkpoint, or ``boundary`` for an instance checkpoint.
        segwise.runs.CheckpointError: the file is not a segwise checkpoint.
    """
    from segwise.inference import predictor_from_run
    from segwise.runs import load_run, run_checkpoint

    split = as_enum(split, EvalSplit, "split")
    path = run_checkpoint(checkpoint)
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"data={str(data)!r} is not a folder; pass a labelled dataset "
                                "folder (layouts: docs/data.md)")
    loaded = load_run(path, device=device)
    predictor = predictor_from_run(loaded, options=options)
    if boundary is not None and predictor.kind != "semantic":
        raise ValueError("boundary= is for semantic checkpoints; instance checkpoints report "
                         f"DSB score, AP, PQ and COCO AP ({path})")
    samples = evaluation_samples(loaded, root, split)
    from segwise.engine.evaluation import evaluation_loop

    dataset, scorer = evaluation_parts(loaded, predictor.kind, samples, boundary=boundary)
    return evaluation_loop(dataset, predict_step(predictor), scorer)


def load_predictor(
    source: str | Path,
    *,
    device: str = "auto",
    options: PredictOptions | None = None,
    threads: int | None = None,
) -> Predictor:
    """The predictor of a checkpoint, a run folder or an exported ONNX file.

    ``predictor.predict(images)`` takes file paths, numpy ``(H, W, C)`` images or normalised
    ``(C, H, W)`` tensors, alone or in a list, and returns one prediction per image: a
    :class:`~segwise.inference.SemanticPrediction` (``labels`` ``(H, W)`` int64,
    ``probabilities`` ``(K, H, W)`` float32) or, for instance checkpoints, an
    :class:`~segwise.instance.InstancePrediction`. ``predictor.label_space`` holds the class
    names and colours.

    Args:
        source: ``RUN/best.pt`` (or ``last.pt``), a run folder (its ``best.pt``), or a
            ``.onnx`` file written by ``segwise export`` (runs with onnxruntime on the CPU).
        device: ``"auto"`` (default), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; checkpoints only.
        options: tiling and test-time flips
            (:class:`~segwise.inferers.options.PredictOptions`); default: the tile from the
            training crop, no flips. ONNX files run whole images, without either.
        threads: onnxruntime intra-op threads; ONNX files only.

    Returns:
        A :class:`~segwise.inference.Predictor` (``SemanticPredictor`` or
        ``InstancePredictor``, chosen by the checkpoint's model).

    Raises:
        FileNotFoundError: ``source`` does not exist, or a run folder has no ``best.pt``.
        ValueError: ``threads`` with a checkpoint, a GPU ``device`` with an ONNX file, or
            ``options`` with tiling/flips for an ONNX file.
        segwise.runs.CheckpointError: the file is not a segwise checkpoint.
    """
    from segwise import inference
    from segwise.runs import run_checkpoint

    if Path(source).suffix.lower() == ".onnx":
        if not Path(source).is_file():
            raise FileNotFoundError(f"ONNX file {source} does not exist")
        if device not in ("auto", "cpu"):
            raise ValueError(f"device={device!r}: ONNX files run with onnxruntime on the CPU; "
                             "pass device='cpu' or load the checkpoint (RUN/best.pt) instead")
        return inference.load_onnx_predictor(source, options=options, threads=threads)
    if threads is not None:
        raise ValueError("threads= sets onnxruntime's threads for .onnx files; for a checkpoint "
                         "set torch's with torch.set_num_threads()")
    return inference.load_predictor(run_checkpoint(source), device=device, options=options)


def evaluation_samples(loaded: Any, root: Path, split: EvalSplit, *,
                       where: str | None = None) -> list[Any]:
    """The samples of ``split`` in ``root``, read with the checkpoint's classes (what
    :func:`evaluate` and ``segwise evaluate`` score).

    The held-out share of data without a split file is drawn as training drew it (the run's
    ``data.val_fraction`` and ``train.seed``), so ``val`` scores the images the run validated on.

    Args:
        loaded: the checkpoint's :class:`~segwise.runs.LoadedRun`.
        root: the labelled dataset folder.
        split: which images.
        where: how messages name the folder (default ``data='ROOT'``; the CLI: ``--data ROOT``).

    Raises:
        ValueError: the split is empty, or the data has more classes than the checkpoint.
        DataError: the data does not read with the checkpoint's classes and mask kind (the
            message names its task, classes, mask kind and data source: most likely a
            checkpoint of other data).
    """
    from segwise.data import DataError, discover_dataset

    where = where or f"data={str(root)!r}"
    info = loaded.info
    run = loaded.config
    try:
        index = discover_dataset(
            root,
            mask_kind=info.mask_kind,
            normalization=info.normalization.value if info.spatial_dims == 3 else "auto",
            ignore_index=info.labels.ignore_index,
            num_classes=info.labels.num_classes,
            class_names=list(info.labels.names),
            val_fraction=run.get("data", {}).get("val_fraction", 0.2),
            seed=run.get("train", {}).get("seed", 0),
        )
    except ValueError as err:  # DataError (the files) or the classes given (classes.json)
        found = str(err).splitlines()
        raise DataError(
            f"{where} does not read as the data the checkpoint was trained on: "
            f"{trained_on(loaded)}. Evaluate it on data like that, or pass a checkpoint "
            f"trained on this data. Read with the checkpoint's classes, {found[0]}"
            .replace(" stop training:", ":") + "\n" + "\n".join(found[1:4])
        ) from err
    samples = {EvalSplit.VAL: index.val, EvalSplit.TRAIN: index.train,
               EvalSplit.TEST: index.test, EvalSplit.ALL: index.samples}[split]
    if not samples:
        raise ValueError(f"{where} has no images in split {split.value!r}; try split 'all'")
    found, trained = index.info.labels, info.labels
    if found.num_classes > trained.num_classes:
        raise ValueError(
            f"{where} has {found.num_classes} classes but the checkpoint was trained on "
            f"{trained_on(loaded)}"
        )
    return samples


def trained_on(loaded: Any) -> str:
    """What a checkpoint was trained on, for messages: ``task binary, 2 classes
    ['background', 'foreground'], instance masks, from ../shared/data/dsb2018 (runs/x/best.pt)``."""
    labels = loaded.info.labels
    names = list(labels.names)
    shown = names if len(names) <= 8 else [*names[:8], "..."]
    source = loaded.config.get("data", {}).get("root", "an unrecorded folder")
    return (f"task {labels.task.value}, {labels.num_classes} classes {shown}, "
            f"{loaded.info.mask_kind.value} masks, from {source} ({loaded.checkpoint})")


def evaluation_parts(loaded: Any, kind: str, samples: list[Any], *,
                     boundary: BoundarySettings | None = None,
                     keep_overlays: int = 0) -> tuple[Any, Any]:
    """The dataset and the scorer that score a checkpoint of prediction ``kind``
    (``"semantic"`` or ``"instance"``) on ``samples``: one definition for :func:`evaluate`
    and ``segwise evaluate``.

    Returns:
        ``(dataset, scorer)`` for :func:`segwise.engine.evaluation.evaluation_loop`.
    """
    from segwise.data import InstanceDataset, SegmentationDataset, eval_transforms
    from segwise.engine.evaluation import SemanticScorer
    from segwise.engine.instance_scoring import COCO_MAX_DETECTIONS, InstanceScorer

    info = loaded.info
    if kind == "instance":
        dataset = InstanceDataset(samples, info, transform=eval_transforms(info))
        return dataset, InstanceScorer(coco=True, coco_max_detections=COCO_MAX_DETECTIONS)
    scorer = SemanticScorer(
        labels=info.labels,  # classes, names, and pad_value: the one label left out
        keep_overlays=keep_overlays,
        mean=tuple(info.mean),
        std=tuple(info.std),
        boundary=boundary,
    )
    if info.spatial_dims == 3:  # whole volumes, normalised by the run's rule, with spacing
        from segwise.data.volume_dataset import VolumeDataset

        return VolumeDataset(samples, info, resample=False), scorer
    return SegmentationDataset(samples, info, transform=eval_transforms(info)), scorer


def predict_step(predictor: Any) -> Any:
    """``item -> prediction`` of ``item["image"]`` (the evaluation loop's step); a volume's
    ``item["spacing"]`` goes with it, so the predictor resamples it to the run's spacing."""

    def step(item: dict[str, Any]) -> Any:
        if item.get("spacing") is None:
            return predictor.predict(item["image"])[0]
        return predictor.predict(item["image"], spacing=item["spacing"])[0]

    return step

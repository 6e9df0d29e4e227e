"""Check a run before it writes anything: every name and option, the data, the model.

:func:`segwise.engine.trainer.fit` calls :func:`check_run` before it creates the run folder, so
a run refused for a misspelt ``--model``, ``--encoder``, ``--model-option``, ``--loss``,
``--monitor``, ``--ignore-index``, a missing ``--data`` folder or ``--weights`` file, or data
that cannot be trained on, leaves nothing on disk; the corrected retry with the same ``--out``
just works. (nnU-Net and MONAI runners fail late; this is the "check everything, then write"
habit of ``STYLE.md``.)

What is checked, in order (each raises with the bad value and the fix):

1. the config's own values (:meth:`RunConfig.validate`: ranges, loss names and weights);
2. the data (:func:`segwise.data.discover_dataset`, strict): layout, pairs, label values, the
   label space's ignore rule; a training and a validation split exist; every image decodes;
3. the task's adapter accepts the data and the options (e.g. instance masks for ``--task
   instance``), and ``train.monitor`` is a metric this task reports;
4. the model builds from its stored arguments (name, encoder, options) on PyTorch's ``meta``
   device, which checks every builder argument without allocating or initialising weights;
   a ``--weights`` file exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segwise.engine.config import RunConfig

__all__ = ["CheckedRun", "check_run"]


@dataclass(frozen=True)
class CheckedRun:
    """What :func:`check_run` learnt, reused by the run so nothing is read twice.

    Attributes:
        index: the discovered dataset (:class:`segwise.data.DatasetIndex`).
        decoded: images decoded by the start-up check.
        decode_seconds: how long that took.
    """

    index: Any
    decoded: int
    decode_seconds: float


def check_run(config: RunConfig, *, check_weights: bool = True) -> CheckedRun:
    """Check a new run completely, writing nothing (see the module docstring).

    Args:
        config: the run configuration.
        check_weights: check that a ``--weights`` file exists (False when resuming: the
            checkpoint holds the weights, the start file may be gone).

    Returns:
        The :class:`CheckedRun` (the dataset index and the decode check's figures).

    Raises:
        ValueError: a bad option, with its value and the allowed ones (``DataError``, a
            ``ValueError``, for the data).
        FileNotFoundError: the data folder or the ``--weights`` file does not exist.
    """
    from segwise.data import discover_dataset
    from segwise.engine.data_check import decode_every_image
    from segwise.engine.registry import make_adapter

    config.validate()
    weights = config.model.weights
    # "coco": Mask R-CNN's documented alias for torchvision's COCO checkpoint (its builder
    # finds the file in the torch hub cache or says where to put it)
    named = (None, "imagenet", *(("coco",) if config.train.task.value == "instance" else ()))
    if check_weights and weights not in named and not Path(str(weights)).is_file():
        raise FileNotFoundError(f"--weights {weights} does not exist; pass an existing .pth / "
                                ".safetensors file, 'imagenet', or nothing")
    index = discover_dataset(
        config.data.root,
        mask_kind=config.data.mask_kind,
        ignore_index=config.data.ignore_index,
        val_fraction=config.data.val_fraction,
        seed=config.train.seed,
    )
    if not index.train:
        raise ValueError(f"no training images found in {config.data.root}")
    if not index.val:
        raise ValueError(
            f"no validation images in {config.data.root}: add a split file or raise "
            "--val-fraction (at least one image must be held out)"
        )
    decoded, seconds = decode_every_image(index.samples, config.data.root)
    adapter = make_adapter(config, index.info, device=torch.device("cpu"), amp_dtype=None,
                           channels_last=False, index=index)
    monitor = config.train.monitor
    allowed = type(adapter).MONITORS
    if monitor is not None and monitor not in allowed:
        raise ValueError(
            f"--monitor {monitor.value} is not reported by a {config.train.task.value} run; "
            f"choose one of {', '.join(m.value for m in allowed)}"
        )
    with torch.device("meta"):  # every builder argument checked; no memory, no init work
        adapter.build_model(None)
    return CheckedRun(index=index, decoded=decoded, decode_seconds=seconds)

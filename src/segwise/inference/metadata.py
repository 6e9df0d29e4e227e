"""What the ``segwise.*`` metadata of an exported artefact says, read without torch.

The ONNX predictor (:mod:`segwise.inference.onnx_predictor`) runs without PyTorch, so the
reading lives here, below :mod:`segwise.inference.deploy` (which writes it). A semantic export
holds:

- ``segwise.in_channels``, ``segwise.mean``, ``segwise.std``: the input channels and the
  normalisation baked into the graph (``null``: none, feed normalised images);
- ``segwise.head``: the :class:`~segwise.inferers.options.ExportHead`;
- ``segwise.labels``: the one label description, :meth:`LabelSpace.to_dict
  <segwise.labels.LabelSpace.to_dict>` (task, classes, colours, ignore and pad labels, output
  channels);
- from ``segwise export`` also ``segwise.data_info``: the training data's description *without*
  its label space (channels, normalisation, mask kind; for volumes ``spatial_dims`` 3, the
  voxel spacing and the normalisation rule), with which ``segwise predict --onnx``
  normalises images when the graph does not;
- from ``segwise export`` of a run trained on volumes also ``segwise.patch_size``: the
  training patch ``[D, H, W]`` (JSON), the sliding window of ``segwise predict --onnx``.

Files written before the label space was one value hold ``segwise.task`` instead of
``segwise.labels``, and from ``segwise export`` a flat ``segwise.data_info`` (classes included)
plus ``segwise.label_space``; :func:`parse_metadata` reads every form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segwise.enums import Task
from segwise.inferers.options import ExportHead
from segwise.labels import FLAT_DATA_INFO_KEYS, LabelSpace

__all__ = [
    "DATA_INFO_KEY",
    "LABELS_KEY",
    "OPTIONS_KEY",
    "PATCH_SIZE_KEY",
    "data_info_from_metadata",
    "data_info_metadata",
    "labels_from_metadata",
    "parse_metadata",
    "read_onnx_metadata",
]

#: the label space of a semantic or instance export
LABELS_KEY = "segwise.labels"
#: ``segwise export``'s description of the training data, without its label space
DATA_INFO_KEY = "segwise.data_info"
#: ``segwise export`` of an instance checkpoint: the method's resolved options (JSON)
OPTIONS_KEY = "segwise.options"
#: ``segwise export`` of a run trained on volumes: its training patch ``[D, H, W]``
PATCH_SIZE_KEY = "segwise.patch_size"
_OLD_LABELS_KEY = "segwise.label_space"  # written next to a flat data_info before
_OLD_TASK_KEY = "segwise.task"  # written by every semantic export before segwise.labels


def data_info_metadata(info_dict: Mapping[str, Any]) -> str:
    """The ``segwise.data_info`` value of a ``DataInfo.to_dict()``: everything but its
    ``"labels"``, which ``segwise.labels`` holds (one label description per file)."""
    return json.dumps({k: v for k, v in info_dict.items() if k != "labels"})


def data_info_from_metadata(props: Mapping[str, str], *, path: str | Path) -> Any:
    """The :class:`~segwise.data.DataInfo` a file from ``segwise export`` records
    (``segwise.data_info`` with the file's label space; older files: a flat data_info).

    Args:
        props: the file's metadata key/values.
        path: the file, for the message.

    Raises:
        ValueError: the file lacks that metadata (an export by the library functions).
    """
    from segwise.data import DataInfo

    labels = labels_from_metadata(props)
    if DATA_INFO_KEY not in props or labels is None:
        raise ValueError(
            f"{path} has no {DATA_INFO_KEY} metadata (normalisation, classes, colours); "
            "export it with `segwise export --checkpoint RUN/best.pt`"
        )
    stored = json.loads(props[DATA_INFO_KEY])  # without its labels (older files: with)
    return DataInfo.from_dict(stored if stored.keys() & {"labels", "task"} else
                              {**stored, "labels": labels.to_dict()})


def labels_from_metadata(props: Mapping[str, str]) -> LabelSpace | None:
    """The label space a file records: ``segwise.labels``, else (older files)
    ``segwise.label_space``, else a flat ``segwise.data_info``; ``None`` when it records none
    (an export by the library functions before the label space was written)."""
    if LABELS_KEY in props:
        return LabelSpace.from_dict(json.loads(props[LABELS_KEY]))
    if _OLD_LABELS_KEY in props:
        return LabelSpace.from_dict(json.loads(props[_OLD_LABELS_KEY]))
    if DATA_INFO_KEY in props:
        stored = json.loads(props[DATA_INFO_KEY])
        if "labels" in stored or any(k in stored for k in FLAT_DATA_INFO_KEYS):
            return LabelSpace.from_data_info(stored)
    return None


def parse_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """The ``segwise.*`` key/values of an artefact, parsed.

    Returns:
        Semantic: ``{"kind": "semantic", "in_channels": int, "mean": list | None, "std": list |
        None, "head": ExportHead, "labels": LabelSpace | None, "task": Task}`` (``task`` is
        ``labels.task``; ``labels`` is ``None`` only for files that recorded the task alone).
        Instance: ``{"kind": "instance", "in_channels", "mean", "std", "method": str,
        "max_instances": int, "labels": LabelSpace | None}``.

    Raises:
        ValueError: the file records neither a label space nor a task.
    """
    common = {
        "in_channels": int(props["segwise.in_channels"]),
        "mean": json.loads(props["segwise.mean"]),
        "std": json.loads(props["segwise.std"]),
        "labels": labels_from_metadata(props),
    }
    if props.get("segwise.kind") == "instance":
        return {"kind": "instance", **common, "method": props["segwise.method"],
                "max_instances": int(props["segwise.max_instances"])}
    labels = common["labels"]
    if labels is None and _OLD_TASK_KEY not in props:
        raise ValueError(f"the metadata has neither {LABELS_KEY} nor {_OLD_TASK_KEY}; export "
                         "the model again with segwise")
    task = labels.task if labels is not None else Task(props[_OLD_TASK_KEY])
    return {"kind": "semantic", **common, "head": ExportHead(props["segwise.head"]),
            "task": task}


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The parsed ``segwise.*`` metadata of an ONNX file written by segwise
    (:func:`parse_metadata`; any version's keys).

    Raises:
        ValueError: the file has no segwise metadata.
    """
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "segwise.head" not in props and props.get("segwise.kind") != "instance":
        raise ValueError(f"{path} has no segwise metadata; was it written by export_onnx?")
    return parse_metadata(props)

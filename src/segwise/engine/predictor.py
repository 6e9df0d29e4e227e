"""Prediction on image files: read, normalise, infer (tiled, TTA), write masks.

One :class:`Predictor` serves ``segwise predict`` and library users; it is built from a
checkpoint (PyTorch) or from an exported ONNX file (onnxruntime only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segwise.enums import Task

__all__ = ["Predictor", "build_predictor", "write_label_png"]


def write_label_png(
    path: str | Path, labels: np.ndarray, palette: Sequence[tuple[int, int, int]]
) -> Path:
    """Write a class-index map as a palette PNG (16-bit greyscale above 256 classes).

    Args:
        path: output file.
        labels: ``(H, W)`` integer class map.
        palette: one RGB colour per class (used for the PNG palette).
    """
    from PIL import Image

    path = Path(path)
    if labels.max(initial=0) < 256 and len(palette) <= 256:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        flat = [v for colour in palette for v in colour]
        img.putpalette(flat + [0] * (768 - len(flat)))
    else:
        img = Image.fromarray(labels.astype(np.uint16))
    img.save(path)
    return path


class Predictor:
    """Class probabilities and label maps for image files.

    Args:
        forward: ``(1, C, H, W)`` float32 array -> ``(1, K, H, W)`` class probabilities as a
            float32 array (K = 2 for binary: background, foreground).
        info: the training data's ``DataInfo`` (channels, normalisation, classes, colours).
        normalize: feed ``forward`` normalised images (``(x - mean) / std``); False feeds raw
            pixels in [0, 1] (an ONNX file with the normalisation baked in).
    """

    def __init__(
        self, forward: Callable[[np.ndarray], np.ndarray], info: Any, *, normalize: bool = True
    ) -> None:
        self._forward = forward
        self.info = info
        self.normalize = normalize
        self.class_names = list(info.class_names)
        self.palette = list(info.labels.colors)  # the label space's colours (one policy)

    def load_raw(self, path: Path) -> np.ndarray:
        """Read one image -> ``(C, H, W)`` float32 in [0, 1], channels matched to the model
        (grey repeated to RGB, alpha dropped; any other mismatch is an error naming the file)."""
        from segwise.data import read_image
        from segwise.data.datasets import image_to_tensor

        return image_to_tensor(read_image(path), self.info, source=path).numpy()

    def probabilities(self, path: str | Path) -> np.ndarray:
        """``(K, H, W)`` float32 class probabilities for the image file ``path``."""
        raw = self.load_raw(Path(path))
        if self.normalize:
            mean = np.asarray(self.info.mean, np.float32).reshape(-1, 1, 1)
            std = np.asarray(self.info.std, np.float32).reshape(-1, 1, 1)
            image = (raw - mean) / std  # the same formula as segwise.data.normalize_tensor
        else:
            image = raw
        probs = self._forward(np.ascontiguousarray(image[None], dtype=np.float32))[0]
        if not np.isfinite(probs).all():
            raise ValueError(f"{path}: the model produced NaN/Inf; the checkpoint may be broken")
        return probs

    @staticmethod
    def labels_from_probabilities(probs: np.ndarray) -> np.ndarray:
        """``(H, W)`` int64 argmax (binary: foreground where p > 0.5)."""
        return probs.argmax(axis=0).astype(np.int64)

    def write_overlay(self, path: Path, image_path: Path, labels: np.ndarray) -> Path:
        from PIL import Image

        from segwise.viz import denormalize, overlay

        channels = self.info.in_channels
        rgb = denormalize(self.load_raw(image_path), [0.0] * channels, [1.0] * channels)
        Image.fromarray(overlay(rgb, labels, self.palette)).save(path)
        return path


def _onnx_forward(session: Any, task: Task) -> Callable[[np.ndarray], np.ndarray]:
    from segwise.inference.options import ExportHead

    if session.head == ExportHead.LABELS:
        raise ValueError(
            f"{session.path} was exported with --head labels; prediction needs probabilities: "
            "export with --head probabilities (the default) or logits"
        )

    def forward(image: np.ndarray) -> np.ndarray:
        out = session(image).astype(np.float32)
        if session.head == ExportHead.LOGITS:
            if task is Task.BINARY:
                out = 1.0 / (1.0 + np.exp(-out))
            else:
                out = np.exp(out - out.max(axis=1, keepdims=True))
                out /= out.sum(axis=1, keepdims=True)
        if task is Task.BINARY:
            out = np.concatenate([1.0 - out, out], axis=1)
        return out

    return forward


def _torch_forward(
    model: Any, task: Task, device: Any, *, tile_size: int, overlap: float, tta: bool
) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from segwise.inference import sliding_window_inference, tta_inference
    from segwise.inference.options import Activation, Flip

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        return model(x)  # always logits (N, K, H, W): the one model output type

    def to_probs(logits: torch.Tensor) -> torch.Tensor:
        if task is Task.BINARY:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], dim=1)
        return torch.softmax(logits, dim=1)

    def tiled(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h > tile_size or w > tile_size:
            return sliding_window_inference(logits_fn, x, tile_size=tile_size, overlap=overlap)
        return logits_fn(x)

    @torch.no_grad()
    def forward(image: np.ndarray) -> np.ndarray:  # (1, C, H, W) normalised
        x = torch.from_numpy(image).to(device)
        if not tta:
            return to_probs(tiled(x)).float().cpu().numpy()
        # identity, horizontal, vertical and both flips, averaged as probabilities
        probs = tta_inference(
            lambda t: to_probs(tiled(t)),
            x,
            flips=(Flip.HORIZONTAL, Flip.VERTICAL),
            activation=Activation.NONE,  # to_probs already gives probabilities
        )
        return probs.float().cpu().numpy()

    return forward


def build_predictor(
    *,
    checkpoint: str | Path | None = None,
    onnx: str | Path | None = None,
    device: str = "auto",
    tile_size: int | None = None,
    overlap: float = 0.25,
    tta: bool = False,
) -> Predictor:
    """A predictor from a checkpoint, or from an ONNX file exported with its metadata.

    Args:
        checkpoint: ``RUN/best.pt``.
        onnx: an ONNX model written by ``segwise export`` (probabilities head).
        device: for checkpoints: auto, cpu or cuda.
        tile_size: sliding-window tile; default
            :func:`segwise.inference.tiling.default_tile_size` of the training crop.
        overlap: tile overlap fraction.
        tta: average the probabilities over horizontal and vertical flips (4 passes).
    """
    if (checkpoint is None) == (onnx is None):
        raise ValueError("pass exactly one of checkpoint= or onnx=")
    if onnx is not None:
        import json

        from segwise.data import DataInfo
        from segwise.inference.onnx_predictor import OnnxPredictor

        session = OnnxPredictor(onnx)
        props = session.session.get_modelmeta().custom_metadata_map
        if "segwise.data_info" not in props:
            raise ValueError(
                f"{onnx} has no segwise.data_info metadata (classes, colours); export it with "
                "`segwise export --checkpoint RUN/best.pt`"
            )
        info = DataInfo.from_dict(json.loads(props["segwise.data_info"]))
        forward = _onnx_forward(session, info.task)
        return Predictor(forward, info, normalize=session.mean is None)
    from segwise.engine.checkpoint import load_run
    from segwise.inference.tiling import default_tile_size

    loaded = load_run(checkpoint, device=device)
    forward = _torch_forward(
        loaded.model,
        loaded.info.task,
        loaded.device,
        tile_size=tile_size or default_tile_size(loaded.config.get("data", {}).get("crop_size")),
        overlap=overlap,
        tta=tta,
    )
    return Predictor(forward, loaded.info)

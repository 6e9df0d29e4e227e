"""Fixtures of the data tests: tiny files written into ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


class Files:
    """Helpers that write tiny image/mask files (returned by the ``files`` fixture)."""

    @staticmethod
    def png(path: Path, array: np.ndarray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
        return path

    @staticmethod
    def palette_png(path: Path, array: np.ndarray, colors: list[tuple[int, int, int]]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = array.shape
        im = Image.frombytes("P", (w, h), np.ascontiguousarray(array, np.uint8).tobytes())
        flat = [v for c in colors for v in c]
        im.putpalette(flat + [0] * (768 - len(flat)))
        im.save(path)
        return path

    @staticmethod
    def rgb(h: int = 8, w: int = 10, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)

    @staticmethod
    def labels(values, h: int = 8, w: int = 10, dtype=np.uint8) -> np.ndarray:
        """A mask holding each of ``values`` in a band of rows."""
        out = np.zeros((h, w), dtype)
        for i, v in enumerate(values):
            out[i * h // len(values):(i + 1) * h // len(values)] = v
        return out

    def dataset(self, root: Path, masks: dict[str, np.ndarray], *, mask_dir: str = "masks",
                ext: str = ".png", splits: bool = True) -> Path:
        """``root/images/<id>.png`` (RGB, the mask's size) + ``root/<mask_dir>/<id><ext>``."""
        for i, (sid, m) in enumerate(masks.items()):
            self.png(root / "images" / f"{sid}.png", self.rgb(*m.shape[:2], seed=i))
            path = root / mask_dir / f"{sid}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if ext == ".npy":
                np.save(path, m)
            elif ext in (".tif", ".tiff"):
                import tifffile

                tifffile.imwrite(path, m)
            else:
                self.png(path, m)
        if splits:
            ids = sorted(masks)
            (root / "splits.json").write_text(json.dumps({"train": ids[1:], "val": ids[:1]}))
        return root


@pytest.fixture
def files() -> Files:
    return Files()

"""What a run writes while it trains: metrics.jsonl, metrics.csv, curves.png, TensorBoard."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RunLog"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLog:
    """Per-epoch records of one run, rewritten from the full history at every epoch.

    Rewriting (rather than appending) keeps the files consistent with the checkpoint after a
    crash and ``--resume``: epochs that were logged but not checkpointed disappear.

    Args:
        run_dir: the run folder.
        enabled: False on non-main processes (nothing is written).
        monitor: the metric that selects ``best.pt``, marked in ``curves.png``.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, monitor: str | None = None) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.monitor = monitor
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self._tb = None

    def write(self, history: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite metrics.jsonl / metrics.csv / curves.png and log the last epoch."""
        if not self.enabled or not history:
            return
        rows = [{k: _clean(v) for k, v in h.items()} for h in history]
        jsonl = self.run_dir / "metrics.jsonl"
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
        keys: list[str] = []
        for r in rows:
            keys.extend(k for k in r if k not in keys)
        with (self.run_dir / "metrics.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        from segwise.viz import plot_curves

        plot_curves(rows, self.run_dir / "curves.png", monitor=self.monitor)
        if self._tb is not None:
            last = rows[-1]
            for key, value in last.items():
                if key != "epoch" and isinstance(value, int | float):
                    self._tb.add_scalar(key, value, last["epoch"])
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

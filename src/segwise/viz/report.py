"""A self-contained HTML report of one evaluation (``RUN/eval-*/report.html``).

One file a user can open in a browser and send to a colleague: the headline numbers, the
per-class table, and the pictures (confusion matrix, per-image score distribution, worst
images with overlays) embedded as ``data:`` PNG URIs, so nothing else has to travel with it.
The numbers are those of ``scores.json`` in the same folder, formatted with 4 decimals.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["format_number", "write_html_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #ddd; }
.note { background: #fff4d6; padding: 0.6em; border-left: 4px solid #e0a800; }
"""


def format_number(value: Any) -> str:
    """How the report writes a value: 4 decimals for floats, ``n/a`` for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_number(r.get(c)))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def _image(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def write_html_report(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, Any],
    tables: Sequence[tuple[str, Sequence[Mapping[str, Any]], Sequence[str]]] = (),
    pictures: Sequence[tuple[str, Path | None]] = (),
    worst: Sequence[Mapping[str, Any]] = (),
    worst_order: str | None = None,
    note: str | None = None,
    captions: Mapping[str, str] | None = None,
) -> Path:
    """Write the report.

    Args:
        path: the HTML file to write.
        title: the page heading (e.g. the checkpoint and the data).
        summary: headline name -> value (a table with id ``summary``).
        tables: ``(heading, rows, columns)`` per extra table (ids ``table-1``, ...).
        pictures: ``(heading, PNG path)``; missing files are left out.
        worst: ``{"id", score...}`` rows of the worst images (table id ``worst``).
        worst_order: how the worst images are ranked, written above their table.
        note: a highlighted remark (e.g. the degenerate-prediction hint).
        captions: picture heading -> a line written under that picture.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts.append("<h2>Summary</h2>")
    parts.append(_table([{"metric": k, "value": v} for k, v in summary.items()],
                        ["metric", "value"], "summary"))
    for i, (heading, rows, columns) in enumerate(tables, start=1):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(_table(rows, columns, f"table-{i}"))
    if worst:
        parts.append("<h2>Worst images</h2>")
        if worst_order:
            parts.append(f'<p id="worst-order">Ranked: {html.escape(worst_order)}.</p>')
        parts.append(_table(worst, list(worst[0].keys()), "worst"))
    for heading, picture in pictures:
        img = _image(picture, heading)
        if img:
            caption = (captions or {}).get(heading)
            parts.append(f"<h2>{html.escape(heading)}</h2>{img}"
                         + (f"<p>{html.escape(caption)}</p>" if caption else ""))
    parts.append("<p>Definitions: docs/metrics.md and docs/instance.md of segwise; the same "
                 "numbers are in scores.json next to this file.</p></body></html>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path

"""Issue 31, item 2 (instance part): the instance report has pictures and ranks the worst
images by DSB score, ties broken by the number of true objects, then by id."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from segwise.cli.main import main
from segwise.engine.instance_scoring import WORST_ORDER, worst_images


def _row(id_: str, dsb: float, truth: int, predicted: int = 0) -> dict:
    return {"id": id_, "dsb_score": dsb, "ground_truth": truth, "predicted": predicted}


def test_worst_images_break_ties_by_object_count_then_id():
    rows = [_row("a", 0.0, 3), _row("b", 0.0, 40), _row("c", 0.5, 100), _row("d", 0.0, 40),
            _row("e", 0.0, 0), _row("f", 0.2, 1), _row("g", 1.0, 0)]
    ranked = [r["id"] for r in worst_images(rows, 10)]
    # 0.0: 40, 40 (b before d by id), 3, 0 objects; then 0.2, 0.5, 1.0
    assert ranked == ["b", "d", "a", "e", "f", "c", "g"]
    assert [r["id"] for r in worst_images(rows, 2)] == ["b", "d"]
    assert worst_images(rows, 0) == [] and worst_images(rows, -1) == []
    assert worst_images(list(reversed(rows)), 10) == worst_images(rows, 10)  # input order: none


def test_the_rule_is_written_in_the_docs():
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "instance.md").read_text()
    assert "ties broken by the number of ground-truth objects" in WORST_ORDER
    assert "more ground-truth objects first" in docs


@pytest.mark.slow
def test_instance_report_has_the_histogram_and_a_picture_of_the_worst_images(tmp_path, capsys):
    from segwise.data.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "data", flavour="instance", num_images=8,
                                   size=(48, 48), seed=0)
    run = tmp_path / "run"
    assert main(["train", "--task", "instance", "--model", "unet_watershed", "--encoder",
                 "resnet18", "--data", str(data), "--out", str(run), "--device", "cpu",
                 "--batch-size", "2", "--crop-size", "48", "--workers", "0", "--epochs", "1",
                 "--max-steps", "2", "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "all",
                 "--out", str(out), "--worst", "3", "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["worst"] == worst_images(report["per_image"], 3)
    assert report["worst_order"] == WORST_ORDER
    for name in ("report.html", "per_image_dsb.png", "worst.png", "scores.json",
                 "per_image.csv"):
        assert (out / name).is_file(), name
    picture = np.asarray(Image.open(out / "worst.png"))
    assert picture.ndim == 3 and picture.shape[0] > 3 * 48  # three rows of panels
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2  # histogram and worst images
    assert "Worst images: image, true instances, predicted instances" in page
    assert f"Ranked: {WORST_ORDER}." in page
    # the worst table lists the images in the ranked order
    table = page[page.index('<table id="worst">'):]
    listed = re.findall(r"<tr><td>([^<]+)</td>", table.split("</table>")[0])
    assert listed == [w["id"] for w in report["worst"]]

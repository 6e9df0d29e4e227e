"""train -> evaluate -> predict through the command line for both instance methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segwise.cli.main import main

pytestmark = pytest.mark.slow

# the smallest settings that still run every part of each method
_METHOD_FLAGS = {
    "unet_watershed": ["--encoder", "resnet18", "--epochs", "2", "--max-steps-per-epoch", "2"],
    "maskrcnn": [
        "--epochs", "1", "--max-steps-per-epoch", "1",
        "--model-option", "rpn_pre_nms_top_n=[50, 50]",
        "--model-option", "rpn_post_nms_top_n=[20, 20]",
        "--model-option", "box_batch_size_per_image=16",
        "--model-option", "box_detections_per_img=20",
    ],
}


@pytest.fixture(scope="module")
def tiny_instance(tmp_path_factory):
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_instance")
    return write_synthetic_dataset(
        root / "data", flavour="instance", num_images=8, size=(48, 48), seed=0
    )


@pytest.fixture(scope="module", params=sorted(_METHOD_FLAGS))
def instance_run(request, tiny_instance, tmp_path_factory):
    method = request.param
    run = tmp_path_factory.mktemp(f"run_{method}") / "run"
    code = main([
        "train", "--task", "instance", "--model", method, "--data", str(tiny_instance),
        "--out", str(run), "--device", "cpu", "--batch-size", "2", "--crop-size", "48",
        "--workers", "0", "--quiet", *_METHOD_FLAGS[method],
    ])
    assert code == 0
    return method, run


def test_train_writes_an_instance_run(instance_run):
    method, run = instance_run
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.jsonl", "overlays.png"):
        assert (run / name).is_file()
    args = json.loads((run / "model_args.json").read_text())
    assert args["kind"] == "instance" and args["method"] == method
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("val_dsb_score", "val_ap50", "val_pq"):
        assert 0.0 <= record[key] <= 1.0


def test_evaluate_reports_instance_metrics(instance_run, tiny_instance, tmp_path, capsys):
    _, run = instance_run
    out = tmp_path / "eval"
    code = main([
        "evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_instance),
        "--out", str(out), "--json", "--device", "cpu",
    ])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2  # the val split of 8 images
    for key in ("dsb_score", "ap50", "pq"):
        assert 0.0 <= report["summary"][key] <= 1.0
    assert {"ap", "ap50", "ap75"} <= set(report["coco"])
    assert {row["class"] for row in report["pq_per_class"]} <= {"disc", "square", "triangle"}
    assert {"scores.json", "per_image.csv", "report.html", "per_image_dsb.png",
            "worst.png"} <= {p.name for p in out.iterdir()}
    page = (out / "report.html").read_text()
    dsb = report["summary"]["dsb_score"]
    assert f"<td>dsb_score</td><td>{dsb:.4f}</td>" in page  # the number of scores.json
    assert page.count('src="data:image/png;base64,') == 2  # DSB histogram, worst images
    # the report folder is never overwritten
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data",
                 str(tiny_instance), "--out", str(out), "--device", "cpu"]) == 2


def test_predict_writes_id_pngs_json_overlay_and_coco(instance_run, tiny_instance, tmp_path):
    from segwise.instance import read_instance_png

    _, run = instance_run
    images = sorted((tiny_instance / "images").iterdir())[:3]
    out = tmp_path / "pred"
    code = main([
        "predict", "--checkpoint", str(run / "best.pt"), *map(str, images), "--out", str(out),
        "--overlay", "--coco", "--device", "cpu",
    ])
    assert code == 0
    total = 0
    for img in images:
        png = Image.open(out / f"{img.stem}_instances.png")
        assert png.mode.startswith("I;16") and png.size == (48, 48)
        ids = read_instance_png(out / f"{img.stem}_instances.png")
        listed = json.loads((out / f"{img.stem}_instances.json").read_text())
        assert (listed["height"], listed["width"]) == (48, 48)
        assert sorted(r["id"] for r in listed["instances"]) == sorted(set(np.unique(ids)) - {0})
        for r in listed["instances"]:
            assert r["area"] == int((ids == r["id"]).sum())
            assert 1 <= r["label"] <= 3
        total += len(listed["instances"])
        overlay = np.asarray(Image.open(out / f"{img.stem}_overlay.png"))
        assert overlay.shape == (48, 48, 3) and overlay.dtype == np.uint8
    coco = json.loads((out / "coco_results.json").read_text())
    assert isinstance(coco, list) and len(coco) == total
    assert {d["image_id"] for d in coco} <= {1, 2, 3}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["inputs"] == 3
    # no overwrite; semantic-only options are refused with a reason
    before = (out / f"{images[0].stem}_instances.png").read_bytes()
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(images[0]), "--out",
                 str(out), "--device", "cpu"]) == 2
    assert (out / f"{images[0].stem}_instances.png").read_bytes() == before
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(images[0]), "--out",
                 str(tmp_path / "tta"), "--tta", "--device", "cpu"]) == 2


def test_predict_lists_failures_and_goes_on(instance_run, tiny_instance, tmp_path, capsys):
    _, run = instance_run
    good = sorted((tiny_instance / "images").iterdir())[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "pred"
    code = main(["predict", "--checkpoint", str(run / "best.pt"), str(good), str(broken),
                 "--out", str(out), "--device", "cpu"])
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 1 and summary["inputs"] == 2
    assert (out / f"{good.stem}_instances.png").is_file()
    assert "broken.png" in capsys.readouterr().out

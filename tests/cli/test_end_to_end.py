"""train -> evaluate -> predict through the command line, in-process, plus its bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segwise.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_run(tiny_multiclass, tmp_path_factory, fast_flags):
    run = tmp_path_factory.mktemp("e2e") / "run"
    code = main([
        "train", "--data", str(tiny_multiclass), "--out", str(run), *fast_flags,
        "--epochs", "2", "--device", "cpu", "--batch-size", "4",
        "--crop-size", "48", "--workers", "0", "--quiet",
    ])
    assert code == 0
    return run


def test_train_writes_a_complete_run(trained_run):
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.jsonl", "curves.png"):
        assert (trained_run / name).is_file()


def test_evaluate_writes_report(trained_run, tiny_multiclass, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main([
        "evaluate", "--checkpoint", str(trained_run / "best.pt"), "--data", str(tiny_multiclass),
        "--out", str(out), "--json", "--device", "cpu",
    ])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["summary"]["mean_dice"] <= 1.0
    assert {"scores.json", "per_class.csv", "per_image.csv", "confusion.csv",
            "confusion.png"} <= {p.name for p in out.iterdir()}
    info = json.loads((trained_run / "data_info.json").read_text())
    assert len(report["per_class"]) == info["labels"]["num_classes"]


def test_predict_writes_palette_pngs_with_valid_classes(trained_run, tiny_multiclass, tmp_path):
    images = sorted((tiny_multiclass / "images").iterdir())[:3]
    out = tmp_path / "pred"
    code = main([
        "predict", "--checkpoint", str(trained_run / "best.pt"), *map(str, images),
        "--out", str(out), "--overlay", "--probabilities", "--device", "cpu",
    ])
    assert code == 0
    info = json.loads((trained_run / "data_info.json").read_text())
    for img in images:
        mask = Image.open(out / f"{img.stem}.png")
        assert mask.mode == "P"
        labels = np.asarray(mask)
        assert labels.shape == Image.open(img).size[::-1]
        assert labels.max() < info["labels"]["num_classes"]
        probs = np.load(out / f"{img.stem}_prob.npy")
        assert probs.shape == (info["labels"]["num_classes"], *labels.shape)
        np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=1e-2)
        assert (out / f"{img.stem}_overlay.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["inputs"] == 3


def test_predict_tta_is_the_mean_of_flipped_predictions(trained_run, tiny_multiclass, tmp_path):
    """--tta equals predicting the 4 flipped images by hand, unflipping and averaging."""
    src = sorted((tiny_multiclass / "images").iterdir())[0]
    rgb = np.asarray(Image.open(src))
    flips = {"id": (), "h": (1,), "v": (0,), "hv": (0, 1)}  # numpy axes of (H, W, C)
    for name, axes in flips.items():
        Image.fromarray(np.flip(rgb, axes).copy() if axes else rgb).save(tmp_path / f"{name}.png")
    inputs = [str(tmp_path / f"{name}.png") for name in flips]
    assert main(["predict", "--checkpoint", str(trained_run / "best.pt"), *inputs,
                 "--out", str(tmp_path / "plain"), "--probabilities", "--device", "cpu"]) == 0
    assert main(["predict", "--checkpoint", str(trained_run / "best.pt"), inputs[0], "--tta",
                 "--out", str(tmp_path / "tta"), "--probabilities", "--device", "cpu"]) == 0
    by_hand = np.mean(
        [np.flip(np.load(tmp_path / "plain" / f"{name}_prob.npy").astype(np.float32),
                 tuple(a + 1 for a in axes))  # (K, H, W): shift the axes by one
         for name, axes in flips.items()],
        axis=0,
    )
    tta = np.load(tmp_path / "tta" / "id_prob.npy").astype(np.float32)
    np.testing.assert_allclose(tta, by_hand, atol=2e-3)  # float16 files


def test_predict_refuses_to_overwrite_and_lists_failures(trained_run, tiny_multiclass, tmp_path,
                                                         capsys):
    img = sorted((tiny_multiclass / "images").iterdir())[0]
    out = tmp_path / "pred"
    out.mkdir()
    existing = out / f"{img.stem}.png"
    existing.write_bytes(b"user data")
    code = main(["predict", "--checkpoint", str(trained_run / "best.pt"), str(img),
                 "--out", str(out), "--device", "cpu"])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"user data"
    # a corrupt image among good ones: the batch goes on, the failure is listed, exit 1
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out2 = tmp_path / "pred2"
    code = main(["predict", "--checkpoint", str(trained_run / "best.pt"), str(img), str(broken),
                 "--out", str(out2), "--device", "cpu"])
    assert code == 1
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["failed"] == 1
    failed = next(r for r in summary["results"] if not r["ok"])
    assert failed["input"].endswith("broken.png")
    assert (out2 / f"{img.stem}.png").is_file()


def test_bad_inputs_exit_2_with_clear_messages(trained_run, tiny_multiclass, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "missing is not a folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--data", str(empty), "--out", str(tmp_path / "r2")]) == 2
    assert "empty" in capsys.readouterr().err
    import torch

    tampered = tmp_path / "tampered.pt"
    ckpt = torch.load(trained_run / "best.pt", weights_only=True)
    first = next(iter(ckpt["model"]))
    ckpt["model"][first] = ckpt["model"][first] + 1e-3  # weights edited after writing
    torch.save(ckpt, tampered)
    img = sorted((tiny_multiclass / "images").iterdir())[0]
    code = main(["predict", "--checkpoint", str(tampered), str(img), "--out",
                 str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "tampered.pt" in err and "SHA-256" in err
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((trained_run / "best.pt").read_bytes()[:5000])
    code = main(["evaluate", "--checkpoint", str(truncated), "--data", str(tiny_multiclass)])
    assert code == 2
    assert "truncated.pt cannot be read safely" in capsys.readouterr().err
    unknown = tmp_path / "future.pt"
    ckpt["format_version"] = 99
    torch.save(ckpt, unknown)
    code = main(["export", "--checkpoint", str(unknown), "--out", str(tmp_path / "m.onnx")])
    assert code == 2
    assert "format version 99" in capsys.readouterr().err


def test_resume_after_sigkill(tiny_multiclass, tmp_path, fast_flags):
    """Kill training mid-epoch; resume finishes it; no corrupt checkpoint, no lost run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "segwise.cli.main", "train", "--data", str(tiny_multiclass),
           "--out", str(run), *fast_flags, "--epochs", "3",
           "--device", "cpu", "--batch-size", "2", "--crop-size", "48", "--workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    try:
        for line in proc.stdout:  # wait until epoch 2 is under way
            if line.strip().startswith("epoch 2 step"):
                break
            assert time.time() < deadline, "training did not reach epoch 2"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no half-written file
    from segwise.runs.checkpoint import load_checkpoint

    assert load_checkpoint(run / "last.pt")["training"]["epoch"] == 1
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert load_checkpoint(run / "best.pt")["training"]["epoch"] in (1, 2, 3)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported-program"])
def test_export_verifies_and_refuses_to_overwrite(trained_run, tmp_path, capsys, fmt):
    out = tmp_path / f"model.{fmt}"
    code = main(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(out),
                 "--format", fmt])
    assert code == 0
    assert "verified: max abs diff" in capsys.readouterr().out
    size = out.stat().st_size
    code = main(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(out),
                 "--format", fmt])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.stat().st_size == size


def test_onnx_predict_matches_checkpoint_predict(trained_run, tiny_multiclass, tmp_path):
    model = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(model)]) == 0
    images = [str(p) for p in sorted((tiny_multiclass / "images").iterdir())[:2]]
    assert main(["predict", "--onnx", str(model), *images, "--out", str(tmp_path / "a"),
                 "--probabilities"]) == 0
    assert main(["predict", "--checkpoint", str(trained_run / "best.pt"), *images,
                 "--out", str(tmp_path / "b"), "--probabilities", "--device", "cpu"]) == 0
    for name in images:
        stem = name.rsplit("/", 1)[-1][:-4]
        pa = np.load(tmp_path / "a" / f"{stem}_prob.npy").astype(np.float32)
        pb = np.load(tmp_path / "b" / f"{stem}_prob.npy").astype(np.float32)
        np.testing.assert_allclose(pa, pb, atol=2e-3)  # float16 files
        la = np.asarray(Image.open(tmp_path / "a" / f"{stem}.png"))
        lb = np.asarray(Image.open(tmp_path / "b" / f"{stem}.png"))
        assert (la != lb).mean() < 0.01  # only near-ties may flip


def test_run_folder_as_checkpoint_and_plain_messages(trained_run, tiny_multiclass, tmp_path,
                                                     capsys):
    image = sorted((tiny_multiclass / "images").iterdir())[0]
    out = tmp_path / "pred"
    code = main(["predict", "--checkpoint", str(trained_run), str(image), "--out", str(out),
                 "--overlay", "--outline", "--device", "cpu"])
    assert code == 0 and (out / f"{image.stem}_overlay.png").is_file()
    capsys.readouterr()
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    code = main(["predict", "--checkpoint", str(trained_run), str(image), "--out", str(a_file)])
    assert code == 2
    assert f"--out {a_file} is an existing file" in capsys.readouterr().err
    code = main(["evaluate", "--checkpoint", str(trained_run), "--data", str(tiny_multiclass),
                 "--out", str(a_file), "--overwrite", "--device", "cpu"])
    assert code == 2  # was a raw [Errno 17] with --overwrite
    assert f"--out {a_file} is an existing file" in capsys.readouterr().err
    code = main(["evaluate", "--checkpoint", str(trained_run), "--data", str(tiny_multiclass),
                 "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert code == 0
    err = capsys.readouterr().err
    assert "evaluated 2/3 images" in err  # progress, on stderr
    assert "UserWarning" not in err and ".py:" not in err  # no Python warning source lines
    assert err.count("heavy class imbalance") == 1  # each notice once
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert main(["evaluate", "--checkpoint", str(empty), "--data", str(tiny_multiclass)]) == 2
    assert "holds no best.pt" in capsys.readouterr().err


def test_evaluate_html_report_matches_scores_and_its_pictures_load(trained_run, tiny_multiclass,
                                                                   tmp_path):
    """report.html parsed (no browser here): every number equals scores.json, images decode."""
    import base64
    import io
    from html.parser import HTMLParser

    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(trained_run), "--data", str(tiny_multiclass),
                 "--out", str(out), "--device", "cpu", "--json"]) == 0
    scores = json.loads((out / "scores.json").read_text())

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.images, self.current, self.cell = {}, [], None, None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "table":
                self.current = self.tables.setdefault(attrs["id"], [])
            elif tag == "tr" and self.current is not None:
                self.current.append([])
            elif tag in ("td", "th"):
                self.cell = ""
            elif tag == "img":
                self.images.append(attrs["src"])

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.current[-1].append(self.cell)
                self.cell = None
            elif tag == "table":
                self.current = None

    page = Tables()
    page.feed((out / "report.html").read_text())

    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    summary = dict(page.tables["summary"][1:])
    assert summary == {k: fmt(v) for k, v in scores["summary"].items()}
    per_class = page.tables["table-1"]
    assert per_class[0] == ["class", "dice", "iou", "precision", "recall", "pixels"]
    assert per_class[1:] == [[fmt(r[c]) for c in per_class[0]] for r in scores["per_class"]]
    assert [row[0] for row in page.tables["worst"][1:]] == [
        w["id"] for w in scores["per_image"]["worst"]]
    assert len(page.images) == 3  # confusion matrix, Dice histogram, worst images
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert picture.size[0] > 100 and picture.size[1] > 100


def test_evaluate_a_test_only_split(trained_run, tiny_multiclass, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_multiclass, data)
    ids = sorted(p.stem for p in (data / "images").iterdir())
    (data / "splits.json").write_text(json.dumps({"test": ids[:5]}))
    code = main(["evaluate", "--checkpoint", str(trained_run), "--data", str(data),
                 "--split", "test", "--out", str(tmp_path / "eval"), "--json", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in report["per_image"]["images"]] == ids[:5]
    assert main(["evaluate", "--checkpoint", str(trained_run), "--data", str(data)]) == 2
    assert "no images in split 'val'" in capsys.readouterr().err


def _chromium():
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed "
                    "(apt-get install chromium); report.html is still checked by parsing")
def test_html_report_renders_in_headless_chromium(trained_run, tiny_multiclass, tmp_path):
    """The browser decodes every picture and shows the numbers of scores.json."""
    import re
    import subprocess

    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(trained_run), "--data", str(tiny_multiclass),
                 "--out", str(out), "--device", "cpu"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    probe = out / "probe.html"  # the report plus a script reporting each image's decoded width
    probe.write_text((out / "report.html").read_text().replace(
        "</body>", "<script>window.onload = () => { document.title = 'widths:' + "
                   "[...document.images].map(i => i.naturalWidth).join(','); };</script></body>"))
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         "--virtual-time-budget=5000", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    widths = [int(w) for w in re.search(r"<title>widths:([\d,]*)</title>", dom).group(1).split(",")]
    assert len(widths) == 3 and all(w > 100 for w in widths)  # every picture decoded
    cells = re.findall(r"<td>([^<]*)</td>", dom)
    for key, value in scores["summary"].items():
        shown = "n/a" if value is None else f"{value:.4f}"
        assert cells[cells.index(key) + 1] == shown, key

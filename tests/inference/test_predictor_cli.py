"""``segwise predict`` over the predictor layer: options it cannot honour are refused up front."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segwise.cli.main import main


def test_onnx_predict_refuses_tiles_and_flips_before_writing(tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    for flag in (["--tta"], ["--tile-size", "64"]):
        out = tmp_path / f"out{len(flag)}"
        code = main(["predict", "--onnx", str(tmp_path / "m.onnx"), str(image), "--out",
                     str(out), *flag])
        assert code == 2
        err = capsys.readouterr().err
        assert "runs whole images without flips" in err and "--checkpoint" in err
        assert not out.exists()  # refused before anything was written


def test_bad_tile_options_name_the_value(tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    out = tmp_path / "out"
    assert main(["predict", "--onnx", str(tmp_path / "m.onnx"), str(image), "--out", str(out),
                 "--overlap", "1.5"]) == 2
    assert "overlap=1.5 is not valid" in capsys.readouterr().err
    assert not out.exists()

"""The package itself: import cost, public names, the command line's skeleton."""

from __future__ import annotations

import subprocess
import sys

import pytest

import segwise
from segwise.cli.main import VERBS, build_parser, main


def test_import_is_light():
    """``import segwise`` must not pull torch or any optional heavy library."""
    code = (
        "import sys, time; t = time.perf_counter(); import segwise; "
        "heavy = [m for m in ('torch', 'torchvision', 'timm', 'monai', 'matplotlib', 'scipy') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_and_all():
    assert segwise.__version__.count(".") == 2
    for name in segwise.__all__:
        assert name in dir(segwise)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        segwise.nope  # noqa: B018


def test_cli_help_lists_every_verb(capsys):
    parser = build_parser()
    text = parser.format_help()
    for module_name in VERBS:
        import importlib

        assert importlib.import_module(f"segwise.cli.{module_name}").NAME in text
    assert main([]) == 2  # no verb: help and a usage exit code


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert segwise.__version__ in capsys.readouterr().out

"""Every verb of the ``pixelwise`` command has a working ``--help`` that documents its options."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pixelwise.cli.main import app

VERBS = [
    [],
    ["demo"],
    ["train"],
    ["val"],
    ["predict"],
    ["export"],
    ["quantize"],
    ["prune"],
    ["distill"],
    ["data"],
    ["data", "convert"],
    ["data", "stats"],
    ["data", "validate"],
    ["data", "split"],
    ["data", "synth"],
    ["data", "formats"],
]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "root")
def test_help(verb):
    result = CliRunner().invoke(app, [*verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if verb:
        assert "--help" in result.output


def test_console_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "pixelwise", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "data" in result.stdout


def test_formats_lists_every_format():
    result = CliRunner().invoke(app, ["data", "formats"])
    assert result.exit_code == 0
    for name in ("coco", "coco-panoptic", "voc", "yolo-seg", "cityscapes", "masks"):
        assert name in result.output


def test_unknown_format_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "x"), "--n", "1", "--format", "nope"])
    assert result.exit_code == 2
    assert "unknown format 'nope'" in result.output

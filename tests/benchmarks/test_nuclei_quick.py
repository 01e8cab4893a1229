"""A short run of benchmarks/nuclei.py: a few training steps must already beat Otsu clearly.

Real data (tests/data/nuclei_dsb2018): train on the left half, score the right half.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "nuclei.py"


@pytest.fixture(scope="module")
def nuclei():
    spec = importlib.util.spec_from_file_location("nuclei_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_baselines_are_what_they_claim(nuclei):
    import numpy as np

    rgb, foreground = nuclei.load_nuclei()
    assert rgb.shape == (512, 512, 3) and foreground.shape == (512, 512)
    right = slice(nuclei.SPLIT_X, None)
    dice, iou = nuclei.dice_iou(nuclei.otsu_mask(np.ascontiguousarray(rgb[:, right])), foreground[:, right])
    assert 0.8 < dice < 0.9 and iou < dice
    assert nuclei.dice_iou(np.zeros((4, 4), bool), np.ones((4, 4), bool)) == (0.0, 0.0)
    assert nuclei.dice_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == (1.0, 1.0)


def test_few_steps_beat_background_and_otsu(nuclei):
    out = nuclei.run_nuclei(steps=30, crop=96, seed=0)
    assert out["dice_background"] == 0.0
    assert out["dice"] > out["dice_otsu"] + 0.015, out
    assert out["iou"] > out["iou_otsu"] + 0.02, out

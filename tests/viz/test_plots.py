"""Plots write readable PNGs of the expected size and survive degenerate inputs."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.core.errors import ShapeError
from pixelwise.core.labels import Annotation, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.stats import dataset_statistics
from pixelwise.viz import plot_class_balance, plot_confusion_matrix, plot_curves, plot_histogram


def _open(path: Path) -> tuple[int, int, np.ndarray]:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG"
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 5, "blank image"
    return img.width, img.height, pixels


def _stats():
    tax = Taxonomy.from_names(["background", "cat", "dog"], stuff=["background"])
    labels = np.zeros((8, 8), np.uint8)
    labels[:2] = 1
    labels[7, 7] = 2
    sample = Sample.with_annotation("a", Path("/nowhere/a.png"), Annotation(semantic=SemanticMap(labels)))
    return dataset_statistics(SegmentationDataset(tax, [sample]), progress=False, compute_mean=False)


@pytest.mark.parametrize("metric", ["pixels", "fraction", "images", "instances"])
def test_class_balance_from_stats(tmp_path: Path, metric: str):
    path = plot_class_balance(_stats(), None, tmp_path / f"{metric}.png", metric=metric)
    width, height, _ = _open(path)
    assert (width, height) == (750, 250)


@pytest.mark.parametrize(
    "counts, names",
    [
        ({"road": 9_000_000, "car": 80_000, "bike": 12}, None),  # log scale chosen automatically
        ({0: 10, 1: 0, 2: 5}, ["bg", "cat", "dog"]),
        ([3, 1, 4, 1, 5], None),
        (np.arange(40), [f"class {i}" for i in range(40)]),
    ],
)
def test_class_balance_from_counts(tmp_path: Path, counts, names):
    path = plot_class_balance(counts, names, tmp_path / "sub" / "balance.png")
    width, height, _ = _open(path)
    assert width == 750 and height >= 250


def test_class_balance_bad_metric(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown metric"):
        plot_class_balance(_stats(), None, tmp_path / "x.png", metric="area")


@pytest.mark.parametrize("k, normalize", [(2, True), (5, False), (13, False), (30, True)])
def test_confusion_matrix(tmp_path: Path, k: int, normalize: bool):
    rng = np.random.default_rng(k)
    matrix = rng.integers(0, 100, (k, k)) + np.eye(k, dtype=np.int64) * 500
    matrix[1] = 0  # a class absent from the ground truth
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero / NaN warnings
        path = plot_confusion_matrix(matrix, [f"class_{i}" for i in range(k)], tmp_path / "cm.png", normalize=normalize)
    width, height, _ = _open(path)
    side = max(4.5, 0.42 * k + 3.0)
    assert (width, height) == (round(100 * (side + 1.2)), round(100 * side))


def test_confusion_matrix_all_zero_and_errors(tmp_path: Path):
    path = plot_confusion_matrix(np.zeros((3, 3)), None, tmp_path / "zero.png")
    assert path.is_file()
    with pytest.raises(ShapeError, match=r"\(K, K\)"):
        plot_confusion_matrix(np.zeros((3, 4)), None, tmp_path / "bad.png")
    with pytest.raises(ShapeError, match="2 class names"):
        plot_confusion_matrix(np.zeros((3, 3)), ["a", "b"], tmp_path / "bad.png")


@pytest.mark.parametrize(
    "history, panels",
    [
        ({"train_loss": [1.0, 0.7, 0.5, 0.4], "val_loss": [1.1, None, 0.6, None], "val_miou": [0.2, 0.3, 0.4, 0.45]}, 2),
        ({"loss": list(np.linspace(2, 0.1, 100))}, 1),
        ({"miou": [0.1], "acc": [0.5, 0.6]}, 1),
        ({"loss": [1.0, 0.5], "miou": [0.1, 0.2], "lr": [0.1, 0.01]}, 3),
    ],
)
def test_curves(tmp_path: Path, history, panels: int):
    path = plot_curves(history, tmp_path / "curves.png", title="run 1")
    width, height, _ = _open(path)
    assert (width, height) == (round(100 * (5.5 * panels + 0.5)), 400)


def test_curves_empty_history(tmp_path: Path):
    with pytest.raises(ValueError, match="at least one series"):
        plot_curves({}, tmp_path / "x.png")


@pytest.mark.parametrize(
    "values",
    [np.random.default_rng(0).lognormal(3, 1, 500), [1, 2, 2, 3, float("nan"), float("inf")], [], [5, 5, 5]],
)
def test_histogram(tmp_path: Path, values):
    path = plot_histogram(values, tmp_path / "hist.png", "object area (px)", log_y=len(values) > 100)
    width, height, _ = _open(path)
    assert (width, height) == (600, 400)


def test_no_pyplot_state(tmp_path: Path):
    plot_histogram([1, 2, 3], tmp_path / "h.png")
    if "matplotlib.pyplot" in sys.modules:  # imported by another test module: no figures left open
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []

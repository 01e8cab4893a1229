"""write_report(): the files of the report folder and what report.html shows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.labels import Annotation, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.image_io import read_image, write_image
from pixelwise.evaluation import error_overlay, evaluate, write_report
from pixelwise.runtime import Segmenter
from pixelwise.transforms.preprocess import PreprocessConfig

TAX = Taxonomy.from_names(["background", "cell"])
IDENTITY = PreprocessConfig(input_size=None, resize_policy="none", mean=(0, 0, 0), std=(1, 1, 1))


class RedChannelBackend:
    """Backend double: class 1 where red >= 128, else 0 (one-hot logits)."""

    name = "red-channel"
    num_classes = 2

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        ids = (batch[:, 0] >= 0.5).astype(np.int64)
        return (np.eye(2, dtype=np.float32)[ids].transpose(0, 3, 1, 2) * 10).astype(np.float32)


def _dataset(folder: Path, n: int) -> SegmentationDataset:
    """``n`` 12x16 images; image i misses i columns of its object; odd ids from camera B."""
    samples = []
    for i in range(n):
        truth = np.zeros((12, 16), np.uint8)
        truth[2:10, 3:13] = 1
        truth[0, :] = 255
        pred = (truth == 1).astype(np.uint8)
        pred[:, 3 : 3 + i % 10] = 0
        image = np.zeros((12, 16, 3), np.uint8)
        image[..., 0] = pred * 200
        path = folder / f"img {i}.png"  # a space: file names in the report must be safe
        write_image(path, image)
        metadata = {"camera": "B" if i % 2 else "A"}
        samples.append(Sample.with_annotation(f"img {i}", path, Annotation(semantic=SemanticMap(truth)), metadata))
    broken = folder / "broken.png"
    broken.write_bytes(b"not an image")
    samples.append(Sample.with_annotation("broken", broken, Annotation(semantic=SemanticMap(np.zeros((12, 16), np.uint8)))))
    return SegmentationDataset(TAX, samples, name="tiny")


@pytest.fixture
def evaluated(tmp_path):
    dataset = _dataset(tmp_path, 12)
    return evaluate(Segmenter(RedChannelBackend(), TAX, IDENTITY), dataset, progress=False)


def test_report_files(evaluated, tmp_path):
    out = tmp_path / "report"
    html_path = write_report(evaluated, out, TAX)
    assert html_path == out / "report.html"
    for name in ("metrics.json", "per_class.csv", "per_slice.csv", "per_image.csv", "confusion_matrix.png", "image_iou.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["images"] == 12 and metrics["summary"]["issues"] == 1
    assert metrics["summary"]["miou"] == pytest.approx(evaluated.metrics.miou)
    assert metrics["metrics"]["per_class"]["cell"]["support"] == 8 * 10 * 12
    with (out / "per_class.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class_name"] for r in rows] == ["background", "cell"]
    with (out / "per_slice.csv").open() as handle:
        slices = {(r["key"], r["value"]): r for r in csv.DictReader(handle)}
    assert set(slices) == {("camera", "A"), ("camera", "B")} and slices[("camera", "A")]["images"] == "6"
    with (out / "per_image.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first["image_id"] == evaluated.worst[0].score.image_id
    assert read_image(out / "confusion_matrix.png").ndim == 3


def test_report_html_shows_the_worst_images(evaluated, tmp_path):
    out = tmp_path / "report"
    page = write_report(evaluated, out).read_text()
    worst_files = sorted((out / "worst").glob("*.png"))
    assert len(worst_files) == 4 * 10
    assert [w.score.image_id for w in evaluated.worst][:2] == ["img 9", "img 8"]
    for kind in ("image", "truth", "pred", "error"):
        src = f"worst/01_img_9_{kind}.png"
        assert src in page and (out / src).is_file()
    assert "img 9" in page and "broken.png" in page  # the issue is listed
    assert "data:image/png;base64," in page  # confusion matrix embedded
    assert "<td>camera</td>" in page
    assert "<script" not in page and "http" not in page  # self-contained
    # Writing again with fewer worst images removes the stale thumbnails.
    evaluated.worst = evaluated.worst[:2]
    write_report(evaluated, out)
    assert len(list((out / "worst").glob("*.png"))) == 8


def test_report_of_an_empty_evaluation(tmp_path):
    dataset = SegmentationDataset(TAX, [], name="empty")
    result = evaluate(Segmenter(RedChannelBackend(), TAX, IDENTITY), dataset, progress=False)
    page = write_report(result, tmp_path / "r").read_text()
    assert "Worst images by IoU (0)" in page
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["summary"]["miou"] is None


@pytest.mark.parametrize(
    "truth, pred, expected",
    [
        ([[0, 1]], [[0, 1]], ["dim", "dim"]),
        ([[0, 1]], [[1, 1]], ["red", "dim"]),
        ([[255, 1]], [[1, 0]], ["grey", "red"]),
    ],
)
def test_error_overlay(truth, pred, expected):
    image = np.full((1, 2, 3), 200, np.uint8)
    out = error_overlay(image, np.array(truth), np.array(pred))
    colours = {"dim": (110, 110, 110), "red": (230, 25, 25), "grey": (150, 150, 150)}
    assert [tuple(int(v) for v in px) for px in out[0]] == [colours[e] for e in expected]

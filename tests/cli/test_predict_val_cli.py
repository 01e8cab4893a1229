"""``pixelwise predict`` and ``pixelwise val`` through Typer's CliRunner, on a tiny checkpoint."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from pixelwise.cli.predict import predict_command, resolve_sources
from pixelwise.cli.val import val_command
from pixelwise.core.labels import Annotation, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.formats import write_dataset
from pixelwise.data.image_io import read_label_image, write_image
from pixelwise.models import create_model
from pixelwise.models.checkpoint import save_checkpoint
from pixelwise.transforms.preprocess import PreprocessConfig

TAX = Taxonomy.from_names(["background", "cell"])
BAD_DIR = Path(__file__).resolve().parents[1] / "data" / "bad"

app = typer.Typer()
app.command("predict")(predict_command)
app.command("val")(val_command)
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("unet-resnet18", num_classes=2)
    config = PreprocessConfig(input_size=(32, 32), resize_policy="resize")
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, TAX, config)


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_image(folder / "a.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    write_image(folder / "b.jpg", rng.integers(0, 255, (17, 23, 3), dtype=np.uint8))
    shutil.copy(BAD_DIR / "truncated.jpg", folder / "c_truncated.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_skips_a_broken_file_and_writes_the_others(checkpoint, images, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "--model", str(checkpoint), str(images), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "c_truncated.jpg" in result.output
    assert "2 images segmented (" in result.output and "img/s), 1 skipped" in result.output
    for stem, shape in (("a", (20, 30)), ("b", (17, 23))):
        assert read_label_image(out / f"{stem}_labels.png").shape == shape
        assert (out / f"{stem}_overlay.png").is_file()
    assert not (out / "c_truncated_labels.png").exists()
    data = json.loads((out / "measurements.json").read_text())
    assert [Path(r["image"]).name for r in data["images"]] == ["a.png", "b.jpg"]
    assert data["summary"] == {"processed": 2, "failed": 1, "regions": data["summary"]["regions"]}
    assert len(data["issues"]) == 1 and "c_truncated.jpg" in data["issues"][0]["path"]
    first = data["images"][0]
    assert {c["class_name"] for c in first["classes"]} == {"background", "cell"}
    all_regions = [r for record in data["images"] for r in record["regions"]]
    assert all_regions and {"polygons", "box", "area", "perimeter", "centroid"} <= set(all_regions[0])
    with (out / "classes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 and rows[0]["stem"] == "a"
    with (out / "measurements.csv").open() as handle:
        regions = list(csv.DictReader(handle))
    assert len(regions) == data["summary"]["regions"]
    assert sum(int(r["area"]) for r in regions if r["stem"] == "a") == next(
        c["area"] for c in first["classes"] if c["class_name"] == "cell"
    )


def test_predict_options_globs_and_no_overlay(checkpoint, images, tmp_path):
    out = tmp_path / "out"
    args = ["predict", "-m", str(checkpoint), str(images / "*.png"), str(images / "a.png"), "--out", str(out),
            "--threshold", "0.99", "--min-region", "4", "--fill-holes", "--smooth", "1", "--no-overlay", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["a_labels.png"]  # deduplicated, no overlay
    data = json.loads((out / "measurements.json").read_text())
    assert data["options"] == {"threshold": 0.99, "min_region": 4, "fill_holes": True, "smooth": 1}


def test_predict_exit_code_when_nothing_works(checkpoint, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(BAD_DIR / "truncated.jpg", folder / "x.jpg")
    result = runner.invoke(app, ["predict", "-m", str(checkpoint), str(folder), "--out", str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 1
    missing = runner.invoke(app, ["predict", "-m", str(checkpoint), str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "no such file" in missing.output
    bad_model = runner.invoke(app, ["predict", "-m", str(tmp_path / "m.onnx"), str(folder)])
    assert bad_model.exit_code == 2 and "ONNX model file not found" in bad_model.output


def test_resolve_sources(images, tmp_path):
    paths, problems = resolve_sources([str(images), str(images / "a.png"), str(tmp_path / "*.gif"), str(tmp_path / "zzz")])
    assert [p.name for p in paths] == ["a.png", "b.jpg", "c_truncated.jpg"]
    assert len(problems) == 2


def test_val_writes_the_report_and_prints_the_summary(checkpoint, tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "src"
    folder.mkdir()
    samples = []
    for i in range(4):
        write_image(folder / f"s{i}.png", rng.integers(0, 255, (24, 28, 3), dtype=np.uint8))
        truth = np.zeros((24, 28), np.uint8)
        truth[4:12, 5 + i : 15 + i] = 1
        meta = {"camera": "A" if i < 2 else "B", "lighting": "day" if i % 2 else "night"}
        samples.append(Sample.with_annotation(f"s{i}", folder / f"s{i}.png", Annotation(semantic=SemanticMap(truth)), meta))
    data = write_dataset(SegmentationDataset(TAX, samples, name="tiny"), tmp_path / "data", "masks")
    out = tmp_path / "report"
    args = ["val", "--model", str(checkpoint), "--data", str(data), "--format", "masks", "--out", str(out),
            "--slices", "camera", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output and "camera=A" in result.output and "lighting" not in result.output
    assert (out / "report.html").is_file() and (out / "confusion_matrix.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["images"] == 4 and metrics["slice_keys"] == ["camera"]
    assert len(list((out / "worst").glob("*_error.png"))) == 4


def test_val_refuses_other_class_names(checkpoint, tmp_path):
    truth = np.zeros((8, 8), np.uint8)
    write_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    sample = Sample.with_annotation("x", tmp_path / "x.png", Annotation(semantic=SemanticMap(truth)))
    other = Taxonomy.from_names(["background", "nucleus"])
    data = write_dataset(SegmentationDataset(other, [sample]), tmp_path / "data", "masks")
    args = ["val", "-m", str(checkpoint), "-d", str(data), "-f", "masks", "-o", str(tmp_path / "r"), "--no-progress"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "nucleus" in refused.output
    accepted = runner.invoke(app, [*args, "--ignore-class-names"])
    assert accepted.exit_code == 0, accepted.output


def test_predict_ray_engine_writes_the_same_files_as_local(checkpoint, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / f"p{index}.png")
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        result = runner.invoke(
            app, ["predict", "-m", str(checkpoint), str(folder), "--out", str(out), "--no-progress", "--engine", engine, "--workers", "1"]
        )
        assert result.exit_code == 0, result.output
        outputs[engine] = {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}
    assert outputs["local"] and outputs["local"] == outputs["ray"]

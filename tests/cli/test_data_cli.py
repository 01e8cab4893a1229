"""``pixelwise data`` verbs end to end on a small synthetic set and on broken input."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from pixelwise.cli.main import app
from pixelwise.data.formats import read_dataset

runner = CliRunner()


def test_synth_validate_stats_split_convert(tmp_path):
    src = tmp_path / "cells"
    result = runner.invoke(app, ["data", "synth", str(src), "--theme", "cells", "--n", "6", "--size", "64", "--format", "coco"])
    assert result.exit_code == 0, result.output

    result = runner.invoke(app, ["data", "validate", str(src), "--strict", "--report", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "v.json").read_text())["n_checked"] == 6

    result = runner.invoke(app, ["data", "stats", str(src), "--out", str(tmp_path / "stats")])
    assert result.exit_code == 0, result.output
    assert "nucleus" in result.output
    assert (tmp_path / "stats" / "class_balance.png").stat().st_size > 1000

    result = runner.invoke(app, ["data", "split", str(src), "--out", str(tmp_path / "splits"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    ids = [line for name in ("train", "val", "test") for line in (tmp_path / "splits" / f"{name}.txt").read_text().split()]
    assert sorted(ids) == sorted(s.image_id for s in read_dataset(src, "coco"))

    result = runner.invoke(app, ["data", "convert", str(src), str(tmp_path / "yolo"), "--to", "yolo-seg"])
    assert result.exit_code == 0, result.output
    converted = read_dataset(tmp_path / "yolo", "yolo-seg")
    original = read_dataset(src, "coco")
    for a, b in zip(sorted(original, key=lambda s: s.image_id), sorted(converted, key=lambda s: s.image_id)):
        np.testing.assert_array_equal(a.annotation().instances.dense_masks(), b.annotation().instances.dense_masks())


def test_validate_reports_broken_files_and_strict_exit_code(tmp_path, data_dir):
    root = tmp_path / "masks_ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(3):
        Image.fromarray(np.full((24, 32, 3), 50 * index, np.uint8)).save(root / "images" / f"ok{index}.png")
        Image.fromarray(np.eye(24, 32, dtype=np.uint8)).save(root / "masks" / f"ok{index}.png")
    shutil.copy(data_dir / "bad" / "truncated.jpg", root / "images" / "broken.jpg")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "masks" / "broken.png")  # header size of truncated.jpg
    Image.fromarray(np.full((24, 32, 3), 9, np.uint8)).save(root / "images" / "small_mask.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "small_mask.png")

    result = runner.invoke(app, ["data", "validate", str(root), "--read-opt", "mask_kind=semantic"])
    assert result.exit_code == 0, result.output
    assert "broken.jpg" in result.output and "small_mask" in result.output
    strict = runner.invoke(app, ["data", "validate", str(root), "--strict", "--read-opt", "mask_kind=semantic"])
    assert strict.exit_code == 1
    dataset = read_dataset(root, "masks", mask_kind="semantic")
    assert {s.image_id for s in dataset} >= {"ok0", "ok1", "ok2"}

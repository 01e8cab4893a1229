"""Static int8 quantization: the mIoU gate, agreement with fp32, and bad inputs.

A random-weight model gives meaningless mIoUs, so a module fixture trains a tiny
unet-mobilenet_v2 for 40 steps on synthetic ``cells`` images (64x64, one torch thread:
about 20 s on a busy 2-core machine), exports it and shares it with every test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from pixelwise.data.image_io import read_image
from pixelwise.data.synth import synth_dataset
from pixelwise.evaluation.evaluate import semantic_target
from pixelwise.models import create_model
from pixelwise.models.checkpoint import save_checkpoint
from pixelwise.runtime.onnx_backend import load_onnx
from pixelwise.runtime.onnx_export import export_onnx
from pixelwise.evaluation.quantize import (
    CalibrationError,
    QuantizationError,
    QuantizationRejected,
    default_int8_path,
    quantize_static_int8,
)
from pixelwise.runtime.sidecar import read_sidecar, sidecar_path
from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image

GATE = 2.0  # mIoU points; 8 tiny validation images make single pixels count


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, object]:
    """A 40-step trained cells model exported to ONNX, plus calibration and validation sets."""
    root = tmp_path_factory.mktemp("quant")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        train = synth_dataset("cells", 16, 64, 0, root / "train")
        val = synth_dataset("cells", 8, 64, 1, root / "val")
        pre = PreprocessConfig(input_size=(64, 64))
        x = torch.from_numpy(np.stack([preprocess_image(read_image(s.image_path), pre)[0] for s in train])).float()
        y = torch.from_numpy(np.stack([semantic_target(s, train.taxonomy) for s in train])).long()
        model = create_model("unet", num_classes=train.taxonomy.num_classes, encoder="mobilenet_v2")
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        generator = torch.Generator().manual_seed(0)
        for _ in range(40):
            idx = torch.randint(0, len(x), (4,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], ignore_index=255)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        ckpt = save_checkpoint(root / "cells.pt", model, train.taxonomy, pre)
        onnx_path = root / "cells.onnx"
        export_onnx(ckpt, onnx_path, exporter="torchscript")
    finally:
        torch.set_num_threads(previous)
    return {"root": root, "onnx": onnx_path, "calib": root / "train", "val": val}


def test_quantize_accepted_agrees_with_fp32(trained):
    out = trained["root"] / "accepted" / "cells.int8.onnx"
    report = quantize_static_int8(trained["onnx"], out, trained["calib"], val_dataset=trained["val"], max_drop=GATE, num_threads=1)
    assert report.accepted and out.is_file() and report.int8_path == out
    assert report.drop_points is not None and report.drop_points <= GATE
    assert 0.0 < report.int8_miou <= 1.0 and report.val_images == 8 and report.num_calib == 16
    assert report.int8_bytes < report.fp32_bytes / 2  # int8 weights
    assert not list(out.parent.glob(".pixelwise-quantize-*"))  # temporary folder removed
    side = read_sidecar(sidecar_path(out))
    quant = side.extra["quantization"]
    assert side.model_file == out.name and quant["format"] == "QDQ" and quant["per_channel"] is True
    assert quant["validation"]["images"] == 8
    # the int8 model loads like any ONNX model and labels like the fp32 one
    fp32, int8 = load_onnx(trained["onnx"], num_threads=1), load_onnx(out, num_threads=1)
    images = [read_image(s.image_path) for s in trained["val"]]
    a = np.stack([r.labels for r in fp32.predict_batch(images)])
    b = np.stack([r.labels for r in int8.predict_batch(images)])
    assert (a == b).mean() >= 0.95
    assert "fp32" in report.summary() and "wrote" in report.summary()
    assert json.dumps(report.to_dict())


def test_quantize_rejected_leaves_no_file(trained):
    out = trained["root"] / "rejected" / "cells.int8.onnx"
    val = trained["val"]
    small = val.subset([s.image_id for s in val.samples[:3]])
    with pytest.raises(QuantizationRejected) as info:
        quantize_static_int8(trained["onnx"], out, trained["calib"], num_calib=4, val_dataset=small, max_drop=-1.0, num_threads=1, timing_repeats=1)
    err = info.value
    assert err.max_drop == -1.0 and err.drop_points is not None and err.drop_points > -1.0
    assert err.report.int8_path is None and "not written" in str(err)
    assert not out.exists() and not sidecar_path(out).exists()
    assert list(out.parent.iterdir()) == []


def test_quantize_without_validation_writes_default_path(trained, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(Path(trained["onnx"]).read_bytes())
    sidecar_path(model).write_bytes(sidecar_path(trained["onnx"]).read_bytes())
    files = sorted(Path(trained["calib"]).glob("*.png"))[:3]
    report = quantize_static_int8(model, None, files, num_threads=1, timing_repeats=1)
    assert report.int8_path == default_int8_path(model) == tmp_path / "m.int8.onnx"
    assert report.drop_points is None and report.num_calib == 3 and report.int8_path.is_file()


def test_empty_calibration_folder(trained, tmp_path):
    empty = tmp_path / "calib"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(CalibrationError, match="no images") as info:
        quantize_static_int8(trained["onnx"], tmp_path / "x.onnx", empty)
    assert str(empty) in str(info.value)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"this is not a protobuf at all \x00\xff" * 10, "not an ONNX model"),
        (b"", "not an ONNX model"),
    ],
)
def test_non_onnx_input(tmp_path, content, match):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(QuantizationError, match=match) as info:
        quantize_static_int8(bad, None, tmp_path)
    assert "bad.onnx" in str(info.value)


def test_missing_model_and_sidecar(trained, tmp_path):
    with pytest.raises(QuantizationError, match="not found"):
        quantize_static_int8(tmp_path / "nope.onnx", None, trained["calib"])
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(Path(trained["onnx"]).read_bytes())
    with pytest.raises(QuantizationError, match="no sidecar"):
        quantize_static_int8(lonely, None, trained["calib"])


def test_cli_quantize(trained, tmp_path):
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from pixelwise.cli.quantize import quantize_command

    app = typer.Typer()
    app.command()(quantize_command)
    out = tmp_path / "cli.int8.onnx"
    runner = CliRunner()
    result = runner.invoke(
        app, ["--model", str(trained["onnx"]), "--calib", str(trained["calib"]), "--out", str(out), "--num-calib", "2", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "int8" in result.output and out.is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["--model", str(trained["onnx"]), "--calib", str(empty)])
    assert result.exit_code == 2 and "no images" in result.output

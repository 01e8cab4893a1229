"""ONNX export contract per architecture, ONNX Runtime backend, bad files, and the CLI verb."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from pixelwise.core.taxonomy import Taxonomy  # noqa: E402
from pixelwise.data.image_io import read_image  # noqa: E402
from pixelwise.models import create_model  # noqa: E402
from pixelwise.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from pixelwise.runtime import Segmenter, TorchBackend  # noqa: E402
from pixelwise.runtime.onnx_backend import OnnxBackend, OnnxModelError, load_onnx  # noqa: E402
from pixelwise.runtime.onnx_export import ExportError, ExportMismatchError, export_onnx  # noqa: E402
from pixelwise.runtime.sidecar import SidecarError, read_sidecar, sidecar_path  # noqa: E402
from pixelwise.transforms.preprocess import PreprocessConfig  # noqa: E402

PHOTO = Path(__file__).parents[1] / "data" / "photos" / "astronaut.png"
TAX = Taxonomy.from_names(["background", "cell", "debris"], stuff=["background"])
PRE = PreprocessConfig(input_size=(64, 64))


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny 64x64 inputs: one thread is as fast, and immune to OpenMP spinning on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _checkpoint(folder: Path, name: str, preprocess: PreprocessConfig = PRE) -> Path:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).eval()
    return save_checkpoint(folder / f"{name}.pt", model, TAX, preprocess)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ckpt")


@pytest.fixture(scope="module")
def unet_onnx(ckpt_dir) -> tuple[Path, Path]:
    """A unet export with dynamic batch (torchscript exporter: quick), shared by several tests."""
    ckpt = _checkpoint(ckpt_dir, "unet-mobilenet_v2")
    out = ckpt_dir / "unet_dyn.onnx"
    export_onnx(ckpt, out, dynamic_batch=True, exporter="torchscript")
    return ckpt, out


def _normalised(batch: int, size=(64, 64), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (batch, 3, *size)).astype(np.float32)


# ``unet`` goes through the default exporter (dynamo, PyTorch's default); the others use
# the TorchScript exporter to keep the suite quick (``auto`` falls back to it anyway).
@pytest.mark.parametrize(
    "name, exporter",
    [
        ("unet-mobilenet_v2", "auto"),
        ("fpn-mobilenet_v2", "torchscript"),
        ("deeplabv3plus-mobilenet_v2", "torchscript"),
        ("segformer-mit_b0", "torchscript"),
    ],
)
def test_export_equality_per_architecture(name, exporter, ckpt_dir):
    ckpt = _checkpoint(ckpt_dir, name)
    out = ckpt_dir / f"{name}.onnx"
    report = export_onnx(ckpt, out, exporter=exporter)
    assert report.label_agreement == 1.0 and report.max_abs_diff < 1e-3
    assert report.exporter == ("dynamo" if exporter == "auto" else exporter)
    assert out.is_file() and not out.with_name(out.name + ".tmp").exists()
    sidecar = read_sidecar(sidecar_path(out))
    assert sidecar.input_shape == (1, 3, 64, 64) and sidecar.output_shape == (1, 3, 64, 64)
    assert sidecar.check["passed"] and sidecar.opset == report.opset == 17
    assert len(sidecar.source["sha256"]) == 64

    x = _normalised(1)
    torch_scores = TorchBackend.from_checkpoint(ckpt).predict_scores(x)
    ort_scores = OnnxBackend(out, num_threads=1).predict_scores(x)
    np.testing.assert_allclose(ort_scores, torch_scores, atol=1e-4, rtol=1e-4)
    assert (ort_scores.argmax(1) == torch_scores.argmax(1)).mean() == 1.0


def test_dynamic_batch_runs_batch_of_three(unet_onnx):
    ckpt, out = unet_onnx
    backend = OnnxBackend(out)
    assert backend.input_shape[0] == "batch" and backend.fixed_batch is None
    x = _normalised(3)
    expected = TorchBackend.from_checkpoint(ckpt).predict_scores(x)
    scores = backend.predict_scores(x)
    assert scores.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=1e-4)
    assert read_sidecar(sidecar_path(out)).dynamic_batch


def test_auto_falls_back_to_torchscript_and_fixed_batch_runs_image_by_image(ckpt_dir, monkeypatch):
    import pixelwise.runtime.onnx_export as onnx_export

    original = onnx_export._run_export

    def dynamo_breaks(exporter, *args, **kwargs):
        if exporter == "dynamo":
            raise RuntimeError("simulated torch.export failure")
        return original(exporter, *args, **kwargs)

    monkeypatch.setattr(onnx_export, "_run_export", dynamo_breaks)
    ckpt = _checkpoint(ckpt_dir, "unet-mobilenet_v2")
    out = ckpt_dir / "fixed.onnx"
    report = export_onnx(ckpt, out, check=False)
    assert report.exporter == "torchscript" and "simulated" in report.fallback_reason
    assert report.label_agreement is None and report.samples == 0
    assert "not used" in report.summary()
    assert read_sidecar(sidecar_path(out)).exporter == "torch.onnx torchscript"
    backend = OnnxBackend(out)
    assert backend.fixed_batch == 1
    x = _normalised(2)
    np.testing.assert_allclose(
        backend.predict_scores(x), TorchBackend.from_checkpoint(ckpt).predict_scores(x), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("output", ["probabilities", "labels"])
def test_normalisation_in_graph_and_output_kinds_give_same_labels(output, ckpt_dir):
    ckpt = _checkpoint(ckpt_dir, "unet-mobilenet_v2")
    out = ckpt_dir / f"norm_{output}.onnx"
    report = export_onnx(
        ckpt, out, include_normalization=True, output=output, exporter="torchscript", sample_inputs=[PHOTO]
    )
    assert report.normalization_in_graph and report.label_agreement == 1.0
    sidecar = read_sidecar(sidecar_path(out))
    assert sidecar.input_range == "0..255" and sidecar.check["real_images"] == 1
    image = read_image(PHOTO)
    checkpoint = load_checkpoint(ckpt)
    reference = Segmenter(TorchBackend.from_checkpoint(checkpoint), checkpoint.taxonomy, checkpoint.preprocess)
    onnx_segmenter = load_onnx(out)
    assert onnx_segmenter.backend.normalization_in_graph
    [(want, _)] = reference.network_probabilities([image])
    [(got, _)] = onnx_segmenter.network_probabilities([image])
    assert (got.argmax(0) == want.argmax(0)).mean() == 1.0
    if output == "probabilities":  # log(p) through the pipeline's softmax gives p back
        np.testing.assert_allclose(got, want, atol=1e-5)
    else:
        assert got.max(0).min() > 0.999  # one-hot: labels carry no confidence


def test_mismatch_past_tolerance_fails_loudly_and_leaves_nothing(ckpt_dir, tmp_path):
    ckpt = _checkpoint(ckpt_dir, "unet-mobilenet_v2")
    out = tmp_path / "strict.onnx"
    with pytest.raises(ExportMismatchError, match="disagrees with PyTorch") as info:
        export_onnx(ckpt, out, atol=0.0, rtol=0.0, exporter="torchscript")
    assert info.value.max_abs_diff > 0 and info.value.label_agreement == 1.0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"input_size": (60, 60)}, ExportError, "64x64"),
        ({"output": "masks"}, ValueError, "output must be"),
        ({"exporter": "tf"}, ValueError, "exporter must be"),
    ],
)
def test_bad_export_arguments(kwargs, error, message, ckpt_dir, tmp_path):
    ckpt = _checkpoint(ckpt_dir, "unet-mobilenet_v2")
    with pytest.raises(error, match=message):
        export_onnx(ckpt, tmp_path / "x.onnx", **kwargs)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("content", [b"", b"definitely not a protobuf" * 50, "truncated"])
def test_corrupt_onnx_file_names_the_file(content, unet_onnx, tmp_path):
    path = tmp_path / "broken.onnx"
    if content == "truncated":
        content = unet_onnx[1].read_bytes()[:4000]
    path.write_bytes(content)
    with pytest.raises(OnnxModelError, match="broken.onnx") as info:
        OnnxBackend(path)
    assert "re-export" in str(info.value)
    with pytest.raises(OnnxModelError, match="not found"):
        load_onnx(tmp_path / "missing.onnx")


def _copy_with_sidecar(src: Path, folder: Path, edit) -> Path:
    out = folder / "m.onnx"
    out.write_bytes(src.read_bytes())
    data = json.loads(sidecar_path(src).read_text())
    edit(data)
    sidecar_path(out).write_text(json.dumps(data))
    return out


def _resize(data, size):
    data["input"]["shape"][2:] = size
    data["output"]["shape"][2:] = size
    data["preprocess"]["input_size"] = size


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: _resize(d, [96, 96]), "does not match the sidecar"),
        (lambda d: d["input"].update(name="image"), "names input 'image'"),
        (lambda d: d["output"].update(name="scores"), "names output 'scores'"),
        (lambda d: (d["classes"]["classes"].append({"id": 3, "name": "x"}), d["output"]["shape"].__setitem__(1, 4)), "4"),
    ],
)
def test_sidecar_that_does_not_fit_the_graph(edit, message, unet_onnx, tmp_path):
    out = _copy_with_sidecar(unet_onnx[1], tmp_path, edit)
    with pytest.raises(OnnxModelError, match=message) as info:
        load_onnx(out)
    assert "m.onnx" in str(info.value) and ("re-export" in str(info.value) or "sidecar" in str(info.value))


def test_load_without_sidecar(unet_onnx, tmp_path):
    out = tmp_path / "bare.onnx"
    out.write_bytes(unet_onnx[1].read_bytes())
    with pytest.raises(SidecarError, match="no sidecar") as info:
        load_onnx(out)
    assert "taxonomy=" in str(info.value)
    segmenter = load_onnx(out, taxonomy=TAX, preprocess=PRE, num_threads=1)
    assert segmenter.num_classes == 3
    with pytest.raises(Exception, match="takes 64x64"):
        segmenter.backend.predict_scores(_normalised(1, (32, 32)))


def test_cli_export_prints_figures_and_paths(ckpt_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from pixelwise.cli.export import export_command, parse_size

    assert parse_size("48x64") == (48, 64) and parse_size("32") == (32, 32)
    app = typer.Typer()
    app.command()(export_command)
    # A checkpoint trained with the size-free "pad" policy: the export needs --input-size.
    ckpt = _checkpoint(tmp_path, "unet-mobilenet_v2", PreprocessConfig(input_size=None, resize_policy="pad"))
    runner = CliRunner()
    result = runner.invoke(app, ["--model", str(ckpt), "--exporter", "torchscript"])
    assert result.exit_code == 2 and "--input-size" in result.output
    out = tmp_path / "cli" / "model.onnx"
    result = runner.invoke(
        app,
        ["--model", str(ckpt), "--out", str(out), "--input-size", "32x64", "--dynamic-batch",
         "--output", "probabilities", "--exporter", "torchscript", "--image", str(PHOTO)],
    )
    assert result.exit_code == 0, result.output
    assert "max abs diff" in result.output and "label agreement 1.000000" in result.output
    assert str(out) in result.output and str(sidecar_path(out)) in result.output
    assert "letterbox" in result.output
    sidecar = read_sidecar(sidecar_path(out))
    assert sidecar.input_shape == ("batch", 3, 32, 64) and sidecar.preprocess.resize_policy == "letterbox"
    result = runner.invoke(app, ["--model", str(ckpt), "--format", "tflite"])
    assert result.exit_code == 2 and "not supported" in result.output

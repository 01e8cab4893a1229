"""Segmenter pipeline, TorchBackend, SemanticResult and pixelwise.api.load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pixelwise.api
from pixelwise.core.errors import DataError, ShapeError
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.image_io import read_label_image, write_image
from pixelwise.models import create_model
from pixelwise.models.checkpoint import CheckpointError, save_checkpoint
from pixelwise.runtime import BackendOutputError, Predictor, Segmenter, SemanticResult, TorchBackend
from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image

TAX3 = Taxonomy.from_names(["background", "cell", "debris"])
TAX2 = Taxonomy.from_names(["background", "cell"])
IDENTITY = PreprocessConfig(input_size=None, resize_policy="none", mean=(0, 0, 0), std=(1, 1, 1))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("unet-resnet18", num_classes=3).eval()


class FixedBackend:
    """Backend double: returns the logits it was given (tiled over the batch)."""

    name = "fixed"

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits.astype(np.float32)
        self.num_classes = logits.shape[0]
        self.calls: list[tuple[int, ...]] = []

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        return np.repeat(self.logits[None], batch.shape[0], axis=0)


class RedBackend:
    """Backend double: class = round(red / 100) of an identity-normalised image (one-hot logits)."""

    name = "red"
    num_classes = 3

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        ids = np.clip(np.rint(batch[:, 0] * 255 / 100), 0, 2).astype(np.int64)
        return (np.eye(3, dtype=np.float32)[ids].transpose(0, 3, 1, 2) * 10).astype(np.float32)


def _binary_logits(p1: np.ndarray) -> np.ndarray:
    """Two-class logits whose softmax gives class-1 probability ``p1``."""
    p1 = np.clip(p1, 1e-6, 1 - 1e-6)
    return np.stack([np.zeros_like(p1), np.log(p1 / (1 - p1))]).astype(np.float32)


# ----------------------------------------------------------------- shapes / sizes
@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(input_size=(64, 64), resize_policy="resize"),
        PreprocessConfig(input_size=(64, 96), resize_policy="letterbox"),
        PreprocessConfig(input_size=None, resize_policy="pad", divisor=32),
    ],
    ids=["resize", "letterbox", "pad"],
)
@pytest.mark.parametrize("size", [(37, 53), (21, 90), (64, 64)])
def test_segmenter_restores_original_size(tiny_model, config, size):
    seg = Segmenter(TorchBackend(tiny_model), TAX3, config)
    image = np.random.randint(0, 255, (*size, 3), np.uint8)
    result = seg.predict(image)
    assert result.labels.shape == size and result.labels.dtype == np.int32
    assert result.image.shape == (*size, 3)
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    probs = result.probabilities
    assert probs.shape == (3, *size) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)


def test_gray_array_and_path_inputs(tiny_model, tmp_path):
    seg = Segmenter(TorchBackend(tiny_model), TAX3, PreprocessConfig(input_size=(32, 32)))
    gray = np.random.randint(0, 255, (20, 30), np.uint8)
    assert seg.predict(gray).labels.shape == (20, 30)
    path = tmp_path / "img.png"
    write_image(path, np.random.randint(0, 255, (25, 33, 3), np.uint8))
    result = seg.predict(path)
    assert result.labels.shape == (25, 33) and result.source == str(path)


@pytest.mark.parametrize(
    "image, raises",
    [
        (np.zeros((10, 10, 3), np.float32), ShapeError),
        (np.zeros((10, 10, 4), np.uint8), ShapeError),
        (np.zeros((10,), np.uint8), ShapeError),
    ],
)
def test_bad_arrays_are_rejected(image, raises):
    seg = Segmenter(RedBackend(), TAX3, IDENTITY)
    with pytest.raises(raises):
        seg.predict(image)


def test_predict_batch_groups_same_sizes():
    backend = RedBackend()
    seg = Segmenter(backend, TAX3, IDENTITY, batch_size=2)
    images = [np.full((6, 8, 3), 100, np.uint8)] * 3 + [np.full((5, 7, 3), 200, np.uint8)]
    results = seg.predict_batch(images)
    assert [r.labels.shape for r in results] == [(6, 8)] * 3 + [(5, 7)]
    assert [int(r.labels[0, 0]) for r in results] == [1, 1, 1, 2]
    assert sorted(shape[0] for shape in backend.calls) == [1, 1, 2]  # 2 + 1 of 6x8, 1 of 5x7


def test_backend_with_wrong_output_shape_is_reported():
    backend = FixedBackend(np.zeros((3, 4, 4), np.float32))
    seg = Segmenter(backend, TAX3, IDENTITY)
    with pytest.raises(BackendOutputError, match="expected"):
        seg.predict(np.zeros((5, 5, 3), np.uint8))


def test_taxonomy_larger_than_backend_is_rejected():
    with pytest.raises(ValueError, match="channels"):
        Segmenter(FixedBackend(np.zeros((2, 4, 4))), TAX3, IDENTITY)


def test_torch_backend_is_a_predictor_and_restores_threads(tiny_model):
    before = torch.get_num_threads()
    backend = TorchBackend(tiny_model, num_threads=1)
    assert isinstance(backend, Predictor)
    scores = backend.predict_scores(np.zeros((2, 3, 40, 24), np.float32))
    assert scores.shape == (2, 3, 40, 24) and scores.dtype == np.float32
    assert torch.get_num_threads() == before
    with pytest.raises(ShapeError):
        backend.predict_scores(np.zeros((3, 40, 24), np.float32))


# ------------------------------------------------------------------- threshold
RAMP = np.tile(np.linspace(0.05, 0.95, 10, dtype=np.float32), (4, 1))  # class-1 probability per column


@pytest.mark.parametrize(
    "threshold, foreground_columns",
    [(None, 5), (0.5, 5), (0.3, 7), (0.8, 2), (0.0, 10), (1.0, 0)],
)
def test_binary_threshold_on_class_one(threshold, foreground_columns):
    seg = Segmenter(FixedBackend(_binary_logits(RAMP)), TAX2, IDENTITY)
    labels = seg.predict(np.zeros((4, 10, 3), np.uint8), threshold=threshold).labels
    assert labels.sum() == 4 * foreground_columns
    assert (labels[:, 10 - foreground_columns :] == 1).all()


def test_threshold_needs_a_binary_model_and_a_probability():
    seg3 = Segmenter(RedBackend(), TAX3, IDENTITY)
    with pytest.raises(ValueError, match="binary"):
        seg3.predict(np.zeros((4, 4, 3), np.uint8), threshold=0.5)
    seg2 = Segmenter(FixedBackend(_binary_logits(RAMP)), TAX2, IDENTITY)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        seg2.predict(np.zeros((4, 10, 3), np.uint8), threshold=1.5)


# ----------------------------------------------------------------- post-process
def _red_image(ids: np.ndarray) -> np.ndarray:
    image = np.zeros((*ids.shape, 3), np.uint8)
    image[..., 0] = ids * 100
    return image


def test_min_region_and_fill_holes():
    ids = np.zeros((12, 12), np.int64)
    ids[2:9, 2:9] = 1
    ids[5, 5] = 0  # a one-pixel hole
    ids[10, 10] = 2  # a one-pixel speck
    seg = Segmenter(RedBackend(), TAX3, IDENTITY)
    raw = seg.predict(_red_image(ids)).labels
    np.testing.assert_array_equal(raw, ids)
    cleaned = seg.predict(_red_image(ids), min_region=2).labels
    assert cleaned[10, 10] == 0 and cleaned[5, 5] == 1  # speck removed; hole absorbed too (1 px)
    filled = seg.predict(_red_image(ids), fill_holes=True).labels
    assert filled[5, 5] == 1 and filled[10, 10] == 2
    smoothed = seg.predict(_red_image(ids), smooth=1).labels
    assert smoothed[5, 5] == 1


# -------------------------------------------------------------------- results
def test_semantic_result_regions_measurements_overlay_and_save(tmp_path):
    labels = np.zeros((10, 12), np.int32)
    labels[1:4, 1:4] = 1
    labels[6:9, 6:11] = 1
    labels[0, 11] = 2
    image = np.full((10, 12, 3), 40, np.uint8)
    result = SemanticResult(image, labels, TAX3, source="x.png")
    assert [(r.class_id, r.area) for r in result.regions] == [(1, 9), (1, 15), (2, 1)]
    by_name = {m.class_name: m for m in result.measurements()}
    assert by_name["cell"].area == 24 and by_name["cell"].region_count == 2
    assert by_name["background"].region_count == 0
    assert abs(by_name["debris"].area_fraction - 1 / 120) < 1e-9
    over = result.overlay(alpha=1.0)
    assert over.shape == (10, 12, 3) and over.dtype == np.uint8
    assert tuple(over[2, 2]) == TAX3.get(1).color and tuple(over[5, 0]) == (40, 40, 40)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["region_count"] == 3 and data["regions"][0]["box"] == [1.0, 1.0, 4.0, 4.0]
    files = result.save(tmp_path, "x")
    assert sorted(files) == ["json", "labels", "overlay"]
    np.testing.assert_array_equal(read_label_image(files["labels"]), labels)


@pytest.mark.parametrize(
    "image, labels",
    [
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.int32)),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.int32)),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32)),
    ],
)
def test_semantic_result_validates_shapes(image, labels):
    with pytest.raises(ShapeError):
        SemanticResult(image, labels, TAX3)


# ------------------------------------------------------------------- api.load
def test_checkpoint_round_trip_gives_the_model_labels(tiny_model, tmp_path):
    config = PreprocessConfig(input_size=None, resize_policy="pad", divisor=32)
    path = save_checkpoint(tmp_path / "best.pt", tiny_model, TAX3, config)
    segmenter = pixelwise.api.load(path)
    assert segmenter.taxonomy == TAX3 and segmenter.preprocess == config
    image = np.random.randint(0, 255, (45, 70, 3), np.uint8)
    result = segmenter.predict(image)
    chw, _ = preprocess_image(image, config)
    logits = tiny_model.predict(torch.from_numpy(chw)[None])[0, :, :45, :70]
    np.testing.assert_array_equal(result.labels, logits.argmax(0).numpy())


@pytest.mark.parametrize(
    "name, error, match",
    [
        ("model.onnx", DataError, "ONNX model file not found"),
        ("model.tflite", DataError, "TFLite model file not found"),
        ("model.h5", pixelwise.api.ModelLoadError, "unknown model file extension"),
        ("person", pixelwise.api.ModelLoadError, "not a model file"),
        ("missing.pt", CheckpointError, "not found"),
    ],
)
def test_load_dispatch_errors(tmp_path, name, error, match):
    with pytest.raises(error, match=match):
        pixelwise.api.load(tmp_path / name)

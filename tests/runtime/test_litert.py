"""LiteRT backend and the built-in MediaPipe person models, on real public-domain photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.errors import ShapeError
from pixelwise.data.image_io import read_image
from pixelwise.runtime.builtin import (
    PERSON_TAXONOMY,
    asset_bytes,
    asset_path,
    is_builtin,
    list_builtin_models,
    load_builtin,
    load_person,
    person_preprocess,
)
from pixelwise.runtime.litert_backend import LiteRTBackend, LiteRTModelError, load_tflite
from pixelwise.runtime.sidecar import Sidecar
from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image

pytest.importorskip("ai_edge_litert")

PHOTOS = Path(__file__).parents[1] / "data" / "photos"


@pytest.fixture(scope="module")
def person():
    return load_person()


@pytest.fixture(scope="module")
def astronaut():
    return read_image(PHOTOS / "astronaut.png")


def _direct_invoke(model_name: str, nhwc: np.ndarray) -> np.ndarray:
    """Reference: the packaged model run with ai_edge_litert alone."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(asset_path("person", model_name)), num_threads=2)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], nhwc[None].astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0, :, :, 0].copy()


def test_person_finds_the_astronaut(person, astronaut):
    result = person.predict(astronaut)
    labels = result.labels
    assert labels.shape == astronaut.shape[:2]
    fraction = float((labels == 1).mean())
    assert 0.15 < fraction < 0.8
    rows, cols = np.nonzero(labels == 1)
    h, w = labels.shape
    assert abs(cols.mean() - w / 2) < 0.2 * w  # horizontally centred
    assert rows.mean() > 0.4 * h  # a portrait: the person fills the lower part
    # The centre of the lower half is person, the top-left corner is not.
    assert labels[int(0.75 * h), w // 2] == 1
    assert (labels[: h // 8, : w // 8] == 1).mean() < 0.2
    assert result.taxonomy.names == ["background", "person"]


@pytest.mark.parametrize("landscape", [False, True])
def test_probabilities_match_direct_invoke(landscape, astronaut):
    segmenter = load_person(landscape=landscape)
    config = person_preprocess(landscape)
    chw, _ = preprocess_image(astronaut, config)
    expected = _direct_invoke(
        "selfie_segmentation_landscape.tflite" if landscape else "selfie_segmentation.tflite", chw.transpose(1, 2, 0)
    )
    [(probabilities, geometry)] = segmenter.network_probabilities([astronaut])
    assert probabilities.shape == (2, *config.input_size)
    assert np.abs(probabilities[1] - expected).max() < 1e-5
    assert np.abs(probabilities[0] - (1 - expected)).max() < 1e-5
    # Default argmax is the 0.5 threshold on the person probability.
    network_labels = probabilities.argmax(0)
    assert ((network_labels == 1) == (expected > 0.5)).mean() > 0.999


def test_grace_hopper_and_batches(person, data_dir):
    hopper = data_dir / "photos" / "grace_hopper.jpg"
    results = person.predict_batch([hopper, data_dir / "photos" / "astronaut.png"])
    single = person.predict(hopper)
    assert np.array_equal(results[0].labels, single.labels)
    assert 0.15 < (single.labels == 1).mean() < 0.8
    landscape = load_person(landscape=True).predict(hopper)
    agree = (landscape.labels == single.labels).mean()
    assert agree > 0.85  # two different networks, same person


def test_threshold_changes_the_mask(person, astronaut):
    loose = (person.predict(astronaut, threshold=0.1).labels == 1).mean()
    strict = (person.predict(astronaut, threshold=0.9).labels == 1).mean()
    assert loose >= strict


def test_builtin_registry():
    assert list_builtin_models() == ["person", "person-landscape"]
    assert is_builtin("person") and is_builtin(" Person ") and not is_builtin("model.onnx")
    seg = load_builtin("person-landscape", num_threads=1)
    assert seg.backend.input_hw == (144, 256) and seg.backend.num_threads == 1
    assert seg.taxonomy == PERSON_TAXONOMY
    with pytest.raises(KeyError, match="person-landscape"):
        load_builtin("people")


def test_load_tflite_from_file_defaults_and_sidecar(tmp_path, astronaut, person):
    path = tmp_path / "selfie.tflite"
    path.write_bytes(asset_bytes("person", "selfie_segmentation.tflite"))
    seg = load_tflite(path)
    assert seg.taxonomy.names == ["background", "foreground"]
    assert seg.preprocess.input_size == (256, 256) and seg.preprocess.mean == (0.0, 0.0, 0.0)
    assert np.array_equal(seg.predict(astronaut).labels, person.predict(astronaut).labels)
    # A sidecar names the classes.
    Sidecar(
        PERSON_TAXONOMY,
        person_preprocess(),
        input_shape=(1, 256, 256, 3),
        output_shape=(1, 256, 256, 1),
        input_layout="NHWC",
        input_range="0..1",
        output_kind="probabilities",
    ).write(tmp_path / "selfie.tflite.json")
    assert load_tflite(path).taxonomy.names == ["background", "person"]
    with pytest.raises(ShapeError, match="256x256"):
        load_tflite(path, preprocess=PreprocessConfig(input_size=(128, 128)))


def test_backend_rejects_bad_input(person):
    backend = person.backend
    with pytest.raises(ShapeError, match="256x256"):
        backend.predict_scores(np.zeros((1, 3, 128, 128), np.float32))
    with pytest.raises(ShapeError, match="B, 3"):
        backend.predict_scores(np.zeros((1, 256, 256, 3), np.float32))
    scores = backend.predict_scores(np.full((2, 3, 256, 256), 0.5, np.float32))
    assert scores.shape == (2, 2, 256, 256) and scores.dtype == np.float32
    assert np.allclose(np.exp(scores).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all" * 10, None])
def test_corrupt_tflite_names_the_file(tmp_path, content):
    path = tmp_path / "broken.tflite"
    if content is None:  # a truncated real model
        content = asset_bytes("person", "selfie_segmentation.tflite")[:5000]
    path.write_bytes(content)
    with pytest.raises(LiteRTModelError, match="broken.tflite") as info:
        LiteRTBackend(path)
    assert "TFLite" in str(info.value)
    with pytest.raises(LiteRTModelError, match="not found"):
        LiteRTBackend(tmp_path / "missing.tflite")

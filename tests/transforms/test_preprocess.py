"""Preprocessing geometry is undone exactly; configs round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from pixelwise.core.errors import ShapeError
from pixelwise.transforms.preprocess import (
    PreprocessConfig,
    plan_geometry,
    preprocess_image,
    preprocess_labels,
    restore_labels,
    restore_probabilities,
)


@pytest.mark.parametrize(
    "policy, size, expected_padded",
    [("resize", (64, 64), (64, 64)), ("letterbox", (64, 64), (64, 64)), ("pad", None, (64, 96)), ("none", None, (50, 70))],
)
def test_geometry_and_inverse(policy, size, expected_padded):
    config = PreprocessConfig(input_size=size, resize_policy=policy)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    chw, geometry = preprocess_image(image, config)
    assert chw.shape == (3, *expected_padded) and chw.dtype == np.float32
    labels = np.zeros((50, 70), np.uint8)
    labels[10:40, 20:60] = 3
    placed = preprocess_labels(labels, geometry)
    assert placed.shape == expected_padded
    back = restore_labels(placed, geometry)
    assert back.shape == (50, 70)
    agreement = (back == labels).mean()
    assert agreement > (0.999 if policy in ("pad", "none") else 0.95)  # one-pixel shifts at borders
    probs = np.stack([placed == 0, placed == 3]).astype(np.float32)
    assert restore_probabilities(probs, geometry).shape == (2, 50, 70)


def test_letterbox_keeps_aspect_and_centres():
    geometry = plan_geometry(50, 100, PreprocessConfig(input_size=(64, 64), resize_policy="letterbox"))
    assert geometry.scaled == (32, 64) and geometry.offset == (16, 0)


def test_normalisation_values():
    config = PreprocessConfig(input_size=None, resize_policy="none", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    image = np.full((4, 4, 3), 255, np.uint8)
    chw, _ = preprocess_image(image, config)
    np.testing.assert_allclose(chw, 1.0)


@pytest.mark.parametrize("method", ["median", "bilateral", "nlmeans"])
def test_denoise_reduces_noise(method):
    rng = np.random.default_rng(1)
    clean = np.full((32, 32, 3), 128, np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    config = PreprocessConfig(input_size=None, resize_policy="none", denoise=method, mean=(0, 0, 0), std=(1 / 255,) * 3)
    chw, _ = preprocess_image(noisy, config)
    assert np.abs(chw - 128).mean() < np.abs(noisy.astype(float) - 128).mean()


def test_config_round_trip_and_errors():
    config = PreprocessConfig(input_size=(96, 128), resize_policy="letterbox", denoise="median")
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        PreprocessConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="resize_policy"):
        PreprocessConfig(resize_policy="stretchy")
    with pytest.raises(ShapeError, match=r"\(H, W, 3\) uint8"):
        preprocess_image(np.zeros((4, 4), np.uint8), config)

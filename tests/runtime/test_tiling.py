"""Tiled inference: tile plans, blending windows, equality with whole-image inference,
lazy TIFF reading, bounded memory and tile-size errors."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
import tifffile

from pixelwise.core.taxonomy import Taxonomy
from pixelwise.runtime import Segmenter
from pixelwise.runtime.tiling import (
    TiledSegmenter,
    TileSizeError,
    blend_window,
    open_image_source,
    predict_tiled,
    tile_starts,
)
from pixelwise.transforms.preprocess import PreprocessConfig

TAX3 = Taxonomy.from_names(["background", "cell", "debris"])
TAX2 = Taxonomy.from_names(["background", "cell"])
PAD = PreprocessConfig(input_size=None, resize_policy="pad", divisor=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


class LocalConvBackend:
    """A fully convolutional stand-in for a CNN: a 5x5 box blur (zero padding at the input
    border, like a CNN's padding) followed by a fixed 1x1 channel mix. Receptive field 5 px."""

    name = "localconv"
    required_divisor = 16

    def __init__(self, num_classes: int = 3) -> None:
        rng = np.random.default_rng(1)
        self.num_classes = num_classes
        self.mix = rng.normal(size=(num_classes, 3)).astype(np.float32)
        self.bias = rng.normal(size=num_classes).astype(np.float32) * 0.1
        self.calls: list[tuple[int, ...]] = []

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        if batch.shape[2] % self.required_divisor or batch.shape[3] % self.required_divisor:
            raise AssertionError(f"input {batch.shape} not a multiple of {self.required_divisor}")
        kernel = np.full((5, 5), 1 / 25, np.float32)
        out = np.empty((batch.shape[0], self.num_classes, *batch.shape[2:]), np.float32)
        for b, chw in enumerate(batch):
            blurred = np.stack([cv2.filter2D(c, -1, kernel, borderType=cv2.BORDER_CONSTANT) for c in chw])
            out[b] = np.einsum("kc,chw->khw", self.mix, blurred) + self.bias[:, None, None]
        return out


def _smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 3)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


# ------------------------------------------------------------------- tile plans
@pytest.mark.parametrize(
    "length, tile, overlap, expected",
    [
        (300, 128, 32, [0, 96, 172]),
        (256, 128, 32, [0, 96, 128]),
        (256, 128, 0, [0, 128]),
        (128, 128, 32, [0]),
        (50, 128, 32, [0]),
        (129, 128, 64, [0, 1]),
    ],
)
def test_tile_starts_cover_the_side(length, tile, overlap, expected):
    starts = tile_starts(length, tile, overlap)
    assert starts == expected
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all() and starts[-1] + min(tile, length) == length


@pytest.mark.parametrize("window", ["cosine", "linear"])
def test_blend_window_tapers_only_shared_sides(window):
    both = blend_window(64, 16, True, True, window)
    assert both.dtype == np.float32 and both.shape == (64,)
    assert 0 < both[0] < 0.1 and 0 < both[-1] < 0.1 and (both[16:48] == 1).all()
    np.testing.assert_allclose(both, both[::-1])
    assert (np.diff(both[:16]) > 0).all()
    left_border = blend_window(64, 16, False, True, window)
    assert (left_border[:48] == 1).all() and left_border[-1] < 0.1
    assert (blend_window(64, 16, True, True, "flat") == 1).all()


# ------------------------------------------------------------------ equality
@pytest.mark.parametrize("tile, overlap", [(128, 32), (64, 16), (96, 48)])
def test_tiled_equals_whole_image_on_a_local_model(tile, overlap):
    seg = Segmenter(LocalConvBackend(), TAX3, PAD)
    image = _smooth_image(256, 384)
    whole = seg.predict(image).labels
    tiled = predict_tiled(seg, image, tile=tile, overlap=overlap, batch_size=3)
    assert tiled.shape == (256, 384) and tiled.dtype == np.uint8
    assert (tiled == whole).mean() >= 0.999
    assert len(np.unique(whole)) == 3  # a real three-class map, not a constant


def test_single_tile_is_exactly_whole_image_inference():
    seg = Segmenter(LocalConvBackend(), TAX3, PAD)
    image = _smooth_image(50, 70)  # smaller than the tile: padded to 64x80 like the "pad" policy
    np.testing.assert_array_equal(predict_tiled(seg, image, tile=128, overlap=32), seg.predict(image).labels)


def test_tiled_matches_whole_image_on_a_real_cnn():
    torch = pytest.importorskip("torch")
    from pixelwise.models import create_model
    from pixelwise.runtime import TorchBackend

    torch.manual_seed(0)
    model = create_model("unet", num_classes=3).eval()
    seg = Segmenter(TorchBackend(model, num_threads=1), TAX3, PreprocessConfig(input_size=None, resize_policy="pad"))
    image = _smooth_image(256, 384)
    whole = seg.predict(image).labels
    tiled = TiledSegmenter(seg, tile=128, overlap=32, batch_size=4).predict(image)
    assert tiled.labels.shape == (256, 384)
    assert (tiled.labels == whole).mean() >= 0.99


def test_binary_threshold_is_applied_to_blended_probabilities():
    seg = Segmenter(LocalConvBackend(num_classes=2), TAX2, PAD)
    image = _smooth_image(96, 160, seed=3)
    for threshold in (0.3, 0.7):
        whole = seg.predict(image, threshold=threshold).labels
        tiled = predict_tiled(seg, image, tile=64, overlap=16, threshold=threshold)
        assert (tiled == whole).mean() >= 0.999
    with pytest.raises(ValueError, match="binary"):
        predict_tiled(Segmenter(LocalConvBackend(), TAX3, PAD), image, tile=64, overlap=16, threshold=0.5)


def test_predict_applies_cleanup_like_segmenter():
    seg = Segmenter(LocalConvBackend(), TAX3, PAD)
    image = _smooth_image(96, 128, seed=5)
    tiled = TiledSegmenter(seg, tile=64, overlap=16)
    raw = tiled.predict(image)
    assert raw.labels.dtype == np.int32 and raw.image.shape == (96, 128, 3) and raw.probabilities is None
    np.testing.assert_array_equal(raw.labels, seg.predict(image).labels)
    for options in ({"min_region": 200}, {"smooth": 2}, {"fill_holes": True}):
        np.testing.assert_array_equal(tiled.predict(image, **options).labels, seg.predict(image, **options).labels)
    assert len(tiled.predict(image, min_region=200).regions) < len(raw.regions)


# ---------------------------------------------------------------- bad settings
@pytest.mark.parametrize(
    "tile, overlap, match",
    [
        (8, 0, "smaller than the model's stride 16"),
        (100, 10, r"not a multiple .* use tile=96 or tile=112"),
        (64, 64, "overlap 64 must be smaller than the tile 64"),
        (64, 80, "must be smaller than the tile"),
        (64, -1, "overlap must be >= 0"),
    ],
)
def test_bad_tile_settings_raise_with_the_fix(tile, overlap, match):
    seg = Segmenter(LocalConvBackend(), TAX3, PAD)
    with pytest.raises(TileSizeError, match=match):
        TiledSegmenter(seg, tile=tile, overlap=overlap)


# ------------------------------------------------------- streaming and memory
@pytest.mark.parametrize(
    "layout",
    [{"tile": (64, 64)}, {"rowsperstrip": 7}, {"tile": (32, 48), "compression": "zlib"}],
    ids=["tiled", "strips", "tiled-zlib"],
)
def test_tiff_rows_are_read_lazily_and_exactly(tmp_path, layout):
    image = _smooth_image(150, 200)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, image, photometric="rgb", **layout)
    source = open_image_source(path)
    try:
        assert type(source).__name__ == "_TiffStripSource"
        assert (source.height, source.width) == (150, 200)
        for top, bottom in [(0, 10), (5, 70), (64, 150), (149, 150)]:
            np.testing.assert_array_equal(source.read_rows(top, bottom), image[top:bottom])
    finally:
        source.close()


def test_gray_tiff_becomes_rgb(tmp_path):
    gray = _smooth_image(40, 60)[:, :, 0]
    path = tmp_path / "gray.tif"
    tifffile.imwrite(path, gray, tile=(16, 16))
    source = open_image_source(path)
    rows = source.read_rows(3, 20)
    source.close()
    assert rows.shape == (17, 60, 3) and (rows[..., 2] == gray[3:20]).all()


def test_large_tiff_runs_in_bounded_memory_into_a_memmap(tmp_path):
    height, width, tile = 4096, 1024, 128  # tall: a whole-image buffer would dominate
    path = tmp_path / "scene.tif"
    image = _smooth_image(height, width)
    tifffile.imwrite(path, image, photometric="rgb", tile=(128, 128))
    seg = Segmenter(LocalConvBackend(), TAX3, PAD)
    expected = predict_tiled(seg, image[:400], tile=tile, overlap=32)
    del image
    tracemalloc.start()
    try:
        labels = predict_tiled(seg, path, tile=tile, overlap=32, out=tmp_path / "labels.npy", batch_size=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole_scores = 3 * height * width * 4  # what a whole-image K x H x W float32 map would need
    assert peak < whole_scores / 4, f"peak {peak / 1e6:.1f} MB"
    assert peak < 3 * height * width  # not even the decoded RGB image was held
    assert isinstance(labels, np.memmap) and labels.shape == (height, width)
    reloaded = np.load(tmp_path / "labels.npy", mmap_mode="r")
    # rows far from the band limit agree with a tiling of the first 400 rows only
    assert (reloaded[:300] == expected[:300]).mean() >= 0.999


def test_fixed_size_model_needs_that_tile_and_gets_padded_tiles():
    backend = LocalConvBackend()
    backend.input_shape = (1, 3, 64, 64)  # like a static ONNX graph
    seen = []
    real = backend.predict_scores
    backend.predict_scores = lambda batch: (seen.append(batch.shape[2:]), real(batch))[1]
    seg = Segmenter(backend, TAX3, PAD)
    with pytest.raises(TileSizeError, match="use tile=64"):
        TiledSegmenter(seg, tile=128, overlap=16)
    labels = TiledSegmenter(seg, tile=64, overlap=16).predict_labels(_smooth_image(50, 150))
    assert labels.shape == (50, 150) and set(seen) == {(64, 64)}

"""colorize / overlay / overlay_instances blend exactly; legends, contact sheets and PNGs have the right shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.core.errors import DataError, ShapeError
from pixelwise.core.labels import InstanceSet
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.viz import (
    as_palette,
    colorize,
    contact_sheet,
    draw_legend,
    instance_palette,
    label_boundaries,
    overlay,
    overlay_instances,
    save_png,
)

TAX = Taxonomy.from_names(
    ["background", "cat", "dog"], stuff=["background"], colors=[(0, 0, 0), (200, 40, 10), (10, 220, 90)]
)
PALETTE = np.array([[0, 0, 0], [200, 40, 10], [10, 220, 90]], np.uint8)


def _labels() -> np.ndarray:
    """10x12 map: a cat square, a dog rectangle touching the right edge, one void pixel."""
    labels = np.zeros((10, 12), np.uint8)
    labels[2:6, 2:6] = 1
    labels[4:9, 7:12] = 2
    labels[0, 0] = 255
    return labels


def _image() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)


def _inner_border(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the image frame does not count)."""
    padded = np.pad(mask, 1, mode="edge")
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inside


@pytest.mark.parametrize("palette", [PALETTE, TAX, PALETTE.tolist()], ids=["array", "taxonomy", "list"])
def test_colorize_exact_colours(palette):
    labels = _labels()
    out = colorize(labels, palette)
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    for class_id in (0, 1, 2):
        assert (out[labels == class_id] == PALETTE[class_id]).all()


def test_colorize_out_of_range_is_black_and_ignore_white():
    labels = np.array([[0, 1, 5], [255, 2, 1]], np.int64)
    assert colorize(labels, PALETTE)[0, 2].tolist() == [0, 0, 0]
    assert colorize(labels, PALETTE)[1, 0].tolist() == [0, 0, 0]
    assert colorize(labels, TAX)[1, 0].tolist() == [255, 255, 255]
    assert colorize(np.array([[-1, 1]]), PALETTE)[0].tolist() == [[0, 0, 0], [200, 40, 10]]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.75, 1.0])
def test_overlay_blend_arithmetic(alpha: float):
    image, labels = _image(), _labels()
    out = overlay(image, labels, TAX, alpha=alpha)
    painted = (labels != 0) & (labels != 255)
    assert (out[~painted] == image[~painted]).all()
    expected = (1 - alpha) * image.astype(float) + alpha * PALETTE[np.where(labels == 255, 0, labels)].astype(float)
    assert np.abs(out[painted].astype(float) - expected[painted]).max() <= 1.0
    assert (image == _image()).all(), "input modified"


def test_overlay_skip_ids_and_ignore():
    image, labels = _image(), _labels()
    everything = overlay(image, labels, TAX, alpha=1.0, skip_ids=(), ignore_index=None)
    assert everything[0, 0].tolist() == [255, 255, 255]  # void painted with the taxonomy's white
    assert (everything[labels == 0][1:] == 0).all()
    no_cat = overlay(image, labels, TAX, alpha=1.0, skip_ids=(0, 1))
    assert (no_cat[labels == 1] == image[labels == 1]).all()
    assert (no_cat[labels == 2] == PALETTE[2]).all()


def test_overlay_outline_lies_on_borders():
    image, labels = _image(), _labels()
    alpha = 0.4
    filled = overlay(image, labels, TAX, alpha=alpha)
    outlined = overlay(image, labels, TAX, alpha=alpha, outline=True)
    changed = (outlined != filled).any(axis=2)
    borders = np.zeros_like(changed)
    for class_id in (1, 2):
        borders |= _inner_border(labels == class_id)
    assert changed.any()
    assert not (changed & ~borders).any(), "outline pixel off the mask border"
    assert (outlined[borders] == PALETTE[labels[borders]]).all(), "border pixel not in full colour"
    # the dog touches the right image edge: the frame is not outlined
    assert (outlined[6, 11] == filled[6, 11]).all()


def test_label_boundaries_square():
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True
    edges = label_boundaries(mask)
    ring = mask & ~np.pad(np.ones((1, 1), bool), ((2, 3), (2, 3)))
    assert (edges & mask == ring).all()
    assert edges[0, 2] and edges[2, 4] and not edges[5, 5]
    assert label_boundaries(mask, thickness=2).sum() > edges.sum()


@pytest.mark.parametrize(
    "image, labels, error",
    [
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), ShapeError),
        (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), ShapeError),
        (np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.uint8), ShapeError),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), ShapeError),
    ],
)
def test_overlay_rejects_bad_input(image, labels, error):
    with pytest.raises(error):
        overlay(image, labels, PALETTE)


def test_overlay_alpha_range_and_gray():
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.uint8), PALETTE, alpha=1.5)
    out = overlay(np.full((2, 2), 50, np.uint8), np.array([[0, 1], [0, 0]]), PALETTE, alpha=1.0)
    assert out.shape == (2, 2, 3) and out[0, 1].tolist() == [200, 40, 10] and out[0, 0].tolist() == [50, 50, 50]


def _instances() -> InstanceSet:
    masks = np.zeros((2, 10, 12), bool)
    masks[0, 1:6, 1:6] = True
    masks[1, 3:8, 3:9] = True  # on top of instance 0
    return InstanceSet(10, 12, np.array([1, 2]), masks)


def test_overlay_instances_later_on_top():
    image, instances = _image(), _instances()
    colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    out = overlay_instances(image, instances, alpha=1.0, outline=False, colors=colors)
    masks = instances.masks
    assert (out[~masks.any(axis=0)] == image[~masks.any(axis=0)]).all()
    assert (out[masks[1]] == [0, 0, 255]).all()
    assert (out[masks[0] & ~masks[1]] == [255, 0, 0]).all()


def test_overlay_instances_blend_and_outline():
    image, instances = _image(), _instances()
    alpha = 0.5
    filled = overlay_instances(image, instances, alpha=alpha, outline=False, colors=TAX)
    outlined = overlay_instances(image, instances, alpha=alpha, outline=True, colors=TAX)
    visible = np.zeros((10, 12), np.int64)
    visible[instances.masks[0]] = 1
    visible[instances.masks[1]] = 2
    color = PALETTE[visible]
    drawn = visible > 0
    expected = 0.5 * image.astype(float) + 0.5 * color.astype(float)
    assert np.abs(filled[drawn].astype(float) - expected[drawn]).max() <= 1.0
    changed = (outlined != filled).any(axis=2)
    borders = _inner_border(visible == 1) | _inner_border(visible == 2)
    assert changed.any() and not (changed & ~borders).any()


def test_overlay_instances_defaults_and_errors():
    image, instances = _image(), _instances()
    out = overlay_instances(image, instances, boxes=True)
    assert out.shape == image.shape and (out != image).any()
    assert (overlay_instances(image, InstanceSet.empty(10, 12)) == image).all()
    with pytest.raises(ShapeError, match="10x12"):
        overlay_instances(np.zeros((5, 5, 3), np.uint8), instances)
    with pytest.raises(ShapeError, match="1 rows for 2 instances"):
        overlay_instances(image, instances, colors=np.array([[1, 2, 3]], np.uint8))
    assert len({tuple(c) for c in instance_palette(20).tolist()}) == 20


def test_draw_legend():
    legend = draw_legend(TAX, swatch=12, padding=4)
    assert legend.dtype == np.uint8 and legend.ndim == 3 and legend.shape[2] == 3
    row_height = legend.shape[0] // 3
    assert legend.shape[0] >= 3 * 12
    # centre of the second swatch is the cat colour
    assert legend[4 + row_height + 6, 4 + 6].tolist() == [200, 40, 10]
    assert (legend[:, -2] == 255).all()  # white margin
    wrapped = draw_legend(TAX, max_rows=1)
    assert wrapped.shape[1] > legend.shape[1] and wrapped.shape[0] < legend.shape[0]
    assert draw_legend(TAX, class_ids=[2, 99]).shape[0] < legend.shape[0]


@pytest.mark.parametrize(
    "n, columns, tile_size, padding, expected",
    [
        (3, 2, (8, 8), 0, (16, 16, 3)),
        (4, None, (10, 20), 2, (2 * 10 + 3 * 2, 2 * 20 + 3 * 2, 3)),
        (5, 5, (6, 7), 1, (6 + 2, 5 * 7 + 6, 3)),
        (1, 3, None, 4, (12 + 8, 16 + 8, 3)),
    ],
)
def test_contact_sheet_shape(n, columns, tile_size, padding, expected):
    tiles = [np.full((12, 16, 3), 40 * i, np.uint8) for i in range(n)]
    sheet = contact_sheet(tiles, columns=columns, tile_size=tile_size, padding=padding)
    assert sheet.shape == expected and sheet.dtype == np.uint8


def test_contact_sheet_content_and_captions():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    gray = np.full((8, 4), 128, np.uint8)  # taller: letterboxed
    sheet = contact_sheet([red, gray], columns=2, tile_size=(8, 8), padding=0)
    assert (sheet[:, :8] == [255, 0, 0]).all()  # 4x4 upscaled to fill 8x8
    assert (sheet[:, 8 + 2 : 8 + 6] == 128).all() and (sheet[:, 8] == 255).all()
    captioned = contact_sheet([red, gray], columns=2, tile_size=(8, 8), padding=0, captions=["a long caption", "b"])
    assert captioned.shape[0] > 8 and captioned.shape[1] == 16
    assert (captioned[8:] != 255).any(), "caption text drawn"
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet([])
    with pytest.raises(ValueError, match="2 captions for 1 tiles"):
        contact_sheet([red], captions=["a", "b"])


def test_save_png_round_trip(tmp_path: Path):
    image = _image()
    path = save_png(tmp_path / "sub" / "x.png", image)
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert (np.asarray(img.convert("RGB")) == image).all()
    with pytest.raises(DataError, match="PNG"):
        save_png(tmp_path / "x.jpg", image)


def test_as_palette_validation():
    assert as_palette([(1, 2, 3)], size=4).shape == (4, 3)
    with pytest.raises(ShapeError):
        as_palette([(1, 2)])
    with pytest.raises(ShapeError, match="0..255"):
        as_palette([(1, 2, 300)])

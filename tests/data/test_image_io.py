"""Tests of pixelwise.data.image_io: table tests over tiny files made here or in tests/data/bad."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps

from pixelwise.core.errors import AnnotationError, DataError, ImageReadError, ShapeError
from pixelwise.data import image_io
from pixelwise.data.image_io import (
    IMAGE_EXTENSIONS,
    image_size,
    list_images,
    read_image,
    read_image_raw,
    read_label_image,
    scan_images,
    sniff_format,
    stretch_to_uint8,
    write_image,
    write_label_png,
)

BAD = Path(__file__).parent / "bad"
NUCLEI = Path(__file__).parent / "nuclei_dsb2018"
READERS: list[Callable[..., np.ndarray]] = [read_image, read_image_raw, read_label_image]


def _rgb(height: int = 4, width: int = 6) -> np.ndarray:
    """(H, W, 3) uint8 with every pixel distinct."""
    values = np.arange(height * width * 3, dtype=np.int64).reshape(height, width, 3)
    return (values * 7 % 256).astype(np.uint8)


def _save(path: Path, image: Image.Image, **options: object) -> Path:
    image.save(path, **options)
    return path


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.jpg", "truncated or corrupt image data"),
        ("empty.png", "file is empty (0 bytes)"),
        ("text_named.jpg", "not an image (content starts with b'This is not an i')"),
        ("one_pixel.png", "image is 1x1 pixels; at least 2x2 needed"),
        ("does_not_exist.png", "file does not exist"),
    ],
)
def test_bad_file_raises_specific_error(reader: Callable[..., np.ndarray], name: str, message: str) -> None:
    with pytest.raises(ImageReadError) as info:
        reader(BAD / name)
    assert info.value.path == BAD / name
    assert message in info.value.reason
    assert str(BAD / name) in str(info.value)


def test_directory_is_not_an_image() -> None:
    with pytest.raises(ImageReadError, match="directory"):
        read_image(BAD)


def test_min_side_can_be_lowered() -> None:
    assert read_image(BAD / "one_pixel.png", min_side=1).tolist() == [[[200, 10, 10]]]


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("good_a.png", (24, 32, 3)),
        ("good_b.jpg", (24, 32, 3)),
        ("png_named.jpg", (24, 32, 3)),
        ("mask_wrong_size.png", (10, 10, 3)),
    ],
)
def test_good_files_decode(name: str, shape: tuple[int, ...]) -> None:
    rgb = read_image(BAD / name)
    assert rgb.shape == shape and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert image_size(BAD / name) == shape[:2]


def test_good_png_values() -> None:
    rgb = read_image(BAD / "good_a.png")
    assert rgb[0, 0].tolist() == [0, 0, 128] and rgb[-1, -1].tolist() == [255, 255, 128]


@pytest.mark.parametrize(
    ("name", "content", "matches", "text"),
    [
        ("png_named.jpg", "png", False, "file is PNG data but named .jpg"),
        ("good_a.png", "png", True, "file is PNG data, named .png"),
        ("good_b.jpg", "jpeg", True, "file is JPEG data, named .jpg"),
        ("text_named.jpg", None, False, "not a known image format"),
        ("empty.png", None, False, "not a known image format"),
    ],
)
def test_sniff_format(name: str, content: str | None, matches: bool, text: str) -> None:
    sniff = sniff_format(BAD / name)
    assert (sniff.content, sniff.matches) == (content, matches)
    assert text in sniff.describe()


def test_scan_images_reports_each_bad_file() -> None:
    scan = scan_images(BAD, progress=False)
    assert [p.name for p in scan.good] == ["good_a.png", "good_b.jpg", "mask_wrong_size.png", "png_named.jpg"]
    bad = {err.path.name: err.reason for err in scan.bad}
    assert set(bad) == {"empty.png", "one_pixel.png", "text_named.jpg", "truncated.jpg"}
    assert "truncated" in bad["truncated.jpg"] and "0 bytes" in bad["empty.png"]
    assert all(err.path.parent == BAD for err in scan.bad)
    assert [s.path.name for s in scan.mismatched] == ["png_named.jpg"]
    assert not scan.ok and scan.summary() == "4 readable, 4 unreadable, 1 misnamed"


def test_scan_images_with_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        write_image(tmp_path / f"im{i}.png", _rgb())
    scan = scan_images(tmp_path, progress=True)
    assert len(scan.good) == 3 and scan.ok
    assert "checking images" in capsys.readouterr().err


def test_list_images(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ["b.JPG", "a.png", "sub/c.tif", ".hidden/d.png", "._e.jpg", "notes.txt", "f.json"]:
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.png", "b.JPG", "sub/c.tif"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.png", "b.JPG"]
    assert ".webp" in IMAGE_EXTENSIONS
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "nope")


# --------------------------------------------------------------------------- decoding cases


def test_truncated_png_and_tiff_are_not_loaded(tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.fromarray(_rgb(40, 40)).save(png, "PNG", compress_level=0)
    (tmp_path / "cut.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    tif = io.BytesIO()
    tifffile.imwrite(tif, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    (tmp_path / "cut.tif").write_bytes(tif.getvalue()[: len(tif.getvalue()) // 2])
    for name in ["cut.png", "cut.tif"]:
        with pytest.raises(ImageReadError, match="truncated or corrupt"):
            read_image(tmp_path / name)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    image = Image.fromarray(_rgb(4, 6))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path / "o.png", image, exif=exif)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert np.array_equal(read_image(path), expected)
    assert image_size(path) == expected.shape[:2]


def test_jpeg_exif_orientation_6_rotates(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(tmp_path / "rot.jpg", Image.fromarray(_rgb(8, 16)), exif=exif, quality=95)
    assert read_image(path).shape == (16, 8, 3)
    assert read_image_raw(path).shape == (16, 8, 3)
    assert image_size(path) == (16, 8)


def test_tiff_orientation_tag_is_applied(tmp_path: Path) -> None:
    raw = (np.arange(24).reshape(4, 6) * 100).astype(np.uint16)
    tifffile.imwrite(tmp_path / "o.tif", raw, extratags=[(274, 3, 1, 6, True)])  # Orientation = 6
    assert np.array_equal(read_image_raw(tmp_path / "o.tif"), np.rot90(raw, -1))
    assert image_size(tmp_path / "o.tif") == (6, 4)


def test_palette_tiff(tmp_path: Path) -> None:
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = (65535, 0, 0)
    colormap[:, 2] = (0, 0, 65535)
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", indices, photometric="palette", colormap=colormap)
    assert read_image(tmp_path / "p.tif")[0].tolist() == [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    assert np.array_equal(read_label_image(tmp_path / "p.tif"), indices)


def test_risky_pillow_formats_are_not_opened(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(tmp_path / "x.jpg")


def test_cmyk_jpeg(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 30)
    rgb[:, 8:] = (20, 20, 220)
    path = _save(tmp_path / "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    out = read_image(path)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 10
    assert read_image_raw(path).shape == (16, 16, 4)
    with pytest.raises(ImageReadError, match="unsupported mode for a label image: CMYK"):
        read_label_image(path)


def test_gray_is_replicated(tmp_path: Path) -> None:
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    path = _save(tmp_path / "g.png", Image.fromarray(gray))
    rgb = read_image(path)
    assert rgb.shape == (4, 6, 3) and all(np.array_equal(rgb[..., c], gray) for c in range(3))
    assert np.array_equal(read_image_raw(path), gray)


def test_rgba_alpha_is_dropped(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(), np.zeros((4, 6), np.uint8)])
    path = _save(tmp_path / "a.png", Image.fromarray(rgba))
    assert np.array_equal(read_image(path), _rgb())
    assert read_image_raw(path).shape == (4, 6, 4)
    assert np.array_equal(read_label_image(path), _rgb())


def test_palette_png_indices_and_colours(tmp_path: Path) -> None:
    palette = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0], [0, 0, 128]], np.uint8)
    labels = np.array([[0, 1, 2], [3, 2, 1]], np.uint8)
    path = tmp_path / "p.png"
    write_label_png(path, labels, palette)
    with Image.open(path) as img:
        assert img.mode == "P"
    got = read_label_image(path)
    assert got.dtype == np.uint8 and np.array_equal(got, labels)
    assert np.array_equal(read_image(path), palette[labels])
    assert np.array_equal(read_image_raw(path), labels)


@pytest.mark.parametrize(
    ("labels", "dtype", "pil_mode"),
    [
        (np.array([[0, 1], [7, 255]], np.int64), np.uint8, "L"),
        (np.array([[0, 1], [300, 65535]], np.int32), np.uint16, "I;16"),
        (np.array([[False, True], [True, True]]), np.uint8, "L"),
    ],
)
def test_write_label_png_round_trip(tmp_path: Path, labels: np.ndarray, dtype: type, pil_mode: str) -> None:
    path = tmp_path / "m.png"
    write_label_png(path, labels)
    with Image.open(path) as img:
        assert img.mode == pil_mode
    got = read_label_image(path)
    assert got.dtype == dtype and np.array_equal(got, labels.astype(dtype))


@pytest.mark.parametrize(
    ("name", "labels", "palette", "error", "message"),
    [
        ("m.png", np.array([[-1, 0], [0, 0]]), None, AnnotationError, "negative"),
        ("m.png", np.array([[0, 70000], [0, 0]]), None, AnnotationError, "65535"),
        ("m.png", np.array([[0, 300], [0, 0]]), np.zeros((256, 3), np.uint8), AnnotationError, "0..255"),
        ("m.png", np.array([[0, 5], [0, 0]]), np.zeros((3, 3), np.uint8), AnnotationError, "only 3 colours"),
        ("m.png", np.zeros((2, 2, 1), np.uint8), None, ShapeError, "(H, W)"),
        ("m.png", np.zeros((2, 2), np.float32), None, ShapeError, "integer"),
        ("m.png", np.zeros((2, 2), np.uint8), np.zeros((3, 4), np.uint8), ShapeError, "palette"),
        ("m.jpg", np.zeros((2, 2), np.uint8), None, DataError, "writes PNG"),
    ],
)
def test_write_label_png_errors(
    tmp_path: Path, name: str, labels: np.ndarray, palette: np.ndarray | None, error: type, message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_label_png(tmp_path / name, labels, palette)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_tiff_labels_round_trip(tmp_path: Path, dtype: type) -> None:
    labels = (np.arange(30).reshape(5, 6) * 17 % 251).astype(dtype)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    got = read_label_image(tmp_path / "l.tif")
    assert got.dtype == dtype and np.array_equal(got, labels)


def test_uint16_tiff_raw_and_stretched(tmp_path: Path) -> None:
    raw = np.linspace(100, 4000, 50 * 40).reshape(50, 40).astype(np.uint16)
    tifffile.imwrite(tmp_path / "u16.tif", raw)
    assert np.array_equal(read_image_raw(tmp_path / "u16.tif"), raw)
    rgb = read_image(tmp_path / "u16.tif")
    assert rgb.shape == (50, 40, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and np.all(np.diff(rgb[..., 0].ravel().astype(int)) >= 0)
    assert image_size(tmp_path / "u16.tif") == (50, 40)


def test_16bit_png_gray_and_colour(tmp_path: Path) -> None:
    gray = (np.arange(24).reshape(4, 6) * 2000).astype(np.uint16)
    write_label_png(tmp_path / "g16.png", gray)
    assert np.array_equal(read_image_raw(tmp_path / "g16.png"), gray)
    assert read_image(tmp_path / "g16.png")[..., 0].max() == 255
    import cv2  # the test writes a 16-bit RGB PNG, which Pillow cannot

    colour = np.dstack([gray, gray // 2, gray // 3])
    cv2.imwrite(str(tmp_path / "c16.png"), colour[..., ::-1])
    assert np.array_equal(read_image_raw(tmp_path / "c16.png"), colour)
    assert read_image(tmp_path / "c16.png").shape == (4, 6, 3)
    with pytest.raises(ImageReadError, match="16-bit colour PNG"):
        read_label_image(tmp_path / "c16.png")


def test_float_tiff(tmp_path: Path) -> None:
    data = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    data[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "f.tif", data)
    rgb = read_image(tmp_path / "f.tif")
    assert rgb.dtype == np.uint8 and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    assert read_image_raw(tmp_path / "f.tif").dtype == np.float32
    with pytest.raises(ImageReadError, match="non-integer"):
        read_label_image(tmp_path / "f.tif")


def test_planar_rgb_tiff_is_channels_last(tmp_path: Path) -> None:
    rgb = _rgb(5, 7)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_image(tmp_path / "planar.tif"), rgb)
    assert np.array_equal(read_label_image(tmp_path / "planar.tif"), rgb)


def test_lzw_tiff_falls_back_to_pillow(tmp_path: Path) -> None:
    path = _save(tmp_path / "lzw.tif", Image.fromarray(_rgb(6, 5)), compression="tiff_lzw")
    assert np.array_equal(read_image(path), _rgb(6, 5))
    assert image_size(path) == (6, 5)


def test_tiff_stack_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((3, 4, 5), np.uint16), photometric="minisblack", tile=(16, 16),
                     volumetric=True)
    with pytest.raises(ImageReadError, match="unsupported TIFF layout"):
        read_image(tmp_path / "vol.tif")


@pytest.mark.parametrize("name", ["good_a.png", "good_b.jpg"])
def test_bomb_limit(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImageReadError, match=r"image is 32x24 = 768 pixels, over the limit of 100 pixels"):
        read_image(BAD / name, max_pixels=100)
    assert read_image(BAD / name, max_pixels=768).shape == (24, 32, 3)


def test_bomb_limit_tiff_and_pillow_global_untouched(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((20, 30), np.uint16))
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError, match="30x20 = 600 pixels"):
        read_image_raw(tmp_path / "big.tif", max_pixels=599)
    read_image(BAD / "good_a.png")
    assert Image.MAX_IMAGE_PIXELS == before


def test_bomb_limit_replaces_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would refuse 768 > 2 * 100
    assert read_image(BAD / "good_a.png").shape == (24, 32, 3)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_warns_when_truncated_loading_was_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(RuntimeWarning, match="LOAD_TRUNCATED_IMAGES"):
        read_image(BAD / "good_a.png")


def test_jpeg_label_warns() -> None:
    with pytest.warns(UserWarning, match="lossy"):
        assert read_label_image(BAD / "good_b.jpg").shape == (24, 32, 3)


# --------------------------------------------------------------------------- writers and helpers


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".jpg", ".webp"])
def test_write_image_round_trip(tmp_path: Path, suffix: str) -> None:
    rgb = np.repeat(np.repeat(_rgb(4, 6), 4, axis=0), 4, axis=1)  # smooth enough for lossy codecs
    write_image(tmp_path / f"x{suffix}", rgb)
    got = read_image(tmp_path / f"x{suffix}")
    if suffix in (".jpg", ".webp"):
        assert got.shape == rgb.shape and np.abs(got.astype(int) - rgb).mean() < 25
    else:
        assert np.array_equal(got, rgb)


@pytest.mark.parametrize(
    ("name", "image", "error"),
    [
        ("x.png", np.zeros((4, 4, 3), np.float32), ShapeError),
        ("x.png", np.zeros((4, 4, 4), np.uint8), ShapeError),
        ("x.gif2", np.zeros((4, 4, 3), np.uint8), DataError),
    ],
)
def test_write_image_errors(tmp_path: Path, name: str, image: np.ndarray, error: type) -> None:
    with pytest.raises(error):
        write_image(tmp_path / name, image)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.full((2, 2), 7, np.uint16), [[0, 0], [0, 0]]),
        (np.array([[0, 1000], [1000, 1000]], np.uint16), [[0, 255], [255, 255]]),
        (np.array([[np.nan, 0.0], [1.0, np.inf]], np.float32), [[0, 0], [255, 0]]),
        (np.array([[-5, 5]], np.int32), [[0, 255]]),
    ],
)
def test_stretch_to_uint8(values: np.ndarray, expected: list[list[int]]) -> None:
    out = stretch_to_uint8(values)
    assert out.dtype == np.uint8 and out.tolist() == expected


def test_stretch_rejects_bad_percentiles() -> None:
    with pytest.raises(ValueError, match="percentiles"):
        stretch_to_uint8(np.zeros((2, 2)), (50.0, 10.0))


def test_module_does_not_import_torch() -> None:
    source = Path(image_io.__file__).read_text()
    assert "import torch" not in source and "from torch" not in source


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (NUCLEI / "image.tif").exists(), reason="tests/data/nuclei_dsb2018/image.tif not copied")
def test_real_microscopy_tiff() -> None:
    raw = read_image_raw(NUCLEI / "image.tif")
    assert raw.shape == (512, 512) and raw.dtype == np.uint16 and int(raw.max()) == 235
    rgb = read_image(NUCLEI / "image.tif")
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8 and rgb.max() == 255
    assert image_size(NUCLEI / "image.tif") == (512, 512)
    if (NUCLEI / "instances.tif").exists():
        labels = read_label_image(NUCLEI / "instances.tif")
        assert labels.dtype == np.uint16 and len(np.unique(labels)) == 126


@pytest.mark.parametrize("bit_depth, dtype", [(None, np.uint8), (8, np.uint8), (16, np.uint16)])
def test_write_label_png_bit_depth(tmp_path, bit_depth, dtype):
    labels = np.array([[0, 3], [183, 7]], np.uint16)
    path = tmp_path / "ids.png"
    write_label_png(path, labels, bit_depth=bit_depth)
    back = read_label_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, labels)


def test_write_label_png_bit_depth_errors(tmp_path):
    with pytest.raises(AnnotationError, match="8-bit"):
        write_label_png(tmp_path / "x.png", np.array([[300]], np.uint16), bit_depth=8)
    with pytest.raises(ValueError, match="bit_depth"):
        write_label_png(tmp_path / "x.png", np.array([[3]], np.uint16), bit_depth=12)

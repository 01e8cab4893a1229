"""Regenerate the tiny good and bad test files of this folder (see README.md).

Run once from anywhere: ``python tests/data/bad/make_bad_files.py``. The output is
deterministic (no randomness), so re-running leaves the committed files unchanged.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 32, 24  # size of the good images and of the COCO image records


def _gradient(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB: red grows with x, green with y, blue constant."""
    ys, xs = np.mgrid[0:height, 0:width]
    red = xs * 255 // max(width - 1, 1)
    green = ys * 255 // max(height - 1, 1)
    blue = np.full_like(xs, 128)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def _texture(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 busy pattern, so the JPEG payload is much larger than its header."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([(xs * 37 + ys * 11) % 256, (xs * ys) % 256, (xs ^ ys) * 4 % 256], -1).astype(np.uint8)


def _encode(array: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _coco(images: list[dict] | None, annotations: list[dict]) -> dict:
    record: dict = {
        "info": {"description": "pixelwise bad-input test file"},
        "categories": [{"id": 1, "name": "thing", "supercategory": "thing"}],
        "annotations": annotations,
    }
    if images is not None:
        record["images"] = images
    return record


def main() -> None:
    """Write every file; check the tricky ones behave as the README says."""
    files: dict[str, bytes] = {}
    files["good_a.png"] = _encode(_gradient(HEIGHT, WIDTH), "PNG")
    files["good_b.jpg"] = _encode(_gradient(HEIGHT, WIDTH)[:, ::-1], "JPEG", quality=90)
    files["png_named.jpg"] = _encode(255 - _gradient(HEIGHT, WIDTH), "PNG")
    files["one_pixel.png"] = _encode(np.array([[[200, 10, 10]]], np.uint8), "PNG")
    files["empty.png"] = b""
    files["text_named.jpg"] = b"This is not an image, just text with a .jpg name.\n"

    jpeg = _encode(_texture(48, 64), "JPEG", quality=95)
    files["truncated.jpg"] = jpeg[: len(jpeg) // 2]

    mask = np.zeros((10, 10), np.uint8)
    mask[2:8, 3:7] = 1
    files["mask_wrong_size.png"] = _encode(mask, "PNG")

    image = {"id": 1, "file_name": "good_a.png", "height": HEIGHT, "width": WIDTH}
    base = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0}
    two_points = dict(base, segmentation=[[4.0, 4.0, 20.0, 12.0]], area=0.0, bbox=[4.0, 4.0, 16.0, 8.0])
    wrong_rle = dict(base, iscrowd=1, segmentation={"size": [HEIGHT, WIDTH], "counts": [100, 50, 10]},
                     area=50.0, bbox=[4.0, 4.0, 2.0, 24.0])
    files["polygon_two_points.json"] = json.dumps(_coco([image], [two_points]), indent=2).encode()
    files["rle_wrong_counts.json"] = json.dumps(_coco([image], [wrong_rle]), indent=2).encode()
    files["missing_images.json"] = json.dumps(_coco(None, [two_points]), indent=2).encode()

    for name, data in files.items():
        if len(data) >= 20_000:
            raise SystemExit(f"{name} is {len(data)} bytes; keep test files under 20 KB")
        (HERE / name).write_bytes(data)

    # The truncated JPEG must open (header intact) and fail only when decoding pixels.
    with Image.open(HERE / "truncated.jpg") as img:
        try:
            img.load()
        except OSError:
            pass
        else:
            raise SystemExit("truncated.jpg decoded without error; cut it shorter")
    print(f"wrote {len(files)} files to {HERE}")


if __name__ == "__main__":
    main()

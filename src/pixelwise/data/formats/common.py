"""Small helpers shared by the format writers: file-safe unique stems and image copies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pixelwise.data.image_io import IMAGE_EXTENSIONS, read_image, write_image

UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def unique_id(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... whichever is not in ``used`` yet (then added to it)."""
    candidate, k = stem, 2
    while candidate in used:
        candidate, k = f"{stem}_{k}", k + 1
    used.add(candidate)
    return candidate


def safe_stem(image_id: str, used: set[str]) -> str:
    """A file-name-safe, unique stem for an image id (``a/b c`` -> ``a_b_c``; clashes get ``_2``...)."""
    stem = UNSAFE_CHARS.sub("_", str(image_id)).strip("._") or "image"
    return unique_id(stem, used)


def copy_image(source: Path, destination_stem: Path) -> Path:
    """Copy an image keeping its extension when it is a common image type, else re-encode as PNG.

    Returns:
        The path written (``destination_stem`` plus the chosen suffix).
    """
    suffix = source.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        destination = destination_stem.with_suffix(suffix)
        shutil.copy2(source, destination)
    else:
        destination = destination_stem.with_suffix(".png")
        write_image(destination, read_image(source))
    return destination


def copy_image_as(source: Path, destination: Path) -> None:
    """Copy an image to ``destination``, re-encoding when the suffixes differ (e.g. TIFF -> PNG)."""
    if source.suffix.lower() == destination.suffix.lower():
        shutil.copy2(source, destination)
    else:
        write_image(destination, read_image(source))

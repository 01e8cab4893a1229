"""Exceptions shared by every layer.

Each exception names what is wrong and, where possible, where (file) and how to fix it.
All derive from :class:`PixelwiseError` so callers can catch the family at once.
"""

from __future__ import annotations

from pathlib import Path


class PixelwiseError(Exception):
    """Base class of every error raised on purpose by Pixelwise."""


class ShapeError(PixelwiseError, ValueError):
    """An array has the wrong shape or dtype; the message gives expected and actual."""


class TaxonomyError(PixelwiseError, ValueError):
    """A class taxonomy is inconsistent (duplicate ids or names, bad colours, unknown id)."""


class DataError(PixelwiseError):
    """A data file is missing, unreadable or malformed.

    Args:
        path: the file (or folder) at fault, or None when not file-bound.
        reason: what is wrong, in plain words.
        hint: how to fix it (optional).
    """

    def __init__(self, path: str | Path | None, reason: str, hint: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        self.hint = hint
        where = f"{self.path}: " if self.path is not None else ""
        tail = f" ({hint})" if hint else ""
        super().__init__(f"{where}{reason}{tail}")


class ImageReadError(DataError):
    """An image file cannot be decoded (zero bytes, truncated, wrong extension, too large...)."""


class AnnotationError(DataError):
    """An annotation (mask, polygon, RLE, JSON record) is invalid."""


class FormatError(DataError):
    """A dataset folder or file does not follow the layout of the format asked for."""

"""Layer 1: dataset formats (read, write, convert); no torch here."""

from pixelwise.data.formats.base import (
    MANIFEST_NAME,
    FormatSpec,
    convert_dataset,
    detect_format,
    get_format,
    list_formats,
    read_dataset,
    register_format,
    write_dataset,
)

__all__ = [
    "MANIFEST_NAME",
    "FormatSpec",
    "convert_dataset",
    "detect_format",
    "get_format",
    "list_formats",
    "read_dataset",
    "register_format",
    "write_dataset",
]

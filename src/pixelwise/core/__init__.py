"""Layer 0: the shared vocabulary (NumPy only)."""

from pixelwise.core.errors import (
    AnnotationError,
    DataError,
    FormatError,
    ImageReadError,
    PixelwiseError,
    ShapeError,
    TaxonomyError,
)
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import ClassInfo, Taxonomy

__all__ = [
    "Annotation",
    "AnnotationError",
    "ClassInfo",
    "DataError",
    "FormatError",
    "ImageReadError",
    "InstanceSet",
    "PanopticMap",
    "PixelwiseError",
    "SegmentInfo",
    "SemanticMap",
    "ShapeError",
    "Taxonomy",
    "TaxonomyError",
]

"""Layer 2: scores to labels, cleanup, and regions/measurements (NumPy + OpenCV)."""

from pixelwise.postprocess.cleanup import fill_holes, remove_small_regions, smooth_labels
from pixelwise.postprocess.labels import scores_to_labels, softmax
from pixelwise.postprocess.regions import (
    ClassMeasurement,
    Region,
    instance_regions,
    measure_classes,
    semantic_regions,
    write_measurements_csv,
)

__all__ = [
    "ClassMeasurement",
    "Region",
    "fill_holes",
    "instance_regions",
    "measure_classes",
    "remove_small_regions",
    "scores_to_labels",
    "semantic_regions",
    "smooth_labels",
    "softmax",
    "write_measurements_csv",
]

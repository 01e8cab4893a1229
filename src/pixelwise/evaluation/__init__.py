"""Dataset-level evaluation and reports (layer 5).

Example:
    >>> import pixelwise  # doctest: +SKIP
    >>> from pixelwise.data.formats import read_dataset  # doctest: +SKIP
    >>> from pixelwise.evaluation import evaluate, write_report  # doctest: +SKIP
    >>> result = evaluate(pixelwise.load("best.pt"), read_dataset("val", "voc"))  # doctest: +SKIP
    >>> write_report(result, "val_report")  # doctest: +SKIP
    PosixPath('val_report/report.html')
"""

from pixelwise.evaluation.evaluate import (
    EvaluationResult,
    ImageScore,
    WorstCase,
    check_taxonomies,
    evaluate,
)
from pixelwise.evaluation.report import error_overlay, write_report
from pixelwise.evaluation.slices import (
    SliceAccumulator,
    SliceMetrics,
    choose_slice_keys,
    slice_values,
)

__all__ = [
    "EvaluationResult",
    "ImageScore",
    "SliceAccumulator",
    "SliceMetrics",
    "WorstCase",
    "check_taxonomies",
    "choose_slice_keys",
    "error_overlay",
    "evaluate",
    "slice_values",
    "write_report",
]

"""Write an evaluation to a folder: JSON, CSV tables, plots and one HTML page.

Files written by :func:`write_report` into ``out_dir``:

``metrics.json``          summary, full metrics, per-class rows, slices, per-image scores, issues
``per_class.csv``         one row per class (IoU, Dice, precision, recall, boundary F1, support)
``per_slice.csv``         one row per metadata value (images, pixels, accuracy, mIoU, gap)
``per_image.csv``         one row per image (IoU, accuracy, boundary F1), worst first
``confusion_matrix.png``  row-normalised, with class names
``image_iou.png``         histogram of per-image IoU
``worst/``                for each worst image: ``NN_<id>_image.png``, ``_truth.png``,
                          ``_pred.png``, ``_error.png`` (small PNGs)
``report.html``           self-contained page (inline CSS, plots embedded as base64, the
                          worst-image PNGs referenced relative to the page)
"""

from __future__ import annotations

import base64
import dataclasses
import csv
import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.image_io import write_image
from pixelwise.evaluation.evaluate import EvaluationResult, WorstCase
from pixelwise.viz.overlay import overlay
from pixelwise.viz.plots import plot_confusion_matrix, plot_histogram

__all__ = ["error_overlay", "write_report"]

#: Side (pixels) of the longest edge of the worst-image thumbnails.
THUMBNAIL_SIDE = 256
_ERROR_RGB = (230, 25, 25)
_VOID_RGB = (150, 150, 150)
_THUMB_PATTERN = re.compile(r"\d{2}_.*_(image|truth|pred|error)\.png")


def error_overlay(image: np.ndarray, target: np.ndarray, prediction: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Where the prediction is wrong: red; void ground truth: grey; correct: dimmed image.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        target: ``(H, W)`` integer ground truth.
        prediction: ``(H, W)`` integer prediction.
        ignore_index: void label of ``target``.

    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    out = (image.astype(np.float32) * 0.55).astype(np.uint8)
    void = target == ignore_index
    wrong = (target != prediction) & ~void
    out[wrong] = _ERROR_RGB
    out[void] = _VOID_RGB
    return out


def _thumbnail(rgb: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _safe_name(text: str, limit: int = 60) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return (name or "image")[:limit]


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], fieldnames: Sequence[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fieldnames})
    return path


def _write_worst(worst: Sequence[WorstCase], folder: Path, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Four thumbnails per worst image; returns their relative paths and scores."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("[0-9][0-9]_*.png"):  # thumbnails of an earlier report
        if _THUMB_PATTERN.fullmatch(old.name):
            old.unlink()
    entries = []
    ignore = taxonomy.ignore_index
    for rank, case in enumerate(worst, start=1):
        stem = f"{rank:02d}_{_safe_name(case.score.image_id)}"
        truth = overlay(case.image, case.target, taxonomy, alpha=0.6, ignore_index=ignore, skip_ids=(0,))
        truth[case.target == ignore] = _VOID_RGB
        panels = {
            "image": case.image,
            "truth": truth,
            "pred": overlay(case.image, case.prediction, taxonomy, alpha=0.6, ignore_index=ignore, skip_ids=(0,)),
            "error": error_overlay(case.image, case.target, case.prediction, ignore),
        }
        files = {}
        for kind, rgb in panels.items():
            path = folder / f"{stem}_{kind}.png"
            write_image(path, _thumbnail(rgb))
            files[kind] = f"{folder.name}/{path.name}"
        entries.append({"rank": rank, "score": case.score, "files": files})
    return entries


def _fmt(value: Any, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{100 * value:.2f}" if percent else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return html.escape(str(value))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, bool]]) -> str:
    """HTML table; ``columns`` = (key, header, is_percentage)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, percent in columns:
            value = row.get(key)
            cls = ' class="num"' if isinstance(value, (int, float)) or value is None else ""
            cells.append(f"<td{cls}>{_fmt(value, percent)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.worst{display:flex;gap:6px;align-items:flex-start;margin:10px 0;flex-wrap:wrap}
.worst figure{margin:0}.worst figcaption{font-size:.8em;color:#555;text-align:center}
.worst img{max-width:256px;border:1px solid #ccc;image-rendering:pixelated}
.caption{font-size:.9em;margin:14px 0 2px}.muted{color:#777;font-size:.85em}
.bad{color:#b00}
"""


def _html(result: EvaluationResult, plots: dict[str, Path], worst: list[dict[str, Any]]) -> str:
    s = result.summary()
    title = f"Evaluation of {html.escape(result.dataset_name)}"
    summary_rows = [
        {"name": "images evaluated", "value": s["images"]},
        {"name": "issues (skipped or suspicious samples)", "value": s["issues"]},
        {"name": "mIoU (%)", "value": s["miou"]},
        {"name": "pixel accuracy (%)", "value": s["pixel_accuracy"]},
        {"name": "mean Dice (%)", "value": s["mean_dice"]},
        {"name": "frequency-weighted IoU (%)", "value": s["frequency_weighted_iou"]},
        {"name": "mean class accuracy (%)", "value": s["mean_class_accuracy"]},
        {"name": f"boundary F1 @ {result.boundary_tolerance:g} px (%)", "value": s["boundary_f1"]},
        {"name": "mean per-image IoU (%)", "value": s["mean_image_iou"]},
        {"name": "seconds", "value": f"{s['seconds']:.1f}"},
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        "<h2>Summary</h2>",
        _table(summary_rows, [("name", "metric", False), ("value", "value", True)]),
        "<h2>Per class</h2>",
        _table(
            result.per_class_rows(),
            [
                ("class_id", "id", False),
                ("class_name", "class", False),
                ("iou", "IoU %", True),
                ("dice", "Dice %", True),
                ("precision", "precision %", True),
                ("recall", "recall %", True),
                ("boundary_f1", "boundary F1 %", True),
                ("support", "GT pixels", False),
                ("predicted", "predicted pixels", False),
            ],
        ),
    ]
    parts.append("<h2>Confusion matrix</h2>")
    parts.append(f"<img alt='confusion matrix' src='{_data_uri(plots['confusion_matrix'])}'>")
    if "image_iou" in plots:
        parts.append("<h2>Per-image IoU</h2>")
        parts.append(f"<img alt='per-image IoU histogram' src='{_data_uri(plots['image_iou'])}'>")
    parts.append("<h2>Slices (bias check)</h2>")
    if result.slices:
        parts.append(
            "<p class='muted'>Pooled metrics of the images sharing one metadata value; "
            "gap = slice mIoU minus overall mIoU (percentage points).</p>"
        )
        parts.append(
            _table(
                result.slice_rows(),
                [
                    ("key", "key", False),
                    ("value", "value", False),
                    ("images", "images", False),
                    ("miou", "mIoU %", True),
                    ("pixel_accuracy", "pixel acc %", True),
                    ("miou_gap", "gap", True),
                ],
            )
        )
    else:
        keys = ", ".join(result.slice_keys) or "none"
        parts.append(f"<p class='muted'>No slices (metadata keys sliced by: {html.escape(keys)}).</p>")
    parts.append(f"<h2>Worst images by IoU ({len(worst)})</h2>")
    parts.append("<p class='muted'>image | ground truth | prediction | errors (red = wrong, grey = void)</p>")
    for entry in worst:
        score = entry["score"]
        caption = (
            f"#{entry['rank']} {html.escape(score.image_id)}: IoU {_fmt(score.iou)} %, "
            f"pixel acc {_fmt(score.pixel_accuracy)} %, boundary F1 {_fmt(score.boundary_f1)} %"
        )
        figures = "".join(
            f"<figure><img src='{html.escape(src)}' alt='{kind}'><figcaption>{kind}</figcaption></figure>"
            for kind, src in entry["files"].items()
        )
        parts.append(f"<div class='caption'>{caption}</div><div class='worst'>{figures}</div>")
    parts.append(f"<h2>Issues ({len(result.issues)})</h2>")
    if result.issues:
        items = "".join(f"<li class='bad'>{html.escape(str(issue))}</li>" for issue in result.issues[:200])
        more = f"<p class='muted'>... {len(result.issues) - 200} more in metrics.json</p>" if len(result.issues) > 200 else ""
        parts.append(f"<ul>{items}</ul>{more}")
    else:
        parts.append("<p class='muted'>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result: EvaluationResult, out_dir: str | Path, taxonomy: Taxonomy | None = None) -> Path:
    """Write the evaluation report folder (see the module docstring for the files).

    Args:
        result: from :func:`~pixelwise.evaluation.evaluate`.
        out_dir: folder (created).
        taxonomy: classes for names and colours; default ``result.taxonomy``.

    Returns:
        Path of ``report.html``.

    Example:
        >>> write_report(evaluate(segmenter, dataset), "val_report")  # doctest: +SKIP
        PosixPath('val_report/report.html')
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if taxonomy is not None and taxonomy is not result.taxonomy:
        result = dataclasses.replace(result, taxonomy=taxonomy)
    tax = result.taxonomy

    (out_dir / "metrics.json").write_text(json.dumps(result.to_dict(), indent=1, default=str))
    _write_csv(
        out_dir / "per_class.csv",
        result.per_class_rows(),
        ["class_id", "class_name", "iou", "dice", "precision", "recall", "boundary_f1", "support", "predicted"],
    )
    _write_csv(
        out_dir / "per_slice.csv",
        result.slice_rows(),
        ["key", "value", "images", "pixels", "pixel_accuracy", "miou", "mean_dice", "miou_gap"],
    )
    ranked = sorted(result.per_image, key=lambda s: (math.isnan(s.iou), s.iou))
    _write_csv(
        out_dir / "per_image.csv",
        [s.to_dict() for s in ranked],
        ["image_id", "image_path", "iou", "pixel_accuracy", "boundary_f1", "pixels"],
    )
    plots = {
        "confusion_matrix": plot_confusion_matrix(
            result.metrics.matrix, result.class_names, out_dir / "confusion_matrix.png", normalize=True
        )
    }
    if result.per_image:
        plots["image_iou"] = plot_histogram(
            [s.iou for s in result.per_image], out_dir / "image_iou.png", "per-image IoU", bins=20, title="Per-image IoU"
        )
    worst = _write_worst(result.worst, out_dir / "worst", tax)
    report = out_dir / "report.html"
    report.write_text(_html(result, plots, worst), encoding="utf-8")
    return report

"""``pixelwise val``: evaluate a checkpoint on a labelled dataset and write a report folder.

Writes ``metrics.json``, ``per_class.csv``, ``per_slice.csv``, ``per_image.csv``,
``confusion_matrix.png``, ``worst/`` thumbnails and ``report.html`` into ``--out`` and
prints the summary. Exit code 0; 1 when no image could be evaluated; 2 on a bad model,
dataset path or class mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pixelwise.cli.common import friendly_errors, parse_options

__all__ = ["val_command"]

FORMAT_HELP = "Dataset format: coco, coco-panoptic, voc, yolo-seg, cityscapes, masks (default: detected from the layout)."


def _slice_keys(text: str | None) -> list[str] | None:
    """``None`` -> automatic; ``"none"`` or ``""`` -> no slices; else the comma-separated keys."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    return [k.strip() for k in text.split(",") if k.strip()]


def val_command(
    model: Path = typer.Option(..., "--model", "-m", help="Pixelwise checkpoint (.pt)."),
    data: Path = typer.Option(..., "--data", "-d", help="Labelled dataset folder or annotation file."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    out: Path = typer.Option(Path("val_report"), "--out", "-o", help="Report folder."),
    slices: Optional[str] = typer.Option(
        None, "--slices", help="Metadata keys to slice by, comma-separated (e.g. camera,lighting); "
        "default: every key with 2-20 values; 'none' disables."
    ),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Binary models: threshold on class 1."),
    min_region: int = typer.Option(0, "--min-region", min=0, help="Merge predicted regions smaller than N pixels."),
    fill_holes: bool = typer.Option(False, "--fill-holes", help="Fill holes of non-background classes."),
    smooth: int = typer.Option(0, "--smooth", min=0, help="Majority-filter radius (0 = off)."),
    boundary_tolerance: float = typer.Option(2.0, "--boundary-tolerance", min=0.0, help="Boundary F1 tolerance in pixels."),
    ignore_class_names: bool = typer.Option(
        False, "--ignore-class-names", help="Compare class ids even when dataset and model class names differ."
    ),
    worst: int = typer.Option(10, "--worst", min=0, help="Worst images shown in the report."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the model."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per model call."),
    read_opt: Optional[list[str]] = typer.Option(None, "--read-opt", help="Reader option key=value (repeatable)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Evaluate a model on a labelled dataset: metrics, slices, worst images, HTML report."""
    import pixelwise.api
    from pixelwise.data.formats import detect_format, read_dataset
    from pixelwise.evaluation import evaluate, write_report

    with friendly_errors():
        segmenter = pixelwise.api.load(model, num_threads=threads, batch_size=batch_size)
        fmt = fmt or detect_format(data)
        dataset = read_dataset(data, fmt, **parse_options(read_opt))
        typer.echo(f"read {len(dataset)} images from {data} as {fmt} ({len(dataset.issues)} issues)", err=True)
        options = {"threshold": threshold, "min_region": min_region, "fill_holes": fill_holes, "smooth": smooth}
        result = evaluate(
            segmenter,
            dataset,
            slice_keys=_slice_keys(slices),
            progress=progress,
            boundary_tolerance=boundary_tolerance,
            keep_worst=worst,
            check_taxonomy=not ignore_class_names,
            predict_options=options,
        )
        report = write_report(result, out)
    for issue in result.issues[:20]:
        typer.secho(str(issue), fg=typer.colors.YELLOW, err=True)
    if len(result.issues) > 20:
        typer.secho(f"... {len(result.issues) - 20} more issues in {out / 'metrics.json'}", fg=typer.colors.YELLOW, err=True)
    typer.echo(result.format_summary())
    typer.echo(f"report: {report}")
    if result.num_images == 0:
        typer.secho("error: no image could be evaluated", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)

"""``pixelwise data ...``: convert, stats, validate, split, synth, formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from pixelwise.cli.common import friendly_errors, parse_options

data_app = typer.Typer(help="Read, check, convert, split and generate datasets.", no_args_is_help=True)

FORMAT_HELP = "Dataset format: coco, coco-panoptic, voc, yolo-seg, cityscapes, masks (default: detected from the layout)."


def _read(path: Path, fmt: str | None, options: list[str] | None):
    from pixelwise.data.formats import detect_format, read_dataset

    fmt = fmt or detect_format(path)
    dataset = read_dataset(path, fmt, **parse_options(options))
    typer.echo(f"read {len(dataset)} images from {path} as {fmt} ({len(dataset.issues)} issues)", err=True)
    return dataset


@data_app.command("formats")
def formats_command() -> None:
    """List the dataset formats Pixelwise reads and writes."""
    from pixelwise.data.formats import list_formats

    for spec in list_formats():
        typer.echo(f"{spec.name:14s} {', '.join(sorted(spec.views)):28s} {spec.description}")


@data_app.command("convert")
def convert_command(
    src: Path = typer.Argument(..., help="Dataset folder or annotation file to read."),
    dst: Path = typer.Argument(..., help="Output folder."),
    from_format: Optional[str] = typer.Option(None, "--from", help=FORMAT_HELP),
    to_format: str = typer.Option(..., "--to", help="Output format (same names as --from)."),
    read_opt: Optional[list[str]] = typer.Option(None, "--read-opt", help="Reader option key=value (repeatable)."),
    write_opt: Optional[list[str]] = typer.Option(None, "--write-opt", help="Writer option key=value (repeatable)."),
) -> None:
    """Convert a dataset from one format to another (images copied, labels rewritten, metadata kept)."""
    from pixelwise.data.formats import write_dataset

    with friendly_errors():
        dataset = _read(src, from_format, read_opt)
        before = len(dataset.issues)
        out = write_dataset(dataset, dst, to_format, **parse_options(write_opt))
        for issue in dataset.issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"wrote {len(dataset)} images to {out} as {to_format}; {len(dataset.issues) - before} issues while writing")


@data_app.command("stats")
def stats_command(
    path: Path = typer.Argument(..., help="Dataset folder or annotation file."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    read_opt: Optional[list[str]] = typer.Option(None, "--read-opt", help="Reader option key=value (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for stats.json and class_balance.png."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Images, sizes, class pixel and instance counts, class balance (plot with --out)."""
    from pixelwise.data.stats import dataset_statistics
    from pixelwise.viz.plots import plot_class_balance

    with friendly_errors():
        dataset = _read(path, fmt, read_opt)
        stats = dataset_statistics(dataset)
        typer.echo(json.dumps(stats.to_dict(), indent=2) if as_json else stats.format_table())
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
            plot = plot_class_balance(stats, dataset.taxonomy.names, out / "class_balance.png")
            typer.echo(f"wrote {out / 'stats.json'} and {plot}")


@data_app.command("validate")
def validate_command(
    path: Path = typer.Argument(..., help="Dataset folder or annotation file."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    read_opt: Optional[list[str]] = typer.Option(None, "--read-opt", help="Reader option key=value (repeatable)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any error is found."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the issues as JSON here."),
) -> None:
    """Check images and labels; every problem is reported with its file and reason."""
    from pixelwise.data.validate import validate_dataset

    with friendly_errors():
        dataset = _read(path, fmt, read_opt)
        result = validate_dataset(dataset)
        typer.echo(result.format_text())
        if report is not None:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps(result.to_dict(), indent=2))
    if strict and not result.ok:
        sys.exit(1)


@data_app.command("split")
def split_command(
    path: Path = typer.Argument(..., help="Dataset folder or annotation file."),
    out: Path = typer.Option(..., "--out", help="Folder for train.txt / val.txt / test.txt."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    read_opt: Optional[list[str]] = typer.Option(None, "--read-opt", help="Reader option key=value (repeatable)."),
    train: float = typer.Option(0.8, help="Fraction for training."),
    val: float = typer.Option(0.1, help="Fraction for validation."),
    test: float = typer.Option(0.1, help="Fraction for testing."),
    seed: int = typer.Option(0, help="Random seed (same seed, same split)."),
    stratify: bool = typer.Option(True, help="Balance class presence across splits."),
) -> None:
    """Reproducible train/val/test split, stratified by class presence."""
    from pixelwise.data.split import split_dataset, write_splits

    with friendly_errors():
        dataset = _read(path, fmt, read_opt)
        splits = split_dataset(dataset, {"train": train, "val": val, "test": test}, seed=seed, stratify=stratify)
        write_splits(splits, out)
        typer.echo(", ".join(f"{name}: {len(ids)}" for name, ids in splits.items()) + f" -> {out}")


@data_app.command("synth")
def synth_command(
    out: Path = typer.Argument(..., help="Output folder."),
    theme: str = typer.Option("shapes", help="shapes, cells or defects."),
    n: int = typer.Option(100, "--n", help="Number of images."),
    size: int = typer.Option(256, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed (same seed, same images)."),
    fmt: str = typer.Option("coco", "--format", "-f", help="Output format (coco, coco-panoptic, voc, yolo-seg, cityscapes, masks)."),
) -> None:
    """Generate a synthetic dataset whose semantic, instance and panoptic labels come for free."""
    from pixelwise.data.synth import write_synthetic_dataset

    with friendly_errors():
        root = write_synthetic_dataset(theme, n, size, seed, out, format=fmt)
        typer.echo(f"wrote {n} {theme} images ({size}x{size}, seed {seed}) to {root} as {fmt}")

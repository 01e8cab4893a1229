"""``pixelwise predict``: segment image files, folders and globs; write masks and measurements.

Per image, in ``--out``: ``<stem>_labels.png`` (palette PNG, pixel value = class id) and
``<stem>_overlay.png``. For the whole run: ``measurements.json`` (per image: per-class
area, fraction and region count, and every region's polygon, box, area, perimeter and
centroid), ``measurements.csv`` (one row per region) and ``classes.csv`` (one row per
image and class). A file that cannot be read is reported and skipped; the exit code is 0
unless no image at all could be processed (1), or the model cannot be loaded (2).
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Optional

import typer

from pixelwise.cli.common import friendly_errors

__all__ = ["predict_command", "resolve_sources"]

_GLOB_CHARS = ("*", "?", "[")
_REGION_COLUMNS = (
    "image", "stem", "region", "class_id", "class_name", "area", "perimeter",
    "centroid_x", "centroid_y", "x_min", "y_min", "x_max", "y_max",
)
_CLASS_COLUMNS = ("image", "stem", "class_id", "class_name", "area", "area_fraction", "region_count")


def resolve_sources(sources: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursive) and glob patterns into image paths.

    Folders and globs keep only files with an image extension; a file named explicitly
    is always tried. Duplicates are dropped, order is kept.

    Returns:
        ``(paths, problems)``: the files to process and one message per source that gave
        nothing (missing path, empty folder, pattern without matches).
    """
    from pixelwise.data.image_io import IMAGE_EXTENSIONS, list_images

    found: dict[Path, None] = {}
    problems: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            images = list_images(path)
            if not images:
                problems.append(f"{source}: no image files in this folder")
        elif path.is_file():
            images = [path]
        elif any(ch in source for ch in _GLOB_CHARS):
            images = [
                Path(p) for p in sorted(glob.glob(source, recursive=True))
                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_EXTENSIONS
            ]
            if not images:
                problems.append(f"{source}: the pattern matches no image files")
        else:
            images = []
            problems.append(f"{source}: no such file or folder")
        for image in images:
            found.setdefault(image, None)
    return list(found), problems


def _unique_stem(path: Path, used: set[str]) -> str:
    stem = path.stem or "image"
    candidate, n = stem, 2
    while candidate in used:
        candidate, n = f"{stem}_{n}", n + 1
    used.add(candidate)
    return candidate


class _MeasurementWriter:
    """Streams ``measurements.json``, ``measurements.csv`` and ``classes.csv`` image by image."""

    def __init__(self, out: Path, header: dict[str, Any]) -> None:
        self._json: IO[str] = (out / "measurements.json").open("w")
        self._regions_file = (out / "measurements.csv").open("w", newline="")
        self._classes_file = (out / "classes.csv").open("w", newline="")
        self._regions = csv.DictWriter(self._regions_file, fieldnames=list(_REGION_COLUMNS))
        self._classes = csv.DictWriter(self._classes_file, fieldnames=list(_CLASS_COLUMNS))
        self._regions.writeheader()
        self._classes.writeheader()
        body = json.dumps(header, indent=1)[:-2]  # drop the closing "\n}"
        self._json.write(body + ',\n "images": [')
        self._first = True

    def add(self, image: str, stem: str, result: Any, files: dict[str, Path]) -> None:
        record = {"image": image, "stem": stem, **result.to_dict(include_regions=True)}
        record["files"] = {k: str(v) for k, v in files.items()}
        self._json.write(("\n  " if self._first else ",\n  ") + json.dumps(record))
        self._first = False
        for m in result.measurements():
            self._classes.writerow({"image": image, "stem": stem, **asdict(m)})
        for index, region in enumerate(result.regions):
            x0, y0, x1, y1 = region.box
            self._regions.writerow(
                {
                    "image": image, "stem": stem, "region": index, "class_id": region.class_id,
                    "class_name": region.class_name, "area": region.area, "perimeter": round(region.perimeter, 3),
                    "centroid_x": round(region.centroid[0], 3), "centroid_y": round(region.centroid[1], 3),
                    "x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1,
                }
            )

    def close(self, issues: list[dict[str, str]], summary: dict[str, Any]) -> None:
        self._json.write("\n ],\n")
        self._json.write(' "issues": ' + json.dumps(issues) + ",\n")
        self._json.write(' "summary": ' + json.dumps(summary) + "\n}\n")
        for handle in (self._json, self._regions_file, self._classes_file):
            handle.close()


def run_predict(
    segmenter: Any,
    paths: Sequence[Path],
    out: Path,
    *,
    options: dict[str, Any],
    overlay: bool = True,
    progress: bool = True,
    model_name: str = "",
    problems: Sequence[str] = (),
    echo: Callable[[str], None] = print,
    engine: str = "local",
    model_path: Path | None = None,
    address: str | None = None,
    workers: int = 2,
    batch_size: int = 4,
    threads: int | None = None,
) -> dict[str, Any]:
    """Segment ``paths`` with the local (threads) or Ray engine and write everything to ``out``;
    never stops at a bad file. The Ray engine loads ``model_path`` in each of ``workers`` actors.

    Returns:
        ``{"processed", "failed", "regions", "images_per_second"}``.
    """
    out.mkdir(parents=True, exist_ok=True)
    header = {"model": model_name, "options": options, "classes": segmenter.taxonomy.to_dict()["classes"]}
    writer = _MeasurementWriter(out, header)
    issues = [{"path": p.split(": ", 1)[0], "reason": p.split(": ", 1)[-1]} for p in problems]
    used: set[str] = set()
    processed = regions = 0
    if engine == "ray":
        from pixelwise.runtime.ray_engine import predict_ray

        items: Any = predict_ray(
            model_path, paths, num_workers=workers, batch_size=batch_size, address=address,
            threads_per_worker=threads or 1, options=options, progress=progress,
        )
    else:
        from pixelwise.runtime.batch import predict_folder

        items = predict_folder(
            segmenter, paths, batch_size=batch_size, prefetch=max(16, 2 * batch_size), options=options, progress=progress
        )
    try:
        for item in items:
            path = item.path
            if not item.ok:
                issues.append({"path": str(path), "reason": item.issue.reason})
                echo(f"skipped {path}: {item.issue.reason}")
                continue
            result = item.result
            stem = _unique_stem(path, used)
            files = result.save(out, stem, overlay=overlay, json_file=False)
            writer.add(str(path), stem, result, files)
            processed += 1
            regions += len(result.regions)
    finally:
        summary = {"processed": processed, "failed": len(paths) - processed, "regions": regions}
        writer.close(issues, summary)
    return {**summary, "images_per_second": round(items.stats.images_per_second, 3)}


def _echo_above_bar(message: str) -> None:
    """Print a warning to stderr without breaking the tqdm progress bar."""
    import sys

    from tqdm import tqdm

    tqdm.write(typer.style(message, fg=typer.colors.YELLOW), file=sys.stderr)


def predict_command(
    sources: list[str] = typer.Argument(..., help="Image files, folders (searched recursively) or glob patterns."),
    model: Path = typer.Option(..., "--model", "-m", help="Pixelwise checkpoint (.pt)."),
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="Output folder."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Binary models: probability threshold on class 1 (default argmax)."
    ),
    min_region: int = typer.Option(0, "--min-region", min=0, help="Merge regions smaller than N pixels into their surroundings."),
    fill_holes: bool = typer.Option(False, "--fill-holes", help="Fill enclosed holes of non-background classes."),
    smooth: int = typer.Option(0, "--smooth", min=0, help="Majority-filter radius in pixels (0 = off)."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write <stem>_overlay.png per image."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the model."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    engine: str = typer.Option("local", "--engine", help="local (reader threads + one model) or ray (Ray Data, one model per actor)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (e.g. auto, ray://head:10001); default: start a local Ray."),
    workers: int = typer.Option(2, "--workers", min=1, help="Ray engine: model actors."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per model call (per chunk)."),
) -> None:
    """Segment images; write label PNGs, overlays and measurements (JSON and CSV)."""
    import pixelwise.api

    if engine not in ("local", "ray"):
        typer.secho(f"error: --engine must be local or ray, got {engine!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if address is not None and engine != "ray":
        typer.secho("error: --address needs --engine ray", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    with friendly_errors():
        paths, problems = resolve_sources(sources)
        for problem in problems:
            typer.secho(f"warning: {problem}", fg=typer.colors.YELLOW, err=True)
        if not paths:
            typer.secho("error: no images to process", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        segmenter = pixelwise.api.load(model, num_threads=threads)
        options = {"threshold": threshold, "min_region": min_region, "fill_holes": fill_holes, "smooth": smooth}
        if threshold is not None and not segmenter.is_binary:
            typer.secho(
                f"error: --threshold needs a binary (2-class) model; {model} has {segmenter.num_classes} classes",
                fg=typer.colors.RED, err=True,
            )
            raise typer.Exit(2)
        summary = run_predict(
            segmenter, paths, out, options=options, overlay=overlay, progress=progress,
            model_name=str(model), problems=problems, echo=_echo_above_bar,
            engine=engine, model_path=model, address=address, workers=workers, batch_size=batch_size, threads=threads,
        )
    typer.echo(
        f"{summary['processed']} images segmented ({summary['images_per_second']} img/s), "
        f"{summary['failed']} skipped, {summary['regions']} regions; "
        f"wrote {out / 'measurements.json'}, {out / 'measurements.csv'}, {out / 'classes.csv'}"
    )
    if summary["processed"] == 0:
        raise typer.Exit(1)

"""The demo job behind ``make demo``: data in, answers out, every step printed.

Steps: generate a synthetic ``shapes`` dataset (COCO panoptic format: semantic, instance and panoptic labels), read it back, validate it,
print statistics (class balance plot), write a contact sheet of images with their
colour-coded labels; then train a light model, evaluate it (report.html) and segment a
few images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Echo = Callable[[str], Any]


@dataclass
class DemoSummary:
    """Where the demo put things, and the figures it measured."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"out": str(self.out), "files": {k: str(v) for k, v in self.files.items()}, "figures": self.figures}


def run_data_demo(out: Path, n: int, size: int, seed: int, echo: Echo = print, theme: str = "shapes") -> DemoSummary:
    """Generate, read, validate and describe a synthetic dataset; write a contact sheet.

    Args:
        out: output folder.
        n: number of images.
        size: square image side.
        seed: generator seed.
        echo: where progress lines go.
        theme: synthetic theme.

    Returns:
        Paths and figures (images/s of generation, issue counts, class fractions).
    """
    from pixelwise.core.convert import complete_annotation
    from pixelwise.data.formats import read_dataset
    from pixelwise.data.image_io import read_image
    from pixelwise.data.stats import dataset_statistics
    from pixelwise.data.synth import write_synthetic_dataset
    from pixelwise.data.validate import validate_dataset
    from pixelwise.viz.overlay import contact_sheet, overlay, save_png
    from pixelwise.viz.plots import plot_class_balance

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = DemoSummary(out)
    data_dir = out / "data" / theme

    echo(f"[1/4] generating {n} synthetic '{theme}' images ({size}x{size}, seed {seed}) as COCO panoptic -> {data_dir}")
    start = time.perf_counter()
    write_synthetic_dataset(theme, n, size, seed, data_dir, format="coco-panoptic", progress=True)
    elapsed = time.perf_counter() - start
    summary.figures["synth_images_per_s_including_write"] = round(n / elapsed, 1)
    summary.files["dataset"] = data_dir

    dataset = read_dataset(data_dir, "coco-panoptic", progress=False)
    echo(f"[2/4] validating {len(dataset)} images")
    report = validate_dataset(dataset, progress=False)
    echo(report.format_text())
    summary.figures["validation_errors"] = report.n_errors

    echo("[3/4] statistics")
    stats = dataset_statistics(dataset, progress=False)
    echo(stats.format_table())
    stats_dir = out / "stats"
    stats_dir.mkdir(parents=True, exist_ok=True)
    (stats_dir / "stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
    summary.files["class_balance"] = plot_class_balance(stats, None, stats_dir / "class_balance.png")
    summary.files["stats"] = stats_dir / "stats.json"

    echo("[4/4] contact sheet of images with colour-coded labels")
    tiles, captions = [], []
    for sample in dataset.samples[:12]:
        image = read_image(sample.image_path)
        annotation = complete_annotation(sample.annotation(), dataset.taxonomy)
        tiles.append(image)
        tiles.append(overlay(image, annotation.semantic.labels, dataset.taxonomy, alpha=0.6, outline=True))
        captions += [sample.image_id, f"{len(annotation.instances)} objects"]
    sheet = contact_sheet(tiles, columns=6, tile_size=(size, size), captions=captions)
    summary.files["contact_sheet"] = save_png(out / "contact_sheet.png", sheet)
    for name, path in summary.files.items():
        echo(f"  {name:16s} {path}")
    return summary

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


@dataclass(frozen=True)
class DemoRecipe:
    """The training recipe of the demo (light model, CPU-friendly)."""

    model: str = "unet"
    encoder: str | None = "resnet18"
    epochs: int = 40
    batch_size: int = 8
    lr: float = 3e-3
    loss: str = "ce+dice"
    augment: str = "light"
    max_minutes: float = 5.0


def run_full_demo(
    out: Path,
    n: int,
    size: int,
    seed: int,
    echo: Echo = print,
    recipe: DemoRecipe = DemoRecipe(),
    n_val: int = 24,
    n_predict: int = 4,
) -> DemoSummary:
    """The whole demo: data steps, then train, evaluate on a held-out set, and predict.

    Args:
        out: output folder.
        n: training images (the trainer keeps 20% of them for model selection).
        size: square image side.
        seed: generator seed; the held-out evaluation set uses ``seed + 1000``.
        echo: where progress lines go.
        recipe: model and training settings.
        n_val: held-out evaluation images.
        n_predict: images segmented at the end.

    Returns:
        Paths and figures, also written to ``out/summary.json``.
    """
    import pixelwise
    from pixelwise.data.formats import read_dataset
    from pixelwise.data.synth import write_synthetic_dataset
    from pixelwise.evaluation import evaluate, write_report
    from pixelwise.training import TrainConfig, train

    summary = run_data_demo(out, n=n, size=size, seed=seed, echo=echo)
    out = Path(out)
    echo(f"[5/7] training {recipe.model}-{recipe.encoder} for at most {recipe.max_minutes:g} min on {n} images")
    config = TrainConfig(
        data=str(summary.files["dataset"]),
        format="coco-panoptic",
        model=recipe.model,
        encoder=recipe.encoder,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        loss=recipe.loss,
        augment=recipe.augment,
        input_size=(size, size),
        seed=seed,
        max_minutes=recipe.max_minutes,
        out=str(out / "run"),
        overwrite=True,
    )
    result = train(config, echo=echo)
    best = result.run_dir / "best.pt"
    summary.files.update(run=result.run_dir, checkpoint=best, curves=result.run_dir / "curves.png")
    summary.figures.update(
        train_minutes=round(result.seconds / 60, 2),
        epochs=result.epochs_run,
        stop_reason=result.stop_reason,
        best_val_miou_network_resolution=result.best_metrics.get("val_miou"),
    )

    echo(f"[6/7] evaluating on {n_val} held-out images (seed {seed + 1000})")
    val_dir = out / "data" / "shapes_heldout"
    write_synthetic_dataset("shapes", n_val, size, seed + 1000, val_dir, format="coco-panoptic")
    held_out = read_dataset(val_dir, "coco-panoptic", progress=False)
    segmenter = pixelwise.load(best)
    evaluation = evaluate(segmenter, held_out, progress=False)
    report = write_report(evaluation, out / "eval")
    summary.files["report"] = report
    summary.figures["heldout_miou"] = round(float(evaluation.metrics.miou), 4)
    summary.figures["heldout_pixel_accuracy"] = round(float(evaluation.metrics.pixel_accuracy), 4)

    echo(f"[7/7] segmenting {n_predict} images")
    predictions = out / "predictions"
    for sample in held_out.samples[:n_predict]:
        prediction = segmenter.predict(sample.image_path)
        prediction.save(predictions, sample.image_id)
        counts = {m.class_name: m.region_count for m in prediction.measurements() if m.region_count}
        echo(f"  {sample.image_id}: regions per class {counts}")
    summary.files["predictions"] = predictions
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2, default=str))
    echo("")
    echo(f"held-out mIoU {summary.figures['heldout_miou']:.4f} (pixel accuracy {summary.figures['heldout_pixel_accuracy']:.4f})")
    for name, path in summary.files.items():
        echo(f"  {name:16s} {path}")
    return summary

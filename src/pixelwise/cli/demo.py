"""``pixelwise demo``: the README's first command."""

from __future__ import annotations

from pathlib import Path

import typer


def demo_command(
    out: Path = typer.Option(Path("demo_output"), "--out", help="Folder for everything the demo writes."),
    n: int = typer.Option(200, "--n", help="Synthetic training images to generate."),
    size: int = typer.Option(128, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed."),
    minutes: float = typer.Option(5.0, help="Training time budget in minutes."),
    data_only: bool = typer.Option(False, "--data-only", help="Stop after the data steps (no training)."),
) -> None:
    """Generate a synthetic dataset, validate it, describe it, train a model, evaluate it, predict."""
    from pixelwise.cli.demo_pipeline import DemoRecipe, run_data_demo, run_full_demo

    if data_only:
        run_data_demo(out, n=n, size=size, seed=seed, echo=typer.echo)
        return
    run_full_demo(out, n=n, size=size, seed=seed, echo=typer.echo, recipe=DemoRecipe(max_minutes=minutes))

"""``pixelwise demo``: the README's first command."""

from __future__ import annotations

from pathlib import Path

import typer


def demo_command(
    out: Path = typer.Option(Path("demo_output"), "--out", help="Folder for everything the demo writes."),
    n: int = typer.Option(48, "--n", help="Synthetic images to generate."),
    size: int = typer.Option(128, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Generate a synthetic dataset, validate it, print its statistics and write a contact sheet."""
    from pixelwise.cli.demo_pipeline import run_data_demo

    run_data_demo(out, n=n, size=size, seed=seed, echo=typer.echo)

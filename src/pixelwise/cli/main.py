"""The ``pixelwise`` command: thin verbs that parse arguments and call the layers below."""

from __future__ import annotations

import typer

from pixelwise.cli.data_commands import data_app
from pixelwise.cli.demo import demo_command
from pixelwise.cli.export import export_command
from pixelwise.cli.optimize import distill_command, prune_command
from pixelwise.cli.predict import predict_command
from pixelwise.cli.quantize import quantize_command
from pixelwise.cli.train import train_command
from pixelwise.cli.val import val_command

app = typer.Typer(
    name="pixelwise",
    help="Pixelwise: segmentation from images to answers (data, models, evaluation, deployment).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.command("demo")(demo_command)
app.command("train")(train_command)
app.command("val")(val_command)
app.command("predict")(predict_command)
app.command("export")(export_command)
app.command("quantize")(quantize_command)
app.command("prune")(prune_command)
app.command("distill")(distill_command)


@app.callback()
def _root() -> None:
    """Pixelwise command line. Run ``pixelwise VERB --help`` for each verb."""


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m pixelwise``."""
    app()

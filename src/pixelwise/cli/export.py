"""``pixelwise export``: turn a checkpoint into a deployable model file plus its sidecar.

Writes ``<out>.onnx`` and ``<out>.onnx.json`` (classes, input size and layout,
normalisation, output meaning), after checking ONNX Runtime against PyTorch. Prints the
check figures (max abs diff, label agreement) and the paths. Exit code 0 on success, 2 when
the checkpoint cannot be read, the arguments are invalid, or the check fails (nothing is
written then).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from pixelwise.cli.common import friendly_errors

__all__ = ["export_command", "parse_size"]

FORMATS = ("onnx",)
_OUTPUTS = ("logits", "probabilities", "labels")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"256"`` -> (256, 256); ``"192x256"`` -> (192, 256) (height x width).

    Raises:
        typer.BadParameter: anything else.
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+)\s*)?", text)
    if not match or int(match.group(1)) < 1 or (match.group(2) is not None and int(match.group(2)) < 1):
        raise typer.BadParameter(f"expected HxW (e.g. 256x320) or one number, got {text!r}")
    height = int(match.group(1))
    return (height, int(match.group(2)) if match.group(2) else height)


def export_command(
    model: Path = typer.Option(..., "--model", "-m", help="Pixelwise checkpoint (.pt)."),
    format: str = typer.Option("onnx", "--format", "-f", help="Target format (onnx)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: the checkpoint name with .onnx)."),
    opset: int = typer.Option(17, "--opset", min=7, help="ONNX opset."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Dynamic batch axis (default: batch 1)."),
    normalize_in_graph: bool = typer.Option(
        False, "--normalize-in-graph", help="The graph takes RGB 0..255 float32 and normalises itself."
    ),
    output: str = typer.Option("logits", "--output", help="Graph output: logits, probabilities or labels."),
    input_size: Optional[str] = typer.Option(
        None, "--input-size", help="HxW of the exported input (default: the checkpoint's input size)."
    ),
    images: Optional[list[Path]] = typer.Option(
        None, "--image", help="Real image(s) added to the ONNX Runtime vs PyTorch check (repeatable)."
    ),
    atol: float = typer.Option(1e-3, "--atol", min=0.0, help="Absolute tolerance of the check."),
    min_agreement: float = typer.Option(
        0.999, "--min-agreement", min=0.0, max=1.0, help="Smallest accepted fraction of equal labels."
    ),
    exporter: str = typer.Option("auto", "--exporter", help="auto (dynamo, fall back to torchscript), dynamo or torchscript."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare ONNX Runtime with PyTorch."),
) -> None:
    """Export a checkpoint to ONNX with a sidecar JSON; check it against PyTorch."""
    fmt = format.lower()
    if fmt not in FORMATS:
        typer.secho(f"error: --format {format!r} is not supported; choose one of: {', '.join(FORMATS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if output not in _OUTPUTS:
        typer.secho(f"error: --output must be one of {', '.join(_OUTPUTS)}, got {output!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if exporter not in ("auto", "dynamo", "torchscript"):
        typer.secho(f"error: --exporter must be auto, dynamo or torchscript, got {exporter!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    size = parse_size(input_size)
    target = out if out is not None else model.with_suffix(".onnx")
    from pixelwise.runtime.onnx_export import export_onnx

    with friendly_errors():
        report = export_onnx(
            model,
            target,
            opset=opset,
            dynamic_batch=dynamic_batch,
            include_normalization=normalize_in_graph,
            output=output,
            input_size=size,
            check=check,
            sample_inputs=list(images or []),
            atol=atol,
            min_agreement=min_agreement,
            exporter=exporter,
        )
    typer.echo(report.summary())

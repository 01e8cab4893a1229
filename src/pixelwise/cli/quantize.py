"""``pixelwise quantize``: static int8 quantization of an exported ONNX model, gated on mIoU.

Calibrates on images from ``--calib``, evaluates the float32 and int8 models on ``--val``
(when given) and prints both mIoUs and speeds. Exit code 0 when the int8 model was
written, 3 when it was refused because it lost more than ``--max-drop`` mIoU points
(nothing written), 2 on bad input (non-ONNX file, empty calibration folder, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pixelwise.cli.common import friendly_errors

__all__ = ["quantize_command"]

EXIT_REJECTED = 3


def quantize_command(
    model: Path = typer.Option(..., "--model", "-m", help="Float32 .onnx from `pixelwise export` (with its .onnx.json)."),
    calib: Path = typer.Option(..., "--calib", help="Folder of calibration images (representative inputs)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Labelled validation set for the mIoU gate."),
    val_format: Optional[str] = typer.Option(None, "--val-format", help="Format of --val (default: detected)."),
    max_drop: float = typer.Option(0.5, "--max-drop", help="Refuse the int8 model if it loses more mIoU points."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="int8 model path (default: <model>.int8.onnx)."),
    num_calib: int = typer.Option(32, "--num-calib", min=1, help="Calibration images used (spread over the folder)."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scales per output channel."),
    activation_type: str = typer.Option("uint8", "--activations", help="Activation type: uint8 (default, fastest on x86) or int8."),
    calibrate_method: str = typer.Option("minmax", "--calibrate-method", help="minmax, entropy or percentile."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime threads (default: all cores)."),
) -> None:
    """Quantize an ONNX model to static int8 (QDQ); compare fp32 and int8 mIoU and speed."""
    from pixelwise.evaluation.quantize import QuantizationRejected, quantize_static_int8

    with friendly_errors():
        dataset = None
        if val is not None:
            from pixelwise.data.formats import detect_format, read_dataset

            dataset = read_dataset(val, val_format or detect_format(val))
        try:
            report = quantize_static_int8(
                model,
                out,
                calib,
                num_calib=num_calib,
                per_channel=per_channel,
                val_dataset=dataset,
                max_drop=max_drop,
                num_threads=threads,
                activation_type=activation_type,
                calibrate_method=calibrate_method,
                progress=True,
            )
        except QuantizationRejected as exc:
            typer.echo(exc.report.summary())
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(EXIT_REJECTED) from exc
    typer.echo(report.summary())

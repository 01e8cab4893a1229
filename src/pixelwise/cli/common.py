"""Helpers shared by CLI verbs: option parsing and friendly error exits."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
import yaml

from pixelwise.core.errors import PixelwiseError

T = TypeVar("T")


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict; values are parsed as YAML scalars/lists.

    Raises:
        typer.BadParameter: an item without ``=``.
    """
    options: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        options[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else ""
    return options


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print a Pixelwise error (or a KeyError listing valid names) and exit 2, without a traceback."""
    try:
        yield
    except (PixelwiseError, KeyError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(2)


def run_friendly(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``func`` inside :func:`friendly_errors`."""
    with friendly_errors():
        return func(*args, **kwargs)

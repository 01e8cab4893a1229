"""Report plots written to PNG: class balance, confusion matrix, training curves, histograms.

Each function draws one figure with Matplotlib's object API on the Agg canvas
(``matplotlib.figure.Figure``, never ``pyplot``), so it needs no display, changes no global
backend or figure registry, and is safe to call from worker threads. Matplotlib is
imported inside the functions. Every function returns the path it wrote (parent folders
are created).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixelwise.core.errors import ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from pixelwise.data.stats import DatasetStats

__all__ = ["plot_class_balance", "plot_confusion_matrix", "plot_curves", "plot_histogram"]

_MAX_ANNOTATED_CLASSES = 30


def _new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, detached from pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path, dpi: int) -> Path:
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.set_dpi(dpi)
    figure.set_facecolor("white")
    # One draw (the layout engine runs inside it); savefig would draw twice.
    figure.canvas.print_png(path)
    return path


# ------------------------------------------------------------------- class balance
_METRIC_LABELS = {
    "pixels": "pixels",
    "fraction": "share of labelled pixels",
    "images": "images containing the class",
    "instances": "instances",
}


def _balance_series(
    stats_or_counts: DatasetStats | Mapping[Any, float] | Sequence[float] | np.ndarray,
    class_names: Sequence[str] | Mapping[int, str] | None,
    metric: str,
) -> tuple[list[str], np.ndarray, list[tuple[int, int, int]] | None]:
    from pixelwise.data.stats import DatasetStats

    if isinstance(stats_or_counts, DatasetStats):
        stats = stats_or_counts
        table = {
            "pixels": stats.pixel_counts,
            "fraction": stats.pixel_fractions,
            "images": stats.image_counts,
            "instances": stats.instance_counts,
        }
        if metric not in table:
            raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(table)}")
        values = table[metric]
        names = [stats.class_names.get(i, f"id {i}") for i in stats.class_ids]
        colors = [stats.class_colors.get(i, (120, 120, 120)) for i in stats.class_ids]
        return names, np.array([float(values.get(i, 0)) for i in stats.class_ids]), colors

    def name_of(key: Any, position: int) -> str:
        if isinstance(key, str):
            return key
        if isinstance(class_names, Mapping):
            return str(class_names.get(key, key))
        if class_names is not None and isinstance(key, (int, np.integer)) and 0 <= key < len(class_names):
            return str(class_names[key])
        return str(key)

    if isinstance(stats_or_counts, Mapping):
        items = list(stats_or_counts.items())
        names = [name_of(k, i) for i, (k, _) in enumerate(items)]
        values = np.array([float(v) for _, v in items], dtype=np.float64)
    else:
        values = np.asarray(stats_or_counts, dtype=np.float64).reshape(-1)
        names = [name_of(i, i) for i in range(len(values))]
    return names, values, None


def plot_class_balance(
    stats_or_counts: DatasetStats | Mapping[Any, float] | Sequence[float] | np.ndarray,
    class_names: Sequence[str] | Mapping[int, str] | None,
    path: str | Path,
    *,
    metric: str = "pixels",
    log_scale: bool | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Horizontal bar chart of how much of each class a dataset holds.

    Args:
        stats_or_counts: a :class:`~pixelwise.data.stats.DatasetStats` (names and colours
            are taken from it; ``class_names`` may be None), a mapping ``name or id ->
            count``, or a sequence of counts indexed by class id.
        class_names: names by position / id (sequence) or ``id -> name`` mapping, used
            for integer keys; None to label bars with the keys.
        path: output ``.png``.
        metric: with stats: ``"pixels"``, ``"fraction"``, ``"images"`` or ``"instances"``.
        log_scale: logarithmic value axis; default when the nonzero counts span more
            than three decades.
        title: figure title (default names the metric).
        dpi: resolution.

    Returns:
        ``path``.

    Example:
        >>> plot_class_balance({"road": 900, "car": 80}, None, "balance.png")  # doctest: +SKIP
    """
    names, values, colors = _balance_series(stats_or_counts, class_names, metric)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    count = len(values)
    figure = _new_figure(7.5, max(2.5, 0.3 * count + 1.2))
    axes = figure.add_subplot()
    if count == 0:
        axes.text(0.5, 0.5, "no classes", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return _save(figure, path, dpi)
    positions = np.arange(count)
    face = [tuple(c / 255 for c in rgb) for rgb in colors] if colors else "tab:blue"
    axes.barh(positions, values, color=face, edgecolor="black", linewidth=0.6)
    axes.set_yticks(positions, labels=names, fontsize=9 if count <= 40 else 6)
    axes.invert_yaxis()
    nonzero = values[values > 0]
    if log_scale is None:
        log_scale = bool(nonzero.size and nonzero.max() / nonzero.min() > 1000)
    if log_scale and nonzero.size:
        axes.set_xscale("log")
        axes.set_xlim(nonzero.min() / 2, nonzero.max() * 8)
    else:
        axes.set_xlim(0, (values.max() or 1.0) * 1.18)
    total = values.sum()
    for position, value in zip(positions, values):
        if metric == "fraction":
            text = f"{100 * value:.2f}%"
        else:
            percent = 100 * value / total if total > 0 else 0.0
            share = "" if total <= 0 else (" (<0.1%)" if 0 < percent < 0.1 else f" ({percent:.1f}%)")
            text = f"{value:,.0f}{share}"
        anchor = value if value > 0 else (nonzero.min() / 2 if log_scale and nonzero.size else 0)
        axes.text(anchor, position, " " + text, va="center", ha="left", fontsize=8)
    axes.set_xlabel(_METRIC_LABELS.get(metric, metric) if colors is not None else "count")
    axes.set_title(title or f"Class balance ({_METRIC_LABELS.get(metric, metric) if colors is not None else 'count'})")
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path, dpi)


# ---------------------------------------------------------------- confusion matrix
def _format_cell(value: float, normalized: bool) -> str:
    if normalized:
        return "1.0" if value >= 0.995 else f"{value:.2f}".lstrip("0")
    return f"{value:.0f}" if value < 1e5 else f"{value:.1e}"


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str] | None,
    path: str | Path,
    normalize: bool = True,
    *,
    title: str | None = None,
    cmap: str = "Blues",
    dpi: int = 100,
) -> Path:
    """Heat map of a confusion matrix, rows = true class, columns = predicted class.

    With ``normalize`` each row is divided by its sum (a row of zeros, a class absent from
    the ground truth, stays zero instead of NaN) and the row totals are shown as ``n=``
    next to the class names. Cells are annotated up to 30 classes; beyond 12 classes
    cells that would print as zero are left blank so the others stand out.

    Args:
        matrix: ``(K, K)`` counts (any real dtype), ``matrix[t, p]`` = pixels (or objects)
            of true class ``t`` predicted as ``p``.
        class_names: K names (None for ``0..K-1``).
        path: output ``.png``.
        normalize: show per-row fractions instead of counts.
        title: figure title.
        cmap: Matplotlib colour map name.
        dpi: resolution.

    Returns:
        ``path``.

    Raises:
        ShapeError: the matrix is not square, or ``class_names`` has another length.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ShapeError(f"confusion matrix must be (K, K), got shape {matrix.shape}")
    k = matrix.shape[0]
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ShapeError(f"{len(names)} class names for a {k}x{k} confusion matrix")
    matrix = np.nan_to_num(matrix, nan=0.0)
    totals = matrix.sum(axis=1)
    if normalize:
        shown = np.divide(matrix, totals[:, None], out=np.zeros_like(matrix), where=totals[:, None] > 0)
        vmax = 1.0
        row_labels = [f"{n} (n={t:,.0f})" for n, t in zip(names, totals)]
    else:
        shown = matrix
        vmax = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
        row_labels = names
    side = max(4.5, 0.42 * k + 3.0)
    figure = _new_figure(side + 1.2, side)
    axes = figure.add_subplot()
    image = axes.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="auto")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02, label="fraction of row" if normalize else "count")
    tick_size = 9 if k <= 15 else 7
    axes.set_xticks(np.arange(k), labels=names, rotation=90, fontsize=tick_size)
    axes.set_yticks(np.arange(k), labels=row_labels, fontsize=tick_size)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))
    if 0 < k <= _MAX_ANNOTATED_CLASSES:
        # Lay the figure out once without the cell texts, then freeze it: the layout
        # engine would otherwise measure hundreds of texts on every pass.
        figure.draw_without_rendering()
        figure.set_layout_engine("none")
        font = max(7.0, min(10.0, 260.0 / k))
        # beyond 12 classes, blank the cells that would print as 0 so the others stand out
        least = 0.005 if normalize else 0.5
        for t, p in zip(*np.nonzero(shown >= least) if k > 12 else np.indices((k, k)).reshape(2, -1)):
            value = shown[t, p]
            color = "white" if value > 0.55 * vmax else "black"
            axes.text(p, t, _format_cell(value, normalize), ha="center", va="center", fontsize=font, color=color)
    return _save(figure, path, dpi)


# -------------------------------------------------------------------------- curves
def plot_curves(
    history: Mapping[str, Sequence[float | None]],
    path: str | Path,
    *,
    xlabel: str = "epoch",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Training curves: one line per series, losses and other metrics in separate panels.

    Series whose name contains ``"loss"`` share the first panel, a learning rate (``lr``,
    ``learning_rate``, ``*_lr``) gets its own panel, and all others (mIoU, accuracy...)
    share another; panels without series are left out. Point ``i`` of a series is
    plotted at x = ``i + 1``; ``None`` / NaN values are skipped and the line joins the
    remaining points (for example validation run every few epochs).

    Args:
        history: ``name -> values per epoch``.
        path: output ``.png``.
        xlabel: label of the x axis.
        title: figure title.
        dpi: resolution.

    Returns:
        ``path``.

    Raises:
        ValueError: empty history.

    Example:
        >>> plot_curves({"train_loss": [1.0, 0.6], "val_miou": [0.3, 0.5]}, "curves.png")  # doctest: +SKIP
    """
    if not history:
        raise ValueError("plot_curves needs at least one series in history")
    series = {
        str(name): np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        for name, values in history.items()
    }

    def group_of(name: str) -> str:
        lowered = name.lower()
        if "loss" in lowered:
            return "loss"
        if lowered in ("lr", "learning_rate") or lowered.endswith(("_lr", "/lr")):
            return "learning rate"
        return "value"

    groups = [(label, {n: v for n, v in series.items() if group_of(n) == label}) for label in ("loss", "value", "learning rate")]
    groups = [(label, members) for label, members in groups if members]
    figure = _new_figure(5.5 * len(groups) + 0.5, 4.0)
    for index, (label, members) in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), index)
        for name, values in members.items():
            x = np.arange(1, len(values) + 1)
            finite = np.isfinite(values)  # gaps are bridged: a series logged every few epochs stays a line
            marker = "o" if finite.sum() <= 30 or finite.sum() < len(values) else None
            axes.plot(x[finite], values[finite], marker=marker, markersize=3, linewidth=1.5, label=name)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if any(np.isfinite(v).any() for v in members.values()):
            axes.legend(fontsize=8)
        longest = max(len(v) for v in members.values())
        if 0 < longest <= 20:
            axes.set_xticks(np.arange(1, longest + 1))
    if title:
        figure.suptitle(title)
    return _save(figure, path, dpi)


# ----------------------------------------------------------------------- histogram
def plot_histogram(
    values: Sequence[float] | np.ndarray,
    path: str | Path,
    xlabel: str = "value",
    *,
    bins: int | str = "auto",
    title: str | None = None,
    log_y: bool = False,
    dpi: int = 100,
) -> Path:
    """Histogram of values (object areas, image sizes, scores...); non-finite values are dropped.

    Args:
        values: any shape, flattened.
        path: output ``.png``.
        xlabel: what the values are.
        bins: a count or a NumPy rule name (``"auto"``, ``"fd"``...).
        title: figure title (default shows count, mean and median).
        log_y: logarithmic count axis.
        dpi: resolution.

    Returns:
        ``path``.
    """
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    data = data[np.isfinite(data)]
    figure = _new_figure(6.0, 4.0)
    axes = figure.add_subplot()
    if data.size == 0:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    else:
        if isinstance(bins, str):
            edges = np.histogram_bin_edges(data, bins=bins)
            if len(edges) > 201:  # "auto" can explode on heavy-tailed data
                edges = np.histogram_bin_edges(data, bins=200)
        else:
            edges = int(bins)
        axes.hist(data, bins=edges, color="tab:blue", edgecolor="white", linewidth=0.4, log=log_y)
        axes.set_xlabel(xlabel)
        axes.set_ylabel("count")
        axes.grid(alpha=0.3)
    stats = f"n={data.size:,}" + (f", mean={data.mean():.4g}, median={np.median(data):.4g}" if data.size else "")
    axes.set_title(f"{title}\n{stats}" if title else f"{xlabel} ({stats})", fontsize=10)
    return _save(figure, path, dpi)

"""Layer 2: stateless drawing functions (overlays, palettes, legends, report plots).

Images are ``(H, W, 3) uint8`` RGB; label maps ``(H, W)`` integer class ids. Plots use
Matplotlib's Agg canvas (imported only when a plot is drawn) and are written to PNG.
"""

from pixelwise.viz.overlay import (
    colorize,
    contact_sheet,
    draw_legend,
    label_boundaries,
    overlay,
    overlay_instances,
    save_png,
)
from pixelwise.viz.palette import as_palette, instance_palette, text_color_for
from pixelwise.viz.plots import plot_class_balance, plot_confusion_matrix, plot_curves, plot_histogram

__all__ = [
    "as_palette",
    "colorize",
    "contact_sheet",
    "draw_legend",
    "instance_palette",
    "label_boundaries",
    "overlay",
    "overlay_instances",
    "plot_class_balance",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_histogram",
    "save_png",
    "text_color_for",
]

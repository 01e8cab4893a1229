"""What a segmenter returns for one image, independent of the backend that produced it.

A :class:`SemanticResult` holds the image, its ``(H, W) int32`` label map at the original
resolution and the class taxonomy; class probabilities are restored to full resolution
only when asked for (they are ``K`` times the size of the label map). Regions, per-class
measurements, overlays and files are derived from these on demand.

Example:
    >>> import numpy as np
    >>> from pixelwise.core.taxonomy import Taxonomy
    >>> tax = Taxonomy.from_names(["background", "cell"])
    >>> labels = np.zeros((8, 8), np.int32); labels[2:5, 2:5] = 1
    >>> result = SemanticResult(np.zeros((8, 8, 3), np.uint8), labels, tax)
    >>> [(r.class_name, r.area) for r in result.regions]
    [('cell', 9)]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.errors import ShapeError
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.image_io import write_image, write_label_png
from pixelwise.postprocess.regions import ClassMeasurement, Region, measure_classes, semantic_regions
from pixelwise.viz.overlay import colorize, overlay

__all__ = ["SemanticResult"]

ProbabilitySource = Callable[[], np.ndarray]


class SemanticResult:
    """Semantic segmentation of one image.

    Args:
        image: ``(H, W, 3) uint8`` RGB image the prediction belongs to.
        labels: ``(H, W)`` integer class ids (stored as ``int32``); channel ``k`` of the
            model is class id ``k`` of ``taxonomy``.
        taxonomy: the classes (names, colours, ignore index).
        probabilities: ``(K, H, W) float32`` class probabilities, or a zero-argument
            callable returning them (evaluated once, on first access of
            :attr:`probabilities`), or None when not kept.
        source: where the image came from (file path), if anywhere.
        background_id: class left out of :attr:`regions` and overlays (0 by convention).

    Raises:
        ShapeError: wrong shapes or dtypes, or labels and image of different sizes.
    """

    def __init__(
        self,
        image: np.ndarray,
        labels: np.ndarray,
        taxonomy: Taxonomy,
        probabilities: np.ndarray | ProbabilitySource | None = None,
        source: str | Path | None = None,
        background_id: int = 0,
    ) -> None:
        image = np.asarray(image)
        labels = np.asarray(labels)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
        if labels.ndim != 2 or labels.dtype.kind not in "iu":
            raise ShapeError(f"labels must be (H, W) integers, got shape {labels.shape} dtype {labels.dtype}")
        if labels.shape != image.shape[:2]:
            raise ShapeError(
                f"labels are {labels.shape[0]}x{labels.shape[1]} (HxW) but the image is "
                f"{image.shape[0]}x{image.shape[1]}"
            )
        self.image = image
        self.labels = labels.astype(np.int32, copy=False)
        self.taxonomy = taxonomy
        self.source = str(source) if source is not None else None
        self.background_id = int(background_id)
        self._probability_source: ProbabilitySource | None = None
        self._probabilities: np.ndarray | None = None
        if callable(probabilities):
            self._probability_source = probabilities
        elif probabilities is not None:
            self._probabilities = self._check_probabilities(np.asarray(probabilities))
        self._regions: list[Region] | None = None

    # ------------------------------------------------------------------ basics
    def _check_probabilities(self, probs: np.ndarray) -> np.ndarray:
        if probs.ndim != 3 or probs.shape[1:] != self.labels.shape:
            raise ShapeError(
                f"probabilities must be (K, {self.height}, {self.width}), got shape {probs.shape}"
            )
        return probs.astype(np.float32, copy=False)

    @property
    def height(self) -> int:
        """Image height H in pixels."""
        return int(self.labels.shape[0])

    @property
    def width(self) -> int:
        """Image width W in pixels."""
        return int(self.labels.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (self.height, self.width)

    @property
    def ignore_index(self) -> int:
        """The taxonomy's void label."""
        return int(self.taxonomy.ignore_index)

    @property
    def probabilities(self) -> np.ndarray | None:
        """``(K, H, W) float32`` class probabilities at the original size, or None if not kept.

        Restored from the network resolution on first access and cached.
        """
        if self._probabilities is None and self._probability_source is not None:
            self._probabilities = self._check_probabilities(np.asarray(self._probability_source()))
            self._probability_source = None
        return self._probabilities

    def __repr__(self) -> str:
        present = [int(v) for v in np.unique(self.labels)]
        return (
            f"SemanticResult(shape={self.height}x{self.width}, classes_present={present}, "
            f"source={self.source!r})"
        )

    # --------------------------------------------------------------- derived
    @property
    def regions(self) -> list[Region]:
        """One :class:`~pixelwise.postprocess.Region` per 8-connected component of each class.

        The background class and void pixels give no regions. Computed once and cached.
        """
        if self._regions is None:
            self._regions = semantic_regions(
                self.labels, self.taxonomy, skip_ids=(self.background_id,), ignore_index=self.ignore_index
            )
        return self._regions

    def measurements(self) -> list[ClassMeasurement]:
        """Per class of the taxonomy: pixel area, fraction of the labelled area, region count.

        Returns:
            One :class:`~pixelwise.postprocess.ClassMeasurement` per taxonomy class, in
            taxonomy order (background included, with a region count of 0).
        """
        return measure_classes(self.labels, self.regions, self.taxonomy, ignore_index=self.ignore_index)

    def colorized(self) -> np.ndarray:
        """The label map in class colours: ``(H, W, 3) uint8``."""
        return colorize(self.labels, self.taxonomy)

    def overlay(self, alpha: float = 0.5, outline: bool = False) -> np.ndarray:
        """Class colours blended over the image (background and void left as they are).

        Args:
            alpha: weight of the class colour, 0..1.
            outline: draw region borders opaquely.

        Returns:
            ``(H, W, 3) uint8`` RGB.
        """
        return overlay(
            self.image,
            self.labels,
            self.taxonomy,
            alpha=alpha,
            outline=outline,
            ignore_index=self.ignore_index,
            skip_ids=(self.background_id,),
        )

    def to_dict(self, include_regions: bool = True) -> dict[str, Any]:
        """JSON-friendly summary.

        Args:
            include_regions: add every region (polygons, box, area, perimeter, centroid).

        Returns:
            ``{"source", "height", "width", "classes": [...], "region_count", "regions": [...]}``.
            Polygons are in pixel-edge coordinates (see :mod:`pixelwise.core.masks`).
        """
        out: dict[str, Any] = {
            "source": self.source,
            "height": self.height,
            "width": self.width,
            "classes": [asdict(m) for m in self.measurements()],
            "region_count": len(self.regions),
        }
        if include_regions:
            out["regions"] = [r.to_dict() for r in self.regions]
        return out

    def save(
        self,
        out_dir: str | Path,
        stem: str,
        *,
        overlay: bool = True,
        json_file: bool = True,
        alpha: float = 0.5,
    ) -> dict[str, Path]:
        """Write ``<stem>_labels.png``, ``<stem>_overlay.png`` and ``<stem>.json`` to ``out_dir``.

        The label PNG is a palette PNG in the taxonomy's colours whose pixel values are the
        class ids (a 16-bit gray PNG without colours when ids exceed 255).

        Args:
            out_dir: folder (created if missing).
            stem: file name stem, e.g. the image's stem.
            overlay: also write the colour overlay.
            json_file: also write :meth:`to_dict` as JSON.
            alpha: overlay opacity.

        Returns:
            ``{"labels": path, "overlay": path, "json": path}`` for the files written.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        labels_path = out_dir / f"{stem}_labels.png"
        high = int(self.labels.max()) if self.labels.size else 0
        palette = self.taxonomy.palette(256) if high < 256 else None
        write_label_png(labels_path, self.labels, palette=palette)
        written["labels"] = labels_path
        if overlay:
            overlay_path = out_dir / f"{stem}_overlay.png"
            write_image(overlay_path, self.overlay(alpha=alpha))
            written["overlay"] = overlay_path
        if json_file:
            json_path = out_dir / f"{stem}.json"
            json_path.write_text(json.dumps(self.to_dict(), indent=1))
            written["json"] = json_path
        return written

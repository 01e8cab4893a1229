"""The backend seam and the one pipeline shared by every backend.

A backend (:class:`Predictor`) does exactly one thing: map a normalised batch
``(B, 3, h, w) float32`` to class scores ``(B, K, h, w) float32``. Everything around it,
reading the image, preprocessing (resize / letterbox / pad and normalisation, from the
checkpoint's :class:`~pixelwise.transforms.preprocess.PreprocessConfig`), softmax,
restoring the original size, thresholding and label cleanup, lives in
:class:`Segmenter`, so the PyTorch, ONNX Runtime and LiteRT backends give the same
answers for the same scores.

Example:
    >>> import pixelwise.api  # doctest: +SKIP
    >>> segmenter = pixelwise.api.load("best.pt")  # doctest: +SKIP
    >>> result = segmenter.predict("cells.png", min_region=20)  # doctest: +SKIP
    >>> result.labels.shape, len(result.regions)  # doctest: +SKIP
    ((512, 512), 118)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from pixelwise.core.errors import PixelwiseError, ShapeError
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.image_io import read_image
from pixelwise.postprocess.cleanup import fill_holes as fill_label_holes
from pixelwise.postprocess.cleanup import remove_small_regions, smooth_labels
from pixelwise.postprocess.labels import scores_to_labels, softmax
from pixelwise.runtime.results import SemanticResult
from pixelwise.transforms.preprocess import (
    Geometry,
    PreprocessConfig,
    preprocess_image,
    restore_probabilities,
)

__all__ = ["BackendOutputError", "ImageInput", "Predictor", "Segmenter", "SUPPORTED_TASKS"]

#: Tasks the shared pipeline implements (instance and panoptic arrive with their models).
SUPPORTED_TASKS = ("semantic",)

ImageInput = str | Path | np.ndarray


class BackendOutputError(PixelwiseError, RuntimeError):
    """A backend returned scores of the wrong shape or dtype for its input."""


@runtime_checkable
class Predictor(Protocol):
    """A backend: one forward pass on an already preprocessed batch.

    Attributes:
        num_classes: K, the number of score channels (channel ``k`` = class id ``k``).
        name: short backend name for logs and reports (``"torch"``, ``"onnxruntime"``).
    """

    num_classes: int
    name: str

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        """Class scores of a batch.

        Args:
            batch: ``(B, 3, h, w) float32`` normalised images (NCHW, RGB order).

        Returns:
            ``(B, K, h, w) float32`` logits (not softmaxed), same ``h, w`` as the input.
        """
        ...


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ShapeError(
            f"image must be uint8, got {image.dtype} "
            "(read files with pixelwise.data.image_io.read_image, which stretches deeper images)"
        )
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ShapeError(f"image must be (H, W, 3) uint8 RGB or (H, W) uint8 gray, got shape {image.shape}")


class Segmenter:
    """Image in, :class:`SemanticResult` out: preprocessing, a backend, post-processing.

    Args:
        backend: any :class:`Predictor`.
        taxonomy: the classes the backend predicts (score channel ``k`` = class id ``k``).
        preprocess: how images become backend inputs (saved with the model).
        task: only ``"semantic"`` for now.
        batch_size: images per backend call in :meth:`predict_batch`.
        background_id: class used as background by thresholds, hole filling and regions.

    Raises:
        ValueError: unsupported task, or a taxonomy with class ids the backend cannot output.

    Example:
        >>> from pixelwise.runtime import Segmenter, TorchBackend  # doctest: +SKIP
        >>> seg = Segmenter(TorchBackend(model), taxonomy, PreprocessConfig())  # doctest: +SKIP
        >>> seg.predict(np.zeros((50, 70, 3), np.uint8)).labels.shape  # doctest: +SKIP
        (50, 70)
    """

    def __init__(
        self,
        backend: Predictor,
        taxonomy: Taxonomy,
        preprocess: PreprocessConfig,
        task: str = "semantic",
        *,
        batch_size: int = 4,
        background_id: int = 0,
    ) -> None:
        if task not in SUPPORTED_TASKS:
            raise ValueError(f"task {task!r} is not supported yet; supported tasks: {', '.join(SUPPORTED_TASKS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        num_classes = int(backend.num_classes)
        too_large = [i for i in taxonomy.ids if i >= num_classes]
        if too_large:
            raise ValueError(
                f"taxonomy has class ids {too_large} but the backend outputs only {num_classes} channels "
                "(channel k is class id k)"
            )
        self.backend = backend
        self.taxonomy = taxonomy
        self.preprocess = preprocess
        self.task = task
        self.batch_size = int(batch_size)
        self.background_id = int(background_id)

    def __repr__(self) -> str:
        return (
            f"Segmenter(backend={getattr(self.backend, 'name', type(self.backend).__name__)!r}, "
            f"classes={self.taxonomy.names}, task={self.task!r})"
        )

    @property
    def num_classes(self) -> int:
        """K, the number of score channels."""
        return int(self.backend.num_classes)

    @property
    def is_binary(self) -> bool:
        """True for two-class models, where :meth:`predict` accepts a ``threshold``."""
        return self.num_classes == 2

    # ----------------------------------------------------------------- steps
    @staticmethod
    def load_image(image: ImageInput) -> tuple[np.ndarray, str | None]:
        """``(H, W, 3) uint8`` RGB and its source path (None for arrays).

        Raises:
            ImageReadError: the file cannot be read.
            ShapeError: an array that is not ``(H, W, 3)`` or ``(H, W)`` uint8.
        """
        if isinstance(image, (str, Path)):
            return read_image(image), str(image)
        return _as_rgb(np.asarray(image)), None

    def network_probabilities(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, Geometry]]:
        """Preprocess, run the backend, softmax: probabilities at network resolution.

        Images whose network inputs have the same size share a backend call (up to
        ``batch_size`` at a time).

        Args:
            images: ``(H, W, 3) uint8`` RGB images.

        Returns:
            Per image, ``(K, h', w') float32`` probabilities and the
            :class:`~pixelwise.transforms.preprocess.Geometry` that maps them back.

        Raises:
            BackendOutputError: the backend returned the wrong shape.
        """
        inputs = [preprocess_image(_as_rgb(image), self.preprocess) for image in images]
        out: list[tuple[np.ndarray, Geometry] | None] = [None] * len(inputs)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, (chw, _) in enumerate(inputs):
            by_size.setdefault((int(chw.shape[1]), int(chw.shape[2])), []).append(index)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = np.stack([inputs[i][0] for i in chunk]).astype(np.float32, copy=False)
                scores = self._run_backend(batch)
                for row, index in enumerate(chunk):
                    out[index] = (softmax(scores[row], axis=0), inputs[index][1])
        return [item for item in out if item is not None]

    def _run_backend(self, batch: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.backend.predict_scores(batch))
        expected = (batch.shape[0], self.num_classes, batch.shape[2], batch.shape[3])
        if scores.shape != expected:
            raise BackendOutputError(
                f"backend {getattr(self.backend, 'name', '?')!r} returned scores {scores.shape} "
                f"for input {batch.shape}; expected {expected} (B, K, h, w)"
            )
        return scores.astype(np.float32, copy=False)

    def labels_from_probabilities(
        self,
        probabilities: np.ndarray,
        threshold: float | None = None,
        min_region: int = 0,
        fill_holes: bool = False,
        smooth: int = 0,
    ) -> np.ndarray:
        """Full-resolution probabilities to a cleaned label map.

        Order: argmax (or ``threshold`` on class 1 for binary models), majority smoothing
        of radius ``smooth``, removal of regions smaller than ``min_region`` pixels (merged
        into their surroundings), hole filling of every non-background class.

        Args:
            probabilities: ``(K, H, W) float32``.
            threshold: binary models only: class 1 where its probability >= threshold.
            min_region: smallest region kept, in pixels (0 or 1 keeps all).
            fill_holes: fill enclosed holes of non-background classes.
            smooth: radius of the majority filter (0 = off).

        Returns:
            ``(H, W) int32`` class ids.

        Raises:
            ValueError: ``threshold`` on a model that is not binary, or out of [0, 1];
                negative ``min_region`` or ``smooth``.
        """
        if threshold is not None and not self.is_binary:
            raise ValueError(
                f"threshold applies to binary (2-class) models; this model has {self.num_classes} classes"
            )
        labels = scores_to_labels(probabilities, threshold=threshold, foreground_id=1)
        return self.clean_labels(labels, min_region=min_region, fill_holes=fill_holes, smooth=smooth)

    def clean_labels(self, labels: np.ndarray, min_region: int = 0, fill_holes: bool = False, smooth: int = 0) -> np.ndarray:
        """Cleanup of an ``(H, W)`` label map, in order: smoothing, small-region removal, hole filling.

        Returns:
            ``(H, W) int32`` labels.
        """
        if min_region < 0 or smooth < 0:
            raise ValueError(f"min_region and smooth must be >= 0, got {min_region} and {smooth}")
        ignore = self.taxonomy.ignore_index
        if smooth > 0:
            labels = smooth_labels(labels, radius=int(smooth), ignore_index=ignore)
        if min_region > 1:
            labels = remove_small_regions(labels, int(min_region), ignore_index=ignore)
        if fill_holes:
            targets = [i for i in self.taxonomy.ids if i != self.background_id]
            labels = fill_label_holes(labels, targets, ignore_index=ignore)
        return labels.astype(np.int32, copy=False)

    # ------------------------------------------------------------------- API
    def predict(
        self,
        image: ImageInput,
        threshold: float | None = None,
        min_region: int = 0,
        fill_holes: bool = False,
        smooth: int = 0,
        keep_probabilities: bool = True,
    ) -> SemanticResult:
        """Segment one image at its original resolution.

        Args:
            image: a file path, or an ``(H, W, 3) uint8`` RGB (or ``(H, W) uint8``) array.
            threshold: binary models only: probability threshold on class 1 (None: argmax).
            min_region: regions smaller than this many pixels are merged into their
                surroundings.
            fill_holes: fill enclosed holes of non-background classes.
            smooth: majority-filter radius in pixels (0 = off).
            keep_probabilities: keep a lazy handle on the probabilities (restored to
                ``(K, H, W)`` on first access of ``result.probabilities``).

        Returns:
            A :class:`SemanticResult` with ``labels`` ``(H, W) int32``.

        Raises:
            ImageReadError: unreadable file.
            ShapeError: an array of the wrong shape or dtype.
            ValueError: see :meth:`labels_from_probabilities`.
        """
        return self.predict_batch(
            [image],
            threshold=threshold,
            min_region=min_region,
            fill_holes=fill_holes,
            smooth=smooth,
            keep_probabilities=keep_probabilities,
        )[0]

    def predict_batch(
        self,
        images: Iterable[ImageInput],
        threshold: float | None = None,
        min_region: int = 0,
        fill_holes: bool = False,
        smooth: int = 0,
        keep_probabilities: bool = True,
    ) -> list[SemanticResult]:
        """Segment several images; same-size network inputs share backend calls.

        Args:
            images: paths or arrays, as for :meth:`predict` (sizes may differ).
            threshold, min_region, fill_holes, smooth, keep_probabilities: as for
                :meth:`predict`.

        Returns:
            One :class:`SemanticResult` per image, in order.

        Raises:
            ImageReadError: one of the files cannot be read (nothing is returned; callers
                that must survive bad files call :meth:`predict` per image).
        """
        loaded = [self.load_image(image) for image in images]
        if not loaded:
            return []
        if threshold is not None and not self.is_binary:
            raise ValueError(
                f"threshold applies to binary (2-class) models; this model has {self.num_classes} classes"
            )
        results = []
        network = self.network_probabilities([rgb for rgb, _ in loaded])
        for (rgb, source), (small, geometry) in zip(loaded, network):
            full = restore_probabilities(small, geometry)
            labels = self.labels_from_probabilities(full, threshold, min_region, fill_holes, smooth)
            probabilities = None
            if keep_probabilities:
                probabilities = _LazyRestore(small, geometry)
            del full
            results.append(
                SemanticResult(rgb, labels, self.taxonomy, probabilities, source=source, background_id=self.background_id)
            )
        return results


class _LazyRestore:
    """Zero-argument callable restoring network-resolution probabilities on demand."""

    __slots__ = ("geometry", "small")

    def __init__(self, small: np.ndarray, geometry: Geometry) -> None:
        self.small = small
        self.geometry = geometry

    def __call__(self) -> np.ndarray:
        return restore_probabilities(self.small, self.geometry)

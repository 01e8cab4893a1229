"""Network scores to label maps (NumPy; shared by every backend)."""

from __future__ import annotations

import numpy as np

from pixelwise.core.errors import ShapeError


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numerically stable softmax of ``(K, H, W)`` (or any shape along ``axis``) float scores."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted.astype(np.float32))
    return exp / exp.sum(axis=axis, keepdims=True)


def scores_to_labels(scores: np.ndarray, threshold: float | None = None, foreground_id: int = 1) -> np.ndarray:
    """Pick a class per pixel.

    Args:
        scores: ``(K, H, W)`` logits or probabilities (argmax is the same for both).
        threshold: for binary tasks, a probability threshold on class ``foreground_id``
            (``scores`` must then be probabilities, or ``(1, H, W)`` / ``(H, W)`` foreground
            probability); None takes the argmax.
        foreground_id: class id given to pixels above the threshold (others get 0).

    Returns:
        ``(H, W) int32`` class ids.
    """
    scores = np.asarray(scores)
    if scores.ndim == 2:
        scores = scores[None]
    if scores.ndim != 3:
        raise ShapeError(f"scores must be (K, H, W), got shape {scores.shape}")
    if threshold is None:
        if scores.shape[0] == 1:
            raise ShapeError("one-channel scores need a threshold (binary foreground probability)")
        return scores.argmax(axis=0).astype(np.int32)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    foreground = scores[0] if scores.shape[0] == 1 else scores[foreground_id]
    return np.where(foreground >= threshold, foreground_id, 0).astype(np.int32)

"""Built-in pretrained models shipped inside the package, loadable by name.

=================== ================================================ ===========
name                model                                            input
=================== ================================================ ===========
``person``          MediaPipe selfie segmentation (person vs         256x256
                    background), Apache-2.0, ~250 KB
``person-landscape`` the landscape variant of the same model         144x256
=================== ================================================ ===========

The ``.tflite`` files live in ``pixelwise/assets/person/`` with their ``LICENSE`` and
``NOTICE`` and run on the LiteRT backend. They take RGB scaled to ``[0, 1]``, so their
:class:`~pixelwise.transforms.preprocess.PreprocessConfig` has ``mean=(0, 0, 0)`` and
``std=(1, 1, 1)`` and the stretch-to-size ``"resize"`` policy (as MediaPipe does). The
output is a person probability ``p``; the segmenter sees two classes (``background``
stuff, ``person`` thing) with probabilities ``[1 - p, p]``, so the default argmax labels a
pixel person when ``p > 0.5`` (pass ``threshold=`` to :meth:`Segmenter.predict` for
another cut-off).

Example:
    >>> from pixelwise.runtime.builtin import load_person  # doctest: +SKIP
    >>> result = load_person().predict("astronaut.png")  # doctest: +SKIP
    >>> result.labels.mean() > 0.1  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.runtime.predictor import Segmenter
from pixelwise.transforms.preprocess import PreprocessConfig

__all__ = [
    "BUILTIN_MODELS",
    "PERSON_TAXONOMY",
    "asset_bytes",
    "asset_path",
    "is_builtin",
    "list_builtin_models",
    "load_builtin",
    "load_person",
    "person_preprocess",
]

#: Classes of the person models: channel 0 background, channel 1 person.
PERSON_TAXONOMY = Taxonomy(
    (
        ClassInfo(0, "background", (0, 0, 0), is_thing=False),
        ClassInfo(1, "person", (220, 20, 60), is_thing=True),
    )
)

_PERSON_FILES = {False: "selfie_segmentation.tflite", True: "selfie_segmentation_landscape.tflite"}
_PERSON_SIZES = {False: (256, 256), True: (144, 256)}


def asset_path(*parts: str) -> Path:
    """Path of a packaged asset, e.g. ``asset_path("person", "NOTICE")``.

    Raises:
        FileNotFoundError: the asset is not installed (a broken or partial install).
    """
    resource = resources.files("pixelwise").joinpath("assets", *parts)
    if not resource.is_file():
        raise FileNotFoundError(
            f"packaged asset assets/{'/'.join(parts)} is missing from the pixelwise install; "
            "reinstall pixelwise (package data assets/**/*)"
        )
    return Path(str(resource))


def asset_bytes(*parts: str) -> bytes:
    """Bytes of a packaged asset (works for zipped installs too).

    Raises:
        FileNotFoundError: the asset is not installed.
    """
    resource = resources.files("pixelwise").joinpath("assets", *parts)
    if not resource.is_file():
        raise FileNotFoundError(
            f"packaged asset assets/{'/'.join(parts)} is missing from the pixelwise install; "
            "reinstall pixelwise (package data assets/**/*)"
        )
    return resource.read_bytes()


def person_preprocess(landscape: bool = False) -> PreprocessConfig:
    """Preprocessing of the person models: resize to 256x256 (landscape 144x256), RGB / 255."""
    return PreprocessConfig(
        input_size=_PERSON_SIZES[bool(landscape)],
        resize_policy="resize",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )


def load_person(landscape: bool = False, num_threads: int | None = 2, **segmenter_options: Any) -> Segmenter:
    """The built-in MediaPipe person segmenter (LiteRT backend).

    Args:
        landscape: use the 144x256 landscape model (faster; for wide frames).
        num_threads: LiteRT interpreter threads (None: 2).
        **segmenter_options: ``batch_size`` etc. for the Segmenter.

    Returns:
        A :class:`Segmenter` with classes ``background`` (0) and ``person`` (1).

    Example:
        >>> seg = load_person()  # doctest: +SKIP
        >>> seg.predict("astronaut.png", threshold=0.6).labels.max()  # doctest: +SKIP
        1
    """
    from pixelwise.runtime.litert_backend import LiteRTBackend

    name = _PERSON_FILES[bool(landscape)]
    backend = LiteRTBackend(
        Path("pixelwise/assets/person") / name,
        num_threads=num_threads or 2,
        output_kind="probability",
        model_content=asset_bytes("person", name),
    )
    return Segmenter(backend, PERSON_TAXONOMY, person_preprocess(landscape), **segmenter_options)


#: Name -> loader ``(num_threads=..., **segmenter_options) -> Segmenter``.
BUILTIN_MODELS: dict[str, Callable[..., Segmenter]] = {
    "person": lambda num_threads=None, **options: load_person(False, num_threads, **options),
    "person-landscape": lambda num_threads=None, **options: load_person(True, num_threads, **options),
}


def list_builtin_models() -> list[str]:
    """Names accepted by :func:`load_builtin` (and ``pixelwise.load``)."""
    return sorted(BUILTIN_MODELS)


def is_builtin(name: str | Path) -> bool:
    """True when ``name`` is a built-in model name (case-insensitive)."""
    return isinstance(name, str) and name.strip().lower() in BUILTIN_MODELS


def load_builtin(name: str, num_threads: int | None = None, **segmenter_options: Any) -> Segmenter:
    """Load a built-in model by name.

    Raises:
        KeyError: unknown name (the message lists the valid names).
    """
    key = name.strip().lower()
    if key not in BUILTIN_MODELS:
        raise KeyError(f"unknown built-in model {name!r}; available: {', '.join(list_builtin_models())}")
    return BUILTIN_MODELS[key](num_threads=num_threads, **segmenter_options)

"""Pixelwise: an open segmentation system for visual data analysis.

Layers (lowest first): core -> data -> transforms/postprocess/viz -> models/losses/metrics
-> runtime -> training/evaluation -> cli. See README.md.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy top-level API: ``pixelwise.load`` imports torch only when first used."""
    if name == "load":
        from pixelwise.api import load

        return load
    raise AttributeError(f"module 'pixelwise' has no attribute {name!r}")

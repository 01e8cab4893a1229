"""Pixelwise: an open segmentation system for visual data analysis.

Layers (lowest first): core -> data -> transforms/postprocess/viz -> models/losses/metrics
-> runtime -> training/evaluation -> cli. See README.md.
"""

__version__ = "0.1.0"

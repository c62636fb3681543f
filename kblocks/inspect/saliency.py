"""Saliency map: which pixels, changed a little, would change the class score the most.

The vanilla gradient method: take the gradient of the unnormalised class score ``S_c`` (before
softmax) with respect to the input pixels, and keep, per pixel, the largest absolute value over the
colour channels: ``M[i, j] = max_ch |dS_c / dx[i, j, ch]|``. Bright pixels are those the score is
most sensitive to; for a good classifier they fall on the object.

Reference: K. Simonyan, A. Vedaldi and A. Zisserman, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", ICLR workshop 2014 (arXiv:1312.6034),
section 3.1.
"""
from __future__ import annotations

import numpy as np

from kblocks.inspect.classes import class_score_gradient

__all__ = ["saliency_map"]


def saliency_map(model, image, class_index: int | None = None) -> np.ndarray:
    """``(height, width)`` map of ``max over channels |d score_c / d pixel|`` for one image.

    ``image``: a path or an array on the 0..255 scale; ``class_index``: default the predicted class.
    The map is in the score's units per pixel unit (not rescaled).
    """
    _, result = class_score_gradient(model, image, class_index)
    return np.max(np.abs(result.grad[0]), axis=-1).astype("float32")

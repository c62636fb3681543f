"""Occlusion sensitivity: cover part of the image with a grey square and watch the class drop.

A grey window (value 127.5 on the 0..255 scale, i.e. the mid-grey "mean" pixel) slides over the
image; for each position the probability of the class is recorded. Where covering the image makes
the probability fall, the model was using that region: the map is dark on the object, and stays at
the unoccluded probability on background the model ignores. It needs no gradients, only forward
passes, so it works for any model and backend. The occluded images are run in batches.

The map returned has the input's size: each pixel holds the mean probability over the window
positions that covered it (window positions include the last row/column so every pixel is covered).

Reference: M. D. Zeiler and R. Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014 (arXiv:1311.2901), section 4.2 and figure 7.
"""
from __future__ import annotations

import numpy as np

from kblocks.common.errors import KBlocksError
from kblocks.inspect.classes import check_class_index, class_probabilities
from kblocks.inspect.inputs import as_batch, prepare_image
from kblocks.inspect.layers import input_shape, logits_model, num_classes, predict, to_probabilities

__all__ = ["occlusion_map", "default_window", "window_positions"]


def default_window(height: int, width: int) -> tuple[int, int]:
    """``(window, stride)``: a quarter of the smaller side, moved by half a window."""
    window = max(1, round(min(height, width) / 4))
    return window, max(1, window // 2)


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Start offsets ``0, stride, ...`` plus the last one, so the window reaches the far edge."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def occlusion_map(model, image, class_index: int | None = None, *, window: int | None = None,
                  stride: int | None = None, fill: float = 127.5, batch_size: int = 64) -> np.ndarray:
    """``(height, width)`` map of the class probability with a grey ``window`` square over each pixel.

    ``class_index``: default the predicted class. ``window``/``stride`` in input pixels (default
    :func:`default_window`); ``fill``: the occluder's value on the 0..255 scale.
    """
    h, w, c = input_shape(model)
    x = prepare_image(image, (h, w), c)
    if class_index is None:
        class_index = int(np.argmax(class_probabilities(model, x)[0]))
    class_index = check_class_index(class_index, num_classes(model))
    auto_window, auto_stride = default_window(h, w)
    window = auto_window if window is None else int(window)
    stride = (auto_stride if window == auto_window else max(1, window // 2)) if stride is None else int(stride)
    if not 1 <= window <= min(h, w):
        raise KBlocksError(f"--window {window} must be between 1 and the input size {min(h, w)}")
    if stride < 1:
        raise KBlocksError(f"--stride {stride} must be at least 1")
    rows, cols = window_positions(h, window, stride), window_positions(w, window, stride)
    positions = [(r, q) for r in rows for q in cols]
    scores_model, applies_softmax = logits_model(model)
    total = np.zeros((h, w), dtype="float64")
    count = np.zeros((h, w), dtype="float64")
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        batch = np.repeat(as_batch(x), len(chunk), axis=0)
        for b, (r, q) in enumerate(chunk):
            batch[b, r:r + window, q:q + window, :] = fill
        probs = to_probabilities(predict(scores_model, batch, batch_size=batch_size), applies_softmax)
        for b, (r, q) in enumerate(chunk):
            total[r:r + window, q:q + window] += probs[b, class_index]
            count[r:r + window, q:q + window] += 1
    return (total / np.maximum(count, 1)).astype("float32")

"""Filters: the learned convolution kernels of a layer, as small pictures.

The first layer sees pixels, so each of its filters is itself an RGB (or grey) image: AlexNet's
first layer shows oriented edges and colour blobs (Gabor-like). A deeper layer's filter has one
slice per input channel, which is not a picture of anything; it is drawn one grey tile per input
channel (rows: filters, columns: input channels), which mostly shows smoothness and sparsity.

Each filter is min-max scaled to 0..1 on its own (the sign and scale of a filter are not visible,
only its pattern), as in the CS231n lecture figures.

Reference: A. Krizhevsky, I. Sutskever and G. E. Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 2012, figure 3; CS231n (2017) lecture 12 "Visualizing and
Understanding", "First layer: visualize filters".
"""
from __future__ import annotations

import numpy as np

from kblocks.common.errors import KBlocksError
from kblocks.inspect.layers import (conv_kernel, conv_layers, describe_layers, layer_index,
                                    resolve_layer)

__all__ = ["filter_tiles", "filter_layer"]


def filter_layer(model, layer=None):
    """The convolution layer ``layer`` points to; default: the first layer with a kernel."""
    convs = conv_layers(model)
    if not convs:
        raise KBlocksError("the model has no convolution layer, so it has no filters to show")
    if layer is None:
        chosen = convs[0]
    else:
        chosen = resolve_layer(model, layer)
        if conv_kernel(chosen) is None:
            options = ", ".join(f"{layer_index(model, c)} {c.name}" for c in convs[:12])
            raise KBlocksError(
                f"--layer: layer {layer_index(model, chosen)} ({chosen.name!r}) has no convolution "
                "filters",
                hint=f"pick a convolution layer, e.g. --layer {layer_index(model, convs[0])}; "
                     f"convolution layers: {options}{', ...' if len(convs) > 12 else ''}; "
                     f"all layers: {describe_layers(model)}")
    return chosen


def filter_tiles(model, layer=None) -> np.ndarray:
    """The filters of a convolution layer as tiles ``(filters, kh, kw, in_channels)`` in 0..1.

    ``layer``: index, name or prefix; default: the first layer with a convolution kernel.
    Each tile is scaled to 0..1 by its own minimum and maximum. For a first layer with 1 or 3
    input channels a tile is a grey/RGB picture; otherwise its last axis is the input channel.
    A ``DepthwiseConv2D`` (or the depthwise part of a ``SeparableConv2D``) gives one single-channel tile per (input channel, multiplier).
    """
    chosen = filter_layer(model, layer)
    kernel = conv_kernel(chosen)  # (kh, kw, in, out) or depthwise (kh, kw, in, multiplier)
    kh, kw, cin, cout = kernel.shape
    depthwise = (type(chosen).__name__ == "DepthwiseConv2D"
                 or getattr(chosen, "kernel", None) is None)  # SeparableConv2D: its depthwise part
    if depthwise:
        # one filter per (input channel, multiplier), each seeing a single channel
        tiles = kernel.transpose(2, 3, 0, 1).reshape(cin * cout, kh, kw, 1)
    else:
        tiles = kernel.transpose(3, 0, 1, 2)
    lo = tiles.min(axis=(1, 2, 3), keepdims=True)
    hi = tiles.max(axis=(1, 2, 3), keepdims=True)
    tiles = (tiles - lo) / np.where(hi > lo, hi - lo, 1.0)
    return tiles.astype("float32")

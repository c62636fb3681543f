"""Feature maps: what one layer of a trained CNN outputs for one image, channel by channel.

Each channel of a convolution's output is an image of where its filter responded. Early layers
respond to edges and colours everywhere; deeper layers to parts of objects, at lower resolution;
many channels stay dark for a given image (ReLU networks are sparse).

Reference: M. D. Zeiler and R. Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014 (arXiv:1311.2901), and J. Yosinski et al., "Understanding Neural Networks Through Deep
Visualization", ICML DL workshop 2015 (the live activations of the "deepvis" toolbox).
"""
from __future__ import annotations

import numpy as np

from kblocks.common.errors import KBlocksError
from kblocks.inspect.inputs import as_batch, prepare_image
from kblocks.inspect.layers import (as_view, default_spatial_layer, describe_layers, feature_model,
                                    input_shape, output_shape, predict, resolve_layer)

__all__ = ["feature_maps", "spatial_layer"]


def spatial_layer(model, layer=None):
    """The layer ``layer`` points to, checked to have a spatial output; default: the last one."""
    view = as_view(model)
    layer = default_spatial_layer(view) if layer is None else resolve_layer(view, layer)
    shape = output_shape(layer, view)
    if len(shape) != 4:
        raise KBlocksError(
            f"--layer: layer {layer.name!r} outputs shape {shape}, not spatial maps "
            "(height x width x channels)",
            hint="pick a convolution, activation or pooling layer; spatial layers are: "
                 + describe_layers(view, only=lambda ly: len(output_shape(ly, view)) == 4))
    return layer


def feature_maps(model, image, layer=None) -> np.ndarray:
    """The output of ``layer`` for one image, as numpy ``(height, width, channels)``.

    ``image``: a path or an array on the 0..255 scale (resized and channel-adapted to the model).
    ``layer``: index, name or prefix (see :mod:`kblocks.inspect.layers`); default: the last layer
    with a spatial output.
    """
    view = as_view(model)
    layer = spatial_layer(view, layer)
    h, w, c = input_shape(view)
    x = as_batch(prepare_image(image, (h, w), c))
    maps = predict(feature_model(view, layer), x)[0]
    return np.asarray(maps, dtype="float32")

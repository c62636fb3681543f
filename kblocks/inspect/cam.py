"""Class activation maps: where in the image the evidence for a class lies.

CAM (Zhou et al. 2016) needs a network that ends ``conv features -> global average pooling ->
dense``. The class score is then ``S_c = sum_k w_kc * mean_ij A_k[i, j]``, so the map
``CAM_c[i, j] = sum_k w_kc A_k[i, j]`` (the dense weights of class ``c`` applied at every position
of the last feature maps) says how much each position adds to the score. It is computed at the
feature maps' resolution and upsampled (bilinear) to the input size.

Grad-CAM (Selvaraju et al. 2017) works for any layer with a spatial output and any head: the weight
of channel ``k`` is the spatial mean of the gradient of the (pre-softmax) class score,
``alpha_k = mean_ij dS_c / dA_k[i, j]``, and the map is ``ReLU(sum_k alpha_k A_k)``, keeping the
positions that push the score up. For a GAP + dense head at the last conv layer it equals CAM
(up to the ReLU and a constant factor).

References: B. Zhou, A. Khosla, A. Lapedriza, A. Oliva and A. Torralba, "Learning Deep Features for
Discriminative Localization", CVPR 2016 (arXiv:1512.04150); R. R. Selvaraju, M. Cogswell, A. Das,
R. Vedantam, D. Parikh and D. Batra, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017 (arXiv:1610.02391), equations 1 and 2.
"""
from __future__ import annotations

import numpy as np

import keras

from kblocks.common.errors import KBlocksError
from kblocks.inspect.classes import check_class_index, class_score_gradient, predicted_class
from kblocks.inspect.featuremaps import spatial_layer
from kblocks.inspect.inputs import as_batch, prepare_image
from kblocks.inspect.layers import (as_view, input_shape, num_classes,
                                    output_shape, predict)

__all__ = ["class_activation_map", "grad_cam", "upsample", "cam_layers"]

_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Flatten, keras.layers.Activation,
                 keras.layers.Softmax)


def upsample(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``(height, width)`` (Pillow, float32)."""
    from PIL import Image

    heat = np.asarray(heat, dtype="float32")
    if tuple(heat.shape) == tuple(size):
        return heat
    img = Image.fromarray(np.ascontiguousarray(heat), mode="F")
    return np.asarray(img.resize((int(size[1]), int(size[0])), Image.BILINEAR), dtype="float32")


def cam_layers(model):
    """``(pool, dense)``: the global average pooling and the dense layer CAM reads, or an error."""
    view = as_view(model)
    layers = view.layers
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    problem = None
    if not pools:
        problem = "it has no GlobalAveragePooling2D layer"
    else:
        start = pools[-1]
        tail = layers[start + 1:]
        denses = [layer for layer in tail if isinstance(layer, keras.layers.Dense)]
        others = [layer for layer in tail if not isinstance(layer, (keras.layers.Dense,) + _PASS_THROUGH)]
        if len(denses) != 1 or others:
            names = ", ".join(layer.name for layer in tail) or "nothing"
            problem = (f"after its global average pooling {layers[start].name!r} come {names}, "
                       "not a single dense layer")
        elif len(output_shape(layers[start], view)) != 2 and not any(isinstance(t, keras.layers.Flatten)
                                                                 for t in tail):
            problem = "its global average pooling keeps dimensions without a Flatten after it"
        elif len(tuple(view.input_of(layers[start]).shape)) != 4:
            problem = "its global average pooling does not pool 2-D feature maps"
        else:
            return layers[start], denses[0]
    raise KBlocksError(
        f"--method cam needs a model that ends in global average pooling followed by one dense layer "
        f"(CAM, Zhou et al. 2016), and {problem}",
        hint="use --method gradcam, which works for any convolutional model")


def class_activation_map(model, image, class_index: int | None = None) -> np.ndarray:
    """CAM of one image: ``sum_k w_kc A_k``, upsampled to the input size, ``(height, width)``.

    Raw values (score units; may be negative); plots rescale them.
    """
    view = as_view(model)
    pool, dense = cam_layers(view)
    h, w, c = input_shape(view)
    x = as_batch(prepare_image(image, (h, w), c))
    if class_index is None:
        class_index = predicted_class(model, x)
    class_index = check_class_index(class_index, num_classes(model))
    maps = predict(view.sub_model(view.input_of(pool)), x)[0]  # (h', w', K)
    weights = keras.ops.convert_to_numpy(dense.kernel)[:, class_index]  # (K,)
    if weights.shape[0] != maps.shape[-1]:
        raise KBlocksError(f"--method cam: the dense layer {dense.name!r} takes {weights.shape[0]} "
                           f"inputs but the pooled maps have {maps.shape[-1]} channels",
                           hint="use --method gradcam")
    heat = np.tensordot(maps, weights, axes=([-1], [0]))
    return upsample(heat, (h, w))


def grad_cam(model, image, class_index: int | None = None, layer=None) -> np.ndarray:
    """Grad-CAM of one image at ``layer`` (default: the last spatial layer), ``(height, width)``.

    ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``dS_c/dA_k``, computed at the
    layer's resolution and upsampled (bilinear) to the input size; ``>= 0``, in score units.
    """
    view = as_view(model)
    layer = spatial_layer(view, layer)
    h, w, c = input_shape(view)
    _, result = class_score_gradient(view, image, class_index, target=view.output_of(layer),
                                     name=layer.name)
    acts, grads = result.activation[0], result.grad[0]  # (h', w', K)
    alpha = grads.mean(axis=(0, 1))
    heat = np.maximum(np.tensordot(acts, alpha, axes=([-1], [0])), 0.0)
    return upsample(heat, (h, w))


"""Look inside a trained CNN: every method of the "Visualizing and Understanding CNNs" lecture.

Each function takes a Keras model and numpy images (pixels 0..255, or a path to a PNG/JPEG) and
returns numpy arrays, for notebooks; ``kblocks inspect`` draws the same as PNG pictures.

    from kblocks import inspect as ki
    maps  = ki.feature_maps(model, "cat.png", layer="conv_3")        # (h, w, channels)
    tiles = ki.filter_tiles(model, layer=0)                         # (filters, kh, kw, in)
    sal   = ki.saliency_map(model, "cat.png")                        # (H, W)    Simonyan et al. 2014
    heat  = ki.grad_cam(model, "cat.png", class_index=3)            # (H, W)    Selvaraju et al. 2017
    heat  = ki.class_activation_map(model, "cat.png")                # (H, W)    Zhou et al. 2016
    occ   = ki.occlusion_map(model, "cat.png", class_index=3)       # (H, W)    Zeiler & Fergus 2014
    xy    = ki.tsne_embedding(model, images)                        # (N, 2)    van der Maaten 2008
    adv   = ki.fgsm(model, "cat.png", eps=0.007)                     # (H, W, C) Goodfellow et al. 2015
    masks = ki.predicted_masks(model, images)                       # (N, H, W) segmentation
    p     = ki.class_probabilities(model, adv)                      # (1, classes)
    ki.explain_conv_size(227, 11, 4, 0).output                      # 55

One concept per module: ``gradients`` (TensorFlow/JAX gradients), ``layers`` (``--layer``
resolution, sub-models), ``inputs`` (images), ``classes``, ``featuremaps``, ``filters``,
``saliency``, ``cam``, ``occlusion``, ``embedding``, ``adversarial``, ``masks`` (predicted
segmentation masks), ``plotting``, ``convsize``,
``model_summary`` (the per-layer summary of any Keras model, behind ``kblocks.summary(model)``).
Names are imported lazily, so ``import kblocks.inspect`` does not import Keras.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "feature_maps": "featuremaps", "spatial_layer": "featuremaps",
    "filter_tiles": "filters", "filter_layer": "filters",
    "saliency_map": "saliency",
    "class_activation_map": "cam", "grad_cam": "cam", "upsample": "cam", "cam_layers": "cam",
    "occlusion_map": "occlusion",
    "tsne_embedding": "embedding", "codes": "embedding",
    "fgsm": "adversarial",
    "predicted_masks": "masks", "colour_masks": "masks", "plot_masks": "masks",
    "gradient": "gradients", "Gradient": "gradients",
    "resolve_layer": "layers", "model_layers": "layers", "default_spatial_layer": "layers",
    "conv_layers": "layers", "feature_model": "layers", "logits_model": "layers",
    "class_probabilities": "classes", "predicted_class": "classes", "resolve_class": "classes",
    "load_image": "inputs", "prepare_image": "inputs",
    "conv_output_size": "convsize", "explain_conv_size": "convsize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kblocks.inspect' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kblocks.inspect.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

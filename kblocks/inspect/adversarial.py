"""Adversarial examples with the fast gradient sign method (FGSM).

Move every pixel by the same small amount in the direction that increases the loss of the true
(or predicted) class: ``x' = clip(x + eps * 255 * sign(d loss / d x), 0, 255)``. A change too small
to see can flip the prediction, because the many tiny per-pixel changes add up in the dot products
of a (locally) linear network.

``eps`` is on the 0..1 image scale of the paper (0.007 is the "panda -> gibbon" example, 1/255 is
one grey level), while kblocks models take 0..255 pixels, hence the factor 255.
The loss is the cross-entropy of the class, computed from the pre-softmax scores.

Reference: I. J. Goodfellow, J. Shlens and C. Szegedy, "Explaining and Harnessing Adversarial
Examples", ICLR 2015 (arXiv:1412.6572), section 4, equation for eta = eps * sign(grad_x J).
"""
from __future__ import annotations

import os

import numpy as np

import keras

from kblocks.common.errors import KBlocksError
from kblocks.inspect.classes import check_class_index, class_probabilities
from kblocks.inspect.gradients import gradient
from kblocks.inspect.inputs import as_batch, prepare_image
from kblocks.inspect.layers import input_shape, logits_model, num_classes

__all__ = ["fgsm"]


def fgsm(model, image, class_index=None, eps: float = 0.007) -> np.ndarray:
    """Adversarial version(s) of image(s) on the 0..255 scale, same shape as given.

    ``image``: a path, one ``(H, W, C)`` array, or a batch ``(N, H, W, C)``; ``class_index``: the
    true class (int, or one per image); default the predicted class. ``eps`` on the 0..1 scale.
    Use :func:`kblocks.inspect.class_probabilities` on the result to see the effect.
    """
    eps = float(eps)
    if not 0 <= eps <= 1:
        raise KBlocksError(f"--eps {eps} must be between 0 and 1 (a fraction of the 0..255 pixel range)",
                           hint="typical values: 0.007 (invisible) to 0.1")
    h, w, c = input_shape(model)
    arr = None if isinstance(image, (str, os.PathLike)) else np.asarray(image, dtype="float32")
    single = arr is None or arr.ndim != 4
    if single:
        x = as_batch(prepare_image(image, (h, w), c))
    else:
        x = np.stack([prepare_image(img, (h, w), c) for img in arr])
    n_classes = num_classes(model)
    if class_index is None:
        labels = np.argmax(class_probabilities(model, x), axis=-1)
    else:
        labels = np.broadcast_to(np.asarray(class_index, dtype="int64"), (len(x),))
        labels = np.array([check_class_index(i, n_classes) for i in labels])
    scores_model, applies_softmax = logits_model(model)
    onehot = np.eye(n_classes, dtype="float32")[labels]

    if applies_softmax:
        logits = True
    else:  # no softmax found: the outputs are logits unless they already look like probabilities
        out = np.asarray(keras.ops.convert_to_numpy(scores_model(x, training=False)), dtype="float64")
        logits = not (out.min() >= 0 and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))

    def loss(out):
        if logits:
            logp = keras.ops.log_softmax(out, axis=-1)
        else:
            logp = keras.ops.log(keras.ops.clip(out, 1e-7, 1.0))
        return -keras.ops.sum(logp * onehot, axis=-1)

    grad = gradient(scores_model, x, loss).grad
    adv = np.clip(x + eps * 255.0 * np.sign(grad), 0.0, 255.0).astype("float32")
    return adv[0] if single else adv

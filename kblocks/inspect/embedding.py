"""t-SNE of the codes a network computes just before its classifier.

The penultimate layer (the input of the last dense layer) maps each image to a vector, its "code".
Images the network finds similar get nearby codes; t-SNE lays the codes out in 2-D so that near
neighbours stay near. Coloured by the true class, a well-trained network shows one cluster per
class, and mistakes appear as points inside another class's cluster.

References: L. van der Maaten and G. Hinton, "Visualizing Data using t-SNE", JMLR 9 (2008); the
CS231n lecture "Visualizing and Understanding" (2017), "Last layer: dimensionality reduction"
(A. Karpathy's t-SNE grid of ImageNet codes); scikit-learn's ``sklearn.manifold.TSNE``.
"""
from __future__ import annotations

import numpy as np

import keras

from kblocks.common.errors import KBlocksError
from kblocks.inspect.inputs import prepare_image
from kblocks.inspect.layers import as_view, input_shape, predict, resolve_layer

__all__ = ["codes", "code_layer_output", "tsne_embedding"]


def code_layer_output(model, layer=None):
    """The KerasTensor whose value is the code: ``layer``'s output, or the last dense's input."""
    view = as_view(model)
    if layer is not None:
        return view.output_of(resolve_layer(view, layer))
    denses = [ly for ly in view.layers if isinstance(ly, keras.layers.Dense)]
    if denses:
        return view.input_of(denses[-1])
    if len(view.layers) < 2:
        raise KBlocksError("the model is too small to have a penultimate layer",
                           hint="pick the layer with --layer")
    return view.output_of(view.layers[-2])


def codes(model, images, layer=None, batch_size: int = 256) -> np.ndarray:
    """Codes ``(N, D)`` (flattened) of images ``(N, H, W, C)`` 0..255 at ``layer`` (default: the
    input of the last dense layer)."""
    view = as_view(model)
    h, w, c = input_shape(view)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if tuple(images.shape[1:]) != (h, w, c):
        images = np.stack([prepare_image(img, (h, w), c) for img in images])
    sub = view.sub_model(code_layer_output(view, layer))
    out = predict(sub, images.astype("float32"), batch_size=batch_size)
    return out.reshape(len(out), -1)


def tsne_embedding(model, images, layer=None, *, perplexity: float = 30.0, seed: int = 0,
                   batch_size: int = 256) -> np.ndarray:
    """2-D t-SNE of the codes of ``images``: ``(N, 2)``, one point per image.

    ``perplexity`` is lowered to ``(N - 1) / 3`` for small N (scikit-learn needs it < N).
    Deterministic for a given ``seed`` (PCA initialisation).
    """
    from sklearn.manifold import TSNE

    feats = codes(model, images, layer, batch_size=batch_size).astype("float64")
    n = len(feats)
    if n < 4:
        raise KBlocksError(f"t-SNE needs at least 4 samples, got {n}", hint="raise --samples")
    perplexity = float(min(perplexity, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto")
    with _few_threads(n):
        return tsne.fit_transform(feats).astype("float32")


def _few_threads(n: int):
    """One OpenMP thread for the usual few thousand points.

    scikit-learn's Barnes-Hut t-SNE runs 1000 short OpenMP loops; on a busy machine (a CI runner,
    a laptop running tests) their threads spin-wait for each other and a 100-point embedding takes
    20 s instead of 1 s. Above 5000 points the parallel loop is worth its overhead.
    """
    import contextlib

    if n > 5000:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="openmp")

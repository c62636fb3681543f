"""The input and output conventions of the models kblocks makes, read back from a model.

One place answers "does this model emit probabilities or logits?" and "what input does it take?",
for ``kblocks.build``, the zoo, run-folder files, export, ``evaluate`` and ``inspect``.

Output: a model emits **logits** unless its last layer is a softmax (a ``SOFTMAX`` at the end of
the text, or ``classifier_activation="softmax"``), then **probabilities**.

Input: a model whose first layer is named :data:`NORMALIZE_NAME` takes **pixels 0..255** and
normalises them inside (every model ``kblocks train`` saves, and ``build(..., normalize=...)``);
any other model takes its input **as given** (no normalisation inside).

This module imports Keras only inside its functions (``import kblocks`` stays Keras-free).
"""
from __future__ import annotations

import numpy as np

NORMALIZE_NAME = "kblocks_normalize"  # the first layer of models that normalise inside
CLASSIFIER_ACTIVATIONS = (None, "softmax")


def _producer(model, tensor):
    """``(layer, its input tensor)`` for the layer that made ``tensor``, read from the tensor's
    Keras history (so a nested model called on a new input is found too); ``(None, None)``."""
    history = getattr(tensor, "_keras_history", None)
    if history is not None:
        layer, node_index = history[0], history[1]
        try:
            node = layer._inbound_nodes[node_index]
            inputs = node.input_tensors
            return layer, (inputs[0] if inputs else None)
        except (AttributeError, IndexError):
            return layer, None
    for layer in model.layers:
        try:
            if layer.output is tensor:
                return layer, getattr(layer, "input", None)
        except (AttributeError, ValueError):
            continue
    return None, None


def _is_softmax(fn) -> bool:
    return fn is not None and getattr(fn, "__name__", "") == "softmax"


def main_output(model):
    """The main output tensor (``output`` of a multi-output model)."""
    try:
        out = model.output
    except (AttributeError, ValueError):  # a Sequential that was built but never called
        out = model.outputs
    if isinstance(out, dict):
        return out.get("output", next(iter(out.values())))
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


def output_is_probability(model, tensor=None) -> bool:
    """True when ``tensor`` (the main output by default) comes out of a softmax: a ``Softmax``
    layer, an ``Activation("softmax")``, a layer with ``activation="softmax"``, or a nested model
    whose own output does (linear ``Activation`` casts in between are looked through)."""
    import keras

    tensor = main_output(model) if tensor is None else tensor
    layer, below = _producer(model, tensor)
    if layer is model:  # a Sequential's output tensor names the Sequential: its last layer made it
        layer, below = (model.layers[-1] if model.layers else None), None
    while isinstance(layer, keras.layers.Activation) and \
            getattr(layer.activation, "__name__", "") == "linear" and below is not None:
        layer, below = _producer(model, below)
    if layer is None:
        return False
    if isinstance(layer, keras.Model):
        return output_is_probability(layer)
    if isinstance(layer, keras.layers.Softmax):
        return True
    return _is_softmax(getattr(layer, "activation", None))


def normalization(model):
    """How the model normalises its input inside: ``"standardize"``, ``"scale"``, ``"none"``
    (a :data:`NORMALIZE_NAME` identity: trained on raw 0..255 pixels), or ``None`` (no such layer:
    the input is taken as given)."""
    import keras

    for layer in model.layers:
        if layer.name == NORMALIZE_NAME:
            if isinstance(layer, keras.layers.Normalization):
                return "standardize"
            if isinstance(layer, keras.layers.Rescaling):
                return "scale"
            return "none"
    for layer in model.layers:  # a model wrapping a build(normalize=...) network
        if isinstance(layer, keras.Model):
            found = normalization(layer)
            if found is not None:
                return found
    return None


def is_kblocks_model(model) -> bool:
    """True for a model that carries the conventions (a :class:`kblocks.lang.models.Network`, or a
    model wrapping one, as the trainer saves): what it says about itself is read, not assumed."""
    import keras

    def is_network(obj):  # by its registered name: this module may not import models (a cycle)
        return keras.saving.get_registered_name(type(obj)) == "kblocks>Network"

    if is_network(model):
        return True
    return any(is_network(layer) for layer in getattr(model, "layers", ()))


def describe_input(model_or_kind) -> str:
    """``"pixels 0..255, normalised inside (standardize)"`` or ``"float values as given
    (no normalisation inside)"``."""
    kind = model_or_kind if isinstance(model_or_kind, (str, type(None))) else \
        normalization(model_or_kind)
    if kind is None:
        return "float values as given (no normalisation inside)"
    if kind == "none":
        return "pixels 0..255, used as given (trained without normalisation)"
    return f"pixels 0..255, normalised inside ({kind})"


def describe_output(probabilities: bool, classes=None) -> str:
    what = "probabilities" if probabilities else "logits"
    return f"{what} ({classes} classes)" if classes else what


def conventions(model) -> dict:
    """The conventions of a Keras model as a JSON-ready dict; ``assumed`` lists what could not be
    read from the model (a file that predates the conventions, or a model kblocks did not make)."""
    probs = output_is_probability(model)
    kind = normalization(model)
    try:
        classes = int(output_units(model))
    except (TypeError, ValueError, IndexError):
        classes = None
    assumed = []
    if not is_kblocks_model(model):
        assumed.append("output: " + ("probabilities (ends in a softmax)" if probs else
                                     "logits (no softmax at the end)"))
        assumed.append("input: " + describe_input(kind) + (
            "; no kblocks_normalize layer, so kblocks feeds it pixels 0..255 unchanged"
            if kind is None else ""))
    return {"input": describe_input(kind), "normalization": kind,
            "output": "probabilities" if probs else "logits", "classes": classes,
            "assumed": assumed}


def assumed_note(conv: dict) -> str | None:
    """One line for a file that predates the conventions, or ``None``."""
    if not conv.get("assumed"):
        return None
    return ("this file does not state its conventions (it predates them or kblocks did not make "
            "it); assumed " + "; ".join(conv["assumed"]))


def to_probabilities(outputs, probabilities: bool) -> np.ndarray:
    """Class probabilities from a model's outputs: a softmax unless they already are ones."""
    outputs = np.asarray(outputs, np.float64)
    if probabilities:
        return outputs
    shifted = outputs - outputs.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


NORMALIZE_KINDS = ("standardize", "scale", "none")


def normalization_layer(kind="standardize", *, mean=None, variance=None, data=None):
    """The layer ``kblocks train`` puts first in its models, for a plain-Keras user: it takes
    pixels 0..255 and ``"standardize"``s them per channel (``mean``/``variance`` of the training
    pixels, or computed from ``data``, images 0..255 channels last), ``"scale"``s them to 0..1, or
    leaves them (``"none"``). Named :data:`NORMALIZE_NAME`, so ``evaluate``/``inspect``/export read
    the input convention from it."""
    import keras

    if kind not in NORMALIZE_KINDS:
        from kblocks.common.errors import KBlocksError

        raise KBlocksError(f"normalize={kind!r}: use one of " + ", ".join(NORMALIZE_KINDS)
                           + " (or None for no normalisation inside)")
    if kind == "standardize":
        if data is not None:
            mean, variance = channel_stats(np.asarray(data))
        if mean is None or variance is None:
            from kblocks.common.errors import KBlocksError

            raise KBlocksError('normalize="standardize" needs the per-channel mean and variance '
                               "of the training pixels (mean=, variance=) or the images (data=)")
        return keras.layers.Normalization(mean=np.asarray(mean, np.float32),
                                          variance=np.asarray(variance, np.float32),
                                          name=NORMALIZE_NAME, dtype="float32")
    if kind == "scale":
        return keras.layers.Rescaling(1.0 / 255.0, name=NORMALIZE_NAME, dtype="float32")
    return keras.layers.Identity(name=NORMALIZE_NAME, dtype="float32")


# Moved here from kblocks.training (the language may not import training): the class count of a
# model and the statistics of its normalisation layer are part of the conventions.

def output_units(model):
    """Number of classes a (single-output) model predicts."""
    shape = model.output_shape
    if isinstance(shape, dict):
        shape = shape.get("output", next(iter(shape.values())))
    if isinstance(shape, list):
        shape = shape[0]
    return shape[-1]


def channel_stats(x: np.ndarray):
    """Per-channel mean and variance of uint8 images, in float64, chunked to spare memory."""
    channels = x.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for start in range(0, len(x), 4096):
        chunk = x[start:start + 4096].reshape(-1, channels).astype(np.float64)
        total += chunk.sum(0)
        total_sq += (chunk ** 2).sum(0)
        count += chunk.shape[0]
    mean = total / count
    var = np.maximum(total_sq / count - mean ** 2, 0.0)
    return mean, var

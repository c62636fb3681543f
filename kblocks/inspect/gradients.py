"""Gradients of a score of a model's outputs, with respect to its input or to a layer's output.

Every gradient-based picture (saliency, Grad-CAM, FGSM) needs one thing: d score / d something,
where ``score`` is a scalar function of what the model outputs (a class score, a loss). Keras 3
has no backend-neutral ``gradient`` op, so this module is the one place that knows the backends:

* TensorFlow: ``tf.GradientTape`` around a call of the model (or of a model with two outputs,
  the layer's and the final one, so the tape sees the intermediate tensor);
* JAX: ``jax.value_and_grad`` of ``model.stateless_call``; for a layer's output the model is cut
  in two Keras models (``head``: input -> layer, ``tail``: layer -> output) and the gradient is
  taken through ``tail``. The cut needs every path from the input to the output to go through
  the layer (true at block boundaries; false inside a residual block, which is reported);
* any other backend raises ``KBlocksError``.

Reference: the autodiff view of these methods is that of the CS231n lecture "Visualizing and
Understanding" (2017): "compute the gradient of the (unnormalised) class score with respect to the
image pixels" (Simonyan, Vedaldi and Zisserman, 2014, section 3.1).

The score function receives the model's output tensor (batch first) and returns one value per
example, written with ``keras.ops``; the gradient of their *sum* is taken, which for models whose
examples do not interact (inference mode: no batch statistics) is each example's own gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import keras

from kblocks.common.errors import KBlocksError

__all__ = ["Gradient", "gradient", "SUPPORTED_BACKENDS"]

SUPPORTED_BACKENDS = ("tensorflow", "jax")

ScoreFn = Callable[[object], object]


@dataclass
class Gradient:
    """What :func:`gradient` returns, all as numpy arrays (batch first).

    ``scores``: the per-example score, shape ``(batch,)``; ``grad``: d(sum of scores)/d(target),
    same shape as the target (the input, or the layer's output); ``activation``: the layer's
    output when the target is a layer, else ``None``; ``outputs``: the model's outputs.
    """

    scores: np.ndarray
    grad: np.ndarray
    outputs: np.ndarray
    activation: np.ndarray | None = None


def _backend() -> str:
    name = keras.backend.backend()
    if name not in SUPPORTED_BACKENDS:
        raise KBlocksError(
            f"gradient-based inspection (saliency, gradcam, fgsm) supports the TensorFlow and JAX "
            f"backends, not {name!r}",
            hint="set KERAS_BACKEND=tensorflow (or jax) before starting Python or kblocks")
    return name


def _per_example(scores, batch: int):
    scores = keras.ops.convert_to_tensor(scores)
    if tuple(scores.shape) != (batch,):
        raise ValueError(f"the score function must return one value per example, shape ({batch},); "
                         f"got shape {tuple(scores.shape)}")
    return scores


def gradient(model: keras.Model, x, score_fn: ScoreFn, *, target=None, name: str = "") -> Gradient:
    """Gradient of ``sum(score_fn(model(x)))`` w.r.t. ``x`` (``target=None``) or an inner tensor.

    ``x``: a float array ``(batch, ...)`` as the model takes it (kblocks models: 0..255 pixels).
    ``target``: a KerasTensor of ``model``'s graph (e.g. ``view.output_of(layer)`` for a model
    built on a :class:`kblocks.inspect.layers.ModelView`); ``name`` names it in errors. The model
    is called in inference mode (``training=False``) and must have one input and one output.
    """
    backend = _backend()
    x = np.asarray(x, dtype="float32")
    if backend == "tensorflow":
        return _tf_gradient(model, x, score_fn, target)
    return _jax_gradient(model, x, score_fn, target, name)


# --- TensorFlow ---------------------------------------------------------------------------------

def _tf_gradient(model, x, score_fn, target):
    import tensorflow as tf

    batch = x.shape[0]
    if target is None:
        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = model(xt, training=False)
            scores = _per_example(score_fn(out), batch)
            total = tf.reduce_sum(scores)
        grad = tape.gradient(total, xt)
        activation = None
    else:
        both = keras.Model(model.inputs[0], [target, model.outputs[0]])
        with tf.GradientTape() as tape:
            act, out = both(tf.convert_to_tensor(x), training=False)
            scores = _per_example(score_fn(out), batch)
            total = tf.reduce_sum(scores)
        grad = tape.gradient(total, act)
        activation = keras.ops.convert_to_numpy(act)
        if grad is None:  # the output does not depend on this layer
            grad = tf.zeros_like(act)
    return Gradient(scores=keras.ops.convert_to_numpy(scores), grad=keras.ops.convert_to_numpy(grad),
                    outputs=keras.ops.convert_to_numpy(out), activation=activation)


# --- JAX ----------------------------------------------------------------------------------------

def _tail_model(model, target, name):
    try:
        return keras.Model(target, model.outputs[0])
    except ValueError as err:
        raise KBlocksError(
            f"on the JAX backend a gradient with respect to layer {name or target.name!r} needs every "
            f"path from "
            f"the input to the output to pass through it, and this model has a connection that skips "
            f"it ({err})",
            hint="pick a layer at a block boundary with --layer (e.g. the output of a residual add), "
                 "or use KERAS_BACKEND=tensorflow") from None


def _jax_gradient(model, x, score_fn, target, name):
    import jax
    import jax.numpy as jnp

    batch = x.shape[0]
    if target is None:
        target_model, value = model, jnp.asarray(x)
        activation = None
    else:
        head = keras.Model(model.inputs[0], target)
        target_model = _tail_model(model, target, name)
        value = jnp.asarray(head(x, training=False))
        activation = np.asarray(value)
    trainable = [v.value for v in target_model.trainable_variables]
    non_trainable = [v.value for v in target_model.non_trainable_variables]

    def total(t):
        out, _ = target_model.stateless_call(trainable, non_trainable, t, training=False)
        scores = _per_example(score_fn(out), batch)
        return jnp.sum(scores), (scores, out)

    (_, (scores, out)), grad = jax.value_and_grad(total, has_aux=True)(value)
    return Gradient(scores=np.asarray(scores), grad=np.asarray(grad), outputs=np.asarray(out),
                    activation=activation)

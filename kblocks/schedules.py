"""Learning-rate schedules and optimisers of the training recipe (``--optimizer``, ``--schedule``).

All schedules are ``keras.optimizers.schedules.LearningRateSchedule`` objects that are either Keras'
own or registered under package ``kblocks``, so a saved model with its optimiser loads with
``safe_mode=True``. ``plateau`` is the exception: the learning rate stays a float and the
``ReduceLROnPlateau`` callback lowers it.
"""
from __future__ import annotations

import keras
from keras import ops

from kblocks.errors import ConfigError

SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05}


@keras.saving.register_keras_serializable(package="kblocks")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``start * peak`` to ``peak`` over ``warmup`` of the steps, then linear
    decay to ``end * peak`` at ``total_steps`` (the triangular one-cycle of airbench/fast.ai)."""

    def __init__(self, peak, total_steps, warmup=0.25, start=0.1, end=0.0, name="onecycle"):
        self.peak = float(peak)
        self.total_steps = max(1, int(total_steps))
        self.warmup = float(warmup)
        self.start = float(start)
        self.end = float(end)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        total = float(self.total_steps)
        up = max(1.0, self.warmup * total)
        rising = self.start + (1.0 - self.start) * step / up
        falling = 1.0 + (self.end - 1.0) * (step - up) / max(1.0, total - up)
        factor = ops.where(step < up, rising, ops.maximum(falling, min(self.end, 1.0)))
        return self.peak * factor

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup,
                "start": self.start, "end": self.end, "name": self.name}


def make_schedule(name, lr, *, steps_per_epoch, epochs, warmup_epochs=0.0, step_every=None,
                  step_gamma=0.1):
    """The learning rate (a float or a schedule) for ``--schedule name``."""
    name = (name or "constant").lower()
    total = max(1, int(steps_per_epoch) * int(epochs))
    warmup_steps = int(round(float(warmup_epochs or 0) * steps_per_epoch))
    if warmup_steps >= total and name in ("cosine",):
        raise ConfigError(f"warm-up of {warmup_epochs} epochs is not shorter than the run "
                          f"({epochs} epochs)", what="--warmup")
    if name in ("constant", "plateau"):
        return float(lr)
    if name == "step":
        every = int(step_every or max(1, epochs // 3))
        return keras.optimizers.schedules.ExponentialDecay(
            float(lr), decay_steps=max(1, every * steps_per_epoch), decay_rate=float(step_gamma),
            staircase=True)
    if name == "cosine":
        if warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                0.0, decay_steps=total - warmup_steps, warmup_target=float(lr),
                warmup_steps=warmup_steps)
        return keras.optimizers.schedules.CosineDecay(float(lr), decay_steps=total)
    if name == "onecycle":
        frac = warmup_steps / total if warmup_steps else 0.25
        return OneCycle(float(lr), total, warmup=frac)
    raise ConfigError(f"unknown schedule {name!r}", what="--schedule",
                      hint="use one of " + ", ".join(SCHEDULES))


def make_optimizer(name, learning_rate, *, momentum=0.9, nesterov=True, weight_decay=0.0,
                   loss_scale=False):
    """``sgd`` (momentum, Nesterov), ``adam`` or ``adamw`` with decoupled weight decay.

    Weight decay is applied by the optimiser (``w -= lr * decay * w`` each step), not added to the
    loss, so reported losses are the data loss alone; biases and normalisation parameters are
    excluded. For ``sgd`` the given value is divided by ``1 - momentum``: momentum amplifies the
    L2 gradient of PyTorch-style SGD by that factor, so ``--weight-decay 5e-4`` shrinks weights as
    much as PyTorch's ``SGD(weight_decay=5e-4)`` does. ``adam`` and ``adamw`` use it as given.
    """
    name = (name or "sgd").lower()
    decay = float(weight_decay or 0.0)
    if decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {decay}", what="--weight-decay")
    if name == "sgd":
        if not 0 <= float(momentum) < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}", what="--momentum")
        opt = keras.optimizers.SGD(learning_rate, momentum=float(momentum), nesterov=bool(nesterov),
                                   weight_decay=decay / (1.0 - float(momentum)) if decay else None)
    elif name == "adam":
        opt = keras.optimizers.Adam(learning_rate, weight_decay=decay or None)
    elif name == "adamw":
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=decay)
    else:
        raise ConfigError(f"unknown optimizer {name!r}", what="--optimizer",
                          hint="use one of " + ", ".join(OPTIMIZERS))
    if decay:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if loss_scale:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


@keras.saving.register_keras_serializable(package="kblocks")
class SparseCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing (Keras' sparse loss has none)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, name="sparse_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(
                labels, y_pred, from_logits=self.from_logits)
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}

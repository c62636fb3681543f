"""Learning-rate schedules and optimisers of the training recipe (``--optimizer``, ``--schedule``).

All schedules are Keras' own ``LearningRateSchedule`` classes, so a saved model with its
optimiser needs no custom object to load (``safe_mode=True``):

* ``constant``; ``plateau`` (a float that ``ReduceLROnPlateau`` lowers);
* ``step``: ``ExponentialDecay(staircase=True)``, x``step_gamma`` every ``step_every`` epochs;
* ``cosine``: ``CosineDecay`` to 0, with optional linear warm-up;
* ``onecycle``: linear warm-up from ``peak/10`` over the first 25% of the steps (or ``--warmup``
  epochs), then cosine annealing to 0 -- the shape of PyTorch's ``OneCycleLR``, expressed as a
  ``CosineDecay`` with warm-up.
"""
from __future__ import annotations

import keras

from kblocks.common.errors import ConfigError

SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05}


def make_schedule(name, lr, *, steps_per_epoch, epochs, warmup_epochs=0.0, step_every=None,
                  step_gamma=0.1):
    """The learning rate (a float or a schedule) for ``--schedule name``."""
    name = (name or "constant").lower()
    total = max(1, int(steps_per_epoch) * int(epochs))
    warmup_steps = int(round(float(warmup_epochs or 0) * steps_per_epoch))
    if warmup_steps >= total and name in ("cosine",):
        raise ConfigError(f"warm-up of {warmup_epochs} epochs is not shorter than the run "
                          f"({epochs} epochs)", what="warmup")
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
        up = warmup_steps or max(1, int(round(0.25 * total)))
        up = min(up, total - 1) if total > 1 else 0
        return keras.optimizers.schedules.CosineDecay(
            float(lr) * 0.1, decay_steps=max(1, total - up), warmup_target=float(lr),
            warmup_steps=up)
    raise ConfigError(f"unknown schedule {name!r}", what="schedule",
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
        raise ConfigError(f"weight decay must be >= 0, got {decay}", what="weight_decay")
    if name == "sgd":
        if not 0 <= float(momentum) < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}", what="momentum")
        opt = keras.optimizers.SGD(learning_rate, momentum=float(momentum), nesterov=bool(nesterov),
                                   weight_decay=decay / (1.0 - float(momentum)) if decay else None)
    elif name == "adam":
        opt = keras.optimizers.Adam(learning_rate, weight_decay=decay or None)
    elif name == "adamw":
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=decay)
    else:
        raise ConfigError(f"unknown optimizer {name!r}", what="optimizer",
                          hint="use one of " + ", ".join(OPTIMIZERS))
    if decay:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if loss_scale:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt

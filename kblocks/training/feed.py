"""How training batches reach the model: Keras' host path, or the device-resident fast path.

``kblocks train`` and every search trial pick one of two feeds (``--feed``):

* ``host`` — Keras' own array adapter, ``model.fit(x, y, batch_size=..., shuffle=True)``: every
  step gathers a shuffled batch of the host arrays and copies it to the device.
* ``device`` — the uint8 images and the labels are moved to the device once
  (``keras.ops.convert_to_tensor``). Each epoch draws a seeded permutation and each step gathers
  its batch there (``keras.ops.take``), so nothing crosses from the host while training and no
  float32 copy of the images ever exists outside the compiled step (the model's first layer
  normalises). The ragged last batch of an epoch is dropped, as PyTorch's ``drop_last`` does, so
  every step has one shape (on JAX a smaller batch compiles the step a second time); a permutation
  per epoch means the dropped images differ from epoch to epoch.
* ``auto`` (the default) — ``device`` on the JAX backend with a GPU or TPU, no ``--distribute``,
  and images of at most :data:`DEVICE_FEED_MAX_BYTES`; ``host`` otherwise. On TensorFlow a
  ``keras.utils.PyDataset`` goes through ``tf.data.Dataset.from_generator``, which copies every
  batch back through the host, so there the host path (``tf.data`` with prefetching) is the faster
  one; ``--feed device`` still works there (the tests run it on the CPU).

The number of steps one compiled call runs (``steps_per_execution``) is chosen here too: on an
accelerator, ``auto`` runs up to :data:`AUTO_STEPS_PER_EXECUTION` steps between two visits of the
host, so per-step callbacks (the trainer's NaN guard reads the loss) do not stall the device after
every step. On the CPU it is 1: the host is the device, and progress is reported every step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from kblocks.common.errors import ConfigError

FEEDS = ("auto", "host", "device")

#: ``auto`` keeps data sets whose images are larger than this on the host (bytes; 4 GiB).
DEVICE_FEED_MAX_BYTES = 4 << 30

#: ``--steps-per-execution auto`` on an accelerator: at most this many steps per compiled call.
AUTO_STEPS_PER_EXECUTION = 32


@dataclass(frozen=True)
class Feed:
    """The feed a run uses (``kind`` is ``host`` or ``device``), why, and its steps per call."""

    kind: str
    reason: str
    steps_per_execution: int = 1

    def as_dict(self) -> dict:
        return {"kind": self.kind, "reason": self.reason,
                "steps_per_execution": self.steps_per_execution}


def choose(feed="auto", *, nbytes: int, batch_size: int, train_size: int, distributed=False,
           steps_per_execution="auto") -> Feed:
    """The :class:`Feed` for ``feed`` (``auto``, ``host`` or ``device``) and a data set of
    ``train_size`` images taking ``nbytes`` bytes. Raises :class:`ConfigError` for a feed that
    cannot work (``device`` with ``--distribute``) or an unknown name."""
    from kblocks.training.distribute import accelerator_present

    choice = check(feed, steps_per_execution)
    accelerator = accelerator_present()
    if choice == "device" and distributed:
        raise ConfigError("--feed device keeps the data on one device, which --distribute "
                          "spreads over several", what="feed",
                          hint="use --feed host (or auto) with --distribute")
    if choice == "auto":
        backend = keras.backend.backend()
        if distributed:
            choice, reason = "host", "auto: --distribute splits host batches over the devices"
        elif backend != "jax":
            choice, reason = "host", f"auto: the {backend} backend feeds arrays through its own " \
                                     f"input pipeline"
        elif not accelerator:
            choice, reason = "host", "auto: no GPU or TPU (the host is the device)"
        elif nbytes > DEVICE_FEED_MAX_BYTES:
            choice, reason = "host", (f"auto: {nbytes / 2**30:.1f} GiB of images is over the "
                                      f"{DEVICE_FEED_MAX_BYTES / 2**30:.0f} GiB kept on a device")
        else:
            choice, reason = "device", "auto: JAX on an accelerator, data moved to it once"
    else:
        reason = f"--feed {choice}"
    steps = steps_per_epoch(choice, train_size, batch_size)
    return Feed(choice, reason, resolve_steps_per_execution(steps_per_execution, steps,
                                                            accelerator))


def check(feed="auto", steps_per_execution="auto") -> str:
    """The feed's name in lower case, after checking both options (a :class:`ConfigError` names
    the option at fault); nothing is imported or measured, so option mistakes fail at once."""
    choice = str(feed or "auto").lower()
    if choice not in FEEDS:
        raise ConfigError(f"unknown feed {feed!r}", what="feed",
                          hint="use " + ", ".join(FEEDS))
    resolve_steps_per_execution(steps_per_execution, 1, False)
    return choice


def resolve_steps_per_execution(value, steps: int, accelerator: bool) -> int:
    """``value`` (a positive count or ``auto``) as a count, at most ``steps`` (one epoch)."""
    if value in (None, "auto"):
        wanted = AUTO_STEPS_PER_EXECUTION if accelerator else 1
    else:
        try:
            wanted = int(value)
        except (TypeError, ValueError):
            wanted = 0
        if wanted < 1 or str(value).strip() != str(wanted):
            raise ConfigError(f"steps per execution must be a positive whole number or auto, "
                              f"got {value!r}", what="steps_per_execution")
    return max(1, min(wanted, int(steps)))


def steps_per_epoch(kind: str, train_size: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the device feed drops the ragged last batch (a data set
    smaller than one batch is one batch), the host feed keeps it."""
    n, batch = int(train_size), int(batch_size)
    if kind == "device":
        return max(1, n // batch)
    return max(1, math.ceil(n / batch))


def even_batch(n: int, batch: int) -> int:
    """A batch size near ``batch`` that divides ``n``, so evaluation has no ragged last batch
    (on JAX a ragged batch compiles the step a second time); ``batch`` if there is none."""
    for size in range(min(n, 2 * batch), max(1, batch // 2) - 1, -1):
        if n % size == 0:
            return size
    return batch


def fit_arguments(feed: Feed, x, y, *, batch_size: int, seed: int = 0, validation=None,
                  validation_batch_size=None, initial_epoch: int = 0) -> dict:
    """Keyword arguments for ``model.fit`` that train on ``(x, y)`` through ``feed`` and validate
    on ``validation`` (an ``(x, y)`` pair or ``None``) with ``validation_batch_size``, by default
    a batch near ``batch_size`` that divides the validation set. With the
    device feed ``callbacks`` holds the callback that tells the batches which epoch it is: add
    your own callbacks to that list."""
    batch = int(batch_size)
    if validation is not None and validation_batch_size is None:
        validation_batch_size = even_batch(len(validation[0]), batch)
    if feed.kind == "device":
        batches = DeviceBatches(x, y, batch, seed=seed, first_epoch=initial_epoch)
        out = {"x": batches, "shuffle": False, "callbacks": [batches.epoch_callback()]}
        if validation is not None:
            vx, vy = validation
            out["validation_data"] = DeviceBatches(vx, vy, validation_batch_size, shuffle=False)
        return out
    out = {"x": x, "y": y, "batch_size": batch, "shuffle": True, "callbacks": []}
    if validation is not None:
        out["validation_data"] = tuple(validation)
        out["validation_batch_size"] = int(validation_batch_size)
    return out


class DeviceBatches(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` over arrays moved to the device once (see the module doc).

    With ``shuffle`` each epoch is a fresh permutation drawn from ``(seed, epoch)`` and the ragged
    last batch is dropped; the epoch is the one ``fit`` is in when :meth:`epoch_callback` is among
    its callbacks (so a run resumed at ``initial_epoch`` sees the batches it would have seen), and
    otherwise counts up from ``first_epoch``. Without ``shuffle`` the order is the data's own and
    every image is served (evaluation)."""

    def __init__(self, x, y=None, batch_size=128, *, shuffle=True, seed=0, first_epoch=0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.size = int(len(x))
        if self.size < 1:
            raise ConfigError("no images to feed", what="data")
        self.batch_size = max(1, min(int(batch_size), self.size))
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = int(first_epoch)
        self.x = ops.convert_to_tensor(np.asarray(x))  # dtype kept: uint8 images stay uint8
        self.y = None if y is None else ops.convert_to_tensor(np.asarray(y))
        self.steps = steps_per_epoch("device" if self.shuffle else "host", self.size,
                                     self.batch_size)
        self._order, self._drawn = None, None
        self._began = self._told = False
        self._draw()

    def _draw(self):
        """Indices of this epoch's batches, on the device, shape (steps, batch)."""
        if not self.shuffle or self._drawn == self.epoch:
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size)[:self.steps * self.batch_size].astype(np.int32)
        self._order = ops.convert_to_tensor(order.reshape(self.steps, self.batch_size))
        self._drawn = self.epoch

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A callback for ``fit`` that sets :attr:`epoch` at the start of every epoch."""
        return _EpochSync(self)

    def on_epoch_begin(self):
        if not self._told and self._began:
            self.epoch += 1
        self._began, self._told = True, False
        self._draw()

    @property
    def num_batches(self):
        return self.steps

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        if not 0 <= i < self.steps:
            raise IndexError(f"batch {i} of {self.steps}")
        if self.shuffle:
            index = self._order[i]
            xb = ops.take(self.x, index, axis=0)
            yb = None if self.y is None else ops.take(self.y, index, axis=0)
        else:
            start, stop = i * self.batch_size, min(self.size, (i + 1) * self.batch_size)
            xb = self.x[start:stop]
            yb = None if self.y is None else self.y[start:stop]
        return (xb,) if yb is None else (xb, yb)


class _EpochSync(keras.callbacks.Callback):
    def __init__(self, batches: DeviceBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = int(epoch)
        self.batches._told = True

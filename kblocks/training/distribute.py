"""Data-parallel training across the local devices (``kblocks train --distribute``).

* JAX: ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``.
* TensorFlow: ``tf.distribute.MirroredStrategy`` over the GPUs (or, with no GPU, over the logical
  CPU devices, which is how the tests run it), or ``MultiWorkerMirroredStrategy`` when the
  ``TF_CONFIG`` environment variable describes a cluster.

The batch size is the global batch: it is split evenly over the replicas, so it must be a multiple
of the number of devices. Everything backend-specific lives in this module, in separate branches.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import keras

from kblocks.common.errors import ConfigError


@dataclass
class Placement:
    kind: str = "single"       # single | mirrored | multi-worker | data-parallel
    replicas: int = 1
    devices: tuple = ()

    def as_dict(self):
        return {"kind": self.kind, "replicas": self.replicas, "devices": list(self.devices)}


@contextlib.contextmanager
def scope(enabled: bool, *, batch_size: int | None = None):
    """Context in which the model is built, compiled and trained; yields a :class:`Placement`."""
    if not enabled:
        yield Placement()
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        with _tf_scope(batch_size) as placement:
            yield placement
    elif backend == "jax":
        with _jax_scope(batch_size) as placement:
            yield placement
    else:
        raise ConfigError(f"--distribute is not supported on the {backend} backend",
                          what="distribute", hint="use KERAS_BACKEND=jax or tensorflow")


def _check_batch(batch_size, replicas):
    if batch_size is not None and replicas > 1 and batch_size % replicas:
        raise ConfigError(f"batch size {batch_size} does not split evenly over {replicas} devices",
                          what="batch_size",
                          hint=f"use a multiple of {replicas}, e.g. "
                               f"{(batch_size // replicas + 1) * replicas}")


# -- TensorFlow ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _tf_scope(batch_size):
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        kind = "multi-worker"
        devices = ()
    else:
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        kind = "mirrored"
    replicas = int(strategy.num_replicas_in_sync)
    _check_batch(batch_size, replicas)
    with strategy.scope():
        yield Placement(kind, replicas, tuple(devices))


# -- JAX ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _jax_scope(batch_size):
    devices = keras.distribution.list_devices()
    _check_batch(batch_size, len(devices))
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        yield Placement("data-parallel", len(devices), tuple(str(d) for d in devices))
    finally:
        keras.distribution.set_distribution(previous)


def accelerator_present() -> bool:
    """True when the backend sees a GPU or TPU (used for the default precision)."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return any(d.platform in ("gpu", "tpu") for d in jax.devices())
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False
    return False

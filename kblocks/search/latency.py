"""Measured inference time per image (``--minimize latency``), cached per fixed text.

Multiply-adds say little about time on a given device (depthwise convolutions, memory-bound layers,
kernel launches), so a Pareto search can minimise measured latency instead: the architecture's
model (fresh weights: time does not depend on their values) predicts one batch of zeros
``warmup`` times (compilation, caches), then ``repeats`` more times, each timed; the latency is
the median of those divided by the batch size, in milliseconds per image.

Measurements are kept in a JSON file in the search folder (``kt/latency.json``), keyed by the
canonical fixed text, the Keras backend, the device and the batch size, so an architecture that
two trials share, or a trial run again on ``--resume``, is measured once per device.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import time

from kblocks.common import atomic

CACHE_FILE = "latency.json"


def device_name() -> str:
    """The device inference runs on, e.g. ``cpu`` or ``gpu:NVIDIA H200`` (backend's first)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            dev = jax.devices()[0]
            return f"{dev.platform}:{getattr(dev, 'device_kind', '')}".rstrip(":")
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"gpu:{details.get('device_name', gpus[0].name)}"
    except Exception:  # noqa: BLE001 - a device we cannot name is still a device
        pass
    return "cpu"


def cache_key(text: str, backend: str, device: str, batch: int) -> str:
    """The cache's key: a digest of what a latency depends on."""
    blob = json.dumps([text, backend, device, int(batch)])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def time_model(model, input_shape, *, batch: int = 1, warmup: int = 3, repeats: int = 10) -> float:
    """Median milliseconds per image of ``model.predict_on_batch`` on a batch of zeros."""
    import numpy as np

    x = np.zeros((int(batch),) + tuple(input_shape), dtype="float32")
    for _ in range(max(1, warmup)):
        model.predict_on_batch(x)
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        out = model.predict_on_batch(x)
        np.asarray(out)  # wait for the device (JAX dispatches asynchronously)
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times) / int(batch)


class LatencyCache:
    """Latencies measured on this device, read from and written to ``path`` (a JSON file).

    ``measurements`` counts the models actually timed by this object (what a cached answer
    saves)."""

    def __init__(self, path, *, batch: int = 1, warmup: int = 3, repeats: int = 10):
        self.path = os.fspath(path)
        self.batch, self.warmup, self.repeats = int(batch), int(warmup), int(repeats)
        self.measurements = 0

    def _load(self) -> dict:
        try:
            with open(self.path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):  # none yet, or unreadable: measure again
            return {}

    def latency(self, text: str, build, input_shape) -> float:
        """Milliseconds per image for the fixed ``text``; ``build()`` makes its model when the
        cache has no measurement for this text, backend, device and batch size."""
        import keras

        backend, device = keras.backend.backend(), device_name()
        key = cache_key(text, backend, device, self.batch)
        entry = self._load().get(key)
        if isinstance(entry, dict) and isinstance(entry.get("ms"), (int, float)):
            return float(entry["ms"])
        ms = time_model(build(), input_shape, batch=self.batch, warmup=self.warmup,
                        repeats=self.repeats)
        self.measurements += 1
        data = self._load()  # another process may have added entries meanwhile
        data[key] = {"ms": ms, "text": text, "backend": backend, "device": device,
                     "batch": self.batch, "repeats": self.repeats}
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        atomic.write_json(self.path, data)
        return ms

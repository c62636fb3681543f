"""Callbacks of the trainer: atomic checkpoints, a live ``history.csv``, a NaN guard, timing."""
from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from kblocks.training import interrupts, runfolder

from kblocks.common import saving


def _scalar(value):
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return None


class AtomicCheckpoint(keras.callbacks.Callback):
    """Save ``best.keras`` when ``monitor`` improves and ``last.keras`` every epoch, atomically,
    then ``state.json`` (the epochs done, the best value): what ``kblocks train --resume`` reads.

    An epoch whose loss is not finite (or that ``guard``, a :class:`NaNGuard`, stopped) saves
    nothing, so the files keep the last good epoch. The three writes are one unit for Ctrl-C
    (:func:`kblocks.training.interrupts.deferred`): a SIGINT during them waits until all three are done."""

    def __init__(self, best_path=None, last_path=None, monitor="val_loss", mode="auto",
                 state_path=None, guard=None, best=None, best_epoch=None):
        super().__init__()
        self.best_path = best_path
        self.last_path = last_path
        self.state_path = state_path
        self.guard = guard
        self.monitor = monitor
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall", "iou")) \
                else "min"
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        if best is not None:  # resuming: the best value of the epochs before
            self.best = float(best)
        self.best_epoch = best_epoch
        self.best_logs = None
        self.epochs_done = 0

    def _improved(self, value):
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.guard is not None and self.guard.where is not None:
            return  # the loss diverged in this epoch: keep the last good checkpoints
        loss = _scalar(logs.get("loss"))
        if loss is not None and not math.isfinite(loss):
            return
        value = _scalar(logs.get(self.monitor))
        saved = {"last": self.epochs_done, "best": self.best_epoch}  # what the files hold now
        with interrupts.deferred():
            if self.best_path is not None and value is not None and math.isfinite(value) \
                    and self._improved(value):
                self.best = value
                self.best_epoch = epoch + 1
                self.best_logs = {k: _scalar(v) for k, v in logs.items()}
                saving.save_model(self.model, self.best_path, kept=lambda: self._kept(saved))
                saved["best"] = epoch + 1
            if self.last_path is not None:
                saving.save_model(self.model, self.last_path, kept=lambda: self._kept(saved))
                saved["last"] = epoch + 1
            self.epochs_done = epoch + 1
            if self.state_path is not None:
                runfolder.write_json(self.state_path, self.state(),
                                     kept=lambda: self._kept(saved))

    def _kept(self, saved) -> str | None:
        """What the checkpoints hold when a write of this epoch fails (a full disk)."""
        folder = self.last_path or self.best_path or self.state_path
        if folder is None:
            return None
        if not saved["last"]:  # resumed: this process has saved nothing yet
            return runfolder.checkpoints_kept(Path(folder).parent)
        return runfolder.epochs_kept(Path(folder).parent, saved["last"], saved["best"])

    def state(self) -> dict:
        return {"epochs_done": self.epochs_done, "monitor": self.monitor, "mode": self.mode,
                "best": self.best if math.isfinite(self.best) else None,
                "best_epoch": self.best_epoch, "last": "last.keras",
                "optimizer_iterations": _iterations(self.model),
                "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _iterations(model):
    opt = getattr(model, "optimizer", None)
    try:
        return int(np.asarray(opt.iterations))
    except Exception:  # noqa: BLE001
        return None


class HistoryWriter(keras.callbacks.Callback):
    """Rewrite ``history.csv`` (atomically) after every epoch: epoch, metrics, lr, seconds."""

    def __init__(self, path=None, rows=()):
        super().__init__()
        self.path = path
        self.rows = list(rows)  # resuming: the epochs before
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            if key == "learning_rate":
                continue
            row[key] = _scalar(value)
        row["lr"] = current_lr(self.model)
        row["seconds"] = round(time.perf_counter() - (self._t0 or time.perf_counter()), 3)
        self.rows.append(row)
        if self.path is not None:
            runfolder.write_history(self.path, self.rows)


def current_lr(model):
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    inner = getattr(opt, "inner_optimizer", opt)
    lr = inner.learning_rate
    try:
        return float(np.asarray(keras.ops.convert_to_numpy(lr)))
    except Exception:  # noqa: BLE001
        return _scalar(lr)


class NaNGuard(keras.callbacks.Callback):
    """Stop training at the first non-finite loss and remember where (epoch and step, 1-based)."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.where = None  # (epoch, step, value)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = _scalar((logs or {}).get("loss"))
        if value is not None and not math.isfinite(value):
            self.where = (self.epoch + 1, batch + 1, value)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        value = _scalar((logs or {}).get("loss"))
        if self.where is None and value is not None and not math.isfinite(value):
            self.where = (epoch + 1, None, value)
            self.model.stop_training = True


class FitTimer(keras.callbacks.Callback):
    """Wall time of the first epoch (includes compiling) and of the rest."""

    def __init__(self):
        super().__init__()
        self.epoch_seconds = []
        self._t = None
        self.train_start = None
        self.train_seconds = None

    def on_train_begin(self, logs=None):
        self.train_start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._t)

    def on_train_end(self, logs=None):
        self.train_seconds = time.perf_counter() - self.train_start

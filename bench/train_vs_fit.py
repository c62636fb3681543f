#!/usr/bin/env python3
"""What ``kblocks train`` costs over a plain Keras ``fit`` doing the same work.

    python bench/train_vs_fit.py               # digits, the issue-23 network, 20 epochs, 3 rounds
    python bench/train_vs_fit.py --epochs 5 --rounds 1

Both sides train the same network on the same split of scikit-learn's digits with the same
optimizer (Adam 1e-3, constant), batch size and epochs, in this one process:

* ``kblocks.training.train`` writing a run folder (best.keras, last.keras, the CSV log, run.json;
  TensorBoard off, as the plain side has none);
* ``kblocks.build(..., normalize="standardize")`` + ``compile`` + ``fit`` with
  ``ModelCheckpoint(best.keras, save_best_only)``, ``ModelCheckpoint(last.keras)`` and
  ``CSVLogger``: the same two checkpoints and a CSV log.

Each round runs both (the order alternates between rounds; one warm-up run of each first, so
graph tracing caches and imports are not charged to whichever runs first). Wall time includes
building and compiling the model and writing the files. The last line of output is one JSON
object with the median wall times and their ratio (train / fit).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import cpu_model  # noqa: E402

NET = "[CONV(32)-RELU]*2-POOL-[CONV(64)-RELU]*2-GAP-FC(10)"


def run_train(folder, epochs, batch_size):
    from kblocks.training import train

    start = time.perf_counter()
    result = train(NET, data="digits", epochs=epochs, batch_size=batch_size, optimizer="adam",
                   schedule="constant", seed=0, out=folder, overwrite=True, verbose=0,
                   tensorboard=False)
    return time.perf_counter() - start, result.final["val_accuracy"]


def run_fit(folder, epochs, batch_size):
    import keras

    import kblocks
    from kblocks.training.data import load_data, split_data

    start = time.perf_counter()
    train_set, val = split_data(load_data("digits"), 0.1, seed=0)
    keras.utils.set_random_seed(0)
    model = kblocks.build(NET, input_shape=(8, 8, 1), normalize="standardize",
                          normalize_stats=train_set.x)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    folder.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(folder / "best.keras"), monitor="val_accuracy",
                                        save_best_only=True),
        keras.callbacks.ModelCheckpoint(str(folder / "last.keras")),
        keras.callbacks.CSVLogger(str(folder / "log.csv")),
    ]
    history = model.fit(train_set.x.astype("float32"), train_set.y, epochs=epochs,
                        batch_size=batch_size, validation_data=(val.x.astype("float32"), val.y),
                        callbacks=callbacks, verbose=0)
    return time.perf_counter() - start, max(history.history["val_accuracy"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    import keras

    work = Path(tempfile.mkdtemp(prefix="kb_train_vs_fit_"))
    times = {"train": [], "fit": []}
    accuracy = {"train": [], "fit": []}
    runners = {"train": run_train, "fit": run_fit}
    try:
        for name in ("train", "fit"):  # warm-up, not counted
            runners[name](work / f"warm_{name}", 1, args.batch_size)
            keras.backend.clear_session()
        for r in range(args.rounds):
            order = ("train", "fit") if r % 2 == 0 else ("fit", "train")
            for name in order:
                seconds, acc = runners[name](work / f"{name}_{r}", args.epochs, args.batch_size)
                keras.backend.clear_session()
                times[name].append(seconds)
                accuracy[name].append(acc)
                print(f"round {r + 1} {name:5s} {seconds:7.2f} s  val_accuracy {acc:.4f}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["train"] / med["fit"]
    print(f"kblocks train / plain fit: {ratio:.3f}x (median of {args.rounds} rounds; "
          f"{med['train']:.2f} s / {med['fit']:.2f} s)")
    print(json.dumps({
        "bench": "train_vs_fit", "network": NET, "data": "digits", "epochs": args.epochs,
        "batch_size": args.batch_size, "rounds": args.rounds,
        "seconds": {k: [round(s, 3) for s in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()}, "ratio": round(ratio, 3),
        "val_accuracy": accuracy, "backend": keras.backend.backend(), "keras": keras.__version__,
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

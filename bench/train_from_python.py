#!/usr/bin/env python3
"""What ``kblocks.train(x=, y=)`` and ``kblocks.train(dataset=)`` cost over the Keras idiom.

    python bench/train_from_python.py                  # 10,000 CIFAR-10 images, 2 epochs, 3 rounds
    python bench/train_from_python.py --train 5000 --epochs 1 --rounds 1

Four runners, same network, data, optimizer (Adam 1e-3, constant), batch size and epochs, in one
process; wall time includes building, compiling and the normalisation statistics:

* ``train_arrays``: ``kblocks.train(NET, x=, y=, validation_data=)`` (no run folder);
* ``fit_arrays``: ``kblocks.build(..., normalize="standardize", normalize_stats=x)`` +
  ``compile`` + ``fit(x, y, validation_data=)``;
* ``train_dataset``: ``kblocks.train(NET, dataset=, validation_dataset=)``, which reads the
  dataset once first (size, classes, per-channel statistics);
* ``fit_dataset``: ``keras.layers.Normalization().adapt(dataset)`` (Keras' own pass over the
  data for the same statistics) in front of the same network, ``compile`` + ``fit(dataset)``.

Each round runs all four (the order rotates; one warm-up run of each first). The last line is one
JSON object with the medians and the two ratios (train / fit), plus the time of the pre-pass alone
(``kblocks.training.data.scan_dataset``) against one epoch of the plain fit.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import cpu_model  # noqa: E402

NET = "[CONV(32)-RELU-POOL]*2-CONV(64)-RELU-GAP-FC(10)"
CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "train.npz"


def _data(n_train, n_val):
    from kblocks.training.data import load_data

    import numpy as np

    data = load_data(f"cifar10:{CIFAR}") if CIFAR.exists() else load_data("digits")
    order = np.random.default_rng(0).permutation(len(data))  # the file is sorted by class
    x, y = data.x[order], data.y[order]
    return (x[:n_train], y[:n_train], x[-n_val:], y[-n_val:], data.name)


def _datasets(xt, yt, xv, yv, batch):
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((xt, yt)).shuffle(len(xt), seed=0).batch(batch)
    val = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(batch)
    return train, val


def _compile(model):
    import keras

    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def train_arrays(d, epochs, batch):
    import kblocks

    xt, yt, xv, yv, _ = d
    result = kblocks.train(NET, x=xt, y=yt, validation_data=(xv, yv), epochs=epochs,
                           batch_size=batch, optimizer="adam", lr=1e-3, schedule="constant",
                           seed=0, verbose=0, tensorboard=False)
    return result.final["val_accuracy"]


def fit_arrays(d, epochs, batch):
    import keras

    import kblocks

    xt, yt, xv, yv, _ = d
    keras.utils.set_random_seed(0)
    model = kblocks.build(NET, input_shape=xt.shape[1:], normalize="standardize",
                          normalize_stats=xt)
    _compile(model)
    history = model.fit(xt, yt, validation_data=(xv, yv), epochs=epochs, batch_size=batch,
                        verbose=0)
    return max(history.history["val_accuracy"])


def train_dataset(d, epochs, batch):
    import kblocks

    xt, yt, xv, yv, _ = d
    train, val = _datasets(xt, yt, xv, yv, batch)
    result = kblocks.train(NET, dataset=train, validation_dataset=val, epochs=epochs,
                           batch_size=batch, optimizer="adam", lr=1e-3, schedule="constant",
                           seed=0, verbose=0, tensorboard=False)
    return result.final["val_accuracy"]


def fit_dataset(d, epochs, batch):
    import keras

    import kblocks

    xt, yt, xv, yv, _ = d
    train, val = _datasets(xt, yt, xv, yv, batch)
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(train.map(lambda x, y: keras.ops.cast(x, "float32")))
    net = kblocks.build(NET, input_shape=xt.shape[1:])
    inputs = keras.Input(xt.shape[1:])
    model = keras.Model(inputs, net(norm(inputs)))
    _compile(model)
    history = model.fit(train, validation_data=val, epochs=epochs, verbose=0)
    return max(history.history["val_accuracy"])


RUNNERS = {"train_arrays": train_arrays, "fit_arrays": fit_arrays,
           "train_dataset": train_dataset, "fit_dataset": fit_dataset}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    import keras

    from kblocks.training.data import scan_dataset

    d = _data(args.train, args.val)
    times = {k: [] for k in RUNNERS}
    accuracy = {k: [] for k in RUNNERS}
    for run in RUNNERS.values():  # warm-up, not counted
        run(d, 1, args.batch_size)
        keras.backend.clear_session()
    names = list(RUNNERS)
    for r in range(args.rounds):
        for name in names[r % 4:] + names[:r % 4]:
            start = time.perf_counter()
            acc = RUNNERS[name](d, args.epochs, args.batch_size)
            seconds = time.perf_counter() - start
            keras.backend.clear_session()
            times[name].append(seconds)
            accuracy[name].append(round(float(acc), 4))
            print(f"round {r + 1} {name:13s} {seconds:7.2f} s  val_accuracy {acc:.4f}",
                  flush=True)
    scans = []
    for _ in range(args.rounds):
        train, _ = _datasets(*d[:4], args.batch_size)
        start = time.perf_counter()
        scan_dataset(train, batch_size=args.batch_size)
        scans.append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {"arrays": med["train_arrays"] / med["fit_arrays"],
              "dataset": med["train_dataset"] / med["fit_dataset"]}
    scan = statistics.median(scans)
    per_epoch = med["fit_dataset"] / args.epochs
    print(f"train(x=, y=) / fit(x, y): {ratios['arrays']:.3f}x; train(dataset=) / "
          f"adapt + fit(dataset): {ratios['dataset']:.3f}x; the pre-pass {scan:.2f} s "
          f"(~{scan / per_epoch:.2f} of a plain-fit epoch incl. its build)")
    print(json.dumps({
        "bench": "train_from_python", "network": NET, "data": d[4], "train": len(d[0]),
        "val": len(d[2]), "epochs": args.epochs, "batch_size": args.batch_size,
        "rounds": args.rounds,
        "seconds": {k: [round(s, 3) for s in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "scan_seconds": [round(s, 3) for s in scans], "val_accuracy": accuracy,
        "backend": keras.backend.backend(), "keras": keras.__version__, "cpu": cpu_model(),
        "cores": os.cpu_count(), "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}))


if __name__ == "__main__":
    main()

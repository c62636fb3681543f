#!/usr/bin/env python3
"""BatchNorm on short runs (issue 17): validation accuracy of a CONV-BN-RELU net after a few epochs,
with ``bn_momentum="auto"`` (the trainer's default), ``"keep"`` (Keras' 0.99) and
``BN(momentum=0.9)`` written in the text.

    python bench/bn_short_runs.py                  # digits, 8 epochs, seeds 0 1 2
    python bench/bn_short_runs.py --epochs 2 --seeds 0

Every run is ``kblocks.training.train`` in memory (no run folder) on the digits' seeded 10%
validation split, the trainer's default recipe otherwise (SGD 0.05, cosine, batch 128). The table
gives each run's last-epoch training accuracy and validation accuracy; the last line of output is
one JSON object with the median validation accuracy of each variant and the ratios auto / keep and
auto / written-0.9.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import cpu_model  # noqa: E402

NET = "[CONV(32)-BN-RELU]*3-GAP-FC(10)"
#: name -> (architecture text, bn_momentum)
VARIANTS = {
    "auto": (NET, "auto"),
    "keep": (NET, "keep"),
    "written_0.9": (NET.replace("BN", "BN(momentum=0.9)"), "auto"),
}


def run(text, bn_momentum, epochs, seed):
    from kblocks.training import TrainConfig, train

    result = train(text, TrainConfig(data="digits", epochs=epochs, seed=seed, verbose=0,
                                     tensorboard=False, bn_momentum=bn_momentum))
    return (result.final["train_accuracy (last epoch)"], result.final["val_accuracy"],
            result.info["batch_norm"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", default=None, help="also write the JSON object here")
    args = parser.parse_args(argv)

    rows, val = [], {name: [] for name in VARIANTS}
    for seed in args.seeds:
        for name, (text, bn_momentum) in VARIANTS.items():
            train_acc, val_acc, batch_norm = run(text, bn_momentum, args.epochs, seed)
            val[name].append(val_acc)
            rows.append((name, seed, train_acc, val_acc, batch_norm["in_effect"],
                         batch_norm["steps"]))
            print(f"{name:<12} seed {seed}  train {train_acc:.3f}  val {val_acc:.3f}  momentum "
                  f"{'/'.join(f'{m:g}' for m in batch_norm['in_effect'])} over "
                  f"{batch_norm['steps']} steps", flush=True)
    median = {name: statistics.median(v) for name, v in val.items()}
    print("\nmedian val accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in median.items()))
    print(f"auto / keep {median['auto'] / median['keep']:.2f}x, auto / written 0.9 "
          f"{median['auto'] / median['written_0.9']:.2f}x")
    import keras

    record = {"bench": "bn_short_runs", "net": NET, "data": "digits", "epochs": args.epochs,
              "seeds": args.seeds, "median_val_accuracy": median,
              "ratio_auto_over_keep": median["auto"] / median["keep"],
              "ratio_auto_over_written": median["auto"] / median["written_0.9"],
              "runs": [{"variant": n, "seed": s, "train_accuracy": t, "val_accuracy": v,
                        "momentum": m, "steps": st} for n, s, t, v, m, st in rows],
              "machine": cpu_model(), "python": platform.python_version(),
              "keras": keras.__version__, "backend": keras.backend.backend(),
              "date": _dt.date.today().isoformat()}
    line = json.dumps(record)
    if args.json:
        Path(args.json).write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()

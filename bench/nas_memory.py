"""Memory across the trials of one search process: RSS after trial 2 against RSS after trial N.

    python bench/nas_memory.py [--trials 20] [--epochs 1] [--tuner random]

Runs a random search of tiny architectures on scikit-learn's digits (CPU, TensorFlow backend by
default) in this process and prints the resident set size after every trial. Every trial builds
a different model; Keras Tuner clears the Keras session before each build and kblocks collects
garbage after each trial, so memory should level off: the script exits 1 if the RSS after the
last trial is more than 20% above the RSS after trial 2. docs/BENCHMARKS.md ("Search memory")
records a run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SPACE = ("[[CONV({f#: 8|16|24})-RELU]*{n#: 1..2}-POOL?]*{stages: 1..3}"
         "-[FC({u#: 16..64 step 16})-RELU]*{k: 0..1}-FC(classes)")


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:  # pragma: no cover - not Linux
        import psutil

        return psutil.Process().memory_info().rss / 2 ** 20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--out", default=None, help="search folder [default: a temporary one]")
    args = parser.parse_args(argv)

    import keras

    from kblocks.search.runner import SearchConfig, run_search
    from kblocks.training import TrainConfig

    out = args.out or tempfile.mkdtemp(prefix="kblocks-nas-memory-")
    rows = []
    started = time.time()

    def echo(line: str):
        if line.startswith("trial "):
            rows.append((len(rows) + 1, rss_mib(), time.time() - started))
            print(f"{line.splitlines()[0]:<60} RSS {rows[-1][1]:7.1f} MiB", flush=True)

    cfg = SearchConfig(space=SPACE, train=TrainConfig(data="digits", epochs=args.epochs,
                                                      batch_size=128, tensorboard=False,
                                                      verbose=0),
                       tuner=args.tuner, trials=args.trials, out=out, overwrite=True,
                       report=False)
    run_search(cfg, echo=echo, command=["bench/nas_memory.py"])
    if len(rows) < 3:
        print("fewer than 3 trials ran; nothing to compare")
        return 1
    base, last = rows[1][1], rows[-1][1]
    growth = last / base - 1.0
    print(f"\nbackend {keras.backend.backend()}, {len(rows)} trials in {rows[-1][2]:.0f} s")
    print(f"RSS after trial 2: {base:.1f} MiB; after trial {rows[-1][0]}: {last:.1f} MiB "
          f"({growth:+.1%}); peak {max(r[1] for r in rows):.1f} MiB")
    ok = growth <= 0.20
    print("within 20%" if ok else "MORE than 20% growth")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Zero-cost scores against trained accuracy, and pre-screened search against plain random search.

    python bench/prescreen_rank.py [--repeats 3] [--trials 10] [--k 8] [--epochs 3]
                                   [--scores naswot,synflow] [--search-scores naswot] [--out DIR]

On scikit-learn's digits (8x8, CPU) over the CS231n pattern space
(``kblocks/search/spaces/cs231n_pattern.yaml``), in two parts, every search through
:func:`kblocks.search.runner.run_search` with the same training recipe:

1. Rank correlation. ``--repeats`` plain random searches (seeds 1, 2, ...) of ``--trials``
   trials each train ``repeats * trials`` architectures for ``--epochs`` epochs (no early
   stopping); each architecture is then scored (naswot and synflow, as ``--prescreen`` scores it:
   the search's seed, one batch of its training images) and the Spearman and Kendall rank
   correlations between score and best validation accuracy are printed.
2. Same training budget. For every score of ``--search-scores`` and every seed, a search with ``--prescreen SCORE:K`` and the
   same number of trained trials; its best validation accuracy is printed next to the plain
   random search of the same seed (a random search's first T trials do not depend on how many
   trials it was given, so part 1's searches are the plain ones).

docs/BENCHMARKS.md ("Zero-cost pre-screening") records a run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SPACE = str(Path(__file__).resolve().parent.parent / "kblocks/search/spaces/cs231n_pattern.yaml")


def train_config(epochs: int):
    from kblocks.training import TrainConfig

    return TrainConfig(data="digits", val_split=0.2, epochs=epochs, batch_size=64,
                       optimizer="adam", tensorboard=False, verbose=0)


def one_search(out: Path, seed: int, trials: int, epochs: int, prescreen=None):
    """Run one search; return its completed trials (kblocks.search.report rows)."""
    from kblocks.search.report import load_report
    from kblocks.search.runner import SearchConfig, run_search

    cfg = SearchConfig(space=SPACE, train=train_config(epochs).replace(seed=seed),
                       tuner="random", trials=trials, out=str(out), overwrite=True,
                       prescreen=prescreen, report=False)
    run_search(cfg, echo=lambda line: None, command=["bench/prescreen_rank.py"])
    return [r for r in load_report(out).rows if r.status == "COMPLETED" and r.score is not None]


def scorer_for(seed: int, score: str, epochs: int):
    """The scorer a ``--prescreen score:K`` search of ``seed`` uses (same batch, same seed)."""
    from kblocks.search.prescreen import Prescreen, Scorer
    from kblocks.search.recipe import TrialRecipe
    from kblocks.search.runner import _drop_ragged
    from kblocks.search.space import SearchSpace
    from kblocks.training import prepare_data

    cfg = train_config(epochs).replace(seed=seed)
    train, _ = prepare_data(cfg, seed)
    x, y = _drop_ragged(train.x, train.y, cfg.batch_size)
    space = SearchSpace(SPACE, classes=train.num_classes, input_shape=train.input_shape)
    recipe = TrialRecipe.for_data(cfg, x, y, classes=train.num_classes, seed=seed)
    return Scorer(space, recipe, x, Prescreen(score, 2), seed=seed)


def correlations(scores, accuracies):
    from scipy import stats

    finite = [(s, a) for s, a in zip(scores, accuracies) if not math.isnan(s)]
    s, a = zip(*finite)
    s = [max(v, -1e300) for v in s]  # -inf (singular naswot kernel) ranks lowest
    return stats.spearmanr(s, a)[0], stats.kendalltau(s, a)[0], len(finite)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--scores", default="naswot,synflow")
    parser.add_argument("--search-scores", default="naswot",
                        help="scores of part 2's pre-screened searches (each costs a search)")
    parser.add_argument("--out", default=None, help="folder of the searches [a temporary one]")
    args = parser.parse_args(argv)
    scores = [s.strip() for s in args.scores.split(",") if s.strip()]
    searched = [s.strip() for s in args.search_scores.split(",") if s.strip()]

    import keras

    from _common import cpu_model

    root = Path(args.out or tempfile.mkdtemp(prefix="kblocks-prescreen-"))
    started = time.time()
    print(f"digits, {SPACE.rsplit('/', 1)[-1]}, {args.epochs} epochs per trial, backend "
          f"{keras.backend.backend()}, {os.cpu_count()} CPUs ({cpu_model()})", flush=True)

    # 1. plain random searches, and every trained architecture scored
    plain, rows = {}, []
    for seed in range(1, args.repeats + 1):
        trials = one_search(root / f"random-{seed}", seed, args.trials, args.epochs)
        plain[seed] = max(r.score for r in trials)
        scorers = {s: scorer_for(seed, s, args.epochs) for s in scores}
        for r in trials:
            rows.append({"seed": seed, "acc": r.score, "params": r.params,
                         "seconds": r.seconds or 0.0,
                         **{s: scorers[s](r.values) for s in scores}})
        print(f"random search, seed {seed}: {len(trials)} trials, best val_accuracy "
              f"{plain[seed]:.4f}  ({time.time() - started:.0f} s)", flush=True)
    accs = [r["acc"] for r in rows]
    print(f"\n{len(rows)} architectures, val_accuracy {min(accs):.3f}..{max(accs):.3f}")
    print(f"{'score':<10} {'Spearman':>9} {'Kendall':>8}  n")
    figures = {"architectures": len(rows), "correlation": {}}
    for s in scores + ["params"]:
        rho, tau, n = correlations([float(r[s]) for r in rows], accs)
        figures["correlation"][s] = {"spearman": round(rho, 4), "kendall": round(tau, 4)}
        print(f"{s:<10} {rho:9.3f} {tau:8.3f}  {n}")

    # 2. pre-screened searches with the same number of trained trials
    print(f"\nbest val_accuracy of {args.trials} trained trials (random; random with "
          f"--prescreen SCORE:{args.k})")
    header = f"{'seed':<6} {'random':>8} " + " ".join(f"{s + ':' + str(args.k):>12}"
                                                      for s in searched)
    print(header)
    best = {s: {} for s in searched}
    sizes = {"random": [], **{s: [] for s in searched}}
    seconds = {"random": [], **{s: [] for s in searched}}
    for r in rows:
        sizes["random"].append(r["params"])
        seconds["random"].append(r["seconds"])
    for seed in range(1, args.repeats + 1):
        for s in searched:
            trials = one_search(root / f"{s}-{seed}", seed, args.trials, args.epochs,
                                prescreen=f"{s}:{args.k}")
            best[s][seed] = max(r.score for r in trials)
            sizes[s] += [r.params for r in trials]
            seconds[s] += [r.seconds or 0.0 for r in trials]
        print(f"{seed:<6} {plain[seed]:8.4f} " + " ".join(f"{best[s][seed]:12.4f}"
                                                        for s in searched), flush=True)
    mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
    print(f"{'mean':<6} {mean(plain):8.4f} " + " ".join(f"{mean(best[s]):12.4f}" for s in searched))
    for s in searched:
        wins = sum(best[s][k] > plain[k] for k in plain)
        ties = sum(best[s][k] == plain[k] for k in plain)
        print(f"{s}: better than random in {wins} of {len(plain)} seeds, equal in {ties}")
    for kind in sizes:  # what the trained trials cost: a screen can prefer bigger networks
        print(f"{kind}: median params of the trained trials {statistics.median(sizes[kind]):,.0f}, "
              f"mean training {statistics.mean(seconds[kind]):.1f} s per trial")
    figures.update({"random": plain, **{f"{s}:{args.k}": best[s] for s in searched},
                    "median_params": {k: statistics.median(v) for k, v in sizes.items()},
                    "seconds": round(time.time() - started, 1)})
    print(f"\n{time.time() - started:.0f} s in all; searches in {root}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

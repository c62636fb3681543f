"""Wall-clock seconds of whole ``kblocks`` commands (issue 17 point 5), one subprocess each:
four ``kblocks inspect`` calls of one method against one call with the four methods, ``kblocks
report`` and ``kblocks export`` of a tiny model, for one or more source trees in the same run.

    python bench/cli_times.py                                   # this tree only
    python bench/cli_times.py --tree base=/tmp/base-speed --tree new=.   # before / after, ratios

Each tree runs as ``python -m kblocks`` with ``PYTHONPATH`` set to the tree, so a tree without the
multi-method ``--method a,b,c`` (an older commit) is timed on the four single calls only. The
files the commands read (a tiny ``.keras`` model, a PNG, a 2-trial search folder on digits) are
made once, before any timing, with this tree's kblocks. Commands of the trees are interleaved
(tree A, tree B, tree A, ...) so a machine whose load changes affects both alike. The last line is
one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import cpu_model  # noqa: E402

METHODS = ("saliency", "gradcam", "occlusion", "featuremaps")
MODEL_TEXT = "CONV(8)-RELU-POOL-CONV(16)-RELU-GAP-FC(4)"
SPACE = "[CONV({f#: 4|8})-RELU-POOL]*1-GAP-FC(classes)"


def _env(tree: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # each tree's CLI decides what it prints
    return env


def kblocks(tree: Path, args, cwd) -> float:
    """Seconds of one ``python -m kblocks ARGS`` run with ``tree`` on the path (fails loudly)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kblocks", *map(str, args)], cwd=cwd,
                          env=_env(tree), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"kblocks {' '.join(map(str, args))} failed in {tree}:\n"
                         f"{done.stdout}\n{done.stderr}")
    return seconds


def has_multi_method(tree: Path) -> bool:
    text = (tree / "kblocks" / "cli" / "inspect.py").read_text()
    return "_methods(" in text  # the multi-method parser of issue 17


def prepare(work: Path) -> dict:
    """The model, the image and the search folder every tree reads (made with this tree)."""
    import numpy as np
    from PIL import Image

    model = work / "m.keras"
    kblocks(ROOT, ["build", MODEL_TEXT, "--input-shape", "32,32,3", "-o", model], work)
    image = work / "cat.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    search = work / "search"
    kblocks(ROOT, ["search", SPACE, "--data", "digits", "--tuner", "random", "--trials", "2",
                   "--epochs", "1", "--batch-size", "128", "--out", search, "--no-report"], work)
    return {"model": model, "image": image, "search": search}


def time_tree(tree: Path, files: dict, work: Path, multi: bool) -> dict:
    out = work / f"out-{abs(hash(str(tree)))}"
    out.mkdir(exist_ok=True)
    figures = {}
    singles = 0.0
    for method in METHODS:
        singles += kblocks(tree, ["inspect", files["model"], "--image", files["image"], "--method",
                                  method, "-o", out / f"{method}.png"], work)
    figures["inspect_4_calls"] = singles
    if multi:
        figures["inspect_1_call_4_methods"] = kblocks(
            tree, ["inspect", files["model"], "--image", files["image"], "--method", ",".join(METHODS),
                   "-o", out / "all.png"], work)
    figures["report"] = kblocks(tree, ["report", files["search"]], work)
    target = out / "saved"
    shutil.rmtree(target, ignore_errors=True)
    figures["export"] = kblocks(tree, ["export", files["model"], "-o", target], work)
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=None, metavar="NAME=PATH",
                        help="A source tree to time (repeatable; default: this one).")
    parser.add_argument("--repeats", type=int, default=1, help="Rounds over all trees.")
    parser.add_argument("--json", default=None, help="Also write the JSON figures here.")
    args = parser.parse_args(argv)
    trees = {}
    for item in args.tree or [f"this={ROOT}"]:
        name, _, path = item.partition("=")
        trees[name] = Path(path or name).resolve()
    work = Path(tempfile.mkdtemp(prefix="kblocks-cli-times-"))
    try:
        files = prepare(work)
        rounds = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():
                rounds[name].append(time_tree(tree, files, work, has_multi_method(tree)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"machine": cpu_model(), "cores": os.cpu_count(), "repeats": args.repeats,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "trees": {}}
    print(f"{'tree':<8} {'figure':<26} {'seconds (mean)':>14}")
    for name, runs in rounds.items():
        means = {key: sum(r[key] for r in runs) / len(runs) for key in runs[0]}
        result["trees"][name] = {"path": str(trees[name]), "seconds": means}
        for key, value in means.items():
            print(f"{name:<8} {key:<26} {value:>14.1f}")
    names = list(trees)
    ratios = {}
    last = result["trees"][names[-1]]["seconds"]
    if "inspect_1_call_4_methods" in last:
        ratios[f"{names[-1]}: 4 calls / 1 call"] = last["inspect_4_calls"] / last["inspect_1_call_4_methods"]
    if len(names) > 1:
        first = result["trees"][names[0]]["seconds"]
        if "inspect_1_call_4_methods" in last:
            ratios[f"inspect: {names[0]} 4 calls / {names[-1]} 1 call"] = (
                first["inspect_4_calls"] / last["inspect_1_call_4_methods"])
        for key in ("inspect_4_calls", "report", "export"):
            ratios[f"{key}: {names[0]} / {names[-1]}"] = first[key] / last[key]
    for key, value in ratios.items():
        print(f"ratio {key}: {value:.2f}x")
    result["ratios"] = ratios
    line = json.dumps(result)
    if args.json:
        Path(args.json).write_text(line + "\n")
    print(line)
    return result


if __name__ == "__main__":
    main()

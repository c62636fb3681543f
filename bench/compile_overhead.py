#!/usr/bin/env python3
"""Share of build time that kblocks itself spends (parse + expand + layer graph + analysis) against
the time Keras spends constructing the layers (``kblocks.lang.emit.emit``), measured in one run.

    python bench/compile_overhead.py                 # ResNet-50 (zoo) and a deep [...]*N text
    python bench/compile_overhead.py --quick         # one small 150+ layer text, for CI
    python bench/compile_overhead.py --text "[CONV(16)-BN-RELU]*100-GAP-FC(10)" --input-shape 8,8,3
    python bench/compile_overhead.py --scaling 100,400,1600   # kblocks time vs depth, no Keras

For each text: ``kblocks.compile`` (parse, expand, graph; parse is also timed alone),
``kblocks.analyse`` of that graph, and ``kblocks.lang.emit.emit`` of the same graph, median of
``--repeats`` after one warm-up (the first, cold call is reported separately: it builds the
grammar and reads the built-in blocks). Target: kblocks' share < 10%. The last line of output is
one JSON object.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import RESNET50_TEXT, cpu_model  # noqa: E402

DEEP_TEXT = "[CONV(64) - BN - RELU]*60 - GAP - FC(classes)"   # 182 layers
QUICK_TEXT = "[CONV(4) - BN - RELU]*50 - GAP - FC(classes)"   # 152 layers, tiny weights


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", action="append", default=None,
                   help="architecture text, YAML path or zoo name (repeatable)")
    p.add_argument("--input-shape", default=None,
                   help="h,w,c for --text (default: the zoo file's, else 32,32,3)")
    p.add_argument("--classes", type=int, default=None, help="classes (default: zoo's, else 10)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (default 5)")
    p.add_argument("--quick", action="store_true",
                   help=f"only {QUICK_TEXT!r} at 16x16, 2 repetitions (CI smoke test)")
    p.add_argument("--scaling", default=None,
                   help="comma-separated depths N: time kblocks.compile + analyse of "
                        "[CONV(16)-BN-RELU]*N-GAP-FC (no Keras) to show how it grows with depth")
    p.add_argument("--cold-process", action=argparse.BooleanOptionalAction, default=None,
                   help="also time 'import kblocks' + compile + analyse in fresh processes and "
                        "say whether that imported Keras and its backend (default: on, except "
                        "with --quick or --text)")
    p.add_argument("--json", default=None, help="also write the JSON result to this file")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def resnet50_source():
    for name in ("resnet50", "resnet_50"):
        try:
            from kblocks import zoo

            path = zoo.path(name)
        except Exception:  # noqa: BLE001 - the zoo package may not import from a source tree
            path = None
        if path is None and (REPO / "kblocks" / "zoo" / "architectures" / f"{name}.yaml").exists():
            path = REPO / "kblocks" / "zoo" / "architectures" / f"{name}.yaml"
        if path is not None:
            return str(path), f"zoo {Path(path).name}"
    return RESNET50_TEXT, "ResNet-50 text (bench; zoo has no resnet50 yet)"


def network_text(source):
    """The architecture text of a source (for timing the parser alone)."""
    from kblocks.lang.api import _as_arch

    return _as_arch(source).network


def once(source, kwargs):
    import keras

    import kblocks
    from kblocks.lang.emit import emit

    t0 = time.perf_counter()
    text = network_text(source)
    kblocks.parse(text)
    t1 = time.perf_counter()
    graph = kblocks.compile(source, **kwargs)
    t2 = time.perf_counter()
    analysis = kblocks.analyse(graph)
    t3 = time.perf_counter()
    model = emit(graph)
    t4 = time.perf_counter()
    out = {"parse": t1 - t0, "compile": t2 - t1, "analyse": t3 - t2, "emit": t4 - t3,
           "nodes": len(graph.nodes), "keras_layers": len(model.layers),
           "params": int(analysis.params), "keras_params": int(model.count_params())}
    del model
    keras.backend.clear_session()
    gc.collect()
    return out


def measure(source, kwargs, repeats, label):
    print(f"{label}: cold call, then {repeats} repetitions ...", file=sys.stderr, flush=True)
    cold = once(source, kwargs)
    runs = [once(source, kwargs) for _ in range(repeats)]
    keys = ("parse", "compile", "analyse", "emit")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    kb = med["compile"] + med["analyse"]
    total = kb + med["emit"]
    return {"label": label, "nodes": cold["nodes"], "keras_layers": cold["keras_layers"],
            "params": cold["params"], "params_match": cold["params"] == cold["keras_params"],
            "median_seconds": med, "kblocks_seconds": kb, "emit_seconds": med["emit"],
            "share": kb / total,
            "cold_seconds": {k: cold[k] for k in ("parse", "compile", "analyse", "emit")},
            "cold_share": (cold["compile"] + cold["analyse"]) /
                          (cold["compile"] + cold["analyse"] + cold["emit"]),
            "samples": [{k: round(r[k], 5) for k in ("parse", "compile", "analyse", "emit")}
                        for r in runs]}


def scaling(depths, repeats):
    import kblocks

    rows = []
    for n in depths:
        text = f"[CONV(16) - BN - RELU]*{n} - GAP - FC(classes)"
        times = []
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            graph = kblocks.compile(text, input_shape=(32, 32, 3), classes=10)
            kblocks.analyse(graph)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        rows.append({"depth": n, "nodes": len(graph.nodes), "seconds": med,
                     "us_per_node": 1e6 * med / len(graph.nodes)})
        print(f"  depth {n}: {len(graph.nodes)} nodes, {med * 1000:.1f} ms, "
              f"{rows[-1]['us_per_node']:.0f} us/node", file=sys.stderr, flush=True)
    return rows


COLD_CODE = """
import json, sys, time
t0 = time.perf_counter()
import kblocks
t1 = time.perf_counter()
graph = kblocks.compile(SOURCE, **KWARGS)
kblocks.analyse(graph)
t2 = time.perf_counter()
print(json.dumps({"import_kblocks": t1 - t0, "compile_analyse": t2 - t1,
                  "imported": [m for m in ("keras", "tensorflow", "jax", "torch")
                               if m in sys.modules]}))
"""


def cold_process(source, kwargs, label):
    """'import kblocks' + compile + analyse in a fresh interpreter: what `kblocks summary` costs
    before it prints, and whether it had to import Keras (and with it the backend)."""
    import subprocess

    code = COLD_CODE.replace("SOURCE", repr(source)).replace("KWARGS", repr(kwargs))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    print(f"{label}: fresh process ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, text=True,
                          capture_output=True)
    wall = time.perf_counter() - t
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"label": label, "error": (proc.stderr or proc.stdout)[-300:]}
    out = json.loads(lines[-1])
    out.update({"label": label, "process_seconds": wall})
    return out


def main(argv=None):
    args = parse_args(argv)
    import keras

    started = time.perf_counter()
    cases = []
    if args.quick:
        cases.append((QUICK_TEXT, {"input_shape": (16, 16, 3), "classes": 10},
                      "quick [CONV(4)-BN-RELU]*50 16x16"))
        args.repeats = min(args.repeats, 2)
    elif args.text:
        for t in args.text:
            kw = {}
            if args.input_shape:
                kw["input_shape"] = tuple(int(d) for d in args.input_shape.split(","))
            if args.classes:
                kw["classes"] = args.classes
            if not kw and "\n" not in t and not t.strip().isidentifier() \
                    and not t.strip().endswith((".yaml", ".yml")):
                kw = {"input_shape": (32, 32, 3), "classes": 10}
            cases.append((t, kw, t if len(t) < 50 else t[:47] + "..."))
    elif args.scaling is None:
        source, label = resnet50_source()
        cases.append((source, {}, label))
        cases.append((DEEP_TEXT, {"input_shape": (32, 32, 3), "classes": 10},
                      "deep [CONV(64)-BN-RELU]*60 32x32"))
    results = [measure(src, kw, args.repeats, label) for src, kw, label in cases]
    cold_rows = []
    if args.cold_process or (args.cold_process is None and not args.quick and not args.text
                             and args.scaling is None):
        for src, kw, label in cases:
            cold_rows.append(cold_process(src, kw, label))
        plain = "[CONV(64) - RELU]*60 - GAP - FC(classes)"  # no Keras pass-through keywords
        cold_rows.append(cold_process(plain, {"input_shape": (32, 32, 3), "classes": 10},
                                      "[CONV(64)-RELU]*60 (no pass-through keyword)"))
    scale_rows = []
    if args.scaling:
        print("scaling of kblocks.compile + analyse with depth:", file=sys.stderr)
        scale_rows = scaling([int(n) for n in args.scaling.split(",")], min(args.repeats, 3))

    env = {"date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "python": platform.python_version(), "keras": keras.__version__,
           "backend": keras.backend.backend(), "cpu": cpu_model(), "cores": os.cpu_count(),
           "seconds": round(time.perf_counter() - started, 1)}
    if env["backend"] == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
    print()
    if results:
        print(f"Compile overhead on CPU ({env['cpu']}, {env['cores']} cores), Keras {env['keras']} "
              f"on {env['backend']}, median of {args.repeats} after a cold call, {env['date_utc']}")
        head = ("architecture", "layers", "read+parse ms", "compile ms", "analyse ms", "emit ms",
                "kblocks share", "cold share")
        rows = []
        for r in results:
            m = r["median_seconds"]
            rows.append((r["label"], str(r["nodes"]), f"{1000 * m['parse']:.1f}",
                         f"{1000 * m['compile']:.1f}", f"{1000 * m['analyse']:.1f}",
                         f"{1000 * m['emit']:.0f}", f"{100 * r['share']:.2f}%",
                         f"{100 * r['cold_share']:.2f}%"))
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
        line = "  ".join("-" * w for w in widths)
        print(line)
        print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in
                        enumerate(zip(head, widths))))
        print(line)
        for row in rows:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                            enumerate(zip(row, widths))))
        print(line)
        print("  compile = kblocks.compile (read + parse + expand + layer graph; reading the source "
              "and parsing it\n  also shown alone), analyse = kblocks.analyse, emit = "
              "kblocks.lang.emit.emit (Keras layer construction)")
        for r in results:
            print(f"  {r['label']}: share {r['share']:.4f} (ratio kblocks/total), target < 0.10; "
                  f"params {r['params']:,} ({'match Keras' if r['params_match'] else 'DIFFER'})")
    if cold_rows:
        print("\nFresh process: 'import kblocks' + kblocks.compile + kblocks.analyse (what "
              "`kblocks summary` costs before it prints)")
        for r in cold_rows:
            if "error" in r:
                print(f"  {r['label']}: failed: {r['error']}")
                continue
            print(f"  {r['label']}: import {1000 * r['import_kblocks']:.0f} ms, compile + analyse "
                  f"{1000 * r['compile_analyse']:.0f} ms, process {r['process_seconds']:.1f} s; "
                  f"imported {', '.join(r['imported']) or 'no Keras'}")
    if scale_rows:
        print("\nkblocks.compile + analyse against depth ([CONV(16)-BN-RELU]*N-GAP-FC, 32x32):")
        for r in scale_rows:
            print(f"  N={r['depth']:>5}  {r['nodes']:>6} nodes  {1000 * r['seconds']:9.1f} ms  "
                  f"{r['us_per_node']:7.0f} us/node")
    print(f"  total {env['seconds']} s")
    record = {"bench": "compile_overhead", "env": env, "repeats": args.repeats,
              "results": results, "cold_process": cold_rows, "scaling": scale_rows}
    text = json.dumps(record)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Model build time: each zoo model built from its YAML (``kblocks.build(name)``) against the same
``keras.applications`` model (``weights=None``), interleaved in one run, median of ``--repeats``.

    python bench/build_time.py                        # every zoo model keras.applications has
    python bench/build_time.py --models vgg16,resnet50 --repeats 5
    python bench/build_time.py --text "CONV(8)-GAP-FC(2)" --input-shape 32,32,3 --repeats 1

``--text`` times an architecture text instead; its peer is the same Keras model rebuilt from its
config (``keras.models.model_from_json``), i.e. the same layers constructed by Keras alone.

The ratio is kblocks / Keras (target <= 1.2). Models the zoo does not have (yet) are skipped with
a note. Each build is followed by ``keras.backend.clear_session()`` and ``gc.collect()`` outside
the timed region; the order of the two builds alternates between repetitions. The last line of
output is one JSON object.
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

from _common import cpu_model  # noqa: E402

# zoo name (and spellings the zoo might use) -> keras.applications constructor
PAIRS = {
    "vgg16": (("vgg16", "vgg_16"), "VGG16"),
    "vgg19": (("vgg19", "vgg_19"), "VGG19"),
    "resnet50": (("resnet50", "resnet_50"), "ResNet50"),
    "resnet101": (("resnet101", "resnet_101"), "ResNet101"),
    "resnet152": (("resnet152", "resnet_152"), "ResNet152"),
    "densenet121": (("densenet121", "densenet_121"), "DenseNet121"),
    "mobilenet": (("mobilenet", "mobilenet_v1", "mobilenetv1"), "MobileNet"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(PAIRS),
                   help="comma-separated, from: " + ", ".join(PAIRS) + " (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed builds of each (default 3)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed builds of each before timing (default 1)")
    p.add_argument("--text", default=None,
                   help="time this architecture text instead (peer: Keras rebuilding it from "
                        "its config)")
    p.add_argument("--input-shape", default="32,32,3", help="input shape for --text (h,w,c)")
    p.add_argument("--classes", type=int, default=10, help="classes for --text")
    p.add_argument("--json", default=None, help="also write the JSON result to this file")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    args.model_list = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.model_list if m not in PAIRS]
    if unknown and args.text is None:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(PAIRS)}")
    return args


def zoo_source(spellings):
    """The zoo name kblocks.build accepts (or the YAML path when the zoo package is not importable
    from a source tree), or None if the zoo has no such model."""
    for name in spellings:
        try:
            from kblocks import zoo

            if zoo.path(name) is not None:
                return name
        except Exception:  # noqa: BLE001
            pass
        direct = REPO / "kblocks" / "zoo" / "architectures" / f"{name}.yaml"
        if direct.exists():
            return str(direct)
    return None


def timed(fn):
    t = time.perf_counter()
    model = fn()
    return time.perf_counter() - t, model


def release():
    import keras

    keras.backend.clear_session()
    gc.collect()


def measure(kb_fn, peer_fn, repeats, warmup, compile_fn=None):
    """Interleaved builds; returns medians and every sample."""
    kb_times, peer_times, compile_times = [], [], []
    info = {}
    for rep in range(warmup + repeats):
        order = ("kb", "peer") if rep % 2 == 0 else ("peer", "kb")
        for which in order:
            seconds, model = timed(kb_fn if which == "kb" else peer_fn)
            if rep >= warmup:
                (kb_times if which == "kb" else peer_times).append(seconds)
            info[f"{which}_params"] = int(model.count_params())
            info[f"{which}_layers"] = len(model.layers)
            del model
            release()
        if compile_fn is not None and rep >= warmup:
            seconds, _ = timed(compile_fn)
            compile_times.append(seconds)
    kb, peer = statistics.median(kb_times), statistics.median(peer_times)
    out = {"kblocks_seconds": kb, "keras_seconds": peer, "ratio": kb / peer,
           "ratio_of_minima": min(kb_times) / min(peer_times),
           "kblocks_samples": [round(s, 4) for s in kb_times],
           "keras_samples": [round(s, 4) for s in peer_times], **info}
    if compile_times:
        out["kblocks_compile_seconds"] = statistics.median(compile_times)
    return out


def environment():
    import keras

    env = {"date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "python": platform.python_version(), "keras": keras.__version__,
           "backend": keras.backend.backend(), "cpu": cpu_model(), "cores": os.cpu_count()}
    if env["backend"] == "tensorflow":
        try:
            import tensorflow as tf

            env["tensorflow"] = tf.__version__
        except ImportError:
            pass
    return env


def main(argv=None):
    args = parse_args(argv)
    import keras

    import kblocks

    started = time.perf_counter()
    # warm the imports, the grammar and the built-in blocks before anything is timed
    kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 3))
    release()
    env = environment()
    rows, skipped = {}, {}
    if args.text is not None:
        shape = tuple(int(d) for d in args.input_shape.split(","))

        def kb():
            return kblocks.build(args.text, input_shape=shape, classes=args.classes)

        config = kb().to_json()
        release()

        def peer():
            return keras.models.model_from_json(config)

        def comp():
            return kblocks.compile(args.text, input_shape=shape, classes=args.classes)

        print(f"text {args.text!r} ...", file=sys.stderr, flush=True)
        rows["text"] = measure(kb, peer, args.repeats, args.warmup, comp)
        rows["text"]["peer"] = "keras.models.model_from_json(model.to_json())"
    else:
        for name in args.model_list:
            spellings, app = PAIRS[name]
            source = zoo_source(spellings)
            if source is None:
                skipped[name] = f"the zoo has no {name} yet"
                continue
            graph = kblocks.compile(source)  # the zoo file's input shape and classes
            shape = tuple(graph.input_shape)
            classes = int(graph.shape_of(graph.outputs[0])[-1])

            def kb(source=source):
                return kblocks.build(source)

            def peer(app=app, shape=shape, classes=classes):
                return getattr(keras.applications, app)(weights=None, input_shape=shape,
                                                        classes=classes)

            def comp(source=source):
                return kblocks.compile(source)

            print(f"{name}: kblocks.build({Path(source).name if '/' in source else source!r}) vs "
                  f"keras.applications.{app}(weights=None) ...", file=sys.stderr, flush=True)
            try:
                rows[name] = measure(kb, peer, args.repeats, args.warmup, comp)
                rows[name]["peer"] = f"keras.applications.{app}"
                rows[name]["input_shape"] = list(shape)
            except Exception as err:  # noqa: BLE001 - report and go on with the next model
                skipped[name] = f"failed: {type(err).__name__}: {err}"[:300]
    env["seconds"] = round(time.perf_counter() - started, 1)

    print()
    print(f"Build time ({env['cpu']}, {env['cores']} cores), Keras {env['keras']} on "
          f"{env['backend']}, median of {args.repeats} (after {args.warmup} warm-up), "
          f"{env['date_utc']}")
    head = ("model", "kblocks s", "keras s", "ratio", "min ratio", "kb compile s",
            "params kb / keras")
    table = []
    for name, r in rows.items():
        same = "same" if r["kb_params"] == r["peer_params"] else "DIFFER"
        table.append((name, f"{r['kblocks_seconds']:.3f}", f"{r['keras_seconds']:.3f}",
                      f"{r['ratio']:.3f}", f"{r['ratio_of_minima']:.3f}",
                      f"{r.get('kblocks_compile_seconds', 0):.3f}",
                      f"{r['kb_params']:,} / {r['peer_params']:,} ({same})"))
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h)
              for i, h in enumerate(head)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) if i in (0, 6) else h.rjust(w)
                    for i, (h, w) in enumerate(zip(head, widths))).rstrip())
    print(line)
    for t in table:
        print("  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w)
                        for i, (c, w) in enumerate(zip(t, widths))).rstrip())
    print(line)
    for name, note in skipped.items():
        print(f"  {name}: skipped ({note})")
    if rows:
        worst = max(rows.values(), key=lambda r: r["ratio"])["ratio"]
        print(f"  worst ratio kblocks/keras: {worst:.3f} (target <= 1.2); ratio = ratio of the "
              f"medians, min ratio = ratio of the fastest builds (less sensitive to other load)")
    print(f"  total {env['seconds']} s")
    record = {"bench": "build_time", "env": env, "repeats": args.repeats, "warmup": args.warmup,
              "text": args.text, "results": rows, "skipped": skipped}
    text = json.dumps(record)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

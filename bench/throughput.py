#!/usr/bin/env python3
"""Training throughput (images/second) of kblocks zoo models against keras.applications and
torchvision (PyTorch eager and ``torch.compile``), all measured in one run.

Meant for the lent GPU machine with Keras on JAX::

    KERAS_BACKEND=jax python bench/throughput.py --models resnet50,vgg16

and, as a smoke test on any CPU with the TensorFlow backend (tiny images and batches, no torch)::

    python bench/throughput.py --cpu-smoke

What is measured, for every implementation alike
  * synthetic ``uint8`` images and ``int32`` labels, generated once and moved to the device once;
  * normalisation (``x / 255``) inside the compiled graph;
  * bf16 compute (Keras ``mixed_bfloat16`` policy; PyTorch ``autocast(bfloat16)``, channels-last);
  * SGD with momentum 0.9, learning rate 0.01, sparse categorical cross-entropy, no metrics;
  * one compile/warm-up epoch plus ``--warmup`` untimed windows, then ``--windows`` timed windows
    of ``--steps`` steps; the figure is the median window.

The Keras models are trained with ``model.fit`` (``jit_compile=True``, ``steps_per_execution``)
on ``kblocks.training.feed.DeviceBatches``, the trainer's own fast path (``kblocks train --feed device``,
the default on JAX with a GPU): the uint8 images are moved to the device once and every step's
shuffled batch is gathered there, so the host never starves the accelerator. The wrapper around each network (input -> x/255 -> network -> float32)
is ``kblocks.training.wrap(normalize="scale")``, the trainer's own, when it can be imported.

PyTorch runs in a child process started before JAX touches the GPU: its CUDA libraries and
memory pool never meet JAX's. Without torch (or without CUDA) its columns read "n/a".

The script imports kblocks from the source tree it lives in (no installation needed) and never
imports TensorFlow itself. The last line of output is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import RESNET50_TEXT  # noqa: E402

VGG16_TEXT = """
@vgg(64) - @vgg(128) - @vgg(256, 3) - @vgg(512, 3) - @vgg(512, 3)
- FC(4096) - RELU - DROPOUT(0.5) - FC(4096) - RELU - DROPOUT(0.5) - FC(classes) - SOFTMAX
"""
# The smoke model: small enough to build and compile in seconds on a CPU. Its peer is the same
# network written by hand in Keras (keras.applications has nothing this small).
TINY_TEXT = "CONV(8) - BN - RELU - POOL - CONV(16) - BN - RELU - GAP - FC(classes) - SOFTMAX"

MODELS = {
    "resnet50": {"zoo": ("resnet50", "resnet_50", "resnet-50"), "text": RESNET50_TEXT,
                 "app": "ResNet50", "torch": "resnet50", "batch": 256},
    "vgg16": {"zoo": ("vgg16", "vgg_16"), "text": VGG16_TEXT,
              "app": "VGG16", "torch": "vgg16", "batch": 128},
    "tiny": {"zoo": (), "text": TINY_TEXT, "app": None, "torch": None, "batch": 8},
}

SMOKE = {"models": "tiny", "steps": 2, "windows": 2, "warmup": 1, "image_size": 32,
         "classes": 10, "steps_per_execution": 1}


# -- options ------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None,
                   help="comma-separated: " + ", ".join(MODELS) + " (default resnet50,vgg16; "
                        "tiny with --cpu-smoke)")
    p.add_argument("--steps", type=int, default=None, help="steps per timed window (default 30)")
    p.add_argument("--windows", type=int, default=None, help="timed windows (default 5)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed windows after the compile epoch (default 1)")
    p.add_argument("--steps-per-execution", type=int, default=None,
                   help="Keras steps_per_execution (default 10)")
    p.add_argument("--image-size", type=int, default=None, help="square image side (default 224)")
    p.add_argument("--classes", type=int, default=None, help="classes (default 1000)")
    for name, spec in MODELS.items():
        p.add_argument(f"--batch-{name}", type=int, default=None,
                       help=f"batch size of {name} (default {spec['batch']})")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--no-jit", action="store_true",
                   help="jit_compile=False (the default with --cpu-smoke on TensorFlow, where XLA "
                        "compilation alone would take most of the smoke test's time)")
    p.add_argument("--skip-torch", action="store_true", help="do not run the PyTorch peers")
    p.add_argument("--skip-keras-apps", action="store_true",
                   help="do not run the keras.applications peers")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="tiny model, 32x32 images, batch 8, 2 steps x 2 windows, no torch: checks "
                        "that the script runs (any backend, CPU is fine); figures are meaningless")
    p.add_argument("--profile", action="store_true",
                   help="after each Keras model, print where a step's time goes: Keras' compiled "
                        "step alone, the fit loop on device batches, fit on host numpy (the "
                        "trainer's feed), host gather and host-to-device copy of one batch")
    p.add_argument("--trace-dir", default=None,
                   help="with JAX, write a jax.profiler trace of one timed window of the first "
                        "Keras model here (view with TensorBoard's profile plugin or Perfetto)")
    p.add_argument("--xla-flags", default="",
                   help="appended to XLA_FLAGS before JAX starts, to try XLA options against "
                        "the same run's torch figures, e.g. \"--xla_gpu_autotune_level=4\"")
    p.add_argument("--json", default=None, help="also write the JSON result to this file")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = {"models": "resnet50,vgg16", "steps": 30, "windows": 5, "warmup": 1,
                "image_size": 224, "classes": 1000, "steps_per_execution": 10}
    if args.cpu_smoke:
        defaults.update(SMOKE)
        args.skip_torch = True
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.model_list = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.model_list if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    if args.steps < 1 or args.windows < 1 or args.warmup < 0 or args.steps_per_execution < 1:
        p.error("--steps and --windows must be >= 1, --warmup >= 0, --steps-per-execution >= 1")
    args.batches = {m: getattr(args, f"batch_{m}") or MODELS[m]["batch"] for m in MODELS}
    return args


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def summarise(window_seconds, images_per_window):
    rates = [images_per_window / s for s in window_seconds]
    med = statistics.median(window_seconds)
    return {"images_per_second": images_per_window / med, "min": min(rates), "max": max(rates),
            "ms_per_step": None, "windows": len(window_seconds),
            "window_seconds": [round(s, 4) for s in window_seconds]}


# -- PyTorch (child process) --------------------------------------------------------------------

def torch_worker(args):
    """Runs in a child process; prints one JSON line ``TORCH_JSON {...}`` on stdout."""
    out = {}
    try:
        import torch
        import torchvision
    except Exception as err:  # noqa: BLE001
        print("TORCH_JSON " + json.dumps({"error": f"torch/torchvision not importable: {err}"}))
        return 0
    if not torch.cuda.is_available():
        print("TORCH_JSON " + json.dumps({"error": "no CUDA device for torch"}))
        return 0
    info = {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "device": torch.cuda.get_device_name(0)}
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = torch.device("cuda")
    size, classes = args.image_size, args.classes

    class Net(torch.nn.Module):  # uint8 NCHW (channels-last memory) -> x/255 -> network
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.float().mul(1.0 / 255.0))

    for name in args.model_list:
        arch = MODELS[name]["torch"]
        if arch is None:
            continue
        batch = args.batches[name]
        gen = torch.Generator(device=dev).manual_seed(0)
        xs = [torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev,
                            generator=gen).contiguous(memory_format=torch.channels_last)
              for _ in range(2)]
        ys = [torch.randint(0, classes, (batch,), device=dev, generator=gen) for _ in range(2)]
        out[name] = {}
        for mode in ("eager", "compile"):
            try:
                torch.manual_seed(0)
                net = Net(getattr(torchvision.models, arch)(weights=None, num_classes=classes))
                net = net.to(dev).to(memory_format=torch.channels_last).train()
                opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
                loss_fn = torch.nn.CrossEntropyLoss()
                fwd = torch.compile(net) if mode == "compile" else net

                def step(x, y, loss_fn=loss_fn, fwd=fwd, opt=opt):  # bound now: deleted below
                    with torch.autocast("cuda", dtype=torch.bfloat16,
                                        enabled=args.precision == "bf16"):
                        loss = loss_fn(fwd(x), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    return loss

                def window(n, step=step, xs=xs, ys=ys):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    for i in range(n):
                        step(xs[i % 2], ys[i % 2])
                    torch.cuda.synchronize()
                    return time.perf_counter() - t

                first = window(3)  # compilation (torch.compile) and cuDNN autotuning
                for _ in range(args.warmup):
                    window(args.steps)
                times = [window(args.steps) for _ in range(args.windows)]
                res = summarise(times, args.steps * batch)
                res["ms_per_step"] = 1000 * statistics.median(times) / args.steps
                res["first_steps_seconds"] = round(first, 2)
                res["batch"] = batch
                out[name][mode] = res
                log(f"  torch {name} {mode}: {res['images_per_second']:.0f} img/s "
                    f"(first 3 steps {first:.1f} s)")
                del net, opt, fwd, step, window
            except Exception as err:  # noqa: BLE001 - one failure must not hide the others
                out[name][mode] = {"error": f"{type(err).__name__}: {err}"[:300]}
                log(f"  torch {name} {mode} failed: {err}")
            torch.cuda.empty_cache()
        del xs, ys
        torch.cuda.empty_cache()
    out["info"] = info
    print("TORCH_JSON " + json.dumps(out), flush=True)
    return 0


def run_torch(args):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--torch-worker",
           "--models", ",".join(args.model_list), "--steps", str(args.steps),
           "--windows", str(args.windows), "--warmup", str(args.warmup),
           "--image-size", str(args.image_size), "--classes", str(args.classes),
           "--precision", args.precision]
    for m in args.model_list:
        cmd += [f"--batch-{m}", str(args.batches[m])]
    log("PyTorch peers (child process): " + " ".join(cmd[2:]))
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    log(f"PyTorch peers done in {time.perf_counter() - t:.0f} s")
    for line in proc.stdout.splitlines():
        if line.startswith("TORCH_JSON "):
            return json.loads(line[len("TORCH_JSON "):])
    return {"error": f"torch worker exited {proc.returncode} without a result"}


# -- Keras --------------------------------------------------------------------------------------

def resolve_kblocks_source(name):
    """(source for kblocks.build, description): the zoo YAML if there is one, else our text."""
    spec = MODELS[name]
    for candidate in spec["zoo"]:
        path = None
        try:
            from kblocks import zoo

            path = zoo.path(candidate)
        except Exception:  # noqa: BLE001 - e.g. kblocks.architectures not importable from source
            pass
        if path is None:
            direct = REPO / "kblocks" / "zoo" / "architectures" / f"{candidate}.yaml"
            path = direct if direct.exists() else None
        if path is not None:
            return str(path), f"zoo {Path(path).name}"
    note = "bench text (zoo has no %s yet)" % name if spec["zoo"] else "bench text"
    return spec["text"], note


def wrapper():
    """``(network, shape) -> model`` taking uint8 pixels, x/255 in float32, float32 output."""
    try:
        from kblocks.training import wrap

        def use_trainer(network, shape):
            return wrap(network, shape, normalize="scale", augment=())

        return use_trainer, "kblocks.training.wrap(normalize='scale')"
    except Exception:  # noqa: BLE001
        pass
    import keras

    def local(network, shape):
        inputs = keras.Input(shape=shape, name="image")
        x = keras.layers.Rescaling(1.0 / 255.0, dtype="float32")(inputs)
        y = network(x)
        if y.dtype != "float32":
            y = keras.layers.Activation("linear", dtype="float32")(y)
        return keras.Model(inputs, y)

    return local, "local wrapper (input -> x/255 -> network -> float32)"


def hand_written_tiny(shape, classes):
    import keras

    L = keras.layers
    return keras.Sequential([
        keras.Input(shape), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
        L.MaxPooling2D(), L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
        L.GlobalAveragePooling2D(), L.Dense(classes), L.Softmax(dtype="float32")], name="tiny")


def make_data(batch, size, classes, steps, distinct=2):
    """``steps`` batches of synthetic uint8 images and int32 labels on the host (``distinct``
    random batches repeated), which :class:`kblocks.training.feed.DeviceBatches` moves to the device once."""
    import numpy as np

    rng = np.random.default_rng(0)
    xs = rng.integers(0, 256, (distinct * batch, size, size, 3), dtype=np.uint8)
    ys = rng.integers(0, classes, (distinct * batch,), dtype=np.int32)
    reps = -(-steps // distinct)
    return np.tile(xs, (reps, 1, 1, 1))[:steps * batch], np.tile(ys, reps)[:steps * batch]


def block(tree):
    """Wait until every array in ``tree`` is computed (JAX); a no-op elsewhere."""
    try:
        import jax

        jax.block_until_ready(tree)
    except ImportError:
        pass


def keras_run(args, name, impl, data, wrap_fn):
    """Train one Keras model; returns its figures (and a profile when asked)."""
    import keras

    batch, size, classes = args.batches[name], args.image_size, args.classes
    shape = (size, size, 3)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if args.precision == "bf16" else "float32")
    keras.utils.set_random_seed(0)
    res = {"batch": batch}
    try:
        t = time.perf_counter()
        if impl == "kblocks":
            import kblocks

            source, res["source"] = resolve_kblocks_source(name)
            network = kblocks.build(source, input_shape=shape, classes=classes)
        elif MODELS[name]["app"] is not None:
            network = getattr(keras.applications, MODELS[name]["app"])(
                weights=None, input_shape=shape, classes=classes)
            res["source"] = f"keras.applications.{MODELS[name]['app']}(weights=None)"
        else:
            network = hand_written_tiny(shape, classes)
            res["source"] = "hand-written keras.Sequential"
        res["build_seconds"] = round(time.perf_counter() - t, 2)
        res["params"] = int(network.count_params())
        model = wrap_fn(network, shape)
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  jit_compile=args.jit, steps_per_execution=args.steps_per_execution)

    from kblocks.training.feed import DeviceBatches

    # kblocks train's fast path: the uint8 set moved to the device once, each step's shuffled
    # batch gathered there; one epoch of it is one window of --steps steps.
    batches = DeviceBatches(*data, batch, seed=0)

    class WindowTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float((logs or {}).get("loss", 0.0))  # waits for the epoch's last step
            self.ends.append(time.perf_counter())

    timer = WindowTimer()
    epochs = 1 + args.warmup + args.windows
    model.fit(batches, epochs=epochs, verbose=0, callbacks=[timer, batches.epoch_callback()],
              shuffle=False)
    ends = [timer.begin] + timer.ends
    times = [ends[i] - ends[i - 1] for i in range(2 + args.warmup, len(ends))]
    res.update(summarise(times, args.steps * batch))
    res["ms_per_step"] = 1000 * statistics.median(times) / args.steps
    res["first_epoch_seconds"] = round(ends[1] - ends[0], 2)
    if args.trace_dir and not getattr(args, "_traced", False) and keras.backend.backend() == "jax":
        import jax

        args._traced = True
        with jax.profiler.trace(args.trace_dir):
            model.fit(batches, epochs=1, verbose=0, callbacks=[WindowTimer()], shuffle=False)
        res["trace_dir"] = args.trace_dir
        log(f"  JAX trace of one window of {name} {impl} written to {args.trace_dir}")
    if args.profile:
        res["profile"] = profile_model(args, model, batches, WindowTimer, batch, size,
                                       classes, res["ms_per_step"])
    del model, network
    keras.backend.clear_session()
    return res


def profile_model(args, model, batches, WindowTimer, batch, size, classes, fit_ms):
    """Where a step's time goes (ms per step), all on the already-compiled model."""
    import numpy as np

    import keras

    prof = {"fit_device_batches": fit_ms}
    backend = keras.backend.backend()
    xs_dev = batches[0]
    # host numpy uint8, shuffled by Keras each epoch: kblocks train --feed host
    n_host = 8
    rng = np.random.default_rng(1)
    x_host = rng.integers(0, 256, (n_host * batch, size, size, 3), dtype=np.uint8)
    y_host = rng.integers(0, classes, (n_host * batch,), dtype=np.int32)
    timer = WindowTimer()
    model.fit(x_host, y_host, batch_size=batch, epochs=4, shuffle=True, verbose=0,
              callbacks=[timer])
    ends = [timer.begin] + timer.ends
    per_epoch = [ends[i] - ends[i - 1] for i in range(2, len(ends))]
    prof["fit_host_numpy"] = 1000 * statistics.median(per_epoch) / n_host
    # one shuffled host gather and one host-to-device copy of a batch
    perm = rng.permutation(len(x_host))
    gathers, copies = [], []
    for _ in range(5):
        t = time.perf_counter()
        xb = x_host[np.sort(perm[:batch])]
        gathers.append(time.perf_counter() - t)
        if backend == "jax":
            import jax

            t = time.perf_counter()
            jax.device_put(xb).block_until_ready()
            copies.append(time.perf_counter() - t)
    prof["host_gather_one_batch"] = 1000 * statistics.median(gathers)
    prof["host_to_device_one_batch"] = 1000 * statistics.median(copies) if copies else None
    # Keras' own compiled train step, called back to back without fit's loop (JAX only; uses the
    # trainer's private state accessors, so it reads n/a if they change)
    prof["compiled_step_alone"] = None
    if backend == "jax":
        try:
            import itertools

            import jax

            state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                         optimizer_variables=True, metrics_variables=True,
                                         purge_model_variables=False)
            it = itertools.cycle([xs_dev])
            spe = max(1, model.steps_per_execution)
            calls = max(1, args.steps // spe)
            logs, state = model.train_function(state, it)
            jax.block_until_ready(state)
            times = []
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(calls):
                    logs, state = model.train_function(state, it)
                jax.block_until_ready(state)
                times.append(time.perf_counter() - t)
            prof["compiled_step_alone"] = 1000 * statistics.median(times) / (calls * spe)
        except Exception as err:  # noqa: BLE001
            prof["compiled_step_alone_error"] = f"{type(err).__name__}: {err}"[:200]
    return prof


def print_profile(name, impl, prof, batch):
    def f(v):
        return "     n/a" if v is None else f"{v:8.2f}"

    step = prof.get("compiled_step_alone")
    fit = prof["fit_device_batches"]
    host = prof["fit_host_numpy"]
    rows = [
        ("Keras' compiled train step alone (device batch, no fit loop)", step, ""),
        ("model.fit on kblocks.training.feed.DeviceBatches (the benchmark)", fit,
         "" if step is None else f"fit loop and callbacks {fit - step:+.2f}"),
        ("model.fit on host uint8 numpy, shuffle=True (--feed host)", host,
         f"host feed {host - fit:+.2f}"),
        ("  host gather of one shuffled batch", prof["host_gather_one_batch"], ""),
        ("  host-to-device copy of one uint8 batch", prof["host_to_device_one_batch"], ""),
    ]
    print(f"\nprofile {name} / {impl} (batch {batch}): milliseconds per training step")
    width = max(len(r[0]) for r in rows)
    for label, value, note in rows:
        print(f"  {label:<{width}}  {f(value)}  {note}".rstrip())
    if prof.get("compiled_step_alone_error"):
        print(f"  (compiled step alone: {prof['compiled_step_alone_error']})")


# -- report -------------------------------------------------------------------------------------

def environment(backend):
    env = {"date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "python": platform.python_version(), "backend": backend, "host": platform.node()}
    import keras

    env["keras"] = keras.__version__
    if backend == "jax":
        import jax

        env["jax"] = jax.__version__
        env["device"] = str(jax.devices()[0].device_kind)
    else:
        env["device"] = platform.processor() or platform.machine()
    return env


def fmt_rate(entry):
    if not entry or "images_per_second" not in entry:
        return "n/a"
    return f"{entry['images_per_second']:,.0f}"


def ratio(a, b):
    try:
        return a["images_per_second"] / b["images_per_second"]
    except (TypeError, KeyError, ZeroDivisionError):
        return None


def print_table(args, results, torch_res, env):
    print()
    print(f"Training throughput, images/second (median of {args.windows} windows x {args.steps} "
          f"steps after warm-up), {args.precision}, {args.image_size}x{args.image_size}, "
          f"{env.get('device')}, Keras {env['keras']} on {env['backend']}")
    head = ("model", "batch", "kblocks", "keras.apps", "torch eager", "torch.compile",
            "kb/keras.apps", "kb/torch.compile")
    rows = []
    for name in args.model_list:
        r = results.get(name, {})
        t = torch_res.get(name, {}) if isinstance(torch_res, dict) else {}
        kb, ka = r.get("kblocks"), r.get("keras_applications")
        te, tc = t.get("eager"), t.get("compile")
        r1, r2 = ratio(kb, ka), ratio(kb, tc)
        r["ratio_kblocks_over_keras_applications"] = r1
        r["ratio_kblocks_over_torch_compile"] = r2
        rows.append((name, str(args.batches[name]), fmt_rate(kb), fmt_rate(ka), fmt_rate(te),
                     fmt_rate(tc), "n/a" if r1 is None else f"{r1:.3f}",
                     "n/a" if r2 is None else f"{r2:.3f}"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))))
    print(line)
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    print(line)
    for name in args.model_list:
        for impl, r in results.get(name, {}).items():
            if isinstance(r, dict) and "source" in r:
                extra = ""
                if "images_per_second" in r:
                    extra = (f", {r['ms_per_step']:.1f} ms/step, range {r['min']:,.0f}-"
                             f"{r['max']:,.0f} img/s, first epoch {r['first_epoch_seconds']} s")
                print(f"  {name} {impl}: {r['source']}, {r['params']:,} params, build "
                      f"{r['build_seconds']} s{extra}")
            elif isinstance(r, dict) and "error" in r:
                print(f"  {name} {impl}: failed: {r['error']}")
    print("  (build and first-epoch seconds are for information: on JAX the implementation that "
          "runs first for a model\n   also pays one-time per-shape work - initialiser kernels, XLA "
          "autotuning - that the second reuses;\n   bench/build_time.py measures build time "
          "properly)")
    if isinstance(torch_res, dict) and "error" in torch_res:
        print(f"  torch: n/a ({torch_res['error']})")
    for name in args.model_list:
        for mode, r in (torch_res.get(name, {}) if isinstance(torch_res, dict) else {}).items():
            if "error" in r:
                print(f"  {name} torch {mode}: failed: {r['error']}")
            else:
                print(f"  {name} torch {mode}: {r['ms_per_step']:.1f} ms/step, range "
                      f"{r['min']:,.0f}-{r['max']:,.0f} img/s, first 3 steps "
                      f"{r['first_steps_seconds']} s")


def main(argv=None):
    args = parse_args(argv)
    if args.torch_worker:
        return torch_worker(args)
    started = time.perf_counter()
    torch_res = {"error": "skipped (--skip-torch)"} if args.skip_torch else None
    if torch_res is None and all(MODELS[m]["torch"] is None for m in args.model_list):
        torch_res = {"error": "no torchvision peer for these models"}
    if torch_res is None:  # before JAX claims the GPU
        torch_res = run_torch(args)
    if args.xla_flags:  # read once, when XLA starts (below, at the first Keras call on JAX)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {args.xla_flags}".strip()

    import keras

    backend = keras.backend.backend()
    args.jit = not args.no_jit and not (args.cpu_smoke and backend != "jax")
    env = environment(backend)
    wrap_fn, wrap_note = wrapper()
    # one-time costs (kblocks' grammar, the backend's device initialisation) before any build is
    # timed, so the first model's build time is comparable with the others'
    import kblocks

    kblocks.build("CONV(4) - GAP - FC(2)", input_shape=(8, 8, 3))
    keras.backend.clear_session()
    log(f"Keras {keras.__version__} on {backend}, {env.get('device')}; {wrap_note}; "
        f"jit_compile={args.jit}, steps_per_execution={args.steps_per_execution}")
    results = {}
    for name in args.model_list:
        results[name] = {}
        data_x, data_y = make_data(args.batches[name], args.image_size, args.classes, args.steps)
        feed = (f"kblocks.training.feed.DeviceBatches: {len(data_x)} uint8 images moved to the device "
                f"once, shuffled batches gathered there")
        impls = ["kblocks"] + ([] if args.skip_keras_apps else ["keras_applications"])
        for impl in impls:
            log(f"Keras {name} / {impl}: build, compile, {args.warmup} warm-up + {args.windows} "
                f"timed windows of {args.steps} steps ...")
            try:
                r = keras_run(args, name, impl, (data_x, data_y), wrap_fn)
                log(f"  {r['images_per_second']:,.0f} img/s, "
                    f"first epoch {r['first_epoch_seconds']} s")
            except Exception as err:  # noqa: BLE001 - report and carry on with the next model
                r = {"error": f"{type(err).__name__}: {err}"[:300]}
                log(f"  failed: {r['error']}")
            results[name][impl] = r
        del data_x, data_y
        results[name]["feed"] = feed
    print_table(args, results, torch_res, env)
    if args.profile:
        for name in args.model_list:
            for impl, r in results[name].items():
                if isinstance(r, dict) and "profile" in r:
                    print_profile(name, impl, r["profile"], r["batch"])
    env["seconds"] = round(time.perf_counter() - started, 1)
    env["wrapper"] = wrap_note
    print(f"\ntotal {env['seconds']} s")
    record = {"bench": "throughput", "env": env,
              "settings": {"models": args.model_list, "steps": args.steps, "windows": args.windows,
                           "warmup": args.warmup, "steps_per_execution": args.steps_per_execution,
                           "image_size": args.image_size, "classes": args.classes,
                           "precision": args.precision, "jit_compile": args.jit,
                           "xla_flags": os.environ.get("XLA_FLAGS", ""),
                           "batches": {m: args.batches[m] for m in args.model_list},
                           "cpu_smoke": args.cpu_smoke},
              "keras": results, "torch": torch_res}
    text = json.dumps(record, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    failed = [f"{n}/{i}" for n in results for i, r in results[n].items()
              if isinstance(r, dict) and "error" in r]
    return 1 if failed and len(failed) == sum(len(v) - 1 for v in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""CIFAR-10 from scratch, as fast as kblocks can: a ResNet-9 written in the architecture language.

    KERAS_BACKEND=jax python bench/cifar10_speed.py                 # GPU run (target >= 90%, < 60 s)
    KERAS_BACKEND=tensorflow python bench/cifar10_speed.py --cpu-subset 256 --epochs 1 \
        --batch-size 64 --precision fp32                              # CPU smoke run

Measured on one H100 (JAX 0.11.2, Keras 3.15.1, bf16), default settings (24 epochs):
val 91.4% / 91.1% (seeds 0, 1; flip TTA 92.0% / 91.5%) in 12.1 s of training, plus ~21 s of
compilation reported apart; 16 epochs gave 90.4% in 9.3 s, 20 epochs 90.3% in 10.4 s (seed 2).

Recipe (the kblocks training recipe, airbench / Page's ResNet-9 style):
* data: the shared CIFAR-10 train split (JPEG container), a stratified seeded 5,000-image validation
  split (500 per class) held out; the rest (45,000) is trained on. Images stay uint8 and are moved
  to the device once; each step gathers its batch on the device.
* model: input -> per-channel standardisation -> random flip -> random crop (reflect pad 4) ->
  [cutout] -> RESNET9 (below, kblocks text) -> logits x 1/8. bf16 compute, float32 logits.
* optimiser: SGD, Nesterov momentum 0.9, decoupled weight decay 5e-4 (PyTorch-equivalent), one-cycle
  learning rate (peak 0.4 after 20% of the steps), label smoothing 0.2, batch 512, the ragged last
  batch of each epoch dropped.
* evaluation: validation accuracy of the final weights, plain and with flip test-time augmentation.

On JAX the loop is a jitted ``stateless_call`` step compiled ahead of time, so compile time is
reported apart from training time; on other backends (or ``--loop fit``) it is ``model.fit``.
Prints one human line and one JSON line (``{"bench": "cifar10_speed", ...}``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BN = "BN(momentum=0.9)"
RESNET9 = (
    f"CONV(64,3,bias=false)-{BN}-RELU"
    f"-CONV(128,3,bias=false)-{BN}-RELU-POOL"
    f"-(SKIP + CONV(128,3,bias=false)-{BN}-RELU-CONV(128,3,bias=false)-{BN}-RELU)"
    f"-CONV(256,3,bias=false)-{BN}-RELU-POOL"
    f"-CONV(512,3,bias=false)-{BN}-RELU-POOL"
    f"-(SKIP + CONV(512,3,bias=false)-{BN}-RELU-CONV(512,3,bias=false)-{BN}-RELU)"
    "-GMP-FC(10,bias=false)"
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/cifar10/train.npz"),
                   help="the CIFAR-10 JPEG container (.npz with jpeg, offsets, labels)")
    p.add_argument("--arch", default=RESNET9, help="architecture text (default: ResNet-9)")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.4)
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of steps to the peak lr")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--logit-scale", type=float, default=0.125)
    p.add_argument("--augment", default="flip,crop4", help="kblocks --augment tokens")
    p.add_argument("--val", type=int, default=5000, help="validation images (stratified)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-subset", type=int, default=0,
                   help="train on a stratified subset of N images (a CPU smoke run)")
    p.add_argument("--loop", default="auto", choices=["auto", "jax", "fit"])
    p.add_argument("--no-tta", action="store_true")
    p.add_argument("--with-trainer", action="store_true",
                   help="also train the same network with kblocks train (kblocks.training.train, "
                        "its default feed: the device-resident fast path on a GPU) and print "
                        "its seconds per epoch against this loop's, measured in the same run")
    p.add_argument("--trainer-lr", type=float, default=0.1,
                   help="peak lr of the --with-trainer run (the trainer has no logit scaling, "
                        "so --lr 0.4 diverges there)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def load(args):
    """uint8 train/val arrays; only the images needed are decoded."""
    import numpy as np

    from kblocks.training.data import ArrayData, decode_jpeg_container, split_data, stratified_subset

    path = Path(args.data)
    if not path.exists():
        sys.exit(f"error: {path} does not exist (pass --data PATH to the CIFAR-10 train.npz)")
    with np.load(path, allow_pickle=False) as z:
        jpeg, offsets, labels = z["jpeg"], z["offsets"], z["labels"].astype(np.int64)
        classes = [str(c) for c in z["classes"]]
    index = ArrayData(np.arange(len(labels)).reshape(-1, 1, 1, 1), labels, classes, "cifar10")
    val_count = args.val
    if args.cpu_subset:
        val_count = min(args.val, max(10 * len(classes), args.cpu_subset // 5))
        index = stratified_subset(index, args.cpu_subset + val_count, seed=args.seed)
    train_idx, val_idx = split_data(index, val_count, seed=args.seed)
    t = time.perf_counter()
    x_train = decode_jpeg_container(jpeg, offsets, train_idx.x.ravel())
    x_val = decode_jpeg_container(jpeg, offsets, val_idx.x.ravel())
    return x_train, train_idx.y, x_val, val_idx.y, time.perf_counter() - t


def build_model(args, x_train, steps_per_epoch):
    import keras
    import numpy as np

    from kblocks.lang import api
    from kblocks.training.augment import parse_augment
    from kblocks.training.schedules import make_optimizer, make_schedule
    from kblocks.training import PRECISIONS, channel_stats

    keras.config.set_dtype_policy(PRECISIONS[args.precision])
    try:
        net = api.build(args.arch, input_shape=x_train.shape[1:], classes=10)
    finally:
        keras.config.set_dtype_policy("float32")
    mean, var = channel_stats(x_train)
    inputs = keras.Input(x_train.shape[1:], name="image")
    x = keras.layers.Normalization(mean=mean.astype(np.float32), variance=var.astype(np.float32),
                                   dtype="float32", name="kblocks_normalize")(inputs)
    for layer in parse_augment(args.augment, seed=args.seed):
        x = layer(x)
    logits = keras.layers.Rescaling(args.logit_scale, dtype="float32", name="logit_scale")(net(x))
    model = keras.Model(inputs, logits, name="cifar10_speed")
    total_warm = args.warmup * args.epochs
    schedule = make_schedule("onecycle", args.lr, steps_per_epoch=steps_per_epoch,
                             epochs=args.epochs, warmup_epochs=total_warm)
    optimizer = make_optimizer("sgd", schedule, momentum=0.9, nesterov=True,
                               weight_decay=args.weight_decay, loss_scale=args.precision == "fp16")
    return model, optimizer


def device_name():
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            d = jax.devices()[0]
            return f"{d.platform}:{getattr(d, 'device_kind', d)}"
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return f"gpu:{gpus[0].name}" if gpus else "cpu"
    except Exception:  # noqa: BLE001
        pass
    return "unknown"


def jax_loop(args, model, optimizer, x_train, y_train, x_val, y_val, log):
    """Device-resident data, an AOT-compiled jitted step; returns timings and accuracies."""
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    n, batch = len(x_train), args.batch_size
    steps = n // batch  # drop the ragged last batch
    classes = 10
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                   label_smoothing=args.label_smoothing)
    optimizer.build(model.trainable_variables)

    t = time.perf_counter()
    x_dev = jax.device_put(x_train)  # uint8, once
    y_dev = jax.device_put(y_train.astype(np.int32))
    xv_dev = jax.device_put(x_val)
    jax.block_until_ready((x_dev, y_dev, xv_dev))
    transfer_s = time.perf_counter() - t

    def loss_and_state(tv, ntv, xb, yb):
        logits, ntv = model.stateless_call(tv, ntv, xb, training=True)
        loss = loss_fn(jax.nn.one_hot(yb, classes), logits)
        return loss, (ntv, logits)

    grad_fn = jax.value_and_grad(loss_and_state, has_aux=True)

    def step(tv, ntv, ov, x_all, y_all, idx):
        xb = jnp.take(x_all, idx, axis=0).astype(jnp.float32)
        yb = jnp.take(y_all, idx, axis=0)
        (loss, (ntv, logits)), grads = grad_fn(tv, ntv, xb, yb)
        tv, ov = optimizer.stateless_apply(ov, grads, tv)
        correct = jnp.sum(jnp.argmax(logits, -1) == yb)
        return tv, ntv, ov, loss, correct

    def predict(tv, ntv, xb):
        xb = xb.astype(jnp.float32)
        logits, _ = model.stateless_call(tv, ntv, xb, training=False)
        if args.no_tta:
            return logits, logits
        flipped, _ = model.stateless_call(tv, ntv, xb[:, :, ::-1], training=False)
        return logits, logits + flipped

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    ov = [v.value for v in optimizer.variables]
    idx0 = jnp.arange(batch, dtype=jnp.int32)
    eval_batch = min(1000, len(x_val))

    t = time.perf_counter()
    step_c = jax.jit(step, donate_argnums=(0, 1, 2)).lower(tv, ntv, ov, x_dev, y_dev, idx0).compile()
    predict_c = jax.jit(predict).lower(tv, ntv, xv_dev[:eval_batch]).compile()
    compile_s = time.perf_counter() - t

    key = jax.random.PRNGKey(args.seed)
    t = time.perf_counter()
    for epoch in range(args.epochs):
        key, sub = jax.random.split(key)
        order = jax.random.permutation(sub, n)[:steps * batch].reshape(steps, batch).astype(jnp.int32)
        losses, corrects = [], []
        for s in range(steps):
            tv, ntv, ov, loss, correct = step_c(tv, ntv, ov, x_dev, y_dev, order[s])
            losses.append(loss)
            corrects.append(correct)
        if not args.quiet:
            mean_loss = float(jnp.mean(jnp.stack(losses)))
            acc = float(jnp.sum(jnp.stack(corrects))) / (steps * batch)
            log(f"epoch {epoch + 1:2d}/{args.epochs}  loss {mean_loss:.4f}  train acc {acc:.4f}  "
                f"{time.perf_counter() - t:6.1f} s")
    jax.block_until_ready(tv)
    train_s = time.perf_counter() - t

    t = time.perf_counter()
    plain, tta = [], []
    usable = (len(x_val) // eval_batch) * eval_batch
    for start in range(0, usable, eval_batch):
        a, b = predict_c(tv, ntv, xv_dev[start:start + eval_batch])
        plain.append(np.asarray(a))
        tta.append(np.asarray(b))
    rest = len(x_val) - usable
    if rest:  # a last partial batch: padded to the compiled shape
        pad = jnp.concatenate([xv_dev[usable:], xv_dev[:eval_batch - rest]])
        a, b = predict_c(tv, ntv, pad)
        plain.append(np.asarray(a)[:rest])
        tta.append(np.asarray(b)[:rest])
    eval_s = time.perf_counter() - t
    plain, tta = np.concatenate(plain), np.concatenate(tta)
    for var, value in zip(model.trainable_variables, tv):
        var.assign(value)
    for var, value in zip(model.non_trainable_variables, ntv):
        var.assign(value)
    return {"loop": "jax", "transfer_seconds": transfer_s, "compile_seconds": compile_s,
            "train_seconds": train_s, "eval_seconds": eval_s, "steps_per_epoch": steps,
            "val_accuracy": float(np.mean(plain.argmax(-1) == y_val)),
            "val_accuracy_tta": None if args.no_tta else float(np.mean(tta.argmax(-1) == y_val))}


def fit_loop(args, model, optimizer, x_train, y_train, x_val, y_val, log):
    """Any backend: ``model.fit`` one epoch at a time on a trimmed permutation (no ragged batch)."""
    import keras
    import numpy as np

    n, batch = len(x_train), args.batch_size
    steps = n // batch
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                            label_smoothing=args.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    y_hot = np.eye(10, dtype=np.float32)[y_train]
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    model.train_on_batch(x_train[:batch], y_hot[:batch])  # traces and compiles (one real step)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(n)[:steps * batch]
        if epoch == 0:
            order = order[batch:]  # the compile step already consumed one batch
        hist = model.fit(x_train[order], y_hot[order], batch_size=batch, epochs=1, shuffle=False,
                         verbose=0)
        if not args.quiet:
            log(f"epoch {epoch + 1:2d}/{args.epochs}  loss {hist.history['loss'][-1]:.4f}  "
                f"train acc {hist.history['accuracy'][-1]:.4f}  {time.perf_counter() - t:6.1f} s")
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    logits = model.predict(x_val, batch_size=1000, verbose=0)
    tta = logits + model.predict(x_val[:, :, ::-1], batch_size=1000, verbose=0)
    eval_s = time.perf_counter() - t
    return {"loop": "fit", "transfer_seconds": 0.0, "compile_seconds": compile_s,
            "train_seconds": train_s, "eval_seconds": eval_s, "steps_per_epoch": steps,
            "val_accuracy": float(np.mean(logits.argmax(-1) == y_val)),
            "val_accuracy_tta": None if args.no_tta else float(np.mean(tta.argmax(-1) == y_val))}


def trainer_run(args, x_train, y_train, x_val, y_val, log):
    """The same network, recipe and data through ``kblocks.training.train`` (what ``kblocks
    train`` runs), without per-epoch validation so that its epochs time what the loops time.
    Returns its steady seconds per epoch (median after the first, which compiles)."""
    import statistics
    import tempfile

    import numpy as np

    from kblocks.training import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        np.savez(path, x=x_train, y=y_train)
        cfg = TrainConfig(data=f"npz:{path}", val_split=0, epochs=args.epochs,
                          batch_size=args.batch_size, optimizer="sgd", lr=args.trainer_lr,
                          weight_decay=args.weight_decay, schedule="onecycle",
                          warmup=args.warmup * args.epochs, label_smoothing=args.label_smoothing,
                          augment=args.augment, precision=args.precision, seed=args.seed,
                          tensorboard=False, verbose=0)
        t = time.perf_counter()
        result = train(args.arch, cfg)
        wall = time.perf_counter() - t
    epochs = [row["seconds"] for row in result.history]
    steady = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
    logits = np.asarray(result.trained.predict(x_val, batch_size=1000, verbose=0))
    out = {"trainer_feed": result.info["feed"], "trainer_steps_per_epoch":
           result.info["steps_per_epoch"], "trainer_first_epoch_seconds": round(epochs[0], 3),
           "trainer_seconds_per_epoch": round(steady, 4), "trainer_wall_seconds": round(wall, 2),
           "trainer_val_accuracy": float(np.mean(logits.argmax(-1) == y_val))}
    log(f"kblocks train: {steady:.3f} s per epoch after the first ({epochs[0]:.1f} s), feed "
        f"{out['trainer_feed']['kind']} ({out['trainer_feed']['reason']}), "
        f"val acc {out['trainer_val_accuracy']:.2%}")
    return out


def main(argv=None):
    args = parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda m: print(m, flush=True))
    t_all = time.perf_counter()
    import keras

    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_val, y_val, decode_s = load(args)
    if len(x_train) < args.batch_size:
        args.batch_size = max(1, len(x_train))
    steps = len(x_train) // args.batch_size
    model, optimizer = build_model(args, x_train, steps)
    backend = keras.backend.backend()
    loop = args.loop if args.loop != "auto" else ("jax" if backend == "jax" else "fit")
    log(f"cifar10_speed: {backend} on {device_name()}, {len(x_train)} train / {len(x_val)} val, "
        f"{model.count_params():,} params, {args.epochs} epochs x {steps} steps of "
        f"{args.batch_size}, {args.precision}")
    runner = jax_loop if loop == "jax" else fit_loop
    result = runner(args, model, optimizer, x_train, y_train, x_val, y_val, log)
    record = {
        "bench": "cifar10_speed", "backend": backend, "device": device_name(),
        "keras": keras.__version__, "precision": args.precision, "arch": args.arch,
        "params": int(model.count_params()), "epochs": args.epochs, "batch_size": args.batch_size,
        "train_images": int(len(x_train)), "val_images": int(len(x_val)),
        "decode_seconds": round(decode_s, 2), **{k: (round(v, 3) if isinstance(v, float) else v)
                                                 for k, v in result.items()},
        "total_seconds": round(time.perf_counter() - t_all, 2), "seed": args.seed,
        "cpu_subset": args.cpu_subset or None,
    }
    if args.with_trainer:
        record.update(trainer_run(args, x_train, y_train, x_val, y_val, log))
        loop_epoch = record["train_seconds"] / max(1, args.epochs)
        record["ratio_trainer_over_loop_seconds_per_epoch"] = round(
            record["trainer_seconds_per_epoch"] / loop_epoch, 3) if loop_epoch else None
        print(f"cifar10_speed: kblocks train {record['trainer_seconds_per_epoch']:.3f} s/epoch "
              f"against the {loop} loop's {loop_epoch:.3f}: ratio "
              f"{record['ratio_trainer_over_loop_seconds_per_epoch']}", flush=True)
    tta = record["val_accuracy_tta"]
    print(f"cifar10_speed: val acc {record['val_accuracy']:.2%}"
          + (f" (flip TTA {tta:.2%})" if tta is not None else "")
          + f" after {args.epochs} epochs in {record['train_seconds']:.1f} s training "
          f"(+{record['compile_seconds']:.1f} s compile) on {record['device']} [{backend}, "
          f"{args.precision}, {loop} loop]", flush=True)
    print(json.dumps(record), flush=True)
    return record


if __name__ == "__main__":
    main()

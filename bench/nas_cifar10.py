#!/usr/bin/env python3
"""Mini-NAS on CIFAR-10 within a time budget, resumable, then the best architecture trained.

    # on the GPU machine (Keras, Keras Tuner and friends carried as wheels; docs/search.md):
    KERAS_BACKEND=jax python bench/nas_cifar10.py --data .data/nas-search/train.npz \
        --out /tmp/nas --time-budget 420 --archive $OUT/nas.tar.gz            # call 1: search
    KERAS_BACKEND=jax python bench/nas_cifar10.py --data .data/nas-search/train.npz \
        --out /tmp/nas --restore .data/nas-search/nas.tar.gz --resume \
        --time-budget 420 --final-epochs 30 --archive $OUT/nas.tar.gz        # call 2
    KERAS_BACKEND=tensorflow python bench/nas_cifar10.py --cpu-smoke   # any CPU: checks it runs
    python bench/nas_cifar10.py --scale 8 --subset 5000 --val 1000 ...  # a reduced CPU search

Between the calls, copy the fetched nas.tar.gz into .data/nas-search/ (carried with the data and
the wheels); a warm machine still has /tmp/nas, and --restore then leaves it alone.

The space (``--space cs231n``, the default) is the CS231n pattern the issue names,
``[[CONV-RELU]*N-POOL?]*M-[FC-RELU]*K-FC``, with batch normalisation after each convolution:
M (2..4) stages, stage i with its own width f_i (64|128|256|512) and depth N_i (1..3) and an
optional 2x2 pool, global average pooling, K (0..1) hidden FC layers of u_j units. ``--space
resnet9`` is the earlier family of ResNet-9s (Page's "How to train your ResNet"; the network of
bench/cifar10_speed.py): the stem width and three stages with their widths and an optional
residual block. ``--scale K`` divides every width by K and ``--subset N`` searches N images of
the container (a reduced run for a CPU). Every trial trains
``--trial-epochs`` epochs with the kblocks trainer's recipe (SGD Nesterov, one-cycle, label
smoothing, flip + crop augmentation, bf16 on a GPU); regularized evolution picks the next
architecture; architectures over ``--max-params`` or ``--max-macs`` are rejected before
training.

``--time-budget`` covers the whole call: the search starts no trial the remaining time cannot
hold, and when ``--final-epochs`` is given, time for the final training is kept back (estimated
from the trials' epoch times). A call cut off mid-trial is continued by ``--resume``: the
interrupted trial runs again, finished ones are kept. The final training is ``kblocks train
best.yaml`` with the same recipe, on the same validation split, for ``--final-epochs`` epochs.

Prints a human summary and, last, one JSON line (``{"bench": "nas_cifar10", ...}``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BN = "BN(momentum=0.9)"
BLOCKS = {
    "bn_stage": {
        "doc": "CS231n stage with BN: n x (conv - BN - ReLU), then an optional 2x2 max pool",
        "params": {"f": 64, "n": 2},
        "body": f"[CONV($f, 3, bias=false) - {BN} - RELU]*$n - POOL?",
    },
    "res9_stage": {
        "doc": "conv - BN - ReLU - 2x2 pool, then r residual blocks of two conv-BN-ReLU",
        "params": {"f": 128, "r": 1},
        "body": ("CONV($f, 3, bias=false) - BN(momentum=0.9) - RELU - POOL"
                 " - [(SKIP + CONV($f, 3, bias=false) - BN(momentum=0.9) - RELU"
                 " - CONV($f, 3, bias=false) - BN(momentum=0.9) - RELU)]*$r"),
    },
}


def _widths(scale, *ws):
    return "|".join(str(max(4, w // scale)) for w in ws)


def cs231n_space(scale: int = 1) -> str:
    """The CS231n pattern with BN; ``scale`` divides every width (a CPU run uses 8)."""
    units = " | ".join(str(max(8, u // scale)) for u in (128, 256, 384, 512))
    return (f"[@bn_stage(f={{f#: {_widths(scale, 64, 128, 256, 512)}}}, n={{N#: 1..3}})]*{{M: 2..4}}"
            f" - GAP - [FC({{u#: {units}}}) - RELU]*{{K: 0..1}} - FC(classes)")


def resnet9_space(scale: int = 1) -> str:
    """The ResNet-9 family; ``scale`` divides every width."""
    return (f"CONV({{w0: {_widths(scale, 32, 64)}}}, 3, bias=false) - {BN} - RELU"
            f" - @res9_stage({{w1: {_widths(scale, 64, 128)}}}, {{r1: 0..1}})"
            f" - @res9_stage({{w2: {_widths(scale, 128, 256)}}}, {{r2: 0..1}})"
            f" - @res9_stage({{w3: {_widths(scale, 256, 512)}}}, {{r3: 0..1}})"
            " - GMP - FC(classes, bias=false)")


SPACES = {"cs231n": cs231n_space, "resnet9": resnet9_space}


def space_text(scale: int = 1, space: str = "cs231n") -> str:
    return SPACES[space](scale)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/cifar10/train.npz"),
                   help="the CIFAR-10 JPEG container (.npz with jpeg, offsets, labels)")
    p.add_argument("--out", default="runs/nas_cifar10", help="search folder")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds for this call: search (and final training, if asked) [420; "
                        "none with --cpu-smoke, whose trial count is the bound, so a loaded "
                        "machine cannot cut the smoke run short]")
    p.add_argument("--final-epochs", type=int, default=None,
                   help="train the best architecture this many epochs at the end (0 = no)")
    p.add_argument("--trials", type=int, default=None,
                   help="trial cap [200; the budget ends first]")
    p.add_argument("--trial-epochs", type=int, default=5)
    p.add_argument("--tuner", default="evolution")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--sample-size", type=int, default=3)
    p.add_argument("--space", default="cs231n", choices=sorted(SPACES),
                   help="cs231n: the CS231n pattern with BN; resnet9: ResNet-9 widths/blocks")
    p.add_argument("--scale", type=int, default=1, help="divide every width by this")
    p.add_argument("--subset", type=int, default=0,
                   help="search a stratified subset of N images (train + validation) [all]")
    p.add_argument("--max-params", type=float, default=8e6)
    p.add_argument("--max-macs", type=float, default=1e9,
                   help="multiply-adds per image (rejects stages left at full resolution)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.1,
                   help="peak of the one-cycle schedule (0.4 diverged on the H100: no logit "
                        "scaling here, unlike bench/cifar10_speed.py)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--augment", default="flip,crop4")
    p.add_argument("--val", type=int, default=5000, help="validation images (stratified)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--archive", default=None, metavar="FILE.tar.gz",
                   help="after every trial, pack the search folder (no weights) into FILE, e.g. "
                        "$OUT/nas.tar.gz, so the next device call can --restore it")
    p.add_argument("--restore", default=None, metavar="FILE.tar.gz",
                   help="unpack an --archive into --out first (when --out holds no search)")
    p.add_argument("--final-out", default=None,
                   help="run folder of the final training [default: OUT/final]")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each trial's weights (by default they are deleted at the end, so "
                        "the search folder stays small enough to carry to the next call)")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="widths / 8, 600 images, trials of 1 epoch (2 unless --trials), final "
                        "training 1 epoch (unless --final-epochs)")
    return p.parse_args(argv)


def subset_data(path: Path, count: int, seed: int) -> str:
    """A .npz of ``count`` images (stratified, seeded) decoded from the container."""
    import numpy as np

    from kblocks.training.data import ArrayData, decode_jpeg_container, stratified_subset

    with np.load(path, allow_pickle=False) as z:
        jpeg, offsets, labels = z["jpeg"], z["offsets"], z["labels"].astype(np.int64)
        classes = [str(c) for c in z["classes"]]
    index = ArrayData(np.arange(len(labels)).reshape(-1, 1, 1, 1), labels, classes, "cifar10")
    pick = stratified_subset(index, count, seed=seed)
    x = decode_jpeg_container(jpeg, offsets, pick.x.ravel())
    target = Path(tempfile.gettempdir()) / f"kblocks-nas-subset-{count}-{seed}.npz"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.npz")
    np.savez(tmp, x=x, y=pick.y, classes=np.array(classes))
    os.replace(tmp, target)  # the same path every time, so a smoke run can be resumed
    return f"npz:{target}"


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    import keras

    from kblocks.search.budget import Budget
    from kblocks.search.report import load_report
    from kblocks.search.runner import SearchConfig, run_search
    from kblocks.training import TrainConfig, train

    if args.cpu_smoke:
        args.subset, args.scale, args.val = 600, 8, 100
        args.trial_epochs, args.batch_size = 1, 64
        args.trials = 2 if args.trials is None else args.trials
        args.final_epochs = 1 if args.final_epochs is None else args.final_epochs
        args.population, args.sample_size, args.max_params = 2, 2, 1e6
        args.time_budget = 1e9 if args.time_budget is None else args.time_budget
    args.trials = 200 if args.trials is None else args.trials
    args.time_budget = 420.0 if args.time_budget is None else args.time_budget
    args.final_epochs = args.final_epochs or 0
    data = subset_data(Path(args.data), args.subset, args.seed) if args.subset else \
        f"cifar10:{args.data}"
    scale, val = args.scale, args.val
    recipe = TrainConfig(data=data, val_split=val, epochs=args.trial_epochs,
                         batch_size=args.batch_size, optimizer="sgd", lr=args.lr,
                         weight_decay=args.weight_decay, schedule="onecycle",
                         label_smoothing=args.label_smoothing, augment=args.augment,
                         seed=args.seed, tensorboard=False, verbose=0)
    folder = Path(args.out)
    if args.restore and not (folder / "search.json").exists():
        restore(Path(args.restore), folder)
        args.resume = True

    def log(message: str):
        print(message, flush=True)
        if args.archive and message.startswith("trial "):
            pack(folder, Path(args.archive))

    # Keep time back for the final training: compile + epochs at the trials' speed (+25%).
    reserve = 0.0
    if args.final_epochs:
        per_epoch = _seconds_per_epoch(folder) if args.resume else None
        reserve = 60.0 + 1.25 * args.final_epochs * (per_epoch or 3.0)
    search_budget = max(1.0, args.time_budget - reserve - (time.time() - started))
    cfg = SearchConfig(space=space_text(scale, args.space), blocks=BLOCKS, train=recipe,
                       tuner=args.tuner, trials=args.trials, population=args.population,
                       sample_size=args.sample_size,
                       budget=Budget(max_params=args.max_params, max_macs=args.max_macs),
                       out=str(folder), resume=args.resume and (folder / "search.json").exists(),
                       overwrite=not args.resume, time_budget=search_budget)
    t = time.time()
    report = run_search(cfg, echo=log, command=["bench/nas_cifar10.py"] + sys.argv[1:])
    search_s = time.time() - t
    if not args.keep_checkpoints:  # evolution never reloads them; resume does not need them
        for weights in folder.glob("kt/trial_*/checkpoint.weights.h5"):
            weights.unlink()
    if args.archive:
        pack(folder, Path(args.archive))
    report = report or load_report(folder)
    best = report.best
    record = {"bench": "nas_cifar10", "backend": keras.backend.backend(), "device": _device(),
              "space": args.space, "scale": args.scale, "subset": args.subset or None,
              "keras": keras.__version__, "trials": len(report.rows),
              "completed": len(report.completed),
              "rejected": (report.rejections or {}).get("count", 0),
              "search_seconds_this_call": round(search_s, 1),
              "best_trial": best.trial_id if best else None,
              "best_trial_val_accuracy": best.score if best else None,
              "best_params": best.params if best else None,
              "best_text": best.text if best else None, "cpu_smoke": args.cpu_smoke}
    if args.final_epochs and best is not None:
        left = args.time_budget - (time.time() - started)
        log(f"final training of trial {best.trial_id} ({best.params:,} params), "
            f"{args.final_epochs} epochs; {left:.0f} s of the budget left")
        t = time.time()
        final = train(str(folder / "best.yaml"), recipe.replace(epochs=args.final_epochs),
                      out=Path(args.final_out) if args.final_out else folder / "final",
                      overwrite=True, command=["bench/nas_cifar10.py"])
        record.update({"final_epochs": args.final_epochs,
                       "final_val_accuracy": final.final.get("val_accuracy"),
                       "final_seconds": round(time.time() - t, 1),
                       "final_train_seconds": final.final.get("seconds")})
        log(f"final: val accuracy {record['final_val_accuracy']:.4f} after "
            f"{args.final_epochs} epochs ({record['final_seconds']:.0f} s with compile)")
    record["total_seconds"] = round(time.time() - started, 1)
    print(json.dumps(record), flush=True)
    return record


def pack(folder: Path, archive: Path):
    """``folder`` without model weights or the final run, as a .tar.gz written atomically."""
    import tarfile

    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and not path.name.endswith((".h5", ".keras")) and \
                    rel.parts[0] != "final":
                tar.add(path, arcname=str(Path(folder.name) / rel))
    os.replace(tmp, archive)


def restore(archive: Path, folder: Path):
    """Unpack an archive made by :func:`pack` as ``folder``."""
    import shutil
    import tarfile

    if not archive.exists():
        sys.exit(f"error: --restore {archive} does not exist")
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
        inner = [p for p in Path(tmp).iterdir() if p.is_dir()]
        if len(inner) != 1 or not (inner[0] / "search.json").exists():
            sys.exit(f"error: {archive} does not hold a search folder")
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(inner[0], folder)


def _seconds_per_epoch(folder: Path):
    """Median seconds per epoch of the finished trials of a search folder (None if none)."""
    try:
        from kblocks.search.report import load_report

        rows = [r for r in load_report(folder).completed if r.seconds and r.epochs]
    except Exception:  # noqa: BLE001 - no folder yet
        return None
    if not rows:
        return None
    rates = sorted(r.seconds / r.epochs for r in rows)
    return rates[len(rates) // 2]


def _device():
    try:
        import keras

        if keras.backend.backend() == "jax":
            import jax

            d = jax.devices()[0]
            return f"{d.platform}:{getattr(d, 'device_kind', d)}"
    except Exception:  # noqa: BLE001
        pass
    return "cpu"


if __name__ == "__main__":
    main()

"""Train an architecture (text, YAML, zoo name or a ready ``keras.Model``) on real data.

    from kblocks.training import train, TrainConfig
    result = train("[[CONV(32)-RELU]*2-POOL]*1-FC(10)", TrainConfig(data="digits", epochs=5),
                   out="runs/digits")
    print(result.table())

The trained model is the network wrapped as ``input -> normalisation -> augmentation -> network``:
the normalisation (per-channel mean/std of the training split, or 1/255) is a layer, so saved
models take raw ``uint8`` pixels, and the augmentation layers are the identity at inference.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from kblocks import folderlock
from kblocks.errors import ConfigError, DataError, KBlocksError

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
NORMALIZE = ("standardize", "scale", "none")


class TrainingDiverged(KBlocksError):
    """The loss became NaN or infinite during training."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the run folder holds the last completed epoch and can resume."""

    def __init__(self, run_dir, epochs_done: int, epochs: int):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.epochs_done = int(epochs_done)
        self.epochs = int(epochs)
        super().__init__(self.message())

    def message(self) -> str:
        if self.run_dir is None:
            return f"interrupted after {self.epochs_done} of {self.epochs} epochs"
        if self.epochs_done:
            saved = (f"{self.run_dir}/last.keras and state.json hold epoch {self.epochs_done} of "
                     f"{self.epochs} (optimizer state included)")
        else:
            saved = "no epoch had finished; resuming starts epoch 1 again"
        return (f"interrupted: {saved}.\nresume with: kblocks train --resume {self.run_dir}")


#: options a resumed run may change; everything else comes from the run's run.json
RESUME_OPTIONS = ("epochs", "verbose", "unsafe", "tensorboard")


@dataclass
class TrainConfig:
    """Every option of ``kblocks train`` (the command line fills one of these)."""

    data: str = "digits"
    data_dir: str | None = None
    image_size: str | None = None
    val_split: object = 0.1
    val_data: str | None = None
    subset: object = None
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float | None = None
    schedule: str = "cosine"
    warmup: float = 0.0
    step_every: int | None = None
    step_gamma: float = 0.1
    augment: str = ""
    label_smoothing: float = 0.0
    normalize: str = "standardize"
    precision: str = "auto"
    seed: int | None = None
    deterministic: bool = False
    early_stopping: int = 0
    monitor: str = "val_accuracy"
    transfer: str | None = None
    freeze_until: str | None = None
    reset_head: bool = False
    distribute: bool = False
    feed: str = "auto"  # auto | host | device (kblocks.feed)
    steps_per_execution: object = "auto"  # a count, or auto (32 on an accelerator, else 1)
    variables: dict = field(default_factory=dict)
    tensorboard: bool = True
    verbose: object = "auto"
    unsafe: bool = False  # load .keras files with Lambda layers (--unsafe): runs code from the file

    def replace(self, **changes) -> "TrainConfig":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}",
                              hint="known: " + ", ".join(sorted(known)))
        values = asdict(self)
        values.update(changes)
        return TrainConfig(**values)

    def to_record(self) -> dict:
        """The options as stored in ``run.json`` / ``search.json``: everything but ``unsafe``,
        which only the caller grants, every time (a record is a file anyone could edit)."""
        record = asdict(self)
        record.pop("unsafe", None)
        return record

    @classmethod
    def from_record(cls, record: dict, *, unsafe: bool = False) -> "TrainConfig":
        """Options read back from a stored record. ``unsafe`` never comes from the record: a
        tampered ``"unsafe": true`` is ignored, and only the ``unsafe`` argument (the caller's
        ``--unsafe``) can allow loading a model file that runs code."""
        known = {f.name for f in fields(cls)} - {"unsafe"}
        return cls(**{k: v for k, v in dict(record).items() if k in known}, unsafe=bool(unsafe))


@dataclass
class TrainResult:
    model: object      # the best model (re-loaded from best.keras when there is a run folder)
    trained: object    # the model in memory at the end of training (= last.keras)
    network: object
    history: list
    best_epoch: int | None
    final: dict
    seed: int
    run_dir: Path | None
    info: dict

    def table(self) -> str:
        """Plain-text table of the final metrics."""
        return format_metrics(self.final)


def format_metrics(final: dict) -> str:
    rows = [(k, _fmt_value(v, k)) for k, v in final.items()]
    width = max((len(k) for k, _ in rows), default=6)
    line = "-" * (width + 16)
    out = [line, f"{'metric':<{width}}  value", line]
    out += [f"{k:<{width}}  {v}" for k, v in rows]
    out.append(line)
    return "\n".join(out)


def _fmt_value(v, key=""):
    if isinstance(v, float) and key.endswith("seconds"):
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


# -- helpers -----------------------------------------------------------------------------------

def resolve_precision(precision: str) -> str:
    from kblocks.distribute import accelerator_present

    choice = (precision or "auto").lower()
    if choice == "auto":
        choice = "bf16" if accelerator_present() else "fp32"
    if choice not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", what="--precision",
                          hint="use bf16, fp16, fp32 or auto")
    return choice


def _output_is_probability(network) -> bool:
    """True when the network ends in a softmax (so the loss must not apply one again)."""
    from kblocks.conventions import output_is_probability

    return output_is_probability(network)


def _main_output(network):
    """A multi-output network (auxiliary heads) is trained on its ``output``."""
    import keras

    if isinstance(network.output, dict):
        return keras.Model(network.inputs, network.output.get(
            "output", next(iter(network.output.values()))), name=network.name)
    if isinstance(network.output, (list, tuple)) and len(network.outputs) > 1:
        return keras.Model(network.inputs, network.outputs[0], name=network.name)
    return network


def wrap(network, input_shape, *, mean=None, variance=None, normalize="standardize",
         augment=(), name=None):
    """``Input(uint8 pixels as float) -> normalisation -> augmentation -> network -> float32``."""
    import keras

    from kblocks.conventions import normalization_layer
    from kblocks.models import Network

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = normalization_layer(normalize if normalize in ("standardize", "scale") else "none",
                            mean=mean, variance=variance)(inputs)
    for layer in augment:
        x = layer(x)
    y = network(x)
    if getattr(y, "dtype", "float32") != "float32":
        y = keras.layers.Activation("linear", dtype="float32", name="float32_output")(y)
    return Network(inputs, y, name=name or network.name)


def channel_stats(x: np.ndarray):
    """Per-channel mean and variance of uint8 images, in float64, chunked to spare memory."""
    channels = x.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for start in range(0, len(x), 4096):
        chunk = x[start:start + 4096].reshape(-1, channels).astype(np.float64)
        total += chunk.sum(0)
        total_sq += (chunk ** 2).sum(0)
        count += chunk.shape[0]
    mean = total / count
    var = np.maximum(total_sq / count - mean ** 2, 0.0)
    return mean, var


def _register_custom_objects():
    """Import the modules whose classes saved models refer to (augmentation, schedules, loss)."""
    from kblocks import augment, schedules  # noqa: F401
    try:  # layers of the architecture language, if the core defines custom ones
        from kblocks import layers  # noqa: F401
    except ImportError:
        pass


def make_loss(from_logits: bool, label_smoothing: float):
    """``(loss, accuracy metric, one_hot)``: Keras' own objects, so saved models need no custom
    loss. Label smoothing needs one-hot targets (Keras' sparse loss has no smoothing)."""
    import keras

    smoothing = float(label_smoothing or 0.0)
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1), got {label_smoothing}",
                          what="--label-smoothing")
    if smoothing:
        return (keras.losses.CategoricalCrossentropy(from_logits=from_logits,
                                                     label_smoothing=smoothing),
                keras.metrics.CategoricalAccuracy(name="accuracy"), True)
    return (keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"), False)


def compile_for_training(model, network, cfg: TrainConfig, *, precision: str,
                         steps_per_epoch: int, epochs: int, lr=None, warmup=None,
                         steps_per_execution: int = 1, compile: bool = True):
    """The trainer's optimiser, learning-rate schedule (spanning ``epochs`` epochs of
    ``steps_per_epoch`` steps) and loss for ``cfg``; ``model`` (the wrapped ``network``) is compiled
    with them unless ``compile`` is false (a resumed model keeps its own). ``lr`` and ``warmup``
    override ``cfg``'s. Returns ``(lr, weight_decay, needs_one_hot)``.

    ``kblocks train`` and every search trial compile through this one function, so
    ``kblocks train best.yaml`` with a search's options repeats a trial's training."""
    from kblocks import schedules

    name = cfg.optimizer.lower()
    if lr is None:
        lr = cfg.lr if cfg.lr is not None else schedules.DEFAULT_LR[name]
    weight_decay = cfg.weight_decay if cfg.weight_decay is not None else \
        schedules.DEFAULT_WEIGHT_DECAY[name]
    learning_rate = schedules.make_schedule(
        cfg.schedule, lr, steps_per_epoch=int(steps_per_epoch), epochs=max(1, int(epochs)),
        warmup_epochs=cfg.warmup if warmup is None else warmup, step_every=cfg.step_every,
        step_gamma=cfg.step_gamma)
    optimizer = schedules.make_optimizer(
        name, learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov,
        weight_decay=weight_decay, loss_scale=precision == "fp16")
    loss, accuracy, needs_one_hot = make_loss(not _output_is_probability(network),
                                              cfg.label_smoothing)
    if compile:
        model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy],
                      steps_per_execution=int(steps_per_execution))
    return lr, weight_decay, needs_one_hot


def one_hot(y, classes: int) -> np.ndarray:
    out = np.zeros((len(y), classes), np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def load_model(path, *, compile=False, unsafe=False):
    """``keras.saving.load_model(path, safe_mode=True)`` after registering kblocks' layers
    (:func:`kblocks.saving.load_model`: a file with a Lambda layer needs ``unsafe=True``)."""
    from kblocks import saving

    return saving.load_model(path, compile=compile, unsafe=unsafe)


def set_seed(seed: int, deterministic: bool):
    import keras

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
        if keras.backend.backend() == "jax":  # read when XLA starts: effective if it has not yet
            flags = os.environ.get("XLA_FLAGS", "")
            if "xla_gpu_deterministic_ops" not in flags:
                os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()


def _validate_config(cfg: TrainConfig):
    from kblocks.schedules import OPTIMIZERS, SCHEDULES

    if int(cfg.epochs) < 1:
        raise ConfigError(f"epochs must be >= 1, got {cfg.epochs}", what="--epochs")
    if int(cfg.batch_size) < 1:
        raise ConfigError(f"batch size must be >= 1, got {cfg.batch_size}", what="--batch-size")
    if cfg.optimizer.lower() not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {cfg.optimizer!r}", what="--optimizer",
                          hint="use one of " + ", ".join(OPTIMIZERS))
    if cfg.schedule.lower() not in SCHEDULES:
        raise ConfigError(f"unknown schedule {cfg.schedule!r}", what="--schedule",
                          hint="use one of " + ", ".join(SCHEDULES))
    if cfg.lr is not None and not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ConfigError(f"learning rate must be a positive number, got {cfg.lr}", what="--lr")
    if cfg.normalize not in NORMALIZE:
        raise ConfigError(f"unknown normalisation {cfg.normalize!r}", what="--normalize",
                          hint="use one of " + ", ".join(NORMALIZE))
    from kblocks import feed

    feed.check(cfg.feed, cfg.steps_per_execution)
    if cfg.freeze_until and not cfg.transfer:
        raise ConfigError("--freeze-until needs --transfer (a model or weights to start from)",
                          what="--freeze-until")
    if cfg.monitor not in MONITORS:  # a typo (val_acc) would leave best.keras unwritten, rc 0
        import difflib

        close = difflib.get_close_matches(str(cfg.monitor), MONITORS, n=1, cutoff=0.5)
        raise ConfigError(f"--monitor {cfg.monitor!r} is not a metric the run produces; it logs "
                          f"{', '.join(MONITORS)}", what="--monitor",
                          hint=f"did you mean {close[0]}?" if close else
                          "val_* watch the validation split (the training metric when there is none)")


# What fit() logs: the loss and the metric make_loss names "accuracy" (label smoothing included).
MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss")


def prepare_data(cfg: TrainConfig, seed: int):
    """Load, subset and split the data of a run: ``(train, val)`` (``val`` may be ``None``)."""
    from kblocks.data import load_data, split_data, stratified_subset

    data = load_data(cfg.data, data_dir=cfg.data_dir, image_size=cfg.image_size)
    if cfg.subset not in (None, "", 0):
        data = stratified_subset(data, cfg.subset, seed=seed)
    if cfg.val_data:
        val = load_data(cfg.val_data, data_dir=cfg.data_dir, image_size=cfg.image_size,
                        split="test")
        if val.input_shape != data.input_shape:
            raise DataError(f"validation images {val.input_shape} differ from training images "
                            f"{data.input_shape}", what="--val-data")
        if val.num_classes > data.num_classes:
            raise DataError(f"validation data has {val.num_classes} classes, training data "
                            f"{data.num_classes}", what="--val-data")
        val.classes = data.classes
        return data, val
    return split_data(data, cfg.val_split, seed=seed)


# -- training ----------------------------------------------------------------------------------

@folderlock.locking("out")  # one writer per run folder, fresh start or --resume (issue 21)
def train(model_or_source, config: TrainConfig | None = None, *, out=None, overwrite=False,
          command=None, resume=False, **overrides) -> TrainResult:
    """Train ``model_or_source`` as ``config`` says; write the run folder ``out`` if given.

    ``model_or_source`` is architecture text, a YAML path, a zoo name, or a ``keras.Model`` whose
    input takes float pixels (the seam for hand-written models). With ``config.transfer`` it may be
    ``None`` (the network then comes from the transfer file).

    ``resume=True`` continues the run in the folder ``out`` from its ``last.keras`` (weights and
    optimizer state) and ``state.json``, with the run's own options (``run.json``); only
    :data:`RESUME_OPTIONS` may be changed (``epochs=`` to train longer). Ctrl-C raises
    :class:`TrainingInterrupted` after the files hold the last completed epoch.
    """
    from kblocks import runfolder as _rf

    resumed = None
    if resume:
        if out is None:
            raise ConfigError("resuming needs the run folder", what="--resume")
        resumed = _rf.read_resume_state(out)
        bad = sorted(set(overrides) - set(RESUME_OPTIONS))
        if bad:
            raise ConfigError(f"a resumed run keeps its own options; cannot change "
                              f"{', '.join(bad)}", what="--resume",
                              hint="only " + ", ".join(RESUME_OPTIONS) + " may be given")
        cfg = TrainConfig.from_record(resumed["record"].get("config", {}),
                                      unsafe=bool(overrides.pop("unsafe", False)))
        cfg = cfg.replace(**overrides)
        model_or_source = resumed["record"].get("architecture")
        if cfg.seed is None:
            cfg = cfg.replace(seed=resumed["record"].get("seed"))
        kind = (resumed["record"].get("feed") or {}).get("kind")
        if kind:  # the same feed, so an epoch has the steps the saved schedule counts on
            cfg = cfg.replace(feed=kind)
        if resumed["epochs_done"] >= int(cfg.epochs):
            raise ConfigError(f"{out} has already trained {resumed['epochs_done']} of "
                              f"{cfg.epochs} epochs", what="--resume",
                              hint="give --epochs N (more than that) to train longer")
    else:
        cfg = (config or TrainConfig()).replace(**overrides) if overrides else \
            (config or TrainConfig())
    _validate_config(cfg)
    import keras

    from kblocks import callbacks as kcb
    from kblocks import distribute, feed, interrupts, runfolder, schedules, transfer
    from kblocks.augment import parse_augment
    from kblocks.data import check_fits

    _register_custom_objects()
    started = time.time()
    seed = int(cfg.seed) if cfg.seed is not None else secrets.randbelow(2 ** 31 - 1)
    precision = resolve_precision(cfg.precision)
    augment_layers = parse_augment(cfg.augment, seed=seed)  # option errors before any work
    if resumed is not None:
        run_dir = Path(out)
        seed = int(resumed["record"]["seed"])
    else:
        run_dir = runfolder.check_run_dir(out, overwrite=overwrite, protect=_read_files(
            cfg, model_or_source)) if out is not None else None
    epochs_done = resumed["epochs_done"] if resumed is not None else 0

    set_seed(seed, cfg.deterministic)
    train_data, val_data = prepare_data(cfg, seed)
    if val_data is None and cfg.monitor.startswith("val_"):
        monitor = cfg.monitor[4:]
    else:
        monitor = cfg.monitor
    classes = train_data.num_classes
    input_shape = train_data.input_shape

    is_model = isinstance(model_or_source, keras.Model)
    source_text = None if is_model or model_or_source is None else str(model_or_source)
    if model_or_source is None and not cfg.transfer and not epochs_done:
        if resumed is not None:
            raise ConfigError(f"{run_dir} trained a keras.Model given in Python and stopped before "
                              f"its first epoch ended: there is nothing to resume from",
                              what="--resume", hint="start the run again")
        raise ConfigError("no architecture given", hint="give architecture text, a YAML file, a "
                                                        "zoo name, or --transfer MODEL.keras")

    if source_text is not None and not cfg.transfer:
        target = declared_input_shape(source_text, classes, cfg.variables)
        if target is not None and tuple(target) != input_shape:
            train_data, val_data = _fit_images(train_data, val_data, target)
            input_shape = train_data.input_shape

    def build(n_classes):
        from kblocks import api

        return api.build(source_text, input_shape=input_shape, classes=n_classes,
                         **dict(cfg.variables))

    previous_policy = keras.config.dtype_policy()
    transfer_report = None
    resolved_text = None
    summary_text = None
    with distribute.scope(cfg.distribute, batch_size=int(cfg.batch_size)) as placement:
        keras.config.set_dtype_policy(PRECISIONS[precision])
        try:
            if epochs_done:  # resuming: the whole trained model, compiled, optimizer state included
                from kblocks import saving

                model = saving.load_model(run_dir / "last.keras", compile=True, unsafe=cfg.unsafe)
                network = transfer.unwrap_trained(model)
            elif cfg.transfer:
                network, transfer_report = transfer.prepare(
                    cfg.transfer, classes=classes, input_shape=input_shape,
                    build=build if source_text is not None else None, reset_head=cfg.reset_head,
                    unsafe=cfg.unsafe)
                if is_model:
                    raise ConfigError("give either a keras.Model or --transfer, not both")
            elif is_model:
                network = model_or_source
            else:
                network = build(classes)
        finally:
            keras.config.set_dtype_policy(previous_policy)
        network = _main_output(network)
        check_fits(network.input_shape[1:], transfer.output_units(network), train_data,
                   what="network")
        if val_data is not None:
            check_fits(network.input_shape[1:], transfer.output_units(network), val_data,
                       what="network")
        if source_text is not None and resumed is None:
            resolved_text, summary_text = _describe(source_text, network, input_shape, classes,
                                                    cfg.variables)
        if transfer_report is not None and not epochs_done:
            transfer_report.frozen = transfer.freeze_until(network, cfg.freeze_until)

        from_probs = _output_is_probability(network)
        if not epochs_done:
            mean, var = channel_stats(train_data.x) if cfg.normalize == "standardize" else \
                (None, None)
            model = wrap(network, input_shape, mean=mean, variance=var, normalize=cfg.normalize,
                         augment=augment_layers)

        plan = feed.choose(cfg.feed, nbytes=train_data.x.nbytes, batch_size=int(cfg.batch_size),
                           train_size=len(train_data), distributed=cfg.distribute,
                           steps_per_execution=cfg.steps_per_execution)
        steps_per_epoch = feed.steps_per_epoch(plan.kind, len(train_data), int(cfg.batch_size))
        default_lr = None
        if cfg.lr is None and cfg.transfer:  # fine-tuning starts ten times lower
            default_lr = schedules.DEFAULT_LR[cfg.optimizer.lower()] * 0.1
        lr, weight_decay, needs_one_hot = compile_for_training(
            model, network, cfg, precision=precision, steps_per_epoch=steps_per_epoch,
            epochs=int(cfg.epochs), lr=default_lr, steps_per_execution=plan.steps_per_execution,
            compile=not epochs_done)
        if epochs_done:  # the resumed model was compiled when saved; this machine decides this
            model.steps_per_execution = plan.steps_per_execution
        y_train = one_hot(train_data.y, classes) if needs_one_hot else train_data.y
        y_val = None
        if val_data is not None:
            y_val = one_hot(val_data.y, classes) if needs_one_hot else val_data.y

        files = {}
        if run_dir is not None:
            if resumed is None:
                run_dir = runfolder.prepare_run_dir(run_dir, overwrite=overwrite,
                                                    protect=_read_files(cfg, model_or_source))
            files = {"best": run_dir / "best.keras", "last": run_dir / "last.keras",
                     "history": run_dir / "history.csv", "curves": run_dir / "curves.png",
                     "run": run_dir / "run.json", "architecture": run_dir / "architecture.txt",
                     "summary": run_dir / "summary.txt", "logs": run_dir / "logs",
                     "state": run_dir / "state.json"}
        nan_guard = kcb.NaNGuard()
        state = (resumed or {}).get("state") or {}
        checkpoint = kcb.AtomicCheckpoint(
            files.get("best"), files.get("last"), monitor=monitor, state_path=files.get("state"),
            guard=nan_guard, best=state.get("best") if epochs_done else None,
            best_epoch=state.get("best_epoch") if epochs_done else None)
        checkpoint.epochs_done = epochs_done
        history_cb = kcb.HistoryWriter(files.get("history"),
                                       rows=(resumed or {}).get("rows", [])[:epochs_done])
        timer = kcb.FitTimer()
        cbs = [nan_guard, history_cb, checkpoint, timer]
        if cfg.schedule.lower() == "plateau":
            cbs.append(keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, factor=0.2, patience=max(1, int(cfg.early_stopping or 6) // 2),
                mode=checkpoint.mode, verbose=0))
        if cfg.early_stopping:
            cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=int(cfg.early_stopping),
                                                     mode=checkpoint.mode))
        tensorboard_note = None
        if run_dir is not None and cfg.tensorboard:
            try:
                import tensorboard  # noqa: F401 - the TensorBoard callback needs it (tf.summary)
                import tensorflow  # noqa: F401

                cbs.append(keras.callbacks.TensorBoard(log_dir=str(files["logs"]), write_graph=False,
                                                       profile_batch=0))
            except ImportError:
                tensorboard_note = "tensorflow or tensorboard not installed: no TensorBoard logs"
        if run_dir is not None and resumed is None:
            _write_start(run_dir, files, cfg, seed, precision, placement, train_data, val_data,
                         source_text, resolved_text, summary_text, command, transfer_report,
                         network, plan, cbs)
        elif run_dir is not None:
            _write_resume(files["run"], cfg, epochs_done, command)

        verbose = cfg.verbose
        if verbose == "auto":
            verbose = 1 if sys.stdout.isatty() else 2
        fit_kwargs = feed.fit_arguments(
            plan, train_data.x, y_train, batch_size=int(cfg.batch_size), seed=seed,
            validation=(val_data.x, y_val) if val_data is not None else None,
            initial_epoch=epochs_done)
        fit_kwargs.update(epochs=int(cfg.epochs), verbose=verbose, initial_epoch=epochs_done,
                          callbacks=fit_kwargs["callbacks"] + cbs)
        try:
            with interrupts.graceful():  # Ctrl-C waits for a checkpoint being written
                model.fit(**fit_kwargs)
        except KeyboardInterrupt:
            done = checkpoint.epochs_done
            if run_dir is not None:
                runfolder.write_history(files["history"], history_cb.rows[:done])
                _write_interrupted(files["run"], done, started)
            raise TrainingInterrupted(run_dir, done, int(cfg.epochs)) from None

        diverged = nan_guard.where
        # Final numbers come from the best checkpoint (re-loaded from disk when there is a run
        # folder, which also proves it loads with safe_mode=True).
        best_model = model
        if files and files["best"].exists() and not diverged:
            from kblocks import saving

            best_model = saving.load_model(files["best"], compile=True, unsafe=cfg.unsafe)
        final = {}
        last = history_cb.rows[-1] if history_cb.rows else {}
        for key in ("loss", "accuracy"):
            if last.get(key) is not None:
                final[f"train_{key} (last epoch)"] = last[key]
        if val_data is not None and not diverged:
            scores = best_model.evaluate(val_data.x, y_val, batch_size=int(cfg.batch_size),
                                         verbose=0, return_dict=True)
            final["val_loss"] = float(scores["loss"])
            final["val_accuracy"] = float(scores.get("accuracy", scores.get("compile_metrics", 0)))
        final["best_epoch"] = checkpoint.best_epoch
        final["epochs_run"] = len(history_cb.rows)
        final["seconds"] = round(timer.train_seconds or 0.0, 1)
        final["first_epoch_seconds"] = round(timer.epoch_seconds[0], 1) if timer.epoch_seconds \
            else None

    info = {"precision": precision, "placement": placement.as_dict(), "seed": seed,
            "monitor": monitor, "from_logits": not from_probs, "lr": lr,
            "weight_decay": weight_decay, "steps_per_epoch": steps_per_epoch,
            "feed": plan.as_dict(),
            "transfer": transfer_report.as_dict() if transfer_report else None,
            "tensorboard": tensorboard_note or (str(files.get("logs")) if files else None)}
    if run_dir is not None:
        runfolder.plot_curves(files["curves"], history_cb.rows,
                              title=(source_text or network.name)[:120])
        _write_end(files["run"], final, info, diverged, started)
    if diverged:
        epoch, step, value = diverged
        where = f"epoch {epoch}, step {step}" if step else f"epoch {epoch}"
        kept = ""
        if run_dir is not None and checkpoint.epochs_done:
            kept = (f"; {run_dir}/last.keras and best.keras keep epoch {checkpoint.epochs_done} and "
                    f"{checkpoint.best_epoch}, from before the loss diverged")
        raise TrainingDiverged(
            f"the loss became {value} at {where}; training stopped{kept}", what="training",
            hint=f"lower the learning rate (now {lr:g}) or add warm-up (--warmup 1); "
                 + (f"the run folder {run_dir} has the history so far" if run_dir else ""))
    return TrainResult(best_model, model, network, history_cb.rows, checkpoint.best_epoch, final, seed,
                       run_dir, info)


def _read_files(cfg: TrainConfig, source) -> list:
    """The files a run reads (transfer model, architecture YAML, data), which ``--overwrite`` of
    its folder must never remove."""
    candidates = [cfg.transfer, source if isinstance(source, (str, Path)) else None]
    for spec in (cfg.data, cfg.val_data):
        if spec:
            candidates.append(str(spec).split(":", 1)[-1])
    out = []
    for item in candidates:
        try:
            if item and "\n" not in str(item) and os.path.exists(item):
                out.append(Path(item))
        except (OSError, ValueError):  # architecture text is not a path
            continue
    return out


def declared_input_shape(source_text, classes, variables):
    """The input shape a YAML file or zoo entry declares (``None`` for text without INPUT)."""
    from kblocks import api

    try:
        graph = api.compile(source_text, classes=classes, **dict(variables))
    except Exception:  # noqa: BLE001 - no declared shape (or a mistake build() will report)
        return None
    shape = getattr(graph, "input_shape", None)
    return tuple(int(d) for d in shape) if shape else None


def _fit_images(train_data, val_data, target):
    """Resize the images to the size the architecture declares (lenet5 is 32x32 for 8x8 digits);
    a different channel count is an error."""
    from kblocks.data import resize_images

    target = tuple(target)
    have = train_data.input_shape
    if len(target) != 3 or len(have) != 3 or target[2] != have[2]:
        raise DataError(
            f"the architecture takes inputs of shape {target} but {train_data.name} has images "
            f"of shape {have}", what="--data",
            hint="use data with the same number of channels, or an architecture for this shape")
    print(f"note: resizing {train_data.name} images from {have[0]}x{have[1]} to "
          f"{target[0]}x{target[1]}, the input size the architecture declares")
    train_data.x = resize_images(train_data.x, target[:2])
    if val_data is not None:
        val_data.x = resize_images(val_data.x, target[:2])
    return train_data, val_data


def _describe(source_text, network, input_shape, classes, variables):
    """Canonical architecture text and the per-layer table, when the core can give them."""
    resolved = summary = None
    try:
        from kblocks import api

        resolved = api.format_text(source_text, input_shape=input_shape, classes=classes,
                                   **dict(variables))
        summary = str(api.summary(source_text, input_shape=input_shape, classes=classes,
                                  **dict(variables)))
    except Exception:  # noqa: BLE001 - descriptions are a courtesy, never a reason to fail
        pass
    return resolved, summary


def _write_start(run_dir, files, cfg, seed, precision, placement, train_data, val_data,
                 source_text, resolved_text, summary_text, command, transfer_report, network,
                 plan, callbacks):
    from kblocks import runfolder

    import keras

    argv = list(command) if command is not None else list(sys.argv)
    text = resolved_text or source_text or f"# network {network.name} (a keras.Model)"
    if source_text and resolved_text and resolved_text.strip() != source_text.strip():
        text = f"{resolved_text.strip()}\n"
    runfolder.write_text(files["architecture"], text.rstrip("\n") + "\n")
    if summary_text:
        runfolder.write_text(files["summary"], summary_text.rstrip("\n") + "\n")
    record = {
        "command": argv,
        "command_line": shlex.join(argv),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "seed": seed,
        "architecture": source_text,
        "resolved_architecture": resolved_text,
        "config": cfg.to_record(),
        "precision": precision,
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "placement": placement.as_dict(),
        "feed": plan.as_dict(),
        "data": {"train": train_data.describe(),
                 "val": val_data.describe() if val_data is not None else None},
        "transfer": transfer_report.as_dict() if transfer_report else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "running",
        # what a later --overwrite may remove: only what this run writes (logs/ only with TensorBoard)
        "files": [name for name in runfolder.RUN_FILES
                  if name != "logs" or any(isinstance(cb, keras.callbacks.TensorBoard)
                                           for cb in callbacks)],
    }
    runfolder.write_json(files["run"], record)


def _write_resume(path, cfg, epochs_done, command):
    from kblocks import runfolder

    record = json.loads(Path(path).read_text())
    record["status"] = "running"
    record["config"]["epochs"] = int(cfg.epochs)
    record.setdefault("resumed", []).append({
        "at_epoch": epochs_done, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": list(command) if command is not None else list(sys.argv)})
    runfolder.write_json(path, record)


def _write_interrupted(path, epochs_done, started):
    from kblocks import runfolder

    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    record.update({"status": "interrupted", "epochs_done": epochs_done,
                   "interrupted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "wall_seconds": round(time.time() - started, 1)})
    runfolder.write_json(path, record)


def _write_end(path, final, info, diverged, started):
    from kblocks import runfolder

    record = json.loads(Path(path).read_text())
    record.update({
        "status": "diverged" if diverged else "finished",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": round(time.time() - started, 1),
        "final": final,
        "info": info,
    })
    if diverged:
        record["diverged_at"] = {"epoch": diverged[0], "step": diverged[1],
                                 "loss": str(diverged[2])}
    runfolder.write_json(path, record)


# -- evaluation --------------------------------------------------------------------------------

def evaluate(model_path, data: str, *, data_dir=None, image_size=None, val_split=None, seed=0,
             batch_size=256, subset=None, unsafe=False) -> dict:
    """Accuracy and loss of a saved model on ``data`` (or on its seeded validation split)."""
    import keras

    from kblocks.conventions import conventions, to_probabilities
    from kblocks.data import check_fits, load_data, split_data, stratified_subset
    from kblocks.transfer import output_units

    _register_custom_objects()
    path = Path(model_path)
    if not path.exists():
        raise DataError(f"model file {path} does not exist", what="MODEL")
    model = load_model(path, unsafe=unsafe)  # a KBlocksError names the file (and --unsafe)
    dataset = load_data(data, data_dir=data_dir, image_size=image_size)
    if subset:
        dataset = stratified_subset(dataset, subset, seed=seed)
    if val_split not in (None, "", 0, "0"):
        _, dataset = split_data(dataset, val_split, seed=seed)
    want = tuple(model.input_shape[1:])
    if len(want) == 3 and None not in want and want != dataset.input_shape:
        dataset, _ = _fit_images(dataset, None, want)
    check_fits(model.input_shape[1:], output_units(model), dataset, what="model")
    conv = conventions(model)  # read from the model, or assumed (and said) for an older file
    probs = model.predict(dataset.x, batch_size=int(batch_size), verbose=0)
    probs = to_probabilities(probs, conv["output"] == "probabilities")
    predicted = probs.argmax(-1)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(dataset)), dataset.y], 1e-12, 1))))
    accuracy = float(np.mean(predicted == dataset.y))
    per_class = [float(np.mean(predicted[dataset.y == c] == c)) if np.any(dataset.y == c)
                 else None for c in range(dataset.num_classes)]
    return {"model": str(path), "data": dataset.name, "samples": len(dataset),
            "loss": loss, "accuracy": accuracy,
            "per_class_accuracy": dict(zip(dataset.classes, per_class)), "conventions": conv}

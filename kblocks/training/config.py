"""The options of a training run (:class:`TrainConfig`) and their checks.

Errors name the Python argument (``epochs``, ``monitor``); the command line prints the flag
(``--epochs``) in their place.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from kblocks.common.errors import ConfigError

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
NORMALIZE = ("standardize", "scale", "none")
#: What fit() logs: the loss and the metric make_loss names "accuracy" (label smoothing included);
#: a per-pixel (segmentation) network also logs "mean_iou" (trainer.make_pixel_loss).
MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss", "val_mean_iou", "mean_iou")
#: options a resumed run may change; everything else comes from the run's run.json
RESUME_OPTIONS = ("epochs", "verbose", "unsafe", "tensorboard")
MAX_SEED = 2 ** 32 - 1  #: the largest seed: NumPy's and TensorFlow's global seeds are 32-bit


def check_seed(seed, what: str = "seed"):
    """``seed`` as an int in ``0..MAX_SEED`` (None stays None).

    Raises:
        ConfigError: a negative, too large or non-integer seed, naming ``what``.
    """
    if seed is None:
        return None
    try:
        if isinstance(seed, bool) or isinstance(seed, float) and not seed.is_integer():
            raise ValueError
        value = int(seed.strip()) if isinstance(seed, str) else int(seed)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"seed must be a whole number, got {str(seed)[:40]!r}",
                          what=what) from None
    if not 0 <= value <= MAX_SEED:
        shown = str(value) if value.bit_length() < 128 else f"a {value.bit_length():,}-bit number"
        raise ConfigError(f"seed must be between 0 and {MAX_SEED:,} (2^32-1), got {shown}",
                          what=what,
                          hint="NumPy and TensorFlow take 32-bit seeds")
    return value


@dataclass
class TrainConfig:
    """Every option of a training run; ``kblocks train`` fills one from its flags.

    Args:
        data: the training data: ``digits``, ``npz:PATH``, ``cifar10:PATH``, ``images:DIR``,
            ``tfds:NAME`` (or a path); for segmentation ``shapes[:n=,size=,seed=]`` or
            ``masks:DIR``. A run given its data in Python (``train(x=, y=)`` or
            ``train(dataset=)``) records ``python:arrays`` or ``python:tf.data`` here.
        data_dir: folder of prepared TFDS data sets (``tfds:``).
        image_size: resize the images to ``H`` or ``HxW``.
        val_split: validation count (``5000``) or fraction (``0.1``), stratified and seeded;
            0 for none.
        val_data: a separate validation source instead of a split.
        subset: train on a stratified subset (count or fraction).
        epochs: epochs to train (at least 1).
        batch_size: images per step (at least 1).
        optimizer: ``sgd``, ``adam`` or ``adamw``.
        lr: peak learning rate (default: the optimizer's, ten times lower with ``transfer``).
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: decoupled weight decay (default: the optimizer's).
        schedule: ``constant``, ``step``, ``cosine``, ``onecycle`` or ``plateau``.
        warmup: warm-up epochs (cosine, onecycle).
        step_every: epochs between steps of the ``step`` schedule.
        step_gamma: factor per step of the ``step`` schedule.
        augment: comma list of ``flip``, ``cropN``, ``translateN``, ``cutoutN``.
        label_smoothing: label smoothing of the cross-entropy loss.
        bn_momentum: the momentum of the network's BatchNormalization layers that the text leaves
            at Keras' 0.99: ``auto`` (:func:`bn_momentum_for`: from the run's step count, 0.9 for a
            short run, 0.99 for a long one), ``keep`` (Keras' 0.99), or a number in (0, 1).
        normalize: the input layer: ``standardize`` (per-channel mean/std of the training
            split), ``scale`` (1/255) or ``none``.
        precision: ``auto`` (bf16 on an accelerator, fp32 on CPU), ``bf16``, ``fp16``, ``fp32``.
        seed: random seed (default: a fresh one, saved in the run record).
        deterministic: deterministic ops (slower).
        early_stopping: patience in epochs (0: off).
        monitor: the metric that picks ``best.keras`` and early stopping (one of
            :data:`MONITORS`).
        transfer: start from ``MODEL.keras`` or ``FILE.weights.h5``.
        freeze_until: with ``transfer``: freeze through the last layer matching an index, name or
            prefix (``backbone``: all but the head).
        reset_head: with ``transfer``: a new head even if the class count matches.
        distribute: data-parallel over all local devices.
        feed: how batches reach the model: ``auto``, ``host`` or ``device``
            (:mod:`kblocks.training.feed`).
        steps_per_execution: training steps per compiled call, or ``auto`` (32 on an
            accelerator, else 1).
        variables: values of the architecture's variables.
        tensorboard: write TensorBoard logs in the run folder.
        verbose: ``model.fit`` verbosity, or ``auto`` (a progress bar on a terminal).
        unsafe: load ``.keras`` files holding a Lambda layer, whose Python code then runs; never
            read from a stored record.
    """

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
    bn_momentum: object = "auto"  # auto | keep | a number in (0, 1): bn_momentum_for
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
    feed: str = "auto"  # auto | host | device (kblocks.training.feed)
    steps_per_execution: object = "auto"  # a count, or auto (32 on an accelerator, else 1)
    variables: dict = field(default_factory=dict)
    tensorboard: bool = True
    verbose: object = "auto"
    unsafe: bool = False  # load .keras files with Lambda layers: runs code from the file

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes``.

        Raises:
            ConfigError: a name that is not an option.
        """
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


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` on an accelerator, ``fp32`` on CPU; other names checked.

    Raises:
        ConfigError: a name not in :data:`PRECISIONS`.
    """
    from kblocks.training.distribute import accelerator_present

    choice = (precision or "auto").lower()
    if choice == "auto":
        choice = "bf16" if accelerator_present() else "fp32"
    if choice not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", what="precision",
                          hint="use bf16, fp16, fp32 or auto")
    return choice


#: ``bn_momentum="auto"``: the moving statistics' time constant, ``1 / (1 - momentum)`` steps, fits
#: this many times into the steps of the run
BN_TIME_CONSTANTS = 20
#: the range of the ``auto`` momentum: 0.9 for the shortest runs up to Keras' own 0.99
BN_MOMENTUM_RANGE = (0.9, 0.99)
#: Keras' BatchNormalization default: a layer at any other momentum was set so and keeps it
KERAS_BN_MOMENTUM = 0.99


def bn_momentum_for(setting, total_steps: int) -> tuple:
    """``(momentum, rule)`` that ``bn_momentum=setting`` gives a run of ``total_steps`` steps.

    A BatchNormalization layer validates with its moving statistics, which after ``t`` steps still
    weigh their initial values (mean 0, variance 1) by ``momentum ** t``: Keras' 0.99 leaves 35% of
    them after 104 steps (8 epochs of digits). ``auto`` takes
    ``clip(1 - BN_TIME_CONSTANTS / total_steps, *BN_MOMENTUM_RANGE)``: 0.9 up to 200 steps, 0.99
    from 2000 (Keras' default for long runs). ``keep`` gives ``(None, "keep")``; a number in
    (0, 1) gives ``(number, "given")``.

    Raises:
        ConfigError: anything else (``bn_momentum``).
    """
    text = str(setting if setting is not None else "auto").strip().lower()
    if text == "auto":
        low, high = BN_MOMENTUM_RANGE
        raw = 1.0 - BN_TIME_CONSTANTS / max(1, int(total_steps))
        return round(min(high, max(low, raw)), 4), "auto"
    if text == "keep":
        return None, "keep"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise ConfigError(f"bn_momentum={setting!r} is not auto, keep or a number in (0, 1)",
                          what="bn_momentum",
                          hint="auto (from the run's steps), keep (Keras' 0.99) or e.g. 0.9")
    return value, "given"


def validate_config(cfg: TrainConfig):
    """Check the options that need no data and no Keras.

    Raises:
        ConfigError: naming the argument (``epochs=0``, an unknown ``optimizer``, ...).
    """
    from kblocks.training import feed
    from kblocks.training.schedules import OPTIMIZERS, SCHEDULES

    if int(cfg.epochs) < 1:
        raise ConfigError(f"epochs must be >= 1, got epochs={cfg.epochs}", what="epochs")
    if int(cfg.batch_size) < 1:
        raise ConfigError(f"batch size must be >= 1, got batch_size={cfg.batch_size}",
                          what="batch_size")
    if cfg.optimizer.lower() not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {cfg.optimizer!r}", what="optimizer",
                          hint="use one of " + ", ".join(OPTIMIZERS))
    if cfg.schedule.lower() not in SCHEDULES:
        raise ConfigError(f"unknown schedule {cfg.schedule!r}", what="schedule",
                          hint="use one of " + ", ".join(SCHEDULES))
    if cfg.lr is not None and not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ConfigError(f"learning rate must be a positive number, got lr={cfg.lr}", what="lr")
    try:
        warmup = float(cfg.warmup or 0)
    except (TypeError, ValueError):
        raise ConfigError(f"warm-up must be a number of epochs, got warmup={cfg.warmup!r}",
                          what="warmup") from None
    if not (math.isfinite(warmup) and warmup >= 0):
        raise ConfigError(f"warm-up must be a finite number of epochs >= 0, got warmup={warmup}",
                          what="warmup", hint="e.g. 1 (one epoch), or 0 for none")
    check_seed(cfg.seed)
    from kblocks.training.data import parse_image_size

    parse_image_size(cfg.image_size)
    if cfg.normalize not in NORMALIZE:
        raise ConfigError(f"unknown normalisation {cfg.normalize!r}", what="normalize",
                          hint="use one of " + ", ".join(NORMALIZE))
    feed.check(cfg.feed, cfg.steps_per_execution)
    if cfg.freeze_until and not cfg.transfer:
        raise ConfigError("freeze_until= needs transfer= (a model or weights to start from)",
                          what="freeze_until")
    if cfg.monitor not in MONITORS:  # a typo (val_acc) would leave best.keras unwritten, rc 0
        from kblocks.common.suggest import did_you_mean

        raise ConfigError(f"monitor={cfg.monitor!r} is not a metric the run produces; it logs "
                          f"{', '.join(MONITORS)}", what="monitor",
                          hint=did_you_mean(cfg.monitor, MONITORS) or
                          "val_* watch the validation split (the training metric when there is none)")

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
import os
import secrets
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kblocks.common import folderlock
from kblocks.common.errors import ConfigError, DataError, KBlocksError
from kblocks.lang.conventions import channel_stats, output_is_probability

from kblocks.training.config import (KERAS_BN_MOMENTUM, PRECISIONS, RESUME_OPTIONS, TrainConfig,
                                     bn_momentum_for, resolve_precision, validate_config)


#: the warning at the end of a run with BatchNormalization layers: the last epoch's training
#: accuracy is at least this ...
BN_WARN_TRAIN_ACCURACY = 0.8
#: ... and the validation accuracy (from best.keras) at least this much lower
BN_WARN_GAP = 0.25
#: a fine-tuned (transfer) model scoring at most this many times chance (1 / classes) is warned of
NEAR_CHANCE = 1.5


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
    rows = [(k, format_value(v, k)) for k, v in final.items()]
    width = max((len(k) for k, _ in rows), default=6)
    line = "-" * (width + 16)
    out = [line, f"{'metric':<{width}}  value", line]
    out += [f"{k:<{width}}  {v}" for k, v in rows]
    out.append(line)
    return "\n".join(out)


def format_value(v, key=""):
    if isinstance(v, float) and key.endswith("seconds"):
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


# -- helpers -----------------------------------------------------------------------------------

def main_output(network):
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

    from kblocks.lang.conventions import normalization_layer
    from kblocks.lang.models import Network

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = normalization_layer(normalize if normalize in ("standardize", "scale") else "none",
                            mean=mean, variance=variance)(inputs)
    for layer in augment:
        x = layer(x)
    y = network(x)
    if getattr(y, "dtype", "float32") != "float32":
        y = keras.layers.Activation("linear", dtype="float32", name="float32_output")(y)
    return Network(inputs, y, name=name or network.name)


def _register_custom_objects():
    """Import the modules whose classes saved models refer to (augmentation, schedules, loss)."""
    from kblocks.training import augment, schedules  # noqa: F401
    try:  # layers of the architecture language, if the core defines custom ones
        from kblocks.lang import layers  # noqa: F401
    except ImportError:
        pass


def make_loss(from_logits: bool, label_smoothing: float):
    """``(loss, accuracy metric, one_hot)``: Keras' own objects, so saved models need no custom
    loss. Label smoothing needs one-hot targets (Keras' sparse loss has no smoothing)."""
    import keras

    smoothing = float(label_smoothing or 0.0)
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1), got {label_smoothing}",
                          what="label_smoothing")
    if smoothing:
        return (keras.losses.CategoricalCrossentropy(from_logits=from_logits,
                                                     label_smoothing=smoothing),
                keras.metrics.CategoricalAccuracy(name="accuracy"), True)
    return (keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"), False)


def per_pixel_output(network) -> bool:
    """The network gives a class per pixel: its main output is ``(batch, H, W, channels)``."""
    return len(_output_shape(network)) == 3


def make_pixel_loss(from_logits: bool, channels: int, label_smoothing: float = 0.0):
    """``(loss, [pixel accuracy, mean IoU])`` of a per-pixel network with ``channels`` outputs:
    sparse categorical cross-entropy averaged over all pixels, or binary cross-entropy for one
    channel (a sigmoid mask of classes 0 and 1). Keras' own objects (``keras.metrics.MeanIoU``
    over the argmax, ``BinaryIoU`` at the 0.5 probability), so saved models load with
    ``safe_mode=True`` and need no custom metric."""
    import keras

    if float(label_smoothing or 0.0):
        raise ConfigError("label smoothing is for per-image classes; a per-pixel network is "
                          "trained on hard masks", what="label_smoothing",
                          hint="drop --label-smoothing for segmentation")
    if int(channels) == 1:
        threshold = 0.0 if from_logits else 0.5  # a logit of 0 is a probability of 0.5
        return (keras.losses.BinaryCrossentropy(from_logits=from_logits),
                [keras.metrics.BinaryAccuracy(name="accuracy", threshold=threshold),
                 keras.metrics.BinaryIoU(target_class_ids=(0, 1), threshold=threshold,
                                         name="mean_iou")])
    return (keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
            [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
             keras.metrics.MeanIoU(num_classes=int(channels), sparse_y_true=True,
                                   sparse_y_pred=False, name="mean_iou")])


def batch_norm_layers(model) -> list:
    """The BatchNormalization layers of ``model``, nested models included."""
    import keras

    out = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append(layer)
        elif isinstance(layer, keras.Model):
            out.extend(batch_norm_layers(layer))
    return out


def set_bn_momentum(network, setting, total_steps: int) -> dict:
    """Give the BatchNormalization layers of ``network`` the momentum that ``bn_momentum=setting``
    means for a run of ``total_steps`` steps (:func:`kblocks.training.config.bn_momentum_for`).

    Only layers at Keras' default 0.99 change: a layer at another momentum had it set (``BN(
    momentum=0.9)`` in the text, or a saved model's) and keeps it. Returns what ``run.json`` records
    as ``info.batch_norm``: ``{"rule", "momentum", "layers"`` (set), ``"kept"`` (at their own),
    ``"steps", "in_effect"`` (the momenta the layers now have)``}``.
    """
    momentum, rule = bn_momentum_for(setting, total_steps)
    layers = batch_norm_layers(network)
    changed = kept = 0
    for layer in layers:
        if momentum is None or abs(float(layer.momentum) - KERAS_BN_MOMENTUM) > 1e-9:
            kept += 1
            continue
        layer.momentum = float(momentum)  # read by each training step; saved in the layer config
        changed += 1
    return {"rule": rule, "momentum": momentum, "layers": changed, "kept": kept,
            "steps": int(total_steps),
            "in_effect": sorted({round(float(layer.momentum), 6) for layer in layers})}


def compile_for_training(model, network, cfg: TrainConfig, *, precision: str,
                         steps_per_epoch: int, epochs: int, lr=None, warmup=None,
                         steps_per_execution: int = 1, compile: bool = True, metrics=(),
                         batch_norm: dict | None = None):
    """The trainer's optimiser, learning-rate schedule (spanning ``epochs`` epochs of
    ``steps_per_epoch`` steps) and loss for ``cfg``; ``model`` (the wrapped ``network``) is compiled
    with them unless ``compile`` is false (a resumed model keeps its own). ``lr`` and ``warmup``
    override ``cfg``'s; ``metrics`` are measured beside the accuracy. Returns
    ``(lr, weight_decay, needs_one_hot)``.

    When compiling, the BatchNormalization layers get ``cfg.bn_momentum`` for the
    ``steps_per_epoch * epochs`` steps (:func:`set_bn_momentum`); a ``batch_norm`` dict receives
    its record.

    ``kblocks train`` and every search trial compile through this one function, so
    ``kblocks train best.yaml`` with a search's options repeats a trial's training."""
    from kblocks.training import schedules

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
    if per_pixel_output(network):
        from kblocks.lang.conventions import output_units

        loss, measures = make_pixel_loss(not output_is_probability(network),
                                         output_units(network), cfg.label_smoothing)
        accuracy, metrics, needs_one_hot = measures[0], [measures[1], *metrics], False
    else:
        loss, accuracy, needs_one_hot = make_loss(not output_is_probability(network),
                                                  cfg.label_smoothing)
    if compile:
        record = set_bn_momentum(network, cfg.bn_momentum,
                                 int(steps_per_epoch) * max(1, int(epochs)))
        if batch_norm is not None:
            batch_norm.update(record)
        model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy, *metrics],
                      steps_per_execution=int(steps_per_execution))
    return lr, weight_decay, needs_one_hot


def one_hot(y, classes: int) -> np.ndarray:
    out = np.zeros((len(y), classes), np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def load_model(path, *, compile=False, unsafe=False):
    """``keras.saving.load_model(path, safe_mode=True)`` after registering kblocks' layers
    (:func:`kblocks.common.saving.load_model`: a file with a Lambda layer needs ``unsafe=True``)."""
    from kblocks.common import saving

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


def prepare_data(cfg: TrainConfig, seed: int):
    """Load, subset and split the data of a run: ``(train, val)`` (``val`` may be ``None``)."""
    from kblocks.training.data import load_data, split_data, stratified_subset

    data = load_data(cfg.data, data_dir=cfg.data_dir, image_size=cfg.image_size)
    if cfg.subset not in (None, "", 0):
        data = stratified_subset(data, cfg.subset, seed=seed)
    if cfg.val_data:
        val = load_data(cfg.val_data, data_dir=cfg.data_dir, image_size=cfg.image_size,
                        split="test")
        if val.input_shape != data.input_shape:
            raise DataError(f"validation images {val.input_shape} differ from training images "
                            f"{data.input_shape}", what="val_data")
        if val.num_classes > data.num_classes:
            raise DataError(f"validation data has {val.num_classes} classes, training data "
                            f"{data.num_classes}", what="val_data")
        val.classes = data.classes
        return data, val
    return split_data(data, cfg.val_split, seed=seed)


# -- data, callbacks and metrics given in Python -------------------------------------------------

#: ``config.data`` in the run record of a run whose data was given in Python (x= or dataset=)
GIVEN_DATA = {"arrays": "python:arrays", "dataset": "python:tf.data"}

#: the columns of a history row that are not a metric of the user's
_HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "lr", "seconds")


@dataclass
class _Given:
    """What :func:`train` was given in Python besides the options: data, callbacks, metrics."""

    x: object = None
    y: object = None
    validation_data: object = None
    dataset: object = None
    validation_dataset: object = None
    classes: object = None
    callbacks: object = None
    metrics: object = None

    @property
    def kind(self):
        """``"arrays"``, ``"dataset"`` or None (the data comes from ``config.data``)."""
        if self.x is not None or self.y is not None:
            return "arrays"
        if self.dataset is not None:
            return "dataset"
        return None


def _check_given(given: _Given, cfg: TrainConfig, overrides: dict):
    """Arguments that contradict each other, or are not what they should be, before any work;
    callbacks and metrics made lists (metric names looked up in Keras)."""
    kind = given.kind
    if kind == "arrays" and given.dataset is not None:
        raise ConfigError("give x= and y=, or dataset=, not both", what="dataset")
    if given.validation_data is not None:
        if kind != "arrays":
            raise ConfigError("validation_data= goes with x= and y=", what="validation_data",
                              hint="with dataset= give validation_dataset=; with a data source "
                                   "give val_data= (a source) or val_split=")
        if not (isinstance(given.validation_data, (tuple, list))
                and len(given.validation_data) == 2):
            raise ConfigError(f"validation_data= is an (x_val, y_val) pair, got "
                              f"{type(given.validation_data).__name__}", what="validation_data")
    if given.validation_dataset is not None and kind != "dataset":
        raise ConfigError("validation_dataset= goes with dataset=", what="validation_dataset",
                          hint="with x= and y= give validation_data=(x_val, y_val)")
    if given.classes is not None and kind is None:
        raise ConfigError("classes= goes with x= or dataset= (a data source knows its classes)",
                          what="classes")
    if kind is not None:
        for option in ("data", "val_data"):
            if option in overrides:
                raise ConfigError(f"give {option}= (a data source) or "
                                  f"{'x=' if kind == 'arrays' else 'dataset='}, not both",
                                  what=option)
        if cfg.data not in (TrainConfig.data, *GIVEN_DATA.values()):
            raise ConfigError(f"the config names data={cfg.data!r} but "
                              f"{'x=' if kind == 'arrays' else 'dataset='} is given too",
                              what="data", hint="leave data= at its default")
    if kind == "dataset":
        for option in ("val_split", "subset"):
            if option in overrides:
                raise ConfigError(f"{option}= cannot cut a tf.data dataset", what=option,
                                  hint="give validation_dataset=, or cut the dataset with "
                                       ".take()/.skip() before")
    given.callbacks = _user_callbacks(given.callbacks)
    given.metrics = _user_metrics(given.metrics)


def _user_callbacks(callbacks) -> list:
    import keras

    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise ConfigError(f"callbacks= is a list of keras.callbacks.Callback, got "
                          f"{type(callbacks).__name__}", what="callbacks")
    for item in callbacks:
        if not isinstance(item, keras.callbacks.Callback):
            raise ConfigError(f"callbacks= holds a {type(item).__name__}, not a "
                              f"keras.callbacks.Callback", what="callbacks",
                              hint="subclass keras.callbacks.Callback (or use "
                                   "keras.callbacks.LambdaCallback)")
    return list(callbacks)


def _user_metrics(metrics) -> list:
    """The user's metrics; ``"accuracy"`` is measured anyway (under that name) and left out."""
    import keras

    if metrics is None:
        return []
    if isinstance(metrics, (str, keras.metrics.Metric)):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise ConfigError(f"metrics= is a list of metric names or keras.metrics.Metric objects, "
                          f"got {type(metrics).__name__}", what="metrics")
    out = []
    for item in metrics:
        if isinstance(item, str):
            if item in ("accuracy", "acc"):
                continue
            try:
                keras.metrics.get(item)
            except (ValueError, TypeError):
                raise ConfigError(f"Keras has no metric {item!r}", what="metrics",
                                  hint="give a keras.metrics.Metric object, e.g. "
                                       "keras.metrics.SparseTopKCategoricalAccuracy(k=3)") from None
        elif not (isinstance(item, keras.metrics.Metric) or callable(item)):
            raise ConfigError(f"metrics= holds a {type(item).__name__}, not a metric",
                              what="metrics")
        out.append(item)
    return out


def _given_data(run: _Run):
    """``(train, val)`` from ``x=``/``y=`` (subset and split as a source) or ``dataset=``."""
    from kblocks.training import data as D

    cfg, given = run.cfg, run.given
    if given.kind == "arrays":
        train_data = D.from_arrays(given.x, given.y, classes=given.classes)
        if given.validation_data is not None:
            vx, vy = given.validation_data
            _check_inferred_classes(vy, train_data, given.classes)
            val = D.from_arrays(vx, vy, classes=train_data.classes,
                                what=("validation_data", "validation_data"),
                                name="arrays (validation_data)")
            if val.input_shape != train_data.input_shape:
                raise DataError(f"validation images {val.input_shape} differ from training "
                                f"images {train_data.input_shape}", what="validation_data")
            if cfg.subset not in (None, "", 0):
                train_data = D.stratified_subset(train_data, cfg.subset, seed=run.seed)
            return train_data, val
        if cfg.subset not in (None, "", 0):
            train_data = D.stratified_subset(train_data, cfg.subset, seed=run.seed)
        return D.split_data(train_data, cfg.val_split, seed=run.seed)
    batch = int(cfg.batch_size)
    train_data = D.scan_dataset(given.dataset, batch_size=batch, classes=given.classes,
                                stats=cfg.normalize == "standardize")
    val = None
    if given.validation_dataset is not None:
        val = D.scan_dataset(given.validation_dataset, batch_size=batch,
                             classes=train_data.classes, what="validation_dataset", stats=False)
        if val.input_shape != train_data.input_shape:
            raise DataError(f"validation images {val.input_shape} differ from training images "
                            f"{train_data.input_shape}", what="validation_dataset")
    return train_data, val


def _check_inferred_classes(labels, train_data, classes):
    """Validation labels beyond a class count inferred from the training labels: say so."""
    if classes is not None:
        return
    try:
        top = int(np.max(np.asarray(labels)))
    except (TypeError, ValueError):  # not numbers: from_arrays says what is wrong
        return
    if top >= train_data.num_classes:
        raise DataError(f"label {top} is out of range for the {train_data.num_classes} classes "
                        f"inferred from y= (its largest label + 1)", what="validation_data",
                        hint="give classes= (the class count or names), or training data with "
                             "every class")


def _check_resizable(run: _Run, target):
    """Loaded data is uint8 and resized to the size the architecture declares; data given in
    Python is resized only when it is uint8 pixels as well."""
    kind = run.given.kind
    if kind == "dataset" or (kind == "arrays" and run.train_data.x.dtype != np.uint8):
        what = "dataset" if kind == "dataset" else "x"
        raise DataError(f"the architecture takes inputs of shape {tuple(target)} but {what}= "
                        f"has images of shape {run.train_data.input_shape}", what=what,
                        hint="resize the images first (tf.image.resize), or give uint8 pixels "
                             "(resized here), or an architecture for this shape")


def _stream_feed(cfg: TrainConfig, train_data):
    """The feed of ``dataset=``: Keras reads the user's tf.data pipeline (host)."""
    from kblocks.training import feed
    from kblocks.training.distribute import accelerator_present

    if str(cfg.feed or "auto").lower() == "device":
        raise ConfigError("feed='device' moves arrays to the device once; dataset= streams "
                          "batches from tf.data", what="feed",
                          hint="use feed='auto' with dataset=, or give x= and y=")
    steps = feed.resolve_steps_per_execution(cfg.steps_per_execution, train_data.batches,
                                             accelerator_present())
    return feed.Feed("host", "dataset=: batches from its tf.data pipeline", steps)


def _stream_labels(dataset, classes: int, needs_one_hot: bool):
    """The batched dataset fit reads: labels one-hot when the loss needs them (smoothing)."""
    if not needs_one_hot:
        return dataset
    import tensorflow as tf

    def to_one_hot(images, labels):
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        return images, tf.one_hot(labels, classes)

    return dataset.map(to_one_hot)


# -- training ----------------------------------------------------------------------------------

@dataclass
class _Run:
    """What the phases of :func:`train` share: each phase reads what the ones before it set.

    ``_resolve`` makes it, then: data (``_load_data``), network (``_build``), Keras model and its
    compilation (``_wrap_and_compile``), callbacks and run files (``_callbacks_and_files``), the
    fit (``_fit``), the final scores (``_final_scores``), the record (``_record``).
    """

    cfg: TrainConfig
    source: object                  # architecture text, YAML path, zoo name, keras.Model or None
    out: object = None
    overwrite: bool = False
    command: list | None = None
    resumed: dict | None = None     # runfolder.read_resume_state of the folder being resumed
    given: object = None            # _Given: data, callbacks and metrics passed in Python
    started: float = 0.0
    seed: int = 0
    precision: str = "fp32"
    augment_layers: list = field(default_factory=list)
    run_dir: Path | None = None
    epochs_done: int = 0
    # data
    train_data: object = None
    val_data: object = None
    monitor: str = "val_accuracy"
    classes: int = 0
    input_shape: tuple = ()
    source_text: str | None = None
    is_model: bool = False
    # network and model
    placement: object = None
    network: object = None
    model: object = None
    transfer_report: object = None
    resolved_text: str | None = None
    summary_text: str | None = None
    from_probs: bool = False
    feed_plan: object = None
    steps_per_epoch: int = 0
    lr: float = 0.0
    weight_decay: float = 0.0
    y_train: object = None
    y_val: object = None
    fit_train: object = None        # with dataset=: the batched tf.data datasets fit reads
    fit_val: object = None
    # callbacks, files, results
    files: dict = field(default_factory=dict)
    callbacks: list = field(default_factory=list)
    nan_guard: object = None
    checkpoint: object = None
    history: object = None
    timer: object = None
    tensorboard_note: str | None = None
    best_model: object = None
    final: dict = field(default_factory=dict)
    diverged: tuple | None = None
    batch_norm: dict = field(default_factory=dict)  # set_bn_momentum's record
    warnings: list = field(default_factory=list)   # said at the end, kept in run.json


@folderlock.locking("out")  # one writer per run folder, fresh start or --resume (issue 21)
def train(model_or_source, config: TrainConfig | None = None, *, out=None, overwrite=False,
          command=None, resume=False, x=None, y=None, validation_data=None, dataset=None,
          validation_dataset=None, classes=None, callbacks=None, metrics=None,
          **overrides) -> TrainResult:
    """Train an architecture on real data; write the run folder ``out`` if given.

    The data is ``config.data`` (a source such as ``digits`` or ``npz:PATH``), or given in
    Python: arrays ``x=``/``y=`` (checked as loaded data is, then subset and split by
    ``subset``/``val_split`` unless ``validation_data=`` is given), or a ``tf.data.Dataset``
    ``dataset=`` (read once before training for its size, class count and normalisation
    statistics; see docs/training.md).

    Args:
        model_or_source: architecture text, a YAML path, a zoo name, or a ``keras.Model`` whose
            input takes float pixels (the seam for hand-written models). With
            ``config.transfer`` it may be None (the network then comes from the transfer file).
        config: the options (default: ``TrainConfig()``).
        out: the run folder (``best.keras``, ``last.keras``, ``history.csv``, ``run.json``, ...);
            None trains in memory only.
        overwrite: replace a run already in ``out`` (only the files its ``run.json`` lists).
        command: the command line to record in ``run.json``.
        resume: continue the run in ``out`` from its ``last.keras`` (weights and optimizer state)
            and ``state.json``, with the run's own options; only :data:`RESUME_OPTIONS` may be
            given in ``overrides`` (``epochs=`` to train longer).
        x: training images ``(N, H, W[, C])``: ``uint8`` pixels, or any numeric dtype (the
            ``standardize`` input layer learns their statistics; ``scale`` divides by 255).
        y: their class indices ``(N,)``.
        validation_data: ``(x_val, y_val)`` with ``x=``; then nothing is split off ``x``.
        dataset: a ``tf.data.Dataset`` of ``(image, label)`` elements (batched here by
            ``batch_size``) or batches (kept as they are, the pipeline's own shuffling too).
        validation_dataset: the validation ``tf.data.Dataset`` with ``dataset=``.
        classes: with ``x=`` or ``dataset=``: the class count or names (default: the largest
            training label + 1).
        callbacks: ``keras.callbacks.Callback`` objects run after the trainer's own.
        metrics: metrics (names or ``keras.metrics.Metric`` objects) measured beside the
            accuracy; they appear in the history, ``history.csv`` and ``run.json``'s ``final``.
        **overrides: options that replace those of ``config``.

    Returns:
        A :class:`TrainResult`: the best model, the trained model, the history and the final
        scores (validation scores from ``best.keras``).

    Raises:
        ConfigError: an option that is wrong, alone or with the others (``epochs=0``,
            ``freeze_until`` without ``transfer``, ...), or a folder that cannot be used.
        DataError: data that is missing or does not fit the network.
        FolderInUse: another process is writing ``out``.
        TrainingDiverged: the loss became NaN or infinite (the run folder keeps the epochs
            before).
        TrainingInterrupted: Ctrl-C, after the files hold the last completed epoch.
    """
    from kblocks.training import distribute

    given = _Given(x, y, validation_data, dataset, validation_dataset, classes, callbacks,
                   metrics)
    run = _resolve(model_or_source, config, out=out, overwrite=overwrite, command=command,
                   resume=resume, overrides=overrides, given=given)
    _load_data(run)
    with distribute.scope(run.cfg.distribute, batch_size=int(run.cfg.batch_size)) as placement:
        run.placement = placement
        _build(run)
        _wrap_and_compile(run)
        _callbacks_and_files(run)
        _fit(run)
        _final_scores(run)
    return _record(run)


def _resolve(source, config, *, out, overwrite, command, resume, overrides,
             given=None) -> _Run:
    """The options (those of a resumed run from its folder), checked; seed, precision, folder."""
    from kblocks.training import runfolder
    from kblocks.training.augment import parse_augment

    resumed = None
    if resume:
        if out is None:
            raise ConfigError("resuming needs the run folder", what="resume",
                              hint="give out= (the folder of the run to continue)")
        resumed = runfolder.read_resume_state(out)
        cfg, source = _resumed_config(out, resumed, overrides)
    else:
        cfg = (config or TrainConfig()).replace(**overrides) if overrides else \
            (config or TrainConfig())
    given = given if given is not None else _Given()
    _check_given(given, cfg, overrides)
    if given.kind is not None:  # the record says where the data came from
        cfg = cfg.replace(data=GIVEN_DATA[given.kind])
    validate_config(cfg)
    bn_momentum_for(cfg.bn_momentum, 1)  # a wrong value stops the run before any work
    _register_custom_objects()
    run = _Run(cfg=cfg, source=source, out=out, overwrite=overwrite, command=command,
               resumed=resumed, started=time.time(), given=given)
    run.seed = int(cfg.seed) if cfg.seed is not None else secrets.randbelow(2 ** 31 - 1)
    run.precision = resolve_precision(cfg.precision)
    run.augment_layers = parse_augment(cfg.augment, seed=run.seed)  # option errors before work
    if resumed is not None:
        run.run_dir = Path(out)
        run.seed = int(resumed["record"]["seed"])
        run.epochs_done = resumed["epochs_done"]
    elif out is not None:
        run.run_dir = runfolder.check_run_dir(out, overwrite=overwrite,
                                              protect=_read_files(cfg, source))
    return run


def _resumed_config(out, resumed: dict, overrides: dict):
    """``(options, architecture)`` of the run being resumed, with the few allowed overrides."""
    bad = sorted(set(overrides) - set(RESUME_OPTIONS))
    if bad:
        raise ConfigError(f"a resumed run keeps its own options; cannot change "
                          f"{', '.join(bad)}", what="resume",
                          hint="only " + ", ".join(RESUME_OPTIONS) + " may be given")
    record = resumed["record"]
    cfg = TrainConfig.from_record(record.get("config", {}),
                                  unsafe=bool(overrides.pop("unsafe", False)))
    cfg = cfg.replace(**overrides)
    if cfg.seed is None:
        cfg = cfg.replace(seed=record.get("seed"))
    kind = (record.get("feed") or {}).get("kind")
    if kind:  # the same feed, so an epoch has the steps the saved schedule counts on
        cfg = cfg.replace(feed=kind)
    if resumed["epochs_done"] >= int(cfg.epochs):
        raise ConfigError(f"{out} has already trained {resumed['epochs_done']} of "
                          f"{cfg.epochs} epochs", what="resume",
                          hint="give epochs=N (more than that) to train longer")
    return cfg, record.get("architecture")


def _load_data(run: _Run):
    """Seed, the train and validation data, the monitored metric; images resized to the size
    the architecture declares."""
    import keras

    cfg = run.cfg
    if cfg.data in GIVEN_DATA.values() and run.given.kind is None:  # resuming such a run
        arguments = "x= and y=" if cfg.data == GIVEN_DATA["arrays"] else "dataset="
        raise ConfigError(f"this run trained on data given in Python ({arguments}), which its "
                          f"folder does not keep", what=arguments.split("=")[0],
                          hint=f"pass the same {arguments} again")
    set_seed(run.seed, cfg.deterministic)
    run.train_data, run.val_data = _given_data(run) if run.given.kind else \
        prepare_data(cfg, run.seed)
    if run.val_data is None and cfg.monitor.startswith("val_"):
        run.monitor = cfg.monitor[4:]
    else:
        run.monitor = cfg.monitor
    run.classes = run.train_data.num_classes
    run.input_shape = run.train_data.input_shape
    run.is_model = isinstance(run.source, keras.Model)
    run.source_text = None if run.is_model or run.source is None else str(run.source)
    if run.source is None and not cfg.transfer and not run.epochs_done:
        if run.resumed is not None:
            raise ConfigError(f"{run.run_dir} trained a keras.Model given in Python and stopped "
                              f"before its first epoch ended: there is nothing to resume from",
                              what="resume", hint="start the run again")
        raise ConfigError("no architecture given", hint="give architecture text, a YAML file, a "
                                                        "zoo name, or transfer=MODEL.keras")
    if run.source_text is not None and not cfg.transfer:
        target = declared_input_shape(run.source_text, run.classes, cfg.variables)
        if target is not None and tuple(target) != run.input_shape:
            _check_resizable(run, target)
            run.train_data, run.val_data = _fit_images(run.train_data, run.val_data, target)
            run.input_shape = run.train_data.input_shape


def _build(run: _Run):
    """The network: the resumed model, the transfer source, the given model, or a new build
    (under the chosen precision); checked against the data; its text and summary for the record."""
    import keras

    from kblocks.training import transfer
    from kblocks.training.data import check_fits

    cfg = run.cfg
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[run.precision])
    try:
        network = _network(run)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    network = main_output(network)
    for data in (run.train_data, run.val_data):
        if data is not None:
            check_fits(network.input_shape[1:], transfer.output_units(network), data,
                       what="network", output_shape=_output_shape(network))
    if per_pixel_output(network):
        _check_pixel_run(run)
    elif "mean_iou" in run.monitor:
        raise ConfigError(f"monitor={run.cfg.monitor!r}: mean IoU is measured for per-pixel "
                          f"(segmentation) networks only", what="monitor",
                          hint="monitor val_accuracy or val_loss")
    if run.source_text is not None and run.resumed is None:
        run.resolved_text, run.summary_text = _describe(run.source_text, network, run.input_shape,
                                                        run.classes, cfg.variables)
    if run.transfer_report is not None and not run.epochs_done:
        run.transfer_report.frozen = transfer.freeze_until(network, cfg.freeze_until)
        for line in run.transfer_report.head_lines(cfg.data):  # before the first epoch
            print(line)
    run.network = network


def _output_shape(network) -> tuple:
    """The main output's shape without the batch axis."""
    shape = network.output_shape
    if isinstance(shape, dict):
        shape = shape.get("output", next(iter(shape.values())))
    if isinstance(shape, list):
        shape = shape[0]
    return tuple(shape[1:])


#: the augmentation layers a segmentation run may use: they change pixels, never where they are
#: (the layers act inside the model on the image alone, so a flip or crop would leave the mask
#: unflipped and the pair misaligned)
PIXEL_SAFE_AUGMENT = ("Cutout",)


def _check_pixel_run(run: _Run):
    """Options that cannot work for a per-pixel network, said before any work."""
    moved = [layer for layer in run.augment_layers
             if type(layer).__name__ not in PIXEL_SAFE_AUGMENT]
    if moved:
        raise ConfigError(f"--augment {run.cfg.augment}: {type(moved[0]).__name__} moves the "
                          f"image's pixels but not the mask's, so the pair would no longer match",
                          what="augment", hint="for segmentation only cutoutN may be given "
                                               "(docs/training.md, Segmentation)")


def _network(run: _Run):
    from kblocks.training import transfer

    cfg = run.cfg

    def build(n_classes):
        from kblocks.lang import api

        return api.build(run.source_text, input_shape=run.input_shape, classes=n_classes,
                         variables=dict(cfg.variables))

    if run.epochs_done:  # resuming: the whole trained model, compiled, optimizer state included
        from kblocks.common import saving

        run.model = saving.load_model(run.run_dir / "last.keras", compile=True,
                                      unsafe=cfg.unsafe)
        return transfer.unwrap_trained(run.model)
    if cfg.transfer:
        network, run.transfer_report = transfer.prepare(
            cfg.transfer, classes=run.classes, input_shape=run.input_shape,
            build=build if run.source_text is not None else None, reset_head=cfg.reset_head,
            unsafe=cfg.unsafe)
        if run.is_model:
            raise ConfigError("give either a keras.Model or transfer=, not both")
        return network
    if run.is_model:
        return run.source
    return build(run.classes)


def _wrap_and_compile(run: _Run):
    """The trained model (normalisation, augmentation, network), the feed, the compiled loss,
    optimizer and schedule; labels one-hot when the loss needs them."""
    from kblocks.training import feed, schedules

    cfg, network, train_data, val_data = run.cfg, run.network, run.train_data, run.val_data
    run.from_probs = output_is_probability(network)
    stream = run.given.kind == "dataset"
    if not run.epochs_done:
        mean = var = None
        if cfg.normalize == "standardize":
            mean, var = (train_data.mean, train_data.variance) if stream else \
                channel_stats(train_data.x)
        run.model = wrap(network, run.input_shape, mean=mean, variance=var,
                         normalize=cfg.normalize, augment=run.augment_layers)
    if stream:
        plan = _stream_feed(cfg, train_data)
        run.steps_per_epoch = train_data.batches
    else:
        plan = feed.choose(cfg.feed, nbytes=train_data.x.nbytes, batch_size=int(cfg.batch_size),
                           train_size=len(train_data), distributed=cfg.distribute,
                           steps_per_execution=cfg.steps_per_execution)
        run.steps_per_epoch = feed.steps_per_epoch(plan.kind, len(train_data),
                                                   int(cfg.batch_size))
    run.feed_plan = plan
    default_lr = None
    if cfg.lr is None and cfg.transfer:  # fine-tuning starts ten times lower
        default_lr = schedules.DEFAULT_LR[cfg.optimizer.lower()] * 0.1
    run.lr, run.weight_decay, needs_one_hot = compile_for_training(
        run.model, network, cfg, precision=run.precision, steps_per_epoch=run.steps_per_epoch,
        epochs=int(cfg.epochs), lr=default_lr, steps_per_execution=plan.steps_per_execution,
        compile=not run.epochs_done, metrics=run.given.metrics, batch_norm=run.batch_norm)
    if run.epochs_done:  # the resumed model was compiled when saved; this machine decides this
        run.model.steps_per_execution = plan.steps_per_execution
        layers = batch_norm_layers(network)  # they keep the momentum they were saved with
        run.batch_norm = {"rule": "as saved", "momentum": None, "layers": 0, "kept": len(layers),
                          "steps": run.steps_per_epoch * int(cfg.epochs),
                          "in_effect": sorted({round(float(x.momentum), 6) for x in layers})}
    if stream:
        run.fit_train = _stream_labels(train_data.dataset, run.classes, needs_one_hot)
        if val_data is not None:
            run.fit_val = _stream_labels(val_data.dataset, run.classes, needs_one_hot)
        return
    run.y_train = one_hot(train_data.y, run.classes) if needs_one_hot else train_data.y
    if val_data is not None:
        run.y_val = one_hot(val_data.y, run.classes) if needs_one_hot else val_data.y


def _callbacks_and_files(run: _Run):
    """The run folder's files, the callbacks that write them (checkpoints, history, NaN guard,
    timer, schedule, early stopping, TensorBoard), and ``run.json`` at the start."""
    from kblocks.training import callbacks as kcb
    from kblocks.training import runfolder

    cfg, run_dir = run.cfg, run.run_dir
    if run_dir is not None:
        if run.resumed is None:
            run.run_dir = run_dir = runfolder.prepare_run_dir(
                run_dir, overwrite=run.overwrite, protect=_read_files(cfg, run.source))
        run.files = {name: run_dir / file for name, file in RUN_FILES.items()}
    state = (run.resumed or {}).get("state") or {}
    resumed = bool(run.epochs_done)
    run.nan_guard = kcb.NaNGuard()
    run.checkpoint = kcb.AtomicCheckpoint(
        run.files.get("best"), run.files.get("last"), monitor=run.monitor,
        state_path=run.files.get("state"), guard=run.nan_guard,
        best=state.get("best") if resumed else None,
        best_epoch=state.get("best_epoch") if resumed else None)
    run.checkpoint.epochs_done = run.epochs_done
    run.history = kcb.HistoryWriter(run.files.get("history"),
                                    rows=(run.resumed or {}).get("rows", [])[:run.epochs_done])
    run.timer = kcb.FitTimer()
    run.callbacks = [run.nan_guard, run.history, run.checkpoint, run.timer] + _more_callbacks(run)
    if run_dir is not None and run.resumed is None:
        _write_start(run_dir, run.files, cfg, run.seed, run.precision, run.placement,
                     run.train_data, run.val_data, run.source_text, run.resolved_text,
                     run.summary_text, run.command, run.transfer_report, run.network,
                     run.feed_plan, run.callbacks)
    elif run_dir is not None:
        _write_resume(run.files["run"], cfg, run.epochs_done, run.command)


#: the files of a run folder, by the name the trainer uses for each
RUN_FILES = {"best": "best.keras", "last": "last.keras", "history": "history.csv",
             "curves": "curves.png", "run": "run.json", "architecture": "architecture.txt",
             "summary": "summary.txt", "logs": "logs", "state": "state.json"}


def _more_callbacks(run: _Run) -> list:
    """The plateau schedule, early stopping and TensorBoard, as the options ask."""
    import keras

    cfg, out = run.cfg, []
    if cfg.schedule.lower() == "plateau":
        out.append(keras.callbacks.ReduceLROnPlateau(
            monitor=run.monitor, factor=0.2, patience=max(1, int(cfg.early_stopping or 6) // 2),
            mode=run.checkpoint.mode, verbose=0))
    if cfg.early_stopping:
        out.append(keras.callbacks.EarlyStopping(monitor=run.monitor,
                                                 patience=int(cfg.early_stopping),
                                                 mode=run.checkpoint.mode))
    if run.run_dir is not None and cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401 - the TensorBoard callback needs it (tf.summary)
            import tensorflow  # noqa: F401

            out.append(keras.callbacks.TensorBoard(log_dir=str(run.files["logs"]),
                                                   write_graph=False, profile_batch=0))
        except ImportError:
            run.tensorboard_note = "tensorflow or tensorboard not installed: no TensorBoard logs"
    return out


def _fit(run: _Run):
    """``model.fit``; Ctrl-C waits for a checkpoint being written, then the folder says so."""
    from kblocks.training import feed, interrupts, runfolder

    cfg = run.cfg
    verbose = cfg.verbose
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    if run.fit_train is not None:  # dataset=: the user's pipeline, batched
        fit_kwargs = {"x": run.fit_train, "shuffle": False, "callbacks": []}  # its own order
        if run.fit_val is not None:
            fit_kwargs["validation_data"] = run.fit_val
    else:
        validation = (run.val_data.x, run.y_val) if run.val_data is not None else None
        fit_kwargs = feed.fit_arguments(
            run.feed_plan, run.train_data.x, run.y_train, batch_size=int(cfg.batch_size),
            seed=run.seed, validation=validation, initial_epoch=run.epochs_done)
    fit_kwargs.update(epochs=int(cfg.epochs), verbose=verbose, initial_epoch=run.epochs_done,
                      callbacks=fit_kwargs["callbacks"] + run.callbacks + run.given.callbacks)
    try:
        with interrupts.graceful():  # Ctrl-C waits for a checkpoint being written
            run.model.fit(**fit_kwargs)
    except KeyboardInterrupt:
        done = run.checkpoint.epochs_done
        if run.run_dir is not None:
            runfolder.write_history(run.files["history"], run.history.rows[:done])
            _write_interrupted(run.files["run"], done, run.started)
        raise TrainingInterrupted(run.run_dir, done, int(cfg.epochs)) from None
    run.diverged = run.nan_guard.where


def _final_scores(run: _Run):
    """Final numbers, from the best checkpoint (re-loaded from disk when there is a run folder,
    which also proves it loads with ``safe_mode=True``)."""
    cfg, rows = run.cfg, run.history.rows
    run.best_model = run.model
    if run.files and run.files["best"].exists() and not run.diverged:
        from kblocks.common import saving

        run.best_model = saving.load_model(run.files["best"], compile=True, unsafe=cfg.unsafe)
    final = {}
    last = rows[-1] if rows else {}
    for key in ("loss", "accuracy"):
        if last.get(key) is not None:
            final[f"train_{key} (last epoch)"] = last[key]
    for key, value in last.items():  # the metrics= of the user's
        if key not in _HISTORY_COLUMNS and not key.startswith("val_") and value is not None:
            final[f"train_{key} (last epoch)"] = value
    if run.val_data is not None and not run.diverged:
        if run.fit_val is not None:
            scores = run.best_model.evaluate(run.fit_val, verbose=0, return_dict=True)
        else:
            scores = run.best_model.evaluate(run.val_data.x, run.y_val,
                                             batch_size=int(cfg.batch_size), verbose=0,
                                             return_dict=True)
        final["val_loss"] = float(scores["loss"])
        final["val_accuracy"] = float(scores.get("accuracy", scores.get("compile_metrics", 0)))
        for key, value in scores.items():
            if key not in ("loss", "accuracy", "compile_metrics"):
                final[f"val_{key}"] = float(value)
    final["best_epoch"] = run.checkpoint.best_epoch
    final["epochs_run"] = len(rows)
    final["seconds"] = round(run.timer.train_seconds or 0.0, 1)
    epoch_seconds = run.timer.epoch_seconds
    final["first_epoch_seconds"] = round(epoch_seconds[0], 1) if epoch_seconds else None
    run.final = final


def _record(run: _Run) -> TrainResult:
    """``run.json`` at the end and the curves; the result, or :class:`TrainingDiverged`."""
    from kblocks.training import runfolder

    files = run.files
    info = {"precision": run.precision, "placement": run.placement.as_dict(), "seed": run.seed,
            "monitor": run.monitor, "from_logits": not run.from_probs, "lr": run.lr,
            "weight_decay": run.weight_decay, "steps_per_epoch": run.steps_per_epoch,
            "feed": run.feed_plan.as_dict(),
            "transfer": run.transfer_report.as_dict() if run.transfer_report else None,
            "tensorboard": run.tensorboard_note or (str(files.get("logs")) if files else None),
            "batch_norm": run.batch_norm or None}
    if not run.diverged:
        run.warnings = _end_warnings(run)
        for line in run.warnings:
            print(f"warning: {line}", file=sys.stderr)
    info["warnings"] = list(run.warnings)
    if run.run_dir is not None:
        runfolder.plot_curves(files["curves"], run.history.rows,
                              title=(run.source_text or run.network.name)[:120])
        _write_end(files["run"], run.final, info, run.diverged, run.started)
    if run.diverged:
        raise _diverged(run)
    return TrainResult(run.best_model, run.model, run.network, run.history.rows,
                       run.checkpoint.best_epoch, run.final, run.seed, run.run_dir, info)


def _end_warnings(run: _Run) -> list:
    """What the final scores suggest is wrong, each with its fix: validation far below training
    with BatchNormalization layers (:data:`BN_WARN_GAP`), a fine-tuned model near chance
    (:data:`NEAR_CHANCE`)."""
    out, final, bn = [], run.final, run.batch_norm or {}
    train_acc = final.get("train_accuracy (last epoch)")
    val_acc = final.get("val_accuracy")
    count = int(bn.get("layers", 0)) + int(bn.get("kept", 0))
    if count and train_acc is not None and val_acc is not None \
            and train_acc >= BN_WARN_TRAIN_ACCURACY and val_acc <= train_acc - BN_WARN_GAP:
        momenta = bn.get("in_effect") or []
        said = (f"training accuracy {train_acc:.2f} but validation {val_acc:.2f}, with {count} "
                f"BatchNormalization layer(s) at momentum {'/'.join(f'{m:g}' for m in momenta)} "
                f"over {bn.get('steps')} steps: validation uses their moving statistics")
        if momenta and max(momenta) > 0.9:
            out.append(f"{said}, which may still be near their initial values; give "
                       f"--bn-momentum 0.9 (bn_momentum=0.9) or train more --epochs "
                       f"(docs/training.md, BatchNorm on short runs)")
        else:
            out.append(f"{said}, which a momentum of 0.9 or less updates quickly: more likely "
                       f"overfitting (try --augment, DROPOUT, more data), or a --bn-momentum "
                       f"lower still")
    report = run.transfer_report
    accuracy = val_acc if val_acc is not None else train_acc
    if report is not None and accuracy is not None and run.classes > 1 \
            and accuracy <= NEAR_CHANCE / run.classes:
        near = (f"after fine-tuning, accuracy {accuracy:.2f} is near chance "
                f"({1 / run.classes:.2f} for {run.classes} classes)")
        if report.head == "kept":
            out.append(f"{near}: the head was kept ({report.trained_on_words()}); give "
                       f"--reset-head (reset_head=True) for a fresh head if its classes are not "
                       f"this data's")
        else:
            out.append(f"{near}: train more --epochs, raise --lr (now {run.lr:g}) or freeze less "
                       f"(--freeze-until)")
    return out


def _diverged(run: _Run) -> TrainingDiverged:
    epoch, step, value = run.diverged
    where = f"epoch {epoch}, step {step}" if step else f"epoch {epoch}"
    kept, done = "", run.checkpoint.epochs_done
    if run.run_dir is not None and done:
        kept = (f"; {run.run_dir}/last.keras and best.keras keep epoch {done} and "
                f"{run.checkpoint.best_epoch}, from before the loss diverged")
    return TrainingDiverged(
        f"the loss became {value} at {where}; training stopped{kept}", what="training",
        hint=f"lower the learning rate (now {run.lr:g}) or add warm-up (warmup=1); "
             + (f"the run folder {run.run_dir} has the history so far" if run.run_dir else ""))


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
    from kblocks.lang import api

    try:
        graph = api.compile(source_text, classes=classes, variables=dict(variables))
    except Exception:  # noqa: BLE001 - no declared shape (or a mistake build() will report)
        return None
    shape = getattr(graph, "input_shape", None)
    return tuple(int(d) for d in shape) if shape else None


def _fit_images(train_data, val_data, target):
    """Resize the images to the size the architecture declares (lenet5 is 32x32 for 8x8 digits);
    a different channel count is an error."""
    from kblocks.training.data import resize_images, resize_masks

    target = tuple(target)
    have = train_data.input_shape
    if len(target) != 3 or len(have) != 3 or target[2] != have[2]:
        raise DataError(
            f"the architecture takes inputs of shape {target} but {train_data.name} has images "
            f"of shape {have}", what="data",
            hint="use data with the same number of channels, or an architecture for this shape")
    print(f"note: resizing {train_data.name} images from {have[0]}x{have[1]} to "
          f"{target[0]}x{target[1]}, the input size the architecture declares")
    for data in (train_data, val_data):
        if data is not None:
            data.x = resize_images(data.x, target[:2])
            if getattr(data, "per_pixel", False):  # masks: nearest, so classes stay classes
                data.y = resize_masks(data.y, target[:2])
    return train_data, val_data


def _describe(source_text, network, input_shape, classes, variables):
    """Canonical architecture text and the per-layer table, when the core can give them."""
    resolved = summary = None
    try:
        from kblocks.lang import api

        resolved = api.format_text(source_text, input_shape=input_shape, classes=classes,
                                   variables=dict(variables))
        summary = str(api.summary(source_text, input_shape=input_shape, classes=classes,
                                  variables=dict(variables)))
    except Exception:  # noqa: BLE001 - descriptions are a courtesy, never a reason to fail
        pass
    return resolved, summary


def _write_start(run_dir, files, cfg, seed, precision, placement, train_data, val_data,
                 source_text, resolved_text, summary_text, command, transfer_report, network,
                 plan, callbacks):
    from kblocks.training import runfolder

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
    from kblocks.training import runfolder

    record = json.loads(Path(path).read_text())
    record["status"] = "running"
    record["config"]["epochs"] = int(cfg.epochs)
    record.setdefault("resumed", []).append({
        "at_epoch": epochs_done, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": list(command) if command is not None else list(sys.argv)})
    runfolder.write_json(path, record)


def _write_interrupted(path, epochs_done, started):
    from kblocks.training import runfolder

    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    record.update({"status": "interrupted", "epochs_done": epochs_done,
                   "interrupted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "wall_seconds": round(time.time() - started, 1)})
    runfolder.write_json(path, record)


def _write_end(path, final, info, diverged, started):
    from kblocks.training import runfolder

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
    """Accuracy and loss of a saved model on ``data`` (or on its seeded validation split).

    Args:
        model_path: a ``.keras`` file (loaded with ``safe_mode=True``).
        data: a data source, as :class:`TrainConfig`'s ``data``.
        data_dir: folder of prepared TFDS data sets (``tfds:``).
        image_size: resize the images to ``H`` or ``HxW``.
        val_split: score only the validation split a training run with this ``val_split`` and
            ``seed`` held out (None: all of ``data``).
        seed: the seed of that split.
        batch_size: images per prediction step.
        subset: score a stratified subset (count or fraction).
        unsafe: load a file holding a Lambda layer (its code runs).

    Returns:
        ``{"model", "data", "samples", "loss", "accuracy", "per_class_accuracy",
        "conventions"}``; the loss is the cross-entropy of the predicted probabilities. A
        per-pixel (segmentation) model is scored on every pixel: ``accuracy`` is the pixel
        accuracy, and ``mean_iou`` and ``per_class_iou`` are added
        (:mod:`kblocks.training.segmentation`, the same as training's ``keras.metrics.MeanIoU``).

    Raises:
        DataError: a missing model file, or data that does not fit the model.
        UnsafeModelError: a Lambda layer without ``unsafe``.
    """
    from kblocks.lang.conventions import conventions, to_probabilities
    from kblocks.training.data import check_fits, load_data, split_data, stratified_subset
    from kblocks.training.transfer import output_units

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
    check_fits(model.input_shape[1:], output_units(model), dataset, what="model",
               output_shape=_output_shape(model))
    conv = conventions(model)  # read from the model, or assumed (and said) for an older file
    probs = model.predict(dataset.x, batch_size=int(batch_size), verbose=0)
    if per_pixel_output(model):
        return _evaluate_pixels(path, dataset, probs, conv)
    probs = to_probabilities(probs, conv["output"] == "probabilities")
    predicted = probs.argmax(-1)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(dataset)), dataset.y], 1e-12, 1))))
    accuracy = float(np.mean(predicted == dataset.y))
    per_class = [float(np.mean(predicted[dataset.y == c] == c)) if np.any(dataset.y == c)
                 else None for c in range(dataset.num_classes)]
    return {"model": str(path), "data": dataset.name, "samples": len(dataset),
            "loss": loss, "accuracy": accuracy,
            "per_class_accuracy": dict(zip(dataset.classes, per_class)), "conventions": conv}


def _evaluate_pixels(path, dataset, outputs, conv) -> dict:
    """:func:`evaluate` of a per-pixel model: pixel accuracy, mean IoU and IoU per class."""
    from kblocks.training.segmentation import pixel_scores

    scores = pixel_scores(outputs, dataset.y, conv["output"] == "probabilities",
                          dataset.num_classes)
    iou = [None if np.isnan(v) else float(v) for v in scores["class_iou"]]
    names = dataset.classes if len(dataset.classes) == len(iou) else [str(i) for i in
                                                                      range(len(iou))]
    return {"model": str(path), "data": dataset.name, "samples": len(dataset),
            "pixels": int(dataset.y.size), "loss": scores["loss"],
            "accuracy": scores["accuracy"], "mean_iou": scores["mean_iou"],
            "per_class_iou": dict(zip(names, iou)), "conventions": conv}

"""Transfer learning: start from a saved model or a built model plus a weights file, freeze the first
layers, replace the classification head for a new class count, fine-tune.

Nothing is downloaded: the starting point is always a local ``.keras`` file (loaded with
``safe_mode=True``) or a ``.weights.h5`` file for an architecture that is built here.

``--freeze-until NAME`` freezes every layer up to and including the *last* layer that matches
``NAME``, in the order of the model's layers (nested models flattened):

* an integer (``12``, or ``-3`` counted from the end) is a position in that order;
* an exact Keras layer name (``conv_7``, ``stage3_conv_17``);
* otherwise a prefix (``stage3`` freezes through the last layer of stage 3);
* ``backbone`` freezes everything except the head.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras

from kblocks.common.errors import ConfigError, DataError

from kblocks.lang.conventions import NORMALIZE_NAME, output_units


#: the largest ``run.json`` read beside a transfer file to learn what its head was trained on
SOURCE_RECORD_LIMIT = 16 * 2**20
#: its deepest JSON nesting (a run record has 4 or 5 levels)
SOURCE_RECORD_DEPTH = 64

#: what happened to the head: a new class count, ``reset_head``, or the file's head as it is
HEAD_ACTIONS = ("replaced", "reset", "kept")


@dataclass
class TransferReport:
    source: str = ""
    copied: list = field(default_factory=list)   # layers whose weights came from the file
    skipped: list = field(default_factory=list)  # layers left at their fresh initialisation
    head_replaced: bool = False
    old_classes: int | None = None
    frozen: list = field(default_factory=list)
    head: str = ""                 # one of HEAD_ACTIONS
    head_name: str = ""            # the head's Dense layer
    classes: int | None = None     # the new data's class count
    trained_on: str | None = None  # the data spec of the run that saved the file (its run.json)
    trained_on_record: str | None = None  # that run.json
    trained_on_cwd: str | None = None     # the folder that run's relative paths start from

    def as_dict(self):
        return {"source": self.source, "copied_layers": len(self.copied),
                "fresh_layers": self.skipped, "head_replaced": self.head_replaced,
                "old_classes": self.old_classes, "frozen_layers": self.frozen,
                "head": self.head, "head_trained_on": self.trained_on}

    def trained_on_words(self) -> str:
        """``trained on digits`` or why that is not known."""
        if self.trained_on:
            return f"trained on {self.trained_on}"
        return f"trained on data no run.json beside {Path(self.source).name} records"

    def same_data(self, data) -> bool | None:
        """Whether ``data`` (this run's spec) is the source run's data; None when unknown."""
        if not self.trained_on or not data:
            return None
        return _data_key(self.trained_on, self.trained_on_cwd) == _data_key(data, None)

    def head_lines(self, data) -> list:
        """What the run says about the head before training: ``head: replaced / reset / kept
        (trained on DATA)``, and a hint to reset a kept head trained on other data."""
        name = f"{self.head_name} " if self.head_name else ""
        if self.head == "replaced":
            had = (f"the saved head had {self.old_classes} outputs" if self.old_classes
                   else "the file's head did not fit")
            lines = [f"head: replaced: a fresh {name}for the {self.classes} classes of {data} "
                     f"({had}, {self.trained_on_words()})"]
        elif self.head == "reset":
            lines = [f"head: reset: a fresh {name}for the {self.classes} classes of {data} "
                     f"(--reset-head; the saved one was {self.trained_on_words()})"]
        else:
            lines = [f"head: kept: {name}with its {self.old_classes or self.classes} outputs as "
                     f"{self.trained_on_words()}"]
            same = self.same_data(data)
            if same is False:
                lines.append(f"hint: this run's data is {data}, not {self.trained_on}: if its "
                             f"classes are not the same ones in the same order, the kept head "
                             f"maps features to the old ones; give --reset-head "
                             f"(reset_head=True) for a fresh head")
            elif same is None:
                lines.append("hint: if this data's classes are not the ones the head was "
                             "trained on, give --reset-head (reset_head=True) for a fresh head")
        return lines


def _data_key(spec, cwd):
    """A data spec compared by what it reads: ``npz:a.npz`` and ``npz:/abs/a.npz`` are one."""
    import os

    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    if not sep:
        kind, rest = "", text
    if rest and (os.sep in rest or "." in rest):
        base = cwd or os.getcwd()
        rest = os.path.realpath(os.path.join(base, os.path.expanduser(rest)))
    return kind.lower(), rest


def _source_record(path: Path, report: TransferReport):
    """Fill ``report.trained_on`` from the ``run.json`` beside ``path`` (a run folder's
    ``best.keras``/``last.keras``), when there is a readable one."""
    import json

    from kblocks.common import files

    record_path = path.parent / "run.json"
    if not record_path.is_file():
        return
    try:
        text = files.read_text(record_path, what="run record", limit=SOURCE_RECORD_LIMIT)
        if files.json_depth(text) > SOURCE_RECORD_DEPTH:
            return
        record = json.loads(text)
        data = record["config"]["data"]
    except (files.UserFileError, ValueError, KeyError, TypeError):
        return  # the head's origin is a courtesy: an unreadable record only leaves it unknown
    if isinstance(data, str) and data:
        report.trained_on = data
        report.trained_on_record = str(record_path)
        cwd = record.get("cwd")
        report.trained_on_cwd = cwd if isinstance(cwd, str) else None


def leaf_layers(model) -> list:
    """Layers of ``model`` in order with nested models flattened; input layers left out."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            out.extend(leaf_layers(layer))
        else:
            out.append(layer)
    return out


def unwrap_trained(model):
    """The network inside a model saved by ``kblocks train`` (which wraps it with normalisation and
    augmentation layers); any other model is returned as it is."""
    names = [layer.name for layer in model.layers]
    if NORMALIZE_NAME in names:
        nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        if len(nested) == 1:
            return nested[0]
    return model


def _producer(model, tensor):
    for layer in model.layers:
        try:
            if layer.output is tensor:
                return layer
        except (AttributeError, ValueError):
            continue
    return None


def find_head(model):
    """``(dense, trailing, features)``: the last Dense layer, the weightless layers after it
    (softmax, activation, dropout) and the tensor that feeds the Dense layer."""
    if not isinstance(model, keras.Model) or not hasattr(model, "inputs"):
        raise ConfigError("transfer needs a functional Keras model", what="transfer")
    output = model.outputs[0]
    trailing = []
    layer = _producer(model, output)
    while layer is not None and not isinstance(layer, keras.layers.Dense):
        if layer.weights or isinstance(layer, keras.Model):
            layer = None
            break
        trailing.insert(0, layer)
        layer = _producer(model, layer.input)
    if layer is None:
        raise ConfigError("cannot find the classification head (a final FC/Dense layer, optionally "
                          "followed by SOFTMAX)", what="transfer",
                          hint="end the network with FC(classes) to use head replacement")
    return layer, trailing, layer.input


def replace_head(model, classes: int):
    """A new functional model sharing every layer of ``model`` but the head, which is a fresh
    Dense(``classes``) (same name, activation and precision) followed by the same trailing layers."""
    dense, trailing, features = find_head(model)
    config = dense.get_config()
    config["units"] = int(classes)
    new_dense = keras.layers.Dense.from_config(config)
    x = new_dense(features)
    for layer in trailing:
        x = layer.__class__.from_config(layer.get_config())(x)
    return keras.Model(model.inputs, x, name=model.name)


def copy_weights_by_name(src, dst, report: TransferReport):
    """Copy weights layer by layer where names and shapes agree; record the rest as fresh."""
    by_name = {layer.name: layer for layer in leaf_layers(src)}
    for layer in leaf_layers(dst):
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is not None and [tuple(w.shape) for w in other.weights] == \
                [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(other.get_weights())
            report.copied.append(layer.name)
        else:
            report.skipped.append(layer.name)


def load_weights_counted(network, path, report: TransferReport):
    """``network.load_weights(path, skip_mismatch=True)``, recording in ``report`` the layers whose
    weights really came from the file and leaving the others at their fresh initialisation.

    Keras skips a mismatched or missing layer silently, so every floating-point weight is first set
    to NaN: a weight still NaN afterwards was not in the file (a file holding NaN weights would be
    of no use anyway). A layer counts as copied only if all its floating-point weights loaded.
    """
    import numpy as np

    layers = []
    for layer in leaf_layers(network):
        floats = [v for v in layer.weights if np.issubdtype(np.dtype(v.dtype), np.floating)]
        if floats:
            layers.append((layer, floats, [np.array(v) for v in floats]))
            for v in floats:
                v.assign(np.full(tuple(v.shape), np.nan, dtype=np.dtype(v.dtype)))
    try:
        import warnings

        with warnings.catch_warnings():  # Keras' skip warnings print the NaN placeholders in
            warnings.simplefilter("ignore", UserWarning)  # full; the report names those layers
            network.load_weights(str(path), skip_mismatch=True)
    finally:
        for layer, floats, fresh in layers:
            loaded = [not np.isnan(np.array(v)).any() for v in floats]
            if all(loaded):
                report.copied.append(layer.name)
                continue
            for v, value in zip(floats, fresh):  # partly or not loaded: all fresh again
                v.assign(value)
            report.skipped.append(layer.name)


def resolve_freeze(model, spec) -> int:
    """Index (into :func:`leaf_layers`) of the last layer to freeze, from ``--freeze-until``."""
    layers = leaf_layers(model)
    names = [layer.name for layer in layers]
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not -len(layers) <= index < len(layers):
            raise ConfigError(f"layer index {index} is out of range: the model has {len(layers)} "
                              f"layers (0..{len(layers) - 1})", what="freeze_until")
        return index % len(layers)
    if text == "backbone":
        dense, trailing, _ = find_head(model)
        return names.index(dense.name) - 1
    if text in names:
        return len(names) - 1 - names[::-1].index(text)
    matches = [i for i, n in enumerate(names) if n.startswith(text)]
    if not matches:
        sample = ", ".join(names[:6] + (["..."] if len(names) > 8 else []) + names[-2:])
        raise ConfigError(f"no layer is named or starts with {text!r}", what="freeze_until",
                          hint=f"use an index, a layer name or a prefix; the layers are {sample}")
    return matches[-1]


def freeze_until(model, spec) -> list:
    """Set ``trainable = False`` on every layer up to and including the match; return their names.

    Frozen BatchNormalization layers also stop updating their moving statistics (Keras 3 runs a
    non-trainable BN layer in inference mode).
    """
    if spec is None or str(spec).strip() == "":
        return []
    last = resolve_freeze(model, spec)
    frozen = []
    for i, layer in enumerate(leaf_layers(model)):
        if i <= last:
            layer.trainable = False
            frozen.append(layer.name)
    return frozen


def prepare(path, *, classes: int, input_shape, build=None, reset_head=False,
            unsafe=False) -> tuple:
    """Load the starting point of a transfer run.

    Args:
        path: a ``.keras`` model or a ``.weights.h5`` file.
        classes: the class count of the new data (the head is replaced when it differs).
        input_shape: the image shape of the new data.
        build: ``build(classes)`` builds the architecture given with the transfer file for the
            new data: required for weights files; for a ``.keras`` file it is optional, and
            weights are then copied by layer name where shapes match.
        reset_head: a new head even when the class count matches.
        unsafe: load a ``.keras`` file holding a Lambda layer (its code runs).

    Returns:
        ``(network, TransferReport)``: the network to train and what was copied, skipped and
        replaced.

    Raises:
        DataError: a missing or foreign file, nothing transferred, or another input shape.
        ConfigError: a weights file without an architecture, an unknown file type.
        UnsafeModelError: a Lambda layer without ``unsafe``.
    """
    path = Path(path)
    report = TransferReport(source=str(path), classes=int(classes))
    if not path.exists():
        raise DataError(f"transfer file {path} does not exist", what="transfer")
    name = path.name.lower()
    if name.endswith(".weights.h5") or name.endswith(".h5"):
        network, report = _from_weights(path, report, classes, build, reset_head)
    elif not name.endswith(".keras"):
        raise ConfigError(f"unknown transfer file type {path.name!r}", what="transfer",
                          hint="use a .keras model or a .weights.h5 file")
    else:
        base = _load_base(path, unsafe)
        report.old_classes = output_units(base)
        if build is not None:
            network, report = _rebuilt_from_model(path, base, report, classes, build, reset_head)
        else:
            network, report = _fine_tuned_model(path, base, report, classes, input_shape,
                                                reset_head)
    _source_record(path, report)
    report.head_name = find_head(network)[0].name
    if report.head_name in report.copied:
        report.head = "kept"
    elif reset_head and report.old_classes in (None, classes):
        report.head = "reset"
    else:  # another class count, or a head the file's did not fit
        report.head = "replaced"
    report.head_replaced = report.head != "kept"
    return network, report


def _fresh_head(network, report: TransferReport, classes: int):
    """``network`` with a fresh head (:func:`replace_head`), recorded as fresh in ``report``."""
    network = replace_head(network, classes)
    report.head_replaced = True
    dense = find_head(network)[0]
    if dense.name in report.copied:  # the new head is fresh whatever the file held
        report.copied.remove(dense.name)
    if dense.name not in report.skipped:
        report.skipped.append(dense.name)
    return network


def _from_weights(path: Path, report, classes: int, build, reset_head: bool = False):
    """A ``.weights.h5`` file loaded into the architecture ``build`` makes; a new head if the
    class count differs or ``reset_head``."""
    if build is None:
        raise ConfigError(f"{path.name} holds weights only; give the architecture too",
                          what="transfer",
                          hint="kblocks train ARCHITECTURE --transfer FILE.weights.h5 ...")
    from kblocks.common import saving

    saving.check_weights_file(path, what="transfer file")  # a FIFO would block h5py (issue 20)
    network = build(classes)
    try:
        load_weights_counted(network, path, report)
    except Exception as err:  # noqa: BLE001 - h5py/keras errors for a foreign file
        raise DataError(f"cannot load weights from {path}: {err}", what="transfer",
                        hint="the weights must come from the same architecture") from None
    if not report.copied:
        raise DataError(f"no layer of the architecture matched a weight in {path}: the file "
                        f"loads nothing", what="transfer",
                        hint="the weights must come from the same architecture (layer names and "
                             "shapes); a .keras model of another one is copied by layer name")
    if find_head(network)[0].name in report.copied:  # the file's head loaded: its class count
        report.old_classes = output_units(network)
    if output_units(network) != classes or reset_head:
        network = _fresh_head(network, report, classes)
    return network, report


def _load_base(path: Path, unsafe: bool):
    """The network inside a saved ``.keras`` model (safe mode: a Lambda layer needs unsafe=)."""
    from kblocks.common import saving

    try:
        base = saving.load_model(path, compile=False, unsafe=unsafe)
    except saving.UnsafeModelError:
        raise
    except Exception as err:  # noqa: BLE001
        raise DataError(f"cannot load {path}: {getattr(err, 'message', err)}",
                        what="transfer") from None
    return unwrap_trained(base)


def _rebuilt_from_model(path: Path, base, report, classes: int, build, reset_head: bool):
    """The given architecture, built for the new data, with the saved model's weights copied by
    layer name where the shapes match."""
    network = build(classes)
    if output_units(network) != classes:  # the text fixes the old class count: FC(10)
        network = replace_head(network, classes)
    copy_weights_by_name(base, network, report)
    if not report.copied:
        raise DataError(f"no layer of the architecture matches a layer of {path} by name and "
                        f"weight shapes: nothing would be transferred", what="transfer",
                        hint="give the architecture the model was trained with, or leave the "
                             "architecture out to fine-tune the saved model as it is")
    if report.old_classes != classes or reset_head:  # a head of the same shape was copied too
        network = _fresh_head(network, report, classes)
    return network, report


def _fine_tuned_model(path: Path, base, report, classes: int, input_shape, reset_head: bool):
    """The saved model itself, for data of its input shape; a new head if asked or needed."""
    base_shape = tuple(base.input_shape[1:])
    if len(base_shape) != len(input_shape) or any(
            a is not None and a != b for a, b in zip(base_shape, input_shape)):
        raise DataError(f"{path.name} takes inputs of shape {base_shape} but the data has "
                        f"{tuple(input_shape)}", what="transfer",
                        hint="resize the data (image_size=), or give the architecture as well so "
                             "it is built for the new shape and weights are copied by name")
    report.copied = [layer.name for layer in leaf_layers(base) if layer.weights]
    if report.old_classes != classes or reset_head:
        base = _fresh_head(base, report, classes)
    return base, report

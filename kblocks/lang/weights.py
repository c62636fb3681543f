"""Weights from a Keras weight file into a kblocks model: ``build("resnet50", weights="r.h5")``.

The zoo's twins of ``keras.applications`` networks (ResNet50/101/152, DenseNet121, MobileNet,
VGG16/19: ``tests/test_keras_identity.py``) hold the same weighted layers in the same order, so a
weight file of the Keras model loads into the twin layer for layer:

* a legacy HDF5 file (``.h5``: what ``keras.applications`` downloads, or ``model.save("m.h5")``)
  lists its layers in order: its layers that hold weights are paired, in order, with the model's
  layers that hold weights;
* a Keras 3 weights file (``.weights.h5``, ``model.save_weights``) names each layer's weights by
  its class and a counter (``conv2d_3``): the n-th layer of a class in the file is paired with the
  n-th layer of that class in the model.

Every pair must hold as many weights of the same shapes (a 1x1 convolution kernel fits a dense
kernel of the same values: MobileNet's classifier); the first layer that does not fit is named in
the error and nothing is loaded. The ``kblocks_normalize`` layer (``normalize=``) is not paired.

This module imports no Keras: it reads the file with ``h5py`` (a Keras dependency) and assigns
through the model's variables.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kblocks.common.files import UserFileError, check_file

#: the largest weight file read (VGG19's ImageNet file is 549 MiB)
MAX_WEIGHTS_BYTES = 4 << 30
WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5")
_NORMALIZE_NAME = "kblocks_normalize"  # kblocks.lang.conventions.NORMALIZE_NAME (no Keras here)


class WeightsError(UserFileError):
    """A weight file that does not fit the model (or cannot be read)."""


def _snake(name: str) -> str:
    """A class name as Keras names its weights in a ``.weights.h5`` file (``Conv2D`` -> ``conv2d``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _legacy_layers(group) -> list:
    """``[(layer name, [arrays])]`` of a legacy HDF5 weight group, in its order, weighted only."""
    out = []
    for name in (_text(n) for n in group.attrs["layer_names"]):
        layer = group[name]
        arrays = [np.asarray(layer[_text(w)]) for w in layer.attrs.get("weight_names", [])]
        if arrays:
            out.append((name, arrays))
    return out


def _keras3_layers(group) -> dict:
    """``{class key: [(name, [arrays])] in counter order}`` of a ``.weights.h5`` ``layers`` group."""
    by_class = {}
    for name in group:
        vars_ = group[name].get("vars")
        if vars_ is None or not len(vars_):
            continue
        match = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
        key, index = match.group(1), int(match.group(2) or 0)
        arrays = [np.asarray(vars_[str(i)]) for i in range(len(vars_))]
        by_class.setdefault(key, []).append((index, name, arrays))
    return {k: [(n, a) for _, n, a in sorted(v)] for k, v in by_class.items()}


def _variables(layer) -> list:
    """A layer's variables in the order Keras writes them: trainable, then non-trainable."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _shapes(arrays) -> str:
    return ", ".join("x".join(map(str, a.shape)) or "scalar" for a in arrays)


def _fit(values, variables):
    """The values reshaped to the variables', or None when they do not fit."""
    if len(values) != len(variables):
        return None
    out = []
    for v, var in zip(values, variables):
        shape = tuple(int(d) for d in var.shape)
        if v.shape != shape:
            squeezed = tuple(d for d in v.shape if d != 1)
            if v.size != int(np.prod(shape)) or squeezed != tuple(d for d in shape if d != 1):
                return None
            v = v.reshape(shape)  # a 1x1 convolution kernel for a dense kernel
        out.append(v)
    return out


def check_weight_file(path, *, what: str = "weights=") -> Path:
    """``path`` as a ``Path`` after checking it is a regular file of at most
    :data:`MAX_WEIGHTS_BYTES` named like a Keras weight file (``.weights.h5``, ``.h5``)."""
    if not isinstance(path, (str, Path)):
        raise WeightsError(f"{what} takes the path of a Keras weight file, got "
                           f"{type(path).__name__}")
    path = check_file(path, what=f"{what} file", limit=MAX_WEIGHTS_BYTES)
    if not path.name.lower().endswith(WEIGHT_SUFFIXES):
        raise WeightsError(f"{what} {path}: a Keras weight file ends in .weights.h5 or .h5",
                           hint="save one with model.save_weights('m.weights.h5'), or give the "
                                ".h5 file keras.applications downloads")
    return path


def load_weight_file(model, path, *, what: str = "weights=") -> int:
    """Load the Keras weight file ``path`` into ``model`` layer for layer; the number of layers
    loaded. Raises :class:`WeightsError` naming the first layer that does not fit (nothing is
    loaded then)."""
    path = check_weight_file(path, what=what)
    try:
        import h5py
    except ImportError:  # pragma: no cover - a Keras dependency
        raise WeightsError(f"{what} {path}: reading a weight file needs h5py (pip install h5py)") \
            from None
    mine = [layer for layer in model.layers if _variables(layer) and layer.name != _NORMALIZE_NAME]
    try:
        with h5py.File(path, "r") as f:
            if "layers" in f and "layer_names" not in f.attrs:
                pairs = _pair_by_class(_keras3_layers(f["layers"]), mine, path, what)
            else:
                group = f["model_weights"] if "model_weights" in f else f
                if "layer_names" not in group.attrs:
                    raise WeightsError(f"{what} {path} holds no Keras layer weights",
                                       hint="give a file written by model.save_weights or "
                                            "keras.applications")
                pairs = _pair_in_order(_legacy_layers(group), mine, path, what)
    except (OSError, KeyError) as err:  # not an HDF5 file, or damaged
        raise WeightsError(f"{what} {path} is not a readable HDF5 weight file ({err})") from None
    for layer, values in pairs:
        for var, value in zip(_variables(layer), values):
            var.assign(value)
    return len(pairs)


def _mismatch(path, what, k, name, arrays, layer) -> WeightsError:
    return WeightsError(
        f"{what} {path} does not fit the model: the file's layer {name!r} ({_shapes(arrays)}) "
        f"meets the model's weighted layer {k + 1}, {layer.name!r} ({type(layer).__name__}: "
        f"{_shapes(_variables(layer))})",
        hint="build the network the file was saved from, with the same classes= (and "
             "include_top) as the file")


def _pair_in_order(theirs, mine, path, what) -> list:
    pairs = []
    for k, ((name, arrays), layer) in enumerate(zip(theirs, mine)):
        values = _fit(arrays, _variables(layer))
        if values is None:
            raise _mismatch(path, what, k, name, arrays, layer)
        pairs.append((layer, values))
    if len(theirs) != len(mine):
        more = theirs[len(mine)][0] if len(theirs) > len(mine) else mine[len(theirs)].name
        raise WeightsError(
            f"{what} {path} has {len(theirs)} layers with weights, the model {len(mine)}: "
            f"the first left over is {more!r}",
            hint="a file without the classifier (include_top=False, '_notop') has fewer; build "
                 "the network the file was saved from")
    return pairs


def _pair_by_class(theirs: dict, mine, path, what) -> list:
    counters, pairs = {}, []
    for layer in mine:
        key = _snake(type(layer).__name__)
        n = counters.get(key, 0)
        counters[key] = n + 1
        listed = theirs.get(key, [])
        if n >= len(listed):
            raise WeightsError(f"{what} {path} does not fit the model: it has {len(listed)} "
                               f"{key} layers with weights, and {layer.name!r} is the "
                               f"{n + 1}th of the model", hint="build the network the file was "
                                                               "saved from")
        name, arrays = listed[n]
        values = _fit(arrays, _variables(layer))
        if values is None:
            raise _mismatch(path, what, len(pairs), name, arrays, layer)
        pairs.append((layer, values))
    extra = {k: len(v) - counters.get(k, 0) for k, v in theirs.items() if len(v) > counters.get(k, 0)}
    if extra:
        listed = ", ".join(f"{n} {k}" for k, n in sorted(extra.items()))
        raise WeightsError(f"{what} {path} has weighted layers the model has not: {listed}",
                           hint="build the network the file was saved from")
    return pairs

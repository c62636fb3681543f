"""The per-layer summary of any built Keras model (functional, Sequential, loaded from a ``.keras``
file, a ``keras.applications`` model): output shape, parameters, activation elements, multiply-adds
and receptive field of each layer call, read from the Keras layers themselves.

The figures follow the conventions of :mod:`kblocks.lang.analysis` and are computed by the same
code: each Keras layer class this module knows is mapped to the record of its kind
(:mod:`kblocks.lang.kinds`: ``Conv2D`` to ``CONV``, ``DepthwiseConv2D`` to ``DWCONV``, ...) with its
arguments read from ``layer.get_config()``, and the record's ``macs`` and ``window`` give the
multiply-adds and the receptive-field step; :func:`kblocks.lang.analysis.field_after` and
:func:`~kblocks.lang.analysis.added_elements` do the rest. So a ``keras.applications`` model and
its kblocks zoo twin have the same totals (tests/test_model_summary.py).

* **Parameters** are Keras' own (each layer's trainable and non-trainable weights, a shared layer
  counted once), so the total is ``model.count_params()``.
* **Layers of unknown cost** (a class not in :data:`KNOWN_CLASSES`, a custom layer, a bare
  ``keras.ops`` call): their parameters are counted, their multiply-adds are 0, their output adds
  its elements, the receptive field passes through them unchanged, and a footnote under the table
  names them.
* **A nested model** (a model used as a layer, as in transfer learning) is one row: its parameters,
  its multiply-adds and activation elements summed over its own layers (its input not counted
  twice), and as receptive-field step the field and jump of its own output. The footnote of its
  own unknown layers is carried up.
* **Receptive field** of a layer with several inputs is the largest over its inputs (over all
  paths of the graph); after a global pooling or a flatten the whole input is seen (``-``).

The text columns ("layer (as written)", "at") are empty: a plain Keras model has no kblocks text.
``kblocks.summary(model)`` uses the kblocks summary instead for a model kblocks built (in this
process, or loaded from a file kblocks wrote, which keeps its architecture text).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kblocks.common.errors import KBlocksError
from kblocks.lang import kinds
from kblocks.lang.analysis import Analysis, LayerStats, added_elements, field_after
from kblocks.lang.shapes import dims
from kblocks.lang.table import Row, Summary, count_cell, axes_cell, figure_lines, render

UNKNOWN_LISTED = 5  #: layers of unknown cost named in the footnote (the rest are counted)


class ModelSummaryError(KBlocksError):
    """A Keras model that cannot be summarised: not built, or with input sizes left open."""


def _conv(c, rank):
    return kinds.CONV, {"kernel": tuple(c["kernel_size"]), "stride": tuple(c["strides"]),
                        "dilation": tuple(c["dilation_rate"]), "filters": c["filters"],
                        "groups": c.get("groups", 1), "use_bias": c["use_bias"]}


def _dwconv(c, rank):
    return kinds.DWCONV, {"kernel": tuple(c["kernel_size"]), "stride": tuple(c["strides"]),
                          "dilation": tuple(c["dilation_rate"]),
                          "multiplier": c["depth_multiplier"], "use_bias": c["use_bias"]}


def _sepconv(c, rank):
    if c.get("depth_multiplier", 1) != 1:  # the SEPCONV record has one filter per channel
        return None
    return kinds.SEPCONV, {"kernel": tuple(c["kernel_size"]), "stride": tuple(c["strides"]),
                           "dilation": tuple(c["dilation_rate"]), "filters": c["filters"],
                           "use_bias": c["use_bias"]}


def _convt(c, rank):
    if any(d != 1 for d in tuple(c.get("dilation_rate", (1,)))):
        return None
    return kinds.CONVT, {"kernel": tuple(c["kernel_size"]), "stride": tuple(c["strides"]),
                         "filters": c["filters"], "use_bias": c["use_bias"]}


def _pool(c, rank):
    size = tuple(c["pool_size"])
    stride = tuple(c["strides"]) if c.get("strides") is not None else size
    return kinds.POOL, {"size": size, "stride": stride}


def _dense(c, rank):
    return kinds.DENSE, {"units": c["units"], "use_bias": c["use_bias"]}


def _upsample(c, rank):
    return kinds.UPSAMPLE, {"size": tuple(c["size"])}


def _fixed(kind):
    return lambda c, rank: (kind, {})


#: Keras layer classes (matched by name along the class's bases) and how each maps to a kind of
#: :mod:`kblocks.lang.kinds`; any other class is a layer of unknown cost.
KNOWN_CLASSES = {
    **{f"Conv{r}D": _conv for r in (1, 2, 3)},
    "DepthwiseConv2D": _dwconv, "SeparableConv2D": _sepconv, "Conv2DTranspose": _convt,
    **{f"{k}Pooling{r}D": _pool for k in ("Max", "Average") for r in (1, 2, 3)},
    **{f"Global{k}Pooling{r}D": _fixed(kinds.GPOOL) for k in ("Max", "Average") for r in (1, 2, 3)},
    "Dense": _dense, "Flatten": _fixed(kinds.FLATTEN), "Reshape": _fixed(kinds.RESHAPE),
    **{f"ZeroPadding{r}D": _fixed(kinds.ZEROPAD) for r in (1, 2, 3)},
    "UpSampling2D": _upsample,
    **{name: _fixed(kinds.DROPOUT) for name in ("Dropout", "SpatialDropout1D", "SpatialDropout2D",
                                                "SpatialDropout3D", "GaussianDropout",
                                                "GaussianNoise", "AlphaDropout", "Identity",
                                                "ActivityRegularization")},
    "BatchNormalization": _fixed(kinds.BN), "LayerNormalization": _fixed(kinds.LN),
    "GroupNormalization": _fixed(kinds.GN),
    **{name: _fixed(kinds.ACT) for name in ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
                                            "Rescaling", "Normalization")},
    "PReLU": _fixed(kinds.PRELU),
    **{name: _fixed(kinds.MERGE) for name in ("Add", "Subtract", "Multiply", "Average", "Maximum",
                                              "Minimum", "Concatenate")},
}


def _mapping(layer):
    for cls in type(layer).__mro__:
        if cls.__name__ in KNOWN_CLASSES and cls.__module__.startswith("keras"):
            return KNOWN_CLASSES[cls.__name__]
    return None


def _weights(layer) -> tuple:
    """(trainable, non-trainable) weights of a layer, as ``count_params`` counts them."""
    def size(ws):
        return sum(math.prod(int(d) for d in w.shape) for w in ws)

    return size(getattr(layer, "trainable_weights", ())), size(getattr(layer, "non_trainable_weights", ()))


def _flat(structure) -> list:
    if isinstance(structure, dict):
        return [t for v in structure.values() for t in _flat(v)]
    if isinstance(structure, (list, tuple)):
        return [t for v in structure for t in _flat(v)]
    return [structure] if structure is not None else []


def _shape(tensor, model) -> tuple:
    shape = tuple(tensor.shape)[1:]
    if any(d is None for d in shape):
        raise ModelSummaryError(
            f"model {model.name!r}: a tensor of shape {tuple(tensor.shape)} has sizes left open "
            f"(None); the figures need every size",
            hint="build the model on a fixed input, e.g. keras.Input(shape=(224, 224, 3))")
    return tuple(int(d) for d in shape)


def _calls(model):
    """The layer calls of ``model`` in the order they run: ``(layer, input tensors, output
    tensors)``, read back from the output tensors' Keras history (so shared layers and nested
    models called on a new input are found), and the model's input tensors."""
    try:
        inputs, outputs = _flat(model.inputs), _flat(model.outputs)
    except (AttributeError, ValueError):
        inputs = outputs = []
    if not outputs:
        raise ModelSummaryError(f"model {model.name!r} has no layer graph: it is not built, or "
                                f"it is a subclassed model",
                                hint="start it with keras.Input(shape=...) (a Sequential or "
                                     "functional model)")
    input_ids = {id(t) for t in inputs}
    order, seen, stack = [], set(), [(t, False) for t in reversed(outputs)]
    while stack:  # depth first, a call after the calls that make its inputs
        tensor, done = stack.pop()
        if id(tensor) in input_ids:
            continue
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            raise ModelSummaryError(f"model {model.name!r}: a tensor has no Keras history",
                                    hint="summarise a functional or Sequential model")
        node = history[0]._inbound_nodes[history[1]]
        if id(node) in seen:
            continue
        if done:
            seen.add(id(node))
            order.append((history[0], _flat(node.input_tensors), _flat(node.output_tensors)))
            continue
        stack.append((tensor, True))
        stack.extend((t, False) for t in reversed(_flat(node.input_tensors)))
    return inputs, order


@dataclass(frozen=True)
class Call:
    """One layer call of a Keras model, in the form :func:`kblocks.lang.plot.plot_graph` draws
    (the fields of a :class:`kblocks.lang.graph.Node` it reads): ``inputs`` are call indices, -1
    for a model input; ``kind`` is its record in :mod:`kblocks.lang.kinds` (``SKIP``'s, which is
    drawn plain, for a layer of unknown cost or a nested model)."""

    index: int
    dsl: str
    inputs: tuple
    shape: tuple
    kind: kinds.LayerKind
    branch_head: bool

    @property
    def spec(self):
        return self  # plot_graph reads node.spec.kind


@dataclass(frozen=True)
class Calls:
    """The layer calls of a Keras model as a graph :func:`kblocks.lang.plot.plot_graph` draws."""

    input_shape: tuple
    nodes: tuple
    source: str


class ModelSummary(Summary):
    """The summary of a Keras model kblocks did not build: the same table and fields as
    :class:`~kblocks.lang.table.Summary` (``str()``, ``params``, ``macs``, ``to_dict()``...), plus
    ``unknown`` (the names of the layers of unknown cost)."""

    def __init__(self, analysis: Analysis, model, rows: list, unknown: list, fields: list,
                 calls: Calls):
        super().__init__(analysis, model=model)
        self._rows = rows
        self.calls = calls  # for kblocks.lang.plot.plot_graph
        self.unknown = unknown
        self.fields = fields  # (receptive field, jump) of each output

    @property
    def output_convention(self) -> str:
        from kblocks.lang.conventions import describe_output, main_output

        shape = tuple(getattr(main_output(self.model), "shape", ()))
        classes = shape[-1] if len(shape) == 2 else None
        return describe_output(self.outputs_probabilities, classes)

    def rows(self) -> list:
        return list(self._rows)

    def _shapes(self):
        return self.calls.input_shape, self.calls.nodes

    def layer(self, index):
        """``(Call, LayerStats)`` of layer call ``index``."""
        return self.calls.nodes[index], self.analysis.layers[index]

    def totals(self) -> list:
        lines = figure_lines(self.analysis)
        if self.unknown:
            named = ", ".join(self.unknown[:UNKNOWN_LISTED])
            more = f" and {len(self.unknown) - UNKNOWN_LISTED} more" \
                if len(self.unknown) > UNKNOWN_LISTED else ""
            layers = "layer" if len(self.unknown) == 1 else "layers"
            lines.append(f"{len(self.unknown)} {layers} of unknown cost: {named}{more} (parameters "
                         f"counted, multiply-adds taken as 0)")
        if len(_flat(self.model.outputs)) > 1:
            lines.append(f"Outputs: {len(_flat(self.model.outputs))}")
        lines.append(f"input: {self.input_convention}")
        lines.append(f"outputs: {self.output_convention}")
        return lines

    def __str__(self) -> str:
        return render([self.HEAD] + self.rows(), self.totals(), drop=("dsl", "at"))

    def to_dict(self) -> dict:
        return {**super().to_dict(), "unknown": list(self.unknown)}


def model_summary(model) -> ModelSummary:
    """The per-layer summary of a built Keras model (see the module docstring for the conventions).

    Args:
        model: a ``keras.Model`` (functional or Sequential) that is built on fixed input sizes.

    Returns:
        A :class:`ModelSummary`: ``str()`` is the table, its fields the totals.

    Raises:
        ModelSummaryError: the model is not built, or a size is left open (None).
    """
    inputs, calls = _calls(model)
    users: dict = {}
    for _, ins, _ in calls:
        for t in ins:
            users[id(t)] = users.get(id(t), 0) + 1
    where, field, rows, stats, unknown, counted, nodes = {}, {}, [], [], [], set(), []
    input_elements = 0
    for k, t in enumerate(inputs):
        shape = _shape(t, model)
        input_elements += math.prod(shape)
        where[id(t)] = "in" if len(inputs) == 1 else f"in{k}"
        rank = len(shape) - 1
        field[id(t)] = ((1,) * rank, (1,) * rank) if rank else (None, None)
        one = "1" if rank else "-"
        name = getattr(getattr(t, "_keras_history", None), "operation", None)
        rows.append(Row("", "INPUT", "", f"{getattr(name, 'name', t.name)}: InputLayer", dims(shape), "0",
                        count_cell(math.prod(shape)), "0", one, one))
    previous = "in"
    for index, (layer, ins, outs) in enumerate(calls):
        in_shape, out_shape = _shape(ins[0], model), _shape(outs[0], model)
        trainable, frozen = _weights(layer) if id(layer) not in counted else (0, 0)
        counted.add(id(layer))
        fields_in = [field[id(t)] for t in ins]
        head = users.get(id(ins[0]), 0) > 1
        kind, macs, activations, rf = _figures(layer, in_shape, out_shape, fields_in, head, unknown)
        srcs = [where.get(id(t), "?") for t in ins]
        nodes.append(Call(index, f"{layer.name}: {type(layer).__name__}",
                          tuple(int(w) if w.isdigit() else -1 for w in srcs), out_shape, kind,
                          head))
        for t in outs:
            where[id(t)] = str(index)
            field[id(t)] = rf
        stats.append(LayerStats(trainable, frozen, activations, macs, rf[0], rf[1]))
        cls = type(layer).__name__
        if len(ins) > 1 or srcs[0] != previous:
            cls += f" <- {','.join(srcs)}"
        previous = str(index)
        rows.append(Row(str(index), "", "", f"{layer.name}: {cls}", dims(out_shape),
                        count_cell(trainable + frozen), count_cell(activations), count_cell(macs),
                        axes_cell(rf[0]), axes_cell(rf[1])))
    analysis = Analysis(None, tuple(stats), input_elements)
    ends = [field[id(t)] if id(t) in field else (None, None) for t in _flat(model.outputs)]
    calls = Calls(_shape(inputs[0], model) if inputs else (), tuple(nodes), model.name)
    return ModelSummary(analysis, model, rows, unknown, ends, calls)


def _figures(layer, in_shape, out_shape, fields_in, head: bool, unknown: list):
    """One layer call's record kind, multiply-adds, added activation elements and receptive
    field (:func:`model_summary`); a layer of unknown cost is appended to ``unknown``."""
    mapped = _mapping(layer)
    kind_p = mapped(layer.get_config(), len(in_shape) - 1) if mapped is not None else None
    if hasattr(layer, "layers") and hasattr(layer, "inputs"):  # a nested model: one row
        inner = model_summary(layer)
        unknown.extend(f"{layer.name}/{n}" for n in inner.unknown)
        r, j = inner.fields[0]
        win = kinds.Window(r, j) if r is not None else None
        rf = field_after(fields_in, win, len(out_shape) == 1) if r is not None else (None, None)
        return kinds.SKIP, inner.macs, inner.activation_elements - inner.analysis.input_elements, rf
    if kind_p is None:
        unknown.append(f"{layer.name} ({type(layer).__name__})")
        return kinds.SKIP, 0, math.prod(out_shape), field_after(fields_in, None, len(out_shape) == 1)
    kind, p = kind_p
    macs = kind.macs(p, in_shape, out_shape)
    if kind is kinds.DENSE:  # Keras' Dense acts on the last axis at every position
        macs *= math.prod(out_shape[:-1])
    flat = len(out_shape) == 1 or kind is kinds.GPOOL  # GAP(keepdims=True) sees it all
    rank = len(fields_in[0][0]) if fields_in[0][0] is not None else 0
    rf = field_after(fields_in, kind.window(p, rank) if rank else None, flat)
    return kind, macs, added_elements(kind, out_shape, head), rf


MODEL_SUFFIXES = (".keras",)  #: model files ``kblocks summary`` and ``kblocks plot`` read
LEGACY_SUFFIXES = (".h5", ".hdf5")  #: Keras 2 HDF5 model files, refused with the fix


def names_model_file(value) -> bool:
    """Whether an ARCHITECTURE argument names a model file (by its ending: architecture text never
    ends in ``.keras`` or ``.h5``), existing or not."""
    text = str(value).strip()
    return "\n" not in text and text.lower().endswith(MODEL_SUFFIXES + LEGACY_SUFFIXES)


def load_model_file(path, *, unsafe: bool = False, text_options=()):
    """The model in a ``.keras`` file, loaded with :func:`kblocks.common.saving.load_model` (safe
    mode unless ``unsafe``); an HDF5 file is refused with the way to convert it.

    Args:
        path: the file.
        unsafe: load a file holding a ``Lambda`` layer (its code runs).
        text_options: the values of the CLI's architecture-text options (``--input-shape``,
            ``--classes``, ``--blocks``, ``--set``): any of them given is refused, since a model
            file holds its shapes.

    Raises:
        ModelSummaryError: an ``.h5`` file, or a text option given.
        ModelFileError: a missing, unsafe or unreadable file.
    """
    from kblocks.common.saving import load_model

    if any(text_options):
        raise ModelSummaryError(f"{path} is a model file: --input-shape, --classes, --blocks and "
                                f"--set apply to architecture text",
                                hint="leave them out; the file holds its shapes")

    if str(path).strip().lower().endswith(LEGACY_SUFFIXES):
        raise ModelSummaryError(
            f"{path}: HDF5 model files (Keras 2's .h5) are not supported",
            hint=f"convert it once in Python: keras.models.load_model({str(path)!r})"
                 f".save('model.keras'), then pass the .keras file")
    return load_model(str(path).strip(), unsafe=unsafe)

"""The per-layer summary table (what kblocks.summary returns): DSL text and position, Keras layer, output shape, parameters,
activation elements, multiply-adds, receptive field and jump, then the totals."""
from __future__ import annotations

from dataclasses import dataclass

from kblocks.common.numbers import si as _si
from kblocks.lang.analysis import Analysis, main_totals
from kblocks.lang.graph import INPUT
from kblocks.lang.shapes import dims


def count_cell(n) -> str:
    """A count as a table cell: ``1,234``, or ``0``."""
    return f"{n:,}" if n else "0"


def _axes_values(values):
    """Per-axis values as numbers: one number when every axis agrees, else a list; None for none."""
    if values is None:
        return None
    vals = [int(v) if float(v).is_integer() else round(float(v), 3) for v in values]
    return vals[0] if len(set(vals)) == 1 else vals


def axes_cell(values) -> str:
    """A per-axis figure as a cell: ``7`` when the axes agree, ``7x3`` when not, ``-`` for None."""
    vals = _axes_values(values)
    if vals is None:
        return "-"
    return "x".join(str(v) for v in vals) if isinstance(vals, list) else str(vals)


@dataclass(frozen=True)
class Row:
    index: str
    dsl: str
    at: str
    keras: str
    shape: str
    params: str
    activations: str
    macs: str
    rf: str
    jump: str


def figure_lines(a: Analysis) -> list:
    """The first lines under the table: parameters, activation memory, multiply-adds."""
    mib = a.activation_bytes / 2**20
    return [
        f"Total params: {a.params:,} (trainable {a.trainable:,}, non-trainable {a.non_trainable:,})",
        f"Activation memory per image: {a.activation_elements:,} elements = {a.activation_bytes:,} "
        f"bytes float32 ({mib:.1f} MiB); input and each layer output counted once, activations "
        f"in place",
        f"Multiply-adds per image: {a.macs:,} ({_si(a.macs)}MACs)",
    ] + binary_lines(a)


def _ratio(small: int, big: int) -> str:
    return f"{big / small:.1f}x smaller" if small else "no weights"


def binary_lines(a: Analysis) -> list:
    """The weight memory of a network with binary layers (none without): every weight, and the
    binary layers alone, against the same weights at float32, e.g. ``Weight memory: 23,640,088
    bytes (22.5 MiB) with binary weights at 1 bit; 249,270,296 bytes (237.7 MiB) as float32:
    10.5x smaller``."""
    if not a.binary_weights:
        return []
    layers = [s for s in a.layers if s.binary]
    small = sum(s.weight_bytes for s in layers)
    big = 4 * sum(s.params for s in layers)
    mib = 2**20
    return [
        f"Weight memory: {a.weight_bytes:,} bytes ({a.weight_bytes / mib:.1f} MiB) with binary "
        f"weights at 1 bit; {a.float32_weight_bytes:,} bytes ({a.float32_weight_bytes / mib:.1f} "
        f"MiB) as float32: {_ratio(a.weight_bytes, a.float32_weight_bytes)}",
        f"Binary layers: {len(layers)}, {a.binary_weights:,} weights at 1 bit, "
        f"{sum(s.scales for s in layers):,} float32 scales and their biases: {small:,} bytes; "
        f"{big:,} bytes as float32: {_ratio(small, big)}",
    ]


def aux_line(a: Analysis) -> str:
    """The totals of the inference network (main output) beside those with the AUX heads:
    ``Inference (main output): 6,998,552 params (13,378,280 with AUX heads), ...``."""
    m = main_totals(a)
    return (f"Inference (main output): {m.params:,} params ({a.params:,} with AUX heads), "
            f"{m.macs:,} MACs ({a.macs:,} with AUX heads); the AUX heads are for training only")


def render(rows: list, totals: list, drop=()) -> str:
    """The table of ``rows`` (the :class:`Row` head first), aligned, then the ``totals`` lines;
    the columns named in ``drop`` (fields of :class:`Row`) are left out."""
    fields = [f for f in Row.__dataclass_fields__ if f not in drop]
    widths = {f: max(len(getattr(r, f)) for r in rows) for f in fields}
    if "dsl" in widths:
        widths["dsl"] = min(widths["dsl"], 48)
    right = {"params", "activations", "macs", "rf", "jump"}

    def fmt(r):
        cells = []
        for f in fields:
            v = getattr(r, f)
            if f == "dsl" and len(v) > widths[f]:
                v = v[:widths[f] - 1] + "…"
            cells.append(v.rjust(widths[f]) if f in right else v.ljust(widths[f]))
        return "  ".join(cells).rstrip()

    lines = [fmt(rows[0]), "-" * len(fmt(rows[0]))] + [fmt(r) for r in rows[1:]]
    return "\n".join(lines + [""] + totals)


class Summary:
    """What ``kblocks.summary`` returns: ``str()`` is the table; fields hold the numbers."""

    HEAD = Row("#", "layer (as written)", "at", "Keras layer", "output", "params", "activations",
               "MACs", "RF", "jump")

    def __init__(self, analysis: Analysis, model=None):
        self.analysis = analysis
        self.graph = analysis.graph
        self.model = model  # the Keras model built from the graph, when there is one

    # conventions -------------------------------------------------------------------------------
    def _graph_ends_in_softmax(self) -> bool:
        node = self.graph.nodes[self.graph.outputs[0]] if self.graph.nodes else None
        if node is None:
            return False
        if node.spec.keras_class in ("Softmax",):
            return True
        fixed = dict(node.spec.fixed)
        fixed.update(dict(node.extra))
        return str(fixed.get("activation", "")) == "softmax"

    @property
    def outputs_probabilities(self) -> bool:
        """True when the model emits probabilities (ends in a softmax), False for logits."""
        if self.model is not None:
            from kblocks.lang.conventions import output_is_probability

            return output_is_probability(self.model)
        return self._graph_ends_in_softmax()

    @property
    def input_convention(self) -> str:
        from kblocks.lang.conventions import describe_input

        if self.model is not None:
            return describe_input(self.model)
        return describe_input(None)

    @property
    def output_convention(self) -> str:
        from kblocks.lang.conventions import describe_output

        shape = self.graph.nodes[self.graph.outputs[0]].shape if self.graph.nodes else ()
        classes = shape[-1] if shape else None
        return describe_output(self.outputs_probabilities, classes)

    # numbers -----------------------------------------------------------------------------------
    @property
    def params(self):
        return self.analysis.params

    @property
    def trainable_params(self):
        return self.analysis.trainable

    @property
    def non_trainable_params(self):
        return self.analysis.non_trainable

    @property
    def activation_elements(self):
        return self.analysis.activation_elements

    @property
    def activation_bytes(self):
        return self.analysis.activation_bytes

    @property
    def macs(self):
        return self.analysis.macs

    def layer(self, index):
        return self.graph.nodes[index], self.analysis.layers[index]

    def rows(self) -> list:
        g = self.graph
        out = [Row("", "INPUT", "", "input: InputLayer", dims(g.input_shape), "0",
                   count_cell(self.analysis.input_elements), "0",
                   "1" if len(g.input_shape) > 1 else "-",
                   "1" if len(g.input_shape) > 1 else "-")]
        for node, st in zip(g.nodes, self.analysis.layers):
            dsl = node.text or node.dsl
            if node.note:
                dsl = f"({node.dsl}: {node.note})" if not node.text else f"{dsl} [{node.note}]"
            elif not node.text:
                dsl = f"({node.dsl})"
            at = f"{node.span.line}:{node.span.column}" if node.span.line else ""
            cls = node.spec.keras_class or node.token
            if node.spec.kind.merge or len(node.inputs) > 1 or node.inputs[0] != node.index - 1:
                froms = node.froms or ("",) * len(node.inputs)
                srcs = ",".join(("in" if i == INPUT else str(i)) + (f" (from {f})" if f else "")
                                for i, f in zip(node.inputs, froms))
                cls += f" <- {srcs}"
            out.append(Row(str(node.index), dsl, at, f"{node.name}: {cls}", dims(node.shape),
                           count_cell(st.params), count_cell(st.activations),
                           count_cell(st.macs), axes_cell(st.rf), axes_cell(st.jump)))
        return out

    def totals(self) -> list:
        lines = figure_lines(self.analysis)
        if len(self.graph.outputs) > 1:
            names = ", ".join(["output"] + [f"aux{k}" for k in range(1, len(self.graph.outputs))])
            lines.append(f"Outputs: {names}")
            lines.append(aux_line(self.analysis))
        lines.append(f"input: {self.input_convention}")
        lines.append(f"outputs: {self.output_convention}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines

    @property
    def warnings(self) -> tuple:
        """What :mod:`kblocks.lang.lint` found suspicious in the text (printed last as
        ``warning: ...`` lines)."""
        return getattr(self.graph, "warnings", ()) if self.graph is not None else ()

    def __str__(self) -> str:
        return render([self.HEAD] + self.rows(), self.totals())

    def __repr__(self):
        return f"<Summary {self.params:,} params, {self.macs:,} MACs>"

    def layer_records(self) -> list:
        """The rows as :meth:`to_dict` gives them: the table's text cells (``dsl``, ``at``,
        ``keras``) as text and every figure a number: ``index`` (None for the input), ``shape`` (a
        list of sizes), ``params``, ``activations``, ``macs`` (ints), ``rf`` and ``jump`` (one
        number, a list of per-axis numbers when they differ, or None where there is none)."""
        input_shape, nodes = self._shapes()
        spatial = len(input_shape) > 1
        out = [{"index": None, "dsl": "INPUT", "at": "", "keras": "input: InputLayer",
                "shape": [int(d) for d in input_shape], "params": 0,
                "activations": int(self.analysis.input_elements), "macs": 0,
                "rf": 1 if spatial else None, "jump": 1 if spatial else None}]
        for row, node, st in zip(self.rows()[1:], nodes, self.analysis.layers):
            out.append({"index": int(node.index), "dsl": row.dsl, "at": row.at,
                        "keras": row.keras, "shape": [int(d) for d in node.shape],
                        "params": int(st.params), "activations": int(st.activations),
                        "macs": int(st.macs), "rf": _axes_values(st.rf),
                        "jump": _axes_values(st.jump)})
        return out

    def _shapes(self):
        """The input shape and the per-layer nodes (``index``, ``shape``) the records read."""
        return self.graph.input_shape, self.graph.nodes

    def to_dict(self) -> dict:
        """The totals and :meth:`layer_records`, numbers as numbers (``kblocks summary --json``)."""
        return {"params": self.params, "trainable": self.trainable_params,
                "non_trainable": self.non_trainable_params,
                "activation_elements": self.activation_elements, "macs": self.macs,
                "weight_bytes": self.analysis.weight_bytes,
                "float32_weight_bytes": self.analysis.float32_weight_bytes,
                "input": self.input_convention, "outputs": self.output_convention,
                "layers": self.layer_records(), "warnings": [str(w) for w in self.warnings]}

"""Expanded program to a flat layer graph: one node per Keras layer, each with its inputs and output
shape, in the order Keras will build them.

This is where the language's implicit layers appear, visibly: a FLATTEN before an FC that follows a
feature map, a ZEROPAD for explicit integer padding, the 1x1 projection that makes a mismatched SKIP
fit an add or multiply merge, a RESHAPE that lets a vector gate a feature map. Every inserted node has
a ``note`` saying why, and the summary prints it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from kblocks.lang import limits
from kblocks.lang import shapes as sh
from kblocks.common.errors import ArchitectureError, LimitError, Span
from kblocks.lang.kinds import Site
from kblocks.lang.ir import As, Aux, From, Merge, Op, Program, format_op, format_text
from kblocks.lang.vocab import MERGE_TOKEN, VOCAB

INPUT = -1  # index standing for the model input


@dataclass(frozen=True)
class Node:
    """One layer of the graph: what Keras will make of it and where it came from.

    Args:
        index: position in :attr:`Graph.nodes` (inputs always come earlier).
        token: canonical vocabulary token (``"CONV"``); :attr:`spec` is its entry.
        params: ``((name, value), ...)``: every DSL argument, resolved, in the token's order.
        extra: ``((keyword, value), ...)``: Keras keywords passed through unchanged.
        inputs: indices of the nodes it reads (:data:`INPUT` for the model input); a merge has
            one per branch.
        shape: its output shape without the batch axis.
        name: its Keras layer name, by rule: ``conv_3``, or ``basic2_bn_7`` inside a named block.
        span: where it was written (empty for inserted nodes).
        text: the text it was written as (empty for inserted nodes).
        note: why an inserted node is there (``"inserted before FC"``).
        scope: the outermost named-block instance it comes from (``"basic2"``).
        branch_head: it is the first layer of a branch, reading a tensor another branch also reads.
        froms: per input, the tensor name a ``FROM(name)`` read it by (``""`` for the others).
    """

    index: int
    token: str
    params: tuple
    extra: tuple
    inputs: tuple
    shape: tuple
    name: str
    span: Span = field(default_factory=Span)
    text: str = ""
    note: str = ""
    scope: str = ""
    branch_head: bool = False  # first layer of a branch: reads a tensor another branch also reads
    froms: tuple = ()  # per input: the name a FROM read it by, or ""

    def get(self, name, default=None):
        for k, v in self.params:
            if k == name:
                return v
        return default

    @property
    def spec(self):
        """Its :class:`~kblocks.lang.vocab.LayerSpec`; ``spec.kind`` says what the layer means."""
        return VOCAB[self.token]

    @property
    def dsl(self) -> str:
        """The canonical text of this one layer."""
        return format_op(Op(self.token, self.params, self.extra))


@dataclass(frozen=True)
class Graph:
    """A network as a flat list of layers in the order Keras builds them.

    Args:
        input_shape: the model input without the batch axis.
        nodes: the :class:`Node` s, each after the nodes it reads.
        outputs: node indices of the model outputs, the main output first, then each ``AUX[...]``
            head (:data:`INPUT` for a network that is the identity).
        program: the expanded program it was built from (:mod:`kblocks.lang.ir`).
        source: the file or zoo name it came from (empty for text).
        text: the architecture text, for error context.
        warnings: what :mod:`kblocks.lang.lint` found suspicious (set by ``kblocks.compile``).
    """

    input_shape: tuple
    nodes: tuple
    outputs: tuple  # node indices (INPUT for an identity network), main output first
    program: Program
    source: str = ""  # the text or file it came from
    text: str = ""  # the architecture text (for error context)
    #: :class:`kblocks.lang.lint.TextWarning` s: what compiles but is probably not what was meant
    warnings: tuple = field(default=(), compare=False)

    def canonical_text(self) -> str:
        """The canonical architecture text (see ``kblocks.format_text``).

        Returns:
            The text with repetitions, variables and blocks written out, ``INPUT(...)`` first;
            parsing it gives this graph again.
        """
        return format_text(Program(self.program.nodes, self.input_shape))

    def shape_of(self, index):
        """The shape a node produces.

        Args:
            index: a node index, or :data:`INPUT` for the model input.

        Returns:
            The output shape of node ``index`` without the batch axis, or the input shape.
        """
        return self.input_shape if index == INPUT else self.nodes[index].shape

    def consumers(self):
        """Who reads each tensor.

        Returns:
            ``{index: [indices of the nodes that read it]}`` for every node, :data:`INPUT` included.
        """
        users = {INPUT: []}
        for n in self.nodes:
            users[n.index] = []
        for n in self.nodes:
            for i in n.inputs:
                users[i].append(n.index)
        return users


class _Builder:
    def __init__(self, input_shape, text, source):
        self.input_shape = tuple(input_shape)
        self.nodes: list = []
        self.outputs: list = []
        self.text = text
        self.source = source
        self.counts: dict = {}
        self.params = 0  # parameters so far (limits.MAX_PARAMS)
        self.names: dict = {}  # tensor name -> node index (INPUT for the input), from AS
        self.jumped: dict = {}  # node index -> the first FROM that continued from elsewhere

    def fail(self, msg, span, what, hint=None, cls=ArchitectureError):
        text = self.text if (span and span.source == self.source) else None
        return cls(msg, span=span, text=text, what=what, hint=hint)

    def shape(self, index):
        return self.input_shape if index == INPUT else self.nodes[index].shape

    def add(self, token, params, extra, inputs, shape, *, span=None, text="", note="", scope="",
            head=False, froms=()):
        if len(self.nodes) >= limits.MAX_LAYERS:
            raise self.fail(f"the graph has more than {limits.MAX_LAYERS:,} layers", span, token,
                            cls=LimitError)
        elements = math.prod(shape)
        if elements > limits.MAX_ACTIVATION_ELEMENTS:
            raise self.fail(f"its output {sh.dims(shape)} has {elements:,} elements per image, over "
                            f"the limit of {limits.MAX_ACTIVATION_ELEMENTS:,}", span, token,
                            cls=LimitError, hint="use a smaller input or fewer filters")
        index = len(self.nodes)
        base = f"{token.lower()}_{index}"
        name = f"{scope}_{base}" if scope else base
        node = Node(index, token, tuple(params), tuple(extra), tuple(inputs), tuple(shape),
                    name, span or Span(), text, note, scope, head,
                    tuple(froms) if any(froms) else ())
        self.check_weights(node)
        self.nodes.append(node)
        return index

    def check_weights(self, node):
        """Weights are tensors too: a layer whose kernel alone is over the per-tensor limit (a
        CONV(8, kernel=100000, padding=same) keeps its output small), or a model over the parameter
        limit, is refused here rather than by an out-of-memory error in Keras."""
        weights = sum(node.spec.kind.params(dict(node.params), self.shape(node.inputs[0])))
        if weights > limits.MAX_WEIGHT_ELEMENTS:
            gb = weights * limits.BYTES_PER_WEIGHT / 1e9
            raise self.fail(f"its weights have {weights:,} elements ({gb:,.1f} GB in float32), "
                            f"over the limit of {limits.MAX_WEIGHT_ELEMENTS:,} for one layer",
                            node.span, node.token, cls=LimitError,
                            hint="use a smaller kernel or fewer filters/units")
        self.params += weights
        if self.params > limits.MAX_PARAMS:
            gb = limits.MAX_PARAMS * limits.BYTES_PER_WEIGHT / 1e9
            raise self.fail(f"the model has more than {limits.MAX_PARAMS:,} parameters (over "
                            f"{gb:,.0f} GB of float32 weights)", node.span, node.token,
                            cls=LimitError, hint="use fewer or narrower layers")

    # --- walking -------------------------------------------------------------------------------
    def run(self, nodes, current, head=False, via=None):
        """Build ``nodes`` from ``current``; returns the last tensor and the FROM that reached it
        (None when the path did not jump to it)."""
        for node in nodes:
            if isinstance(node, Op):
                current, via = self.op(node, current, head, via), None
            elif isinstance(node, Merge):
                current, via = self.merge(node, current, via), None
            elif isinstance(node, Aux):
                out, _ = self.run(node.body, current, head=True, via=via)
                self.outputs.append(out)
            elif isinstance(node, As):  # names the tensor and passes it on
                self.names[node.name] = current
                continue
            elif isinstance(node, From):
                self.jumped.setdefault(current, node)
                current, via, head = self.names[node.name], node, True
                continue
            head = False
        return current, via

    def op(self, op: Op, current, head, via=None):
        spec = VOCAB[op.token]
        shape = self.shape(current)
        params = dict(op.params)
        common = dict(span=op.span, text=op.text, scope=op.scope)
        self.counts[op.token] = self.counts.get(op.token, 0) + 1
        try:
            if spec.kind.flattens_input and len(shape) > 1:
                current = self.add("FLATTEN", (), (), (current,), (math.prod(shape),), span=op.span,
                                   note="inserted before FC", head=head, scope=op.scope)
                shape, head = self.shape(current), False
            if spec.kind.zero_pads and isinstance(params.get("padding"), int):
                pad = params["padding"]
                sh.expect_map(op.token, shape, spec.rank)
                if pad > 0:
                    current = self.add("ZEROPAD", (("pad", pad),), (), (current,), sh.zero_pad(shape, pad),
                                       span=op.span, note=f"padding={pad} of {op.token}", head=head,
                                       scope=op.scope)
                    shape, head = self.shape(current), False
                op = op.replace_param("padding", "valid")
                params["padding"] = "valid"
            out = spec.kind.out_shape(params, shape, Site(op.token, spec.rank, self.counts[op.token]))
        except sh.ShapeError as err:
            raise self.fail(str(err), op.span, op.token) from None
        return self.add(op.token, op.params, op.extra, (current,), out, head=head,
                        froms=(via.name if via else "",), **common)

    def merge(self, merge: Merge, current, via=None):
        """The branches of ``merge`` from ``current``, then the CONCAT, ADD or MULTIPLY node. A
        branch ending in a bare ``CROP`` (a kind that ``fits_merge``) is cropped last, to the
        smallest height and width among the merge's inputs."""
        ends, skip_flags, vias, crops = [], [], [], {}
        for i, (body, proj) in enumerate(zip(merge.branches, merge.skip_proj)):
            last = body[-1] if body else None
            if isinstance(last, Op) and VOCAB[last.token].kind.fits_merge and \
                    all(v is None for _, v in last.params):
                crops[i] = last
                body = body[:-1]
            if body:
                end, end_via = self.run(body, current, head=True, via=via)
                ends.append(end)
                vias.append(end_via)
                skip_flags.append(None)
            else:
                ends.append(current)
                vias.append(via)
                skip_flags.append(proj if i not in crops else None)
        if crops:
            self.crop_branches(ends, vias, crops, merge)
        shapes = [self.shape(e) for e in ends]
        if merge.op == "|":
            out = self.concat_shape(shapes, merge, vias)
        else:
            out = self.elementwise_shape(ends, shapes, skip_flags, merge, vias)
        return self.add(MERGE_TOKEN[merge.op], (), (), tuple(ends), out, span=merge.span, text="",
                        froms=tuple(v.name if v else "" for v in vias))

    def crop_branches(self, ends, vias, crops, merge):
        shapes = [self.shape(e) for e in ends]
        maps = [s for s in shapes if len(s) == 3]
        if len(maps) != len(shapes):
            raise self.fail(f"CROP crops a merge branch to the merge's smallest height and width, "
                            f"but the inputs are {', '.join(sh.dims(s) for s in shapes)}",
                            crops[min(crops)].span, "CROP", hint="CROP needs feature maps (H, W, C)")
        size = (min(s[0] for s in maps), min(s[1] for s in maps))
        for i, crop in crops.items():
            crop = crop.replace_param("h", size[0]).replace_param("w", size[1])
            ends[i] = self.op(crop, ends[i], False, vias[i])
            vias[i] = None

    def _branch_list(self, shapes, vias) -> str:
        """The merge's input shapes, each FROM branch with both of its places."""
        parts = []
        for s, v in zip(shapes, vias):
            if v is None:
                parts.append(sh.dims(s))
            else:
                parts.append(f"{sh.dims(s)} (FROM({v.name}) at {v.span.describe()}, named by "
                             f"AS({v.name}) at {v.defined.describe()})")
        return ", ".join(parts)

    def _fix_hint(self, vias, default) -> str:
        if any(vias):
            return ("SKIP is projected automatically, a FROM is not: write the projection "
                    "(e.g. FROM(x) - CONV(filters, 1, stride=s)) or a CROP (FROM(x) - CROP) in the "
                    "FROM branch")
        return default

    def concat_shape(self, shapes, merge, vias=()):
        vias = list(vias) or [None] * len(shapes)
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1 or len({s[:-1] for s in shapes}) > 1:
            raise self.fail(f"branches of a concatenation must agree except in channels; got "
                            f"{self._branch_list(shapes, vias)}", merge.span, "'|'",
                            hint=self._fix_hint(vias, "give every branch the same strides/padding"))
        return shapes[0][:-1] + (sum(s[-1] for s in shapes),)

    def elementwise_shape(self, ends, shapes, skip_flags, merge, vias=()):
        """The output of an add or multiply. A SKIP branch that does not fit is projected; for a
        multiply a lower-rank branch is reshaped to broadcast. Updates ``ends`` and ``shapes``."""
        vias = list(vias) or [None] * len(shapes)
        try:
            self.fit_skips(ends, shapes, skip_flags, merge)
        except ArchitectureError as err:
            if not any(vias):
                raise
            raise self.fail(f"{err.message}; the branches are {self._branch_list(shapes, vias)}",
                            merge.span, f"'{merge.op}'", hint=self._fix_hint(vias, "")) from None
        widest = max(shapes, key=len)
        for i, s in enumerate(shapes):
            if len(s) < len(widest) and merge.op == "&":
                new = (1,) * (len(widest) - len(s)) + s
                ends[i] = self.add("RESHAPE", (("shape", new),), (), (ends[i],), new,
                                   span=merge.span, note=f"broadcast {sh.dims(s)} over {sh.dims(widest)}")
                shapes[i] = new
        what = {"+": "add", "&": "multiply"}[merge.op]
        try:
            out = shapes[0]
            for s in shapes[1:]:
                out = sh.broadcast(out, s)
        except sh.ShapeError as err:
            raise self.fail(f"branches of an {what} do not fit: {err}; got "
                            f"{self._branch_list(shapes, vias)}", merge.span, f"'{merge.op}'",
                            hint=self._fix_hint(vias, "make the branches end with the same shape")
                            ) from None
        if merge.op == "+" and any(s != out for s in shapes):
            raise self.fail(f"branches of an add must have the same shape; got "
                            f"{self._branch_list(shapes, vias)}", merge.span, "'+'",
                            hint=self._fix_hint(vias, "make the branches end with the same shape"))
        return out

    def fit_skips(self, ends, shapes, skip_flags, merge):
        """Project each SKIP branch whose shape differs from the other branches' (unless
        ``proj=false``, or a multiply broadcasts it anyway)."""
        others = [s for s, f in zip(shapes, skip_flags) if f is None]
        target = max(others, key=len) if others else shapes[0]
        for i, (end, s, flag) in enumerate(zip(ends, shapes, skip_flags)):
            if flag is None or s == target or (merge.op == "&" and _broadcasts(s, target)):
                continue
            if not flag:
                raise self.fail(f"SKIP has shape {sh.dims(s)} but the other branch "
                                f"{sh.dims(target)}, and proj=false", merge.span, f"'{merge.op}'",
                                hint="remove proj=false or write the shortcut branch out")
            ends[i] = self.projection(end, s, target, merge)
            shapes[i] = target

    def projection(self, end, have, want, merge):
        """The projection shortcut W_s of ResNet: a 1x1 conv with the stride and filters that fit."""
        if len(have) != 3 or len(want) != 3:
            raise self.fail(f"SKIP of shape {sh.dims(have)} cannot be projected to {sh.dims(want)}",
                            merge.span, f"'{merge.op}'", hint="write the shortcut branch out")
        strides = []
        for i, o in zip(have[:-1], want[:-1]):
            s = next((s for s in range(1, i + 1) if (i - 1) // s + 1 == o), None)
            if s is None:
                raise self.fail(f"no 1x1 stride maps SKIP {sh.dims(have)} onto {sh.dims(want)}",
                                merge.span, f"'{merge.op}'", hint="write the shortcut branch out")
            strides.append(s)
        stride = strides[0] if len(set(strides)) == 1 else tuple(strides)
        params = (("filters", want[-1]), ("kernel", 1), ("stride", stride), ("padding", "valid"),
                  ("dilation", 1), ("groups", 1), ("use_bias", True))
        return self.add("CONV", params, (), (end,), want, span=merge.span,
                        note="projection shortcut W_s (1x1 conv) for SKIP", head=True)


def _broadcasts(a, b) -> bool:
    try:
        sh.broadcast(a, b)
        return True
    except sh.ShapeError:
        return False


def build_graph(program: Program, input_shape, *, text: str = "", source: str = "") -> Graph:
    """The layer graph of an expanded program, with the implicit layers inserted and every shape
    checked.

    Args:
        program: the expanded program (:class:`kblocks.lang.ir.Program`), FC units given.
        input_shape: the input without the batch axis.
        text: the architecture text, for error context.
        source: the file it came from, for error context.

    Returns:
        The :class:`Graph`.

    Raises:
        ArchitectureError: no input shape, or a layer that cannot take its input (naming the
            layer and where it was written).
        LimitError: a graph, tensor, weight or parameter count over :mod:`kblocks.lang.limits`.
    """
    if input_shape is None:
        raise ArchitectureError("no input shape: write INPUT(h,w,c) first or give input_shape=",
                                hint="CLI: --input-shape 32,32,3")
    dims = tuple(input_shape)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= limits.MAX_INT
                       for d in dims):
        raise ArchitectureError(f"the input shape must be positive whole numbers, got {dims}")
    if math.prod(dims) > limits.MAX_ACTIVATION_ELEMENTS:
        raise LimitError(f"the input {sh.dims(dims)} has {math.prod(dims):,} elements per image, over "
                         f"the limit of {limits.MAX_ACTIVATION_ELEMENTS:,}", hint="use a smaller input")
    b = _Builder(input_shape, text, source)
    main, _ = b.run(program.nodes, INPUT)
    outputs = (main, *b.outputs)
    graph = Graph(tuple(input_shape), tuple(b.nodes), outputs, program, source, text)
    _check_all_used(graph, b)
    return graph


def _check_all_used(graph: Graph, b: _Builder) -> None:
    """Every computed tensor is read (DSL section 4b): a path that jumps away with FROM must not
    leave its last result behind, except the outputs."""
    outputs = set(graph.outputs)
    for index, users in graph.consumers().items():
        if users or index in outputs or index == INPUT:
            continue
        node = graph.nodes[index]
        jump = b.jumped.get(index)
        what = node.text or node.dsl
        where = "" if node.span.line else " (inserted)"
        why = (f": FROM({jump.name}) at {jump.span.describe()} continues from another tensor "
               f"and leaves it behind" if jump is not None else "")
        raise b.fail(f"the output of {what}{where} is never used{why}", node.span or
                     (jump.span if jump else None), node.token,
                     hint="name it with AS(name) and read it with FROM(name) (or merge it), or "
                          "remove it; only the network's output and AUX heads may be left unread")

"""Per-layer figures of a layer graph: parameters, activation memory, multiply-adds, receptive field.

Conventions (docs/summary.md):

* **Parameters** follow Keras exactly (checked against ``count_params()`` in the tests). Batch
  normalisation has 2C trainable and 2C non-trainable (moving mean and variance) parameters.
* **Activation elements** count the input and each layer output once per image. An elementwise
  activation is computed in place (it adds nothing) unless it is the first layer of a branch, whose
  input another branch still needs; FLATTEN and RESHAPE are views and dropout is the identity at
  inference, so they add nothing either. Bytes are elements x 4 (float32).
* **Multiply-adds (MACs)** count convolutions and fully connected layers (one MAC per weight use);
  pooling, normalisation and activations are not counted.
* **Weight memory** is 4 bytes (float32) per parameter, except in binary layers (BWCONV, XNORCONV:
  Rastegari et al. 2016), whose kernels are stored at 1 bit per weight beside one float32 scale
  ``alpha`` per filter; the summary compares it with every weight at float32 (about 32x smaller
  for the binary layers).
* **Receptive field** (per spatial axis) and **jump** (product of strides) follow the recurrence
  ``r_out = r_in + (k_eff - 1) * j_in``, ``j_out = j_in * s`` with ``k_eff = d*(k-1)+1``; merges take
  the largest field of their inputs. Layers after global pooling or flattening see the whole input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kblocks.lang.graph import INPUT, Graph, Node


@dataclass(frozen=True)
class LayerStats:
    """The figures of one node (conventions in the module docstring).

    Args:
        trainable: trainable parameters, as Keras counts them.
        non_trainable: non-trainable parameters (batch normalisation's moving statistics).
        activations: activation elements this node's output adds per image (0 for views and
            in-place layers).
        macs: multiply-adds per image.
        rf: receptive field per spatial axis; None once the whole input is seen.
        jump: distance in input pixels between neighbouring outputs, per spatial axis (a float
            after upsampling); None with ``rf``.
        binary: how many of its parameters are stored at 1 bit (the kernel of a binary layer).
        scales: float32 scaling factors it stores that are not parameters (a binary layer's
            ``alpha`` per filter).
    """

    trainable: int
    non_trainable: int
    activations: int
    macs: int
    rf: tuple | None
    jump: tuple | None
    binary: int = 0
    scales: int = 0

    @property
    def params(self):
        """Trainable plus non-trainable parameters."""
        return self.trainable + self.non_trainable

    @property
    def weight_bytes(self):
        """Bytes its weights take stored: 1 bit per binary weight (rounded up to whole bytes),
        4 per other parameter and per scale."""
        return 4 * (self.params - self.binary + self.scales) + -(-self.binary // 8)


@dataclass(frozen=True)
class Analysis:
    """The figures of a whole graph: one :class:`LayerStats` per node and the totals as properties
    (``params``, ``trainable``, ``non_trainable``, ``activation_elements``, ``activation_bytes``,
    ``macs``).

    Args:
        graph: the :class:`~kblocks.lang.graph.Graph` analysed.
        layers: one :class:`LayerStats` per node, in the graph's order.
        input_elements: elements of one input image (counted in the activation memory).
    """

    graph: Graph
    layers: tuple
    input_elements: int

    @property
    def trainable(self):
        return sum(s.trainable for s in self.layers)

    @property
    def non_trainable(self):
        return sum(s.non_trainable for s in self.layers)

    @property
    def params(self):
        return self.trainable + self.non_trainable

    @property
    def activation_elements(self):
        return self.input_elements + sum(s.activations for s in self.layers)

    @property
    def activation_bytes(self):
        return 4 * self.activation_elements

    @property
    def macs(self):
        return sum(s.macs for s in self.layers)

    @property
    def binary_weights(self):
        """Parameters stored at 1 bit (0 without binary layers)."""
        return sum(s.binary for s in self.layers)

    @property
    def weight_bytes(self):
        """Bytes the weights take stored, binary weights at 1 bit (see the module docstring)."""
        return sum(s.weight_bytes for s in self.layers)

    @property
    def float32_weight_bytes(self):
        """Bytes the weights take with every parameter at float32, as a real-valued network."""
        return 4 * self.params


@dataclass(frozen=True)
class MainTotals:
    """The figures of the inference network alone: the nodes the main output depends on, without
    the layers that feed only ``AUX[...]`` heads (training-only outputs such as GoogLeNet's).

    Args:
        params: trainable plus non-trainable parameters of those nodes.
        trainable: their trainable parameters.
        macs: their multiply-adds per image.
        nodes: how many nodes the main output depends on.
    """

    params: int
    trainable: int
    macs: int
    nodes: int


def main_nodes(graph: Graph) -> frozenset:
    """Indices of the nodes the main output (``graph.outputs[0]``) depends on, found by walking back
    from it along the inputs; a node that feeds only AUX heads is not among them."""
    if not graph.outputs:
        return frozenset()
    seen: set = set()
    todo = [graph.outputs[0]]
    while todo:
        i = todo.pop()
        if i == INPUT or i in seen:
            continue
        seen.add(i)
        todo.extend(graph.nodes[i].inputs)
    return frozenset(seen)


def main_totals(a: Analysis) -> MainTotals:
    """:class:`MainTotals` of an analysis: the main output's network, AUX-only layers left out. Equal
    to the whole graph's totals when there are no AUX heads."""
    keep = main_nodes(a.graph)
    layers = [s for i, s in enumerate(a.layers) if i in keep]
    trainable = sum(s.trainable for s in layers)
    return MainTotals(params=trainable + sum(s.non_trainable for s in layers), trainable=trainable,
                      macs=sum(s.macs for s in layers), nodes=len(keep))


def param_counts(node: Node, in_shape: tuple) -> tuple:
    """(trainable, non-trainable) parameters of one node, as Keras counts them: its kind's record,
    all of them frozen when the layer is written with ``trainable=false``."""
    trainable, frozen = node.spec.kind.params(dict(node.params), in_shape)
    if dict(node.extra).get("trainable") is False:  # CONV(8, trainable=false): Keras freezes all
        return 0, trainable + frozen
    return trainable, frozen


def field_after(fields: list, win, flat: bool) -> tuple:
    """(receptive field, jump) after a layer whose step is ``win`` (a
    :class:`~kblocks.lang.kinds.Window`, or None), from those of its inputs (the largest of each);
    ``flat``: its output has no spatial axes. Also used for Keras models kblocks did not build
    (:mod:`kblocks.inspect.model_summary`)."""
    if any(f[0] is None for f in fields) or flat:
        return None, None
    r_in = tuple(max(f[0][a] for f in fields) for a in range(len(fields[0][0])))
    j_in = tuple(max(f[1][a] for f in fields) for a in range(len(fields[0][1])))
    if win is None:
        return r_in, j_in
    r = r_in if win.kernel is None else tuple(ri + (kk - 1) * ji
                                              for ri, kk, ji in zip(r_in, win.kernel, j_in))
    if win.transposed:
        return r, tuple(ji / ss for ji, ss in zip(j_in, win.stride))
    return r, tuple(ji * ss for ji, ss in zip(j_in, win.stride))


def _field(node: Node, fields: list) -> tuple:
    """(receptive field, jump) after ``node``, from those of its inputs."""
    rank = len(fields[0][0]) if fields[0][0] is not None else 0
    win = node.spec.kind.window(dict(node.params), rank) if rank else None
    return field_after(fields, win, len(node.shape) == 1)


def added_elements(kind, shape: tuple, branch_head: bool) -> int:
    """Activation elements a layer of ``kind`` with output ``shape`` adds: none for views and for
    in-place layers that do not head a branch."""
    if kind.view or (kind.in_place and not branch_head):
        return 0
    return math.prod(shape)


def _added_elements(node: Node) -> int:
    return added_elements(node.spec.kind, node.shape, node.branch_head)


def analyse(graph: Graph) -> Analysis:
    """Per-layer parameters, activation memory, multiply-adds and receptive fields of a graph.

    Args:
        graph: a layer graph (from :func:`kblocks.lang.graph.build_graph` or ``kblocks.compile``).

    Returns:
        An :class:`Analysis` with one :class:`LayerStats` per node, in the graph's order.
    """
    stats: list = []
    rank = len(graph.input_shape) - 1
    rf = {INPUT: (None, None) if rank == 0 else ((1,) * rank, (1,) * rank)}
    for node in graph.nodes:
        in_shape = graph.shape_of(node.inputs[0])
        trainable, frozen = param_counts(node, in_shape)
        macs = node.spec.kind.macs(dict(node.params), in_shape, node.shape)
        r = rf[node.index] = _field(node, [rf[i] for i in node.inputs])
        binary = node.spec.kind.binary
        bits, scales = binary(dict(node.params), in_shape) if binary else (0, 0)
        stats.append(LayerStats(trainable, frozen, _added_elements(node), macs, r[0], r[1],
                                bits, scales))
    return Analysis(graph, tuple(stats), math.prod(graph.input_shape))

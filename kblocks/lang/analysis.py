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
* **Receptive field** (per spatial axis) and **jump** (product of strides) follow the recurrence
  ``r_out = r_in + (k_eff - 1) * j_in``, ``j_out = j_in * s`` with ``k_eff = d*(k-1)+1``; merges take
  the largest field of their inputs. Layers after global pooling or flattening see the whole input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kblocks.lang.graph import INPUT, Graph, Node
from kblocks.lang.shapes import _tuple

_INPLACE_KINDS = {"act", "prelu"}
_VIEW_KINDS = {"flatten", "reshape", "dropout", "sdropout"}


@dataclass(frozen=True)
class LayerStats:
    trainable: int
    non_trainable: int
    activations: int  # elements added by this layer's output
    macs: int
    rf: tuple | None  # receptive field per spatial axis; None once the whole input is seen
    jump: tuple | None

    @property
    def params(self):
        return self.trainable + self.non_trainable


@dataclass(frozen=True)
class Analysis:
    graph: Graph
    layers: tuple  # LayerStats per node
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


def param_counts(node: Node, in_shape: tuple) -> tuple:
    """(trainable, non-trainable) parameters of one node, as Keras counts them."""
    trainable, frozen = _param_counts(node, in_shape)
    if dict(node.extra).get("trainable") is False:  # CONV(8, trainable=false): Keras freezes all
        return 0, trainable + frozen
    return trainable, frozen


def _param_counts(node: Node, in_shape: tuple) -> tuple:
    kind = node.spec.kind
    p = dict(node.params)
    cin = in_shape[-1]
    rank = len(in_shape) - 1
    bias = p.get("use_bias", True)
    if kind == "conv":
        k = math.prod(_tuple(p["kernel"], rank))
        return k * (cin // p["groups"]) * p["filters"] + (p["filters"] if bias else 0), 0
    if kind == "dwconv":
        k = math.prod(_tuple(p["kernel"], 2))
        out = cin * p["multiplier"]
        return k * out + (out if bias else 0), 0
    if kind == "sepconv":
        k = math.prod(_tuple(p["kernel"], 2))
        return k * cin + cin * p["filters"] + (p["filters"] if bias else 0), 0
    if kind == "convt":
        k = math.prod(_tuple(p["kernel"], 2))
        return k * cin * p["filters"] + (p["filters"] if bias else 0), 0
    if kind == "dense":
        return cin * p["units"] + (p["units"] if bias else 0), 0
    if kind == "bn":
        return cin * (int(p["center"]) + int(p["scale"])), 2 * cin
    if kind in ("ln", "gn"):
        return cin * (int(p["center"]) + int(p["scale"])), 0
    if kind == "prelu":
        return cin, 0
    return 0, 0


def macs_of(node: Node, in_shape: tuple) -> int:
    kind = node.spec.kind
    p = dict(node.params)
    out = node.shape
    cin = in_shape[-1]
    rank = len(in_shape) - 1
    if kind == "conv":
        return math.prod(out) * math.prod(_tuple(p["kernel"], rank)) * (cin // p["groups"])
    if kind == "dwconv":
        return math.prod(out) * math.prod(_tuple(p["kernel"], 2))
    if kind == "sepconv":
        spatial = math.prod(out[:-1])
        return spatial * cin * math.prod(_tuple(p["kernel"], 2)) + spatial * cin * p["filters"]
    if kind == "convt":
        return math.prod(in_shape) * math.prod(_tuple(p["kernel"], 2)) * p["filters"]
    if kind == "dense":
        return cin * p["units"]
    return 0


def _window(node: Node, in_rank: int):
    p = dict(node.params)
    kind = node.spec.kind
    if kind in ("conv", "dwconv", "sepconv"):
        d = _tuple(p.get("dilation", 1), in_rank)
        k = _tuple(p["kernel"], in_rank)
        return tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d)), _tuple(p["stride"], in_rank)
    if kind == "pool":
        return _tuple(p["size"], in_rank), _tuple(p["stride"], in_rank)
    return None


def analyse(graph: Graph) -> Analysis:
    stats: list = []
    rf = {INPUT: ((1,) * (len(graph.input_shape) - 1), (1,) * (len(graph.input_shape) - 1))}
    if len(graph.input_shape) == 1:
        rf[INPUT] = (None, None)
    for node in graph.nodes:
        in_shape = graph.shape_of(node.inputs[0])
        trainable, frozen = param_counts(node, in_shape)
        kind = node.spec.kind
        if kind in _VIEW_KINDS or (kind in _INPLACE_KINDS and not node.branch_head):
            acts = 0
        else:
            acts = math.prod(node.shape)
        # receptive field
        fields = [rf[i] for i in node.inputs]
        if any(f[0] is None for f in fields) or len(node.shape) == 1:
            r = (None, None)
        else:
            r_in = tuple(max(f[0][a] for f in fields) for a in range(len(fields[0][0])))
            j_in = tuple(max(f[1][a] for f in fields) for a in range(len(fields[0][1])))
            win = _window(node, len(r_in))
            if node.spec.kind == "convt":
                s = _tuple(dict(node.params)["stride"], len(r_in))
                k = _tuple(dict(node.params)["kernel"], len(r_in))
                r = (tuple(ri + (kk - 1) * ji for ri, kk, ji in zip(r_in, k, j_in)),
                     tuple(ji / ss for ji, ss in zip(j_in, s)))
            elif node.spec.kind == "upsample":
                s = _tuple(dict(node.params)["size"], len(r_in))
                r = (r_in, tuple(ji / ss for ji, ss in zip(j_in, s)))
            elif win is None:
                r = (r_in, j_in)
            else:
                k, s = win
                r = (tuple(ri + (kk - 1) * ji for ri, kk, ji in zip(r_in, k, j_in)),
                     tuple(ji * ss for ji, ss in zip(j_in, s)))
        rf[node.index] = r
        stats.append(LayerStats(trainable, frozen, acts, macs_of(node, in_shape), r[0], r[1]))
    return Analysis(graph, tuple(stats), math.prod(graph.input_shape))

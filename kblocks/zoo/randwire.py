"""Randomly wired networks (Xie, Kirillov, Girshick and He 2019, "Exploring Randomly Wired Neural
Networks for Image Recognition"), written as architecture text with named tensors (DSL section 4b).

A random graph (Watts-Strogatz, Erdos-Renyi or Barabasi-Albert, drawn by networkx from a seed)
becomes a DAG by pointing every edge from the smaller node index to the larger (section 3.2). Each
node is the paper's operation: a weighted sum of its inputs with learnable positive weights
(``FROM(a) - WEIGHT + FROM(b) - WEIGHT``: ``sigmoid(w_a) a + sigmoid(w_b) b``), then
``RELU - SEPCONV(C, 3) - BN``. Nodes without predecessors read the stage's input (with stride 2:
each stage halves the map); the stage's output is the unweighted mean of the nodes without
successors. The network is Table 1 of the paper (small or regular regime): a convolutional stem,
random-wiring stages, and the 1x1-conv-1280 classifier.

The text builds as it is; the same arguments and seed give the same text. No Keras here.

    >>> text = network_text("ws", nodes=32, k=4, p=0.75, seed=0)
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from kblocks.common.errors import ConfigError

GRAPHS = ("ws", "er", "ba")  #: graph generators of section 3.3: Watts-Strogatz, Erdos-Renyi, Barabasi-Albert
DEFAULT_P = {"ws": 0.75, "er": 0.2}  #: the paper's best WS(4, 0.75) and its ER(0.2) (Fig. 3)
DEFAULT_M = 5  #: BA(M=5) of Fig. 3
MAX_NODES = 1000  #: nodes per stage a generated text may have (the paper uses 32)
REGIMES = ("small", "regular")  #: Table 1's two computation regimes


@dataclass(frozen=True)
class Stage:
    """One random-wiring stage: its DAG over nodes ``0..n-1`` (edges ``i -> j`` with ``i < j``)."""

    nodes: int
    edges: tuple

    def predecessors(self, j: int) -> list:
        return sorted(i for i, k in self.edges if k == j)

    def successors(self, i: int) -> list:
        return sorted(k for j, k in self.edges if j == i)

    @property
    def inputs(self) -> list:
        """Nodes without predecessors: they read the stage's input."""
        return [j for j in range(self.nodes) if not self.predecessors(j)]

    @property
    def outputs(self) -> list:
        """Nodes without successors: their mean is the stage's output."""
        return [i for i in range(self.nodes) if not self.successors(i)]


def random_graph(graph: str, nodes: int, *, k: int = 4, p: float | None = None, m: int = DEFAULT_M,
                 seed: int = 0):
    """The undirected networkx graph ``graph`` (ws, er, ba) on ``nodes`` nodes, drawn from ``seed``."""
    import networkx as nx

    _check(graph, nodes, k, p, m)
    p = DEFAULT_P.get(graph) if p is None else p
    if graph == "ws":
        return nx.watts_strogatz_graph(nodes, k, p, seed=seed)
    if graph == "er":
        return nx.erdos_renyi_graph(nodes, p, seed=seed)
    return nx.barabasi_albert_graph(nodes, m, seed=seed)


def stage(graph: str, nodes: int, **kwargs) -> Stage:
    """A random graph made a DAG as in section 3.2: each edge points from the smaller index to the
    larger (WS nodes are indexed around the ring, BA nodes in the order they were added)."""
    g = random_graph(graph, nodes, **kwargs)
    return Stage(nodes, tuple(sorted((min(a, b), max(a, b)) for a, b in g.edges())))


def stage_dag(s: Stage):
    """``s`` as a networkx DiGraph with the stage's input node ``"in"`` and output node ``"out"``:
    every graph node then has in-degree >= 1 and a path to ``"out"``."""
    import networkx as nx

    dag = nx.DiGraph()
    dag.add_nodes_from(range(s.nodes))
    dag.add_edges_from(s.edges)
    dag.add_edges_from(("in", j) for j in s.inputs)
    dag.add_edges_from((i, "out") for i in s.outputs)
    return dag


def stage_text(s: Stage, channels: int, prefix: str, stride: int = 2) -> str:
    """Architecture text of one stage, read from the current tensor (named ``{prefix}in``; node j is
    ``{prefix}n{j}``) and ending at the stage's output node. One node a line."""
    lines = [f"AS({prefix}in)"]
    conv = f"SEPCONV({channels}, 3, use_bias=false)"
    for j in range(s.nodes):
        preds = s.predecessors(j)
        if not preds:
            strided = conv if stride == 1 else f"SEPCONV({channels}, 3, stride={stride}, use_bias=false)"
            head, op = f"FROM({prefix}in)", strided
        elif len(preds) == 1:
            head, op = f"FROM({prefix}n{preds[0]})", conv
        else:
            head, op = "(" + " + ".join(f"FROM({prefix}n{i}) - WEIGHT" for i in preds) + ")", conv
        lines.append(f"{head} - RELU - {op} - BN - AS({prefix}n{j})")
    outs = s.outputs
    if len(outs) > 1:  # a single output node is the last node: the path is already there
        lines.append("(" + " + ".join(f"FROM({prefix}n{i})" for i in outs)
                     + f") - WEIGHT({1 / len(outs)!r})")
    return "\n- ".join(lines)


def network_text(graph: str = "ws", *, nodes: int = 32, k: int = 4, p: float | None = None,
                 m: int = DEFAULT_M, seed: int = 0, channels: int = 78, regime: str = "small",
                 stages: int | None = None, input_size: int = 224, classes: int = 1000) -> str:
    """Architecture text of a RandWire network (Table 1 of Xie et al. 2019).

    Small regime: ``3x3 conv C/2 stride 2 - 3x3 conv C stride 2`` then random stages of N nodes with
    C, 2C, 4C channels; regular regime: ``3x3 conv C/2 stride 2`` then stages of N/2, N, N, N nodes
    with C, 2C, 4C, 8C channels. Then ``1x1 conv 1280 - GAP - FC(classes) - SOFTMAX``. Every stage
    draws its own graph; their seeds come from ``seed``. ``stages`` keeps only the first stages.
    """
    _check(graph, nodes, k, p, m)
    if regime not in REGIMES:
        raise ConfigError(f"regime {regime!r}: expected one of {', '.join(REGIMES)}")
    if channels < 2:
        raise ConfigError(f"channels={channels}: expected at least 2 (the stem has C/2)")
    if regime == "small":
        stem = [f"CONV({channels // 2}, 3, stride=2, use_bias=false) - BN",
                f"RELU - CONV({channels}, 3, stride=2, use_bias=false) - BN"]
        plan = [(nodes, channels), (nodes, 2 * channels), (nodes, 4 * channels)]
    else:
        stem = [f"CONV({channels // 2}, 3, stride=2, use_bias=false) - BN"]
        plan = [(max(nodes // 2, 1), channels), (nodes, 2 * channels), (nodes, 4 * channels),
                (nodes, 8 * channels)]
    if stages is not None:
        if not 1 <= stages <= len(plan):
            raise ConfigError(f"stages={stages}: the {regime} regime has 1 to {len(plan)} random stages")
        plan = plan[:stages]
    parts = [f"INPUT({input_size}, {input_size}, 3)", *stem]
    for i, ((n, c), stage_seed) in enumerate(zip(plan, stage_seeds(seed, len(plan))), start=1):
        s = stage(graph, n, k=k, p=p, m=m, seed=stage_seed)
        parts.append(stage_text(s, c, prefix=f"s{i}"))
    parts.append(f"RELU - CONV(1280, 1, use_bias=false) - BN - RELU - GAP - FC({classes}) - SOFTMAX")
    return "\n- ".join(parts) + "\n"


def stage_seeds(seed: int, stages: int) -> list:
    """The seeds of the graphs of ``stages`` stages, drawn from ``seed`` (each stage its own graph)."""
    draw = random.Random(seed)
    return [draw.randrange(2**32) for _ in range(stages)]


def _check(graph, nodes, k, p, m):
    if graph not in GRAPHS:
        raise ConfigError(f"graph {graph!r}: expected one of {', '.join(GRAPHS)} "
                          "(Watts-Strogatz, Erdos-Renyi, Barabasi-Albert)")
    if not 1 <= nodes <= MAX_NODES:
        raise ConfigError(f"nodes={nodes}: expected 1 to {MAX_NODES}")
    if graph == "ws" and not (1 <= k < nodes and k % 2 == 0):
        raise ConfigError(f"k={k}: WS needs an even k with 2 <= k < nodes ({nodes})")
    if p is not None and not 0.0 <= p <= 1.0:
        raise ConfigError(f"p={p}: expected a probability in [0, 1]")
    if graph == "ba" and not 1 <= m < nodes:
        raise ConfigError(f"m={m}: BA needs 1 <= m < nodes ({nodes})")

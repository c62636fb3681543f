"""A picture of a layer graph with matplotlib: one box per layer (canonical text and output shape),
arrows for data flow, parallel branches side by side. No Graphviz needed.

An edge that would run straight down through other boxes of its column (the identity ``SKIP`` of
``(SKIP + CONV-BN)``, which would hide behind the main column) is routed beside the column instead:
out of the box's side, down a lane :data:`LANE_GAP` beside the boxes, into the merge's side
(:func:`edge_routes`). Each edge is a patch with ``gid="edge SRC->DST"`` (node indices, -1 the input).
"""
from __future__ import annotations

from kblocks.lang.graph import INPUT, Graph
from kblocks.lang.shapes import dims

#: half the width of a box in column units (boxes are 1 column wide, columns 1 apart)
BOX_HALF_WIDTH = 0.5
#: distance between a box's side and the first lane of an edge routed beside the column; an edge
#: whose rows overlap those of one already in a lane goes one more gap out, so they never overlap
LANE_GAP = 0.12


def layout(graph: Graph) -> dict:
    """(column, row) of the input and each node: rows follow the data flow, branches take columns."""
    pos = {INPUT: (0.0, 0)}
    row = 0
    for node in graph.nodes:
        parent = node.inputs[0]
        if node.spec.kind.merge:
            row = max(pos[i][1] for i in node.inputs) + 1
            col = sum(pos[i][0] for i in node.inputs) / len(node.inputs)
            col = min((pos[i][0] for i in node.inputs), key=abs) if len(node.inputs) else col
        elif node.branch_head:
            siblings = [p for p, (c, r) in pos.items() if p != INPUT and p in _heads_of(graph, parent)]
            col = pos[parent][0] + len(siblings) - 0.0
            row = pos[parent][1] + 1
        else:
            col, row = pos[parent][0], pos[parent][1] + 1
        taken = set(pos.values())
        while (col, row) in taken:  # a FROM reads an earlier tensor: move aside, not on top
            col += 1
        pos[node.index] = (col, row)
    return pos


def _heads_of(graph, parent):
    return {n.index for n in graph.nodes if n.branch_head and n.inputs and n.inputs[0] == parent}


def edge_routes(graph: Graph, pos: dict) -> dict:
    """``{(src, dst): [(x, y), ...]}``: the points each edge is drawn through, in data units.

    A straight edge goes from the bottom of the source box to the top of the target box. One whose
    source and target are in the same column with other boxes between them leaves the source box
    by its side, runs down a lane beside the column (the left side unless boxes of the column to
    the left are in the way, then the right) and enters the target box by the same side."""
    occupied = set(pos.values())
    lanes = {}  # (column, side) -> edges routed there so far
    routes = {}
    for node in graph.nodes:
        x1, y1 = pos[node.index]
        for src in node.inputs:
            x0, y0 = pos[src]
            between = range(int(y0) + 1, int(y1))
            if x0 != x1 or not any((x0, r) in occupied for r in between):
                routes[(src, node.index)] = [(x0, y0 + 0.3), (x1, y1 - 0.3)]
                continue
            left_blocked = any((x0 - 1, r) in occupied for r in range(int(y0), int(y1) + 1))
            side = 1 if left_blocked else -1
            used = lanes.setdefault((x0, side), [])  # per lane: the row spans it carries
            k = next((i for i, spans in enumerate(used)
                      if all(y1 <= a or b <= y0 for a, b in spans)), len(used))
            if k == len(used):
                used.append([])
            used[k].append((y0, y1))
            edge = x0 + side * BOX_HALF_WIDTH
            lane = edge + side * LANE_GAP * (k + 1)
            routes[(src, node.index)] = [(edge, y0), (lane, y0), (lane, y1), (edge, y1)]
    return routes


def graph_figure(graph: Graph):
    """The matplotlib figure of ``graph`` (:func:`plot_graph` without writing it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    pos = layout(graph)
    routes = edge_routes(graph, pos)
    cols = [c for c, _ in pos.values()]
    xs = cols + [x for points in routes.values() for x, _ in points]
    rows = max(r for _, r in pos.values()) + 1
    width = max(4.0, 2.6 * (max(cols) - min(cols) + 1))
    fig, ax = plt.subplots(figsize=(width, max(3.0, 0.55 * rows + 1)))
    ax.set_xlim(min(min(cols) - 0.6, min(xs) - 0.1), max(max(cols) + 0.6, max(xs) + 0.1))
    ax.set_ylim(rows, -1)
    ax.axis("off")
    labels = {INPUT: (f"INPUT {dims(graph.input_shape)}", "#ffffff")}
    for node in graph.nodes:
        labels[node.index] = (f"{node.dsl}  {dims(node.shape)}", node.spec.kind.colour)
    for (src, dst), points in routes.items():
        codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1)
        ax.add_patch(FancyArrowPatch(path=MplPath(points, codes), arrowstyle="->", color="#555555",
                                     lw=0.8, mutation_scale=10, gid=f"edge {src}->{dst}"))
    for idx, (x, y) in pos.items():
        text, colour = labels[idx]
        ax.add_patch(FancyBboxPatch((x - BOX_HALF_WIDTH, y - 0.28), 2 * BOX_HALF_WIDTH, 0.56,
                                    boxstyle="round,pad=0.02", fc=colour, ec="#333333", lw=0.6,
                                    gid=f"box {idx}"))
        ax.text(x, y, text if len(text) < 40 else text[:38] + "…", ha="center", va="center", fontsize=7)
    title = f"{graph.source or 'architecture'}: {len(graph.nodes)} layers"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_graph(graph: Graph, path, *, fmt="png", dpi=110):
    import matplotlib.pyplot as plt

    fig = graph_figure(graph)
    fig.savefig(path, format=fmt, dpi=dpi)
    plt.close(fig)

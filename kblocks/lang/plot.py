"""A picture of a layer graph with matplotlib: one box per layer (canonical text and output shape),
arrows for data flow, parallel branches side by side. No Graphviz needed."""
from __future__ import annotations

from kblocks.lang.graph import INPUT, Graph
from kblocks.lang.shapes import dims

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


def plot_graph(graph: Graph, path, *, fmt="png", dpi=110):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    pos = layout(graph)
    cols = [c for c, _ in pos.values()]
    rows = max(r for _, r in pos.values()) + 1
    width = max(4.0, 2.6 * (max(cols) - min(cols) + 1))
    fig, ax = plt.subplots(figsize=(width, max(3.0, 0.55 * rows + 1)))
    ax.set_xlim(min(cols) - 0.6, max(cols) + 0.6)
    ax.set_ylim(rows, -1)
    ax.axis("off")
    labels = {INPUT: (f"INPUT {dims(graph.input_shape)}", "#ffffff")}
    for node in graph.nodes:
        labels[node.index] = (f"{node.dsl}  {dims(node.shape)}", node.spec.kind.colour)
    for node in graph.nodes:
        x1, y1 = pos[node.index]
        for i in node.inputs:
            x0, y0 = pos[i]
            ax.annotate("", xy=(x1, y1 - 0.3), xytext=(x0, y0 + 0.3),
                        arrowprops=dict(arrowstyle="->", color="#555555", lw=0.8))
    for idx, (x, y) in pos.items():
        text, colour = labels[idx]
        ax.add_patch(FancyBboxPatch((x - 0.5, y - 0.28), 1.0, 0.56, boxstyle="round,pad=0.02",
                                    fc=colour, ec="#333333", lw=0.6))
        ax.text(x, y, text if len(text) < 40 else text[:38] + "…", ha="center", va="center", fontsize=7)
    title = f"{graph.source or 'architecture'}: {len(graph.nodes)} layers"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format=fmt, dpi=dpi)
    plt.close(fig)

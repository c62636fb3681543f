"""Generators of architecture text: ``kblocks generate randwire`` writes a randomly wired network
(Xie et al. 2019, :mod:`kblocks.zoo.randwire`) with named tensors, to stdout or to ``-o FILE``."""
from __future__ import annotations

import os

import click

from kblocks.cli.app import main
from kblocks.common.errors import KBlocksError
from kblocks.common.files import check_output_path

_SUFFIXES = (".yaml", ".yml", ".txt")


@main.group()
def generate():
    """Write architecture text made by a generator (randwire)."""


def yaml_file(name: str, doc: str, text: str) -> str:
    """An architecture file (DSL section 5) holding ``text`` as its network, readable by every
    command that takes a YAML file."""
    body = "".join(f"  {line}\n" for line in text.strip().splitlines())
    return f"name: {name}\ndoc: >\n  {doc}\nnetwork: |\n{body}"


@generate.command("randwire", context_settings={"show_default": True})
@click.option("--graph", type=click.Choice(["ws", "er", "ba"]), default="ws",
              help="Random graph: Watts-Strogatz, Erdos-Renyi or Barabasi-Albert.")
@click.option("--nodes", type=int, default=32, help="Nodes per random stage (N).")
@click.option("--k", "k", type=int, default=4, help="WS: each node's neighbours on the ring (even).")
@click.option("--p", "p", type=float, default=None,
              help="WS: rewiring probability (0.75); ER: edge probability (0.2).")
@click.option("--m", "m", type=int, default=5, help="BA: edges of each new node.")
@click.option("--seed", type=int, default=0, help="Seed of the graphs: the same seed, the same text.")
@click.option("--channels", type=int, default=78, help="C of Table 1 (78: RandWire-WS small).")
@click.option("--regime", type=click.Choice(["small", "regular"]), default="small",
              help="Table 1's stem and stages.")
@click.option("--stages", type=int, default=None, help="Keep only the first random stages.")
@click.option("--input-size", type=int, default=224, help="Height and width of the input image.")
@click.option("--classes", type=int, default=1000, help="Units of the classifier.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to FILE (.yaml: an architecture file; .txt: the text) instead of stdout.")
@click.option("--overwrite", is_flag=True, help="Replace an existing -o file.")
def randwire(graph, nodes, k, p, m, seed, channels, regime, stages, input_size, classes, output,
             overwrite):
    """A randomly wired network (Xie et al. 2019): node = weighted sum - RELU - SEPCONV - BN.

        kblocks generate randwire --graph ws --nodes 32 --k 4 --p 0.75 --seed 0 -o rw.yaml
        kblocks summary rw.yaml
    """
    from kblocks.common.atomic import write_text
    from kblocks.zoo import randwire as rw

    out = None
    if output is not None:
        out = check_output_path(output)
        if out.suffix.lower() not in _SUFFIXES:
            raise KBlocksError(f"-o {output}: the file name must end in {' or '.join(_SUFFIXES)}",
                               hint=f"e.g. -o {out.with_suffix('.yaml').name} (an architecture file)")
        if not overwrite and os.path.lexists(out):
            raise KBlocksError(f"{output} already exists; pass --overwrite to replace it")
    text = rw.network_text(graph, nodes=nodes, k=k, p=p, m=m, seed=seed, channels=channels,
                           regime=regime, stages=stages, input_size=input_size, classes=classes)
    if out is None:
        click.echo(text, nl=False)
        return
    if out.suffix.lower() in (".yaml", ".yml"):
        shape = {"ws": f" --k {k} --p {0.75 if p is None else p}",
                 "er": f" --p {0.2 if p is None else p}", "ba": f" --m {m}"}[graph]
        args = (f"--graph {graph} --nodes {nodes}{shape} --seed {seed} --channels {channels} "
                f"--regime {regime}" + ("" if stages is None else f" --stages {stages}"))
        doc = (f"RandWire-{graph.upper()} (Xie et al. 2019), written by kblocks generate randwire "
               f"{args}.")
        text = yaml_file(f"randwire_{graph}", doc, text)
    write_text(out, text)
    click.echo(f"wrote {out}")

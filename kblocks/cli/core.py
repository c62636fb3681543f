"""Core commands: summary, build, plot."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from kblocks.cli.app import main
from kblocks.cli.options import parse_assignments
from kblocks.common.errors import KBlocksError


def _shape(text):
    if text is None:
        return None
    try:
        dims = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise KBlocksError(f"--input-shape takes sizes like 32,32,3, got {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise KBlocksError(f"--input-shape takes positive sizes like 32,32,3, got {text!r}")
    return dims


def _merge_variables(fn):
    """Fold NAME=VALUE words after the architecture (as in --set N=2 M=3) into --set."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, more_variables=(), variables=(), **kwargs):
        return fn(*args, variables=tuple(variables) + tuple(more_variables), **kwargs)

    return wrapper


def architecture_options(fn):
    """The options every command that compiles an architecture takes; the command receives one
    ``variables`` tuple holding both --set values and NAME=VALUE words after the architecture."""
    fn = _merge_variables(fn)
    fn = click.option("--set", "variables", multiple=True, metavar="NAME=VALUE",
                      help="Bind variables: --set N=2 M=3 K=1 (values may follow one --set).")(fn)
    fn = click.option("--blocks", type=click.Path(dir_okay=False), default=None,
                      help="YAML file with extra named blocks.")(fn)
    fn = click.option("--classes", type=click.IntRange(min=1), default=None,
                      help="Number of classes (units of a bare final FC).")(fn)
    fn = click.option("--input-shape", default=None, metavar="H,W,C",
                      help="Input shape, e.g. 32,32,3 (overrides a YAML input).")(fn)
    fn = click.argument("more_variables", nargs=-1, metavar="[NAME=VALUE]...")(fn)
    return click.argument("architecture")(fn)


def compile_kwargs(input_shape, classes, blocks, variables):
    return dict(input_shape=_shape(input_shape), classes=classes, blocks=blocks, **parse_assignments(variables))


def atomic_target(path: Path):
    """A temporary path in the same folder; ``os.replace`` it onto ``path`` when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@main.command()
@architecture_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--text", "show_text", is_flag=True, help="Also print the canonical expanded text.")
def summary(architecture, input_shape, classes, blocks, variables, as_json, show_text):
    """Per-layer table: shapes, parameters, activation memory, MACs, receptive field."""
    import kblocks
    from kblocks.lang.table import Summary

    kwargs = compile_kwargs(input_shape, classes, blocks, variables)
    graph = kblocks.compile(architecture, **kwargs)
    s = Summary(kblocks.analyse(graph))
    if as_json:
        import json

        click.echo(json.dumps(s.to_dict(), indent=1))
        return
    click.echo(str(s))
    if show_text:
        click.echo("\n" + graph.canonical_text())


@main.command()
@architecture_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to save the model (.keras).")
def build(architecture, input_shape, classes, blocks, variables, output):
    """Build the Keras model and save it as a .keras file."""
    import kblocks

    out = Path(output)
    if out.suffix != ".keras":
        raise KBlocksError(f"-o {output}: the file name must end in .keras (for SavedModel use "
                           f"'kblocks export')")
    from kblocks.common.saving import save_model

    model = kblocks.build(architecture, **compile_kwargs(input_shape, classes, blocks, variables))
    save_model(model, out)  # atomic: a temporary file, fsync, os.replace
    click.echo(f"saved {out} ({model.count_params():,} params)")


@main.command()
@architecture_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG (or SVG/PDF) file to write.")
def plot(architecture, input_shape, classes, blocks, variables, output):
    """Draw the layer graph as a picture (boxes with shapes; branches side by side)."""
    import kblocks
    from kblocks.lang.plot import plot_graph

    graph = kblocks.compile(architecture, **compile_kwargs(input_shape, classes, blocks, variables))
    out = Path(output)
    tmp = atomic_target(out)
    try:
        plot_graph(graph, tmp, fmt=out.suffix.lstrip(".") or "png")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    click.echo(f"wrote {out}")

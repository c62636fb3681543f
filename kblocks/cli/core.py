"""Core commands: summary, build, plot."""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import click

from kblocks.cli.app import main
from kblocks.cli.options import parse_assignments
from kblocks.common.atomic import atomic_path
from kblocks.common.errors import KBlocksError
from kblocks.common.files import check_output_path


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
    @functools.wraps(fn)
    def wrapper(*args, more_variables=(), variables=(), **kwargs):
        return fn(*args, variables=tuple(variables) + tuple(more_variables), **kwargs)

    return echo_warnings(wrapper)


def echo_warnings(fn):
    """Run a command printing each :class:`~kblocks.lang.lint.KBlocksWarning` (a text that compiles
    but is probably not what was meant) as ``warning: ...`` lines on stderr, once each; other
    Python warnings are shown as Python shows them."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kblocks.lang.lint import KBlocksWarning

        shown, seen = warnings.showwarning, set()

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, KBlocksWarning):
                return shown(message, category, filename, lineno, file, line)
            for text in str(message).splitlines():
                if text not in seen:  # a text compiled again (train, search trials): once
                    seen.add(text)
                    click.echo(f"warning: {text}", err=True)

        with warnings.catch_warnings():
            warnings.filterwarnings("always", category=KBlocksWarning)
            warnings.showwarning = show
            return fn(*args, **kwargs)

    return wrapper


#: What the ARCHITECTURE (SOURCE, MODEL) argument of each command takes, said when it names a
#: file the command cannot read or looks like a path that is not there.
TAKES = {
    "summary": "architecture text, a YAML file (.yaml), a zoo name or a .keras model file",
    "plot": "architecture text, a YAML file (.yaml), a zoo name or a .keras model file",
    "export": "architecture text, a YAML file (.yaml), a zoo name or a .keras model file",
    "build": "architecture text, a YAML file (.yaml) or a zoo name",
    "train": "architecture text, a YAML file (.yaml) or a zoo name",
    "search": "a search space: architecture text with {placeholders} or a YAML file (.yaml)",
    "inspect": "a .keras model file, or architecture text, a YAML file or a zoo name (with "
               "--weights)",
    "evaluate": "a .keras model file",
}

_MODEL_COMMANDS = {"summary", "plot", "export", "inspect", "evaluate"}  # they read .keras files


def check_source(value, command: str, *, what: str = "ARCHITECTURE") -> None:
    """Refuse, before any work, an argument of ``command`` that names a file it cannot read
    (``old.h5``, ``notes.txt``) or looks like a path that is not there (``runs/x/best.keras``):
    the message says what the command takes, instead of a parse error at a ``/`` or ``.``.

    Raises:
        KBlocksError: naming the argument, what it got and what the command takes.
    """
    from kblocks.lang.parser import looks_like_path

    if value is None:
        return
    text, takes = str(value).strip(), TAKES[command]
    low = text.lower()
    if command == "evaluate":
        if low.endswith(".keras") or not (looks_like_path(text) or is_file_path(text)):
            return  # a .keras file is checked when it is loaded
    elif not looks_like_path(text) or low.endswith((".yaml", ".yml")):
        return  # architecture text, or a YAML file the language reads (or says is missing)
    elif low.endswith(".keras") and command in _MODEL_COMMANDS:
        return
    head = f"{what} {text}"
    hint = None
    if low.endswith(".weights.h5"):
        msg = f"{head} holds weights only, no architecture; kblocks {command} takes {takes}"
        hint = ("give the architecture and --weights FILE" if command == "inspect" else
                "give the architecture and --transfer FILE" if command == "train" else
                "give the .keras model file saved with it")
    elif low.endswith((".h5", ".hdf5")):
        msg = f"{head}: HDF5 model files (Keras 2's .h5) are not supported; kblocks {command} " \
              f"takes {takes}"
        hint = (f"convert it once in Python: keras.models.load_model({text!r}).save('model.keras')"
                + (", then pass --transfer model.keras" if command == "train" else
                   ", then pass the .keras file"))
    elif low.endswith(".keras"):
        msg = f"{head} is a model file; kblocks {command} takes {takes}"
        hint = f"to train from a saved model: --transfer {text}" if command == "train" else None
    elif os.path.isdir(text):
        msg = f"{head} is a folder; kblocks {command} takes {takes}"
        if os.path.isfile(os.path.join(text, "best.keras")) and command in _MODEL_COMMANDS:
            hint = f"a run folder's model is {os.path.join(text, 'best.keras')}"
    elif os.path.exists(text):
        msg = f"{head}: kblocks {command} does not read this kind of file; it takes {takes}"
        if command != "evaluate":
            hint = (f"for architecture text kept in a file, pass its contents (\"$(cat {text})\") "
                    f"or put it under network: in a .yaml file")
    else:
        msg = f"{head} does not exist (and is not architecture text); kblocks {command} takes {takes}"
    raise KBlocksError(msg, hint=hint)


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
    """The keyword arguments of ``kblocks.compile``/``build`` for the architecture options.

    ``--set`` values go to ``variables=`` (so a text may name a variable ``name`` or ``blocks``
    without reaching the build argument of that name), except ``--set classes=N``, which is the
    class count (the text's ``classes``) and clashes with ``--classes`` given too (issue 20)."""
    assigned = parse_assignments(variables)
    if "classes" in assigned:
        value = assigned.pop("classes")
        if classes is not None:
            raise KBlocksError(f"the number of classes is given twice: --classes {classes} and "
                               f"--set classes {value}", what="--set",
                               hint="give the number of classes once (--classes N)")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KBlocksError(f"--set classes={value!r}: the number of classes must be a "
                               f"positive whole number", what="--set")
        classes = value
    return dict(input_shape=_shape(input_shape), classes=classes, blocks=blocks, variables=assigned)


def is_file_path(value) -> bool:
    """Whether ``value`` (an argument that may be architecture text) names an existing path."""
    try:
        return bool(value) and "\n" not in str(value) and os.path.exists(value)
    except (OSError, ValueError):  # a name too long, a NUL byte: text, not a path
        return False


def check_output(path, suffixes, *, what="-o", overwrite=None, reads=()) -> Path:
    """Refuse an output path before any work: a wrong suffix (``-o M.keras`` for a PNG would
    turn the model into a picture), one of the files the command reads, a folder, or, where the
    command has ``--overwrite`` (``overwrite`` not None), an existing file without it, and a
    path under a file (``-o /etc/passwd/x.keras``: :func:`kblocks.common.files.check_output_path`)."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise KBlocksError(f"{what} {path}: the file name must end in {' or '.join(suffixes)}",
                           hint=f"e.g. {what} {out.with_suffix(suffixes[0]).name}")
    for source in reads:
        if is_file_path(source) and os.path.exists(out) and os.path.samefile(source, out):
            raise KBlocksError(f"{what} {path} is the file this command reads; writing it would "
                               f"destroy it", hint="give another output file name")
    check_output_path(out, what=what)  # a folder, or a folder on the path that is a file
    if overwrite is False and os.path.lexists(out):
        raise KBlocksError(f"{path} already exists; pass --overwrite to replace it")
    return out


@main.command()
@architecture_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--text", "show_text", is_flag=True, help="Also print the canonical expanded text.")
@click.option("--unsafe", is_flag=True,
              help="Load a .keras file even if it holds a Lambda layer, whose Python code then "
                   "runs: only for files you trust.")
def summary(architecture, input_shape, classes, blocks, variables, as_json, show_text, unsafe):
    """Per-layer table: shapes, parameters, activation memory, MACs, receptive field.

    ARCHITECTURE is architecture text, a YAML file, a zoo name or a .keras model file (any Keras
    model; one kblocks built shows its architecture text)."""
    import kblocks
    from kblocks.inspect.model_summary import load_model_file, names_model_file
    from kblocks.lang.table import Summary

    check_source(architecture, "summary")
    if names_model_file(architecture):
        model = load_model_file(architecture, unsafe=unsafe,
                                text_options=(input_shape, classes, blocks, variables))
        s = kblocks.summary(model)
        text = getattr(model, "kblocks_text", None)
    else:
        kwargs = compile_kwargs(input_shape, classes, blocks, variables)
        graph = kblocks.compile(architecture, **kwargs)
        s = Summary(kblocks.analyse(graph))
        text = graph.canonical_text()
    if as_json:
        import json

        click.echo(json.dumps(s.to_dict(), indent=1))
        return
    click.echo(str(s))
    if show_text:
        click.echo("\n" + (text or "(no architecture text: the model was not built by kblocks)"))


@main.command()
@architecture_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to save the model (.keras).")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def build(architecture, input_shape, classes, blocks, variables, output, overwrite):
    """Build the Keras model and save it as a .keras file."""
    import kblocks

    check_source(architecture, "build")
    if not output.endswith(".keras"):
        raise KBlocksError(f"-o {output}: the file name must end in .keras (for SavedModel use "
                           f"'kblocks export')")
    out = check_output(output, (".keras",), overwrite=overwrite, reads=(architecture,))
    from kblocks.common.saving import save_model

    model = kblocks.build(architecture, **compile_kwargs(input_shape, classes, blocks, variables))
    save_model(model, out)  # atomic: a temporary file, fsync, os.replace
    click.echo(f"saved {out} ({model.count_params():,} params)")


@main.command()
@architecture_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG (or SVG/PDF) file to write.")
@click.option("--unsafe", is_flag=True,
              help="Load a .keras file even if it holds a Lambda layer, whose Python code then "
                   "runs: only for files you trust.")
def plot(architecture, input_shape, classes, blocks, variables, output, unsafe):
    """Draw the layer graph as a picture (boxes with shapes; branches side by side).

    ARCHITECTURE is architecture text, a YAML file, a zoo name or a .keras model file."""
    import kblocks
    from kblocks.inspect.model_summary import load_model_file, names_model_file
    from kblocks.lang.plot import plot_graph

    check_source(architecture, "plot")
    out = check_output(output, (".png", ".svg", ".pdf"), reads=(architecture,))
    if names_model_file(architecture):
        s = kblocks.summary(load_model_file(architecture, unsafe=unsafe,
                                text_options=(input_shape, classes, blocks, variables)))
        graph = getattr(s, "calls", None) or s.graph  # a plain model's layer calls, or kblocks'
    else:
        graph = kblocks.compile(architecture, **compile_kwargs(input_shape, classes, blocks,
                                                               variables))
    with atomic_path(out) as tmp:
        plot_graph(graph, tmp, fmt=out.suffix.lstrip(".") or "png")
    click.echo(f"wrote {out}")

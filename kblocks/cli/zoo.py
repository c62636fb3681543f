"""Zoo and export commands: ``kblocks zoo`` lists the architecture files, ``kblocks export`` writes a
TensorFlow SavedModel for serving."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import click

from kblocks.cli.app import main
from kblocks.cli.core import architecture_options, compile_kwargs, is_file_path
from kblocks.common.errors import KBlocksError
from kblocks.common.files import writing

_HEAD = ("name", "family", "input", "params", "MACs", "source")
_SOURCE_WIDTH = 60


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def format_table(rows) -> str:
    """Rows of strings as an aligned text table (numbers right-aligned)."""
    rows = [_HEAD] + [tuple(r[:-1]) + (_fit(r[-1], _SOURCE_WIDTH),) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    right = {3, 4}

    def line(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [line(rows[0]), "-" * len(line(rows[0]))]
    return "\n".join(out + [line(r) for r in rows[1:]])


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def zoo(name, as_json):
    """List the zoo (name, family, params, MACs at the default input, source), or show NAME."""
    from kblocks import zoo as z

    items = [z.entry(name)] if name else z.entries()
    if as_json:
        import json

        click.echo(json.dumps([{"name": e.name, "family": e.family, "input": list(e.input_shape),
                                "classes": e.classes, "params": e.params, "trainable": e.trainable,
                                "macs": e.macs, "outputs": e.outputs, "source": e.source,
                                "reference": e.reference, "doc": e.doc} for e in items], indent=1))
        return
    if not name:
        click.echo(format_table(z.table_rows(items)))
        click.echo(f"\n{len(items)} networks; 'kblocks zoo NAME' shows one, "
                   f"'kblocks summary NAME' its layers.")
        return
    e = items[0]
    click.echo(f"{e.name} ({e.family})  {e.path}")
    click.echo(f"input {'x'.join(map(str, e.input_shape))}, classes {e.classes}, "
               f"{e.params:,} params ({e.trainable:,} trainable), {e.macs:,} MACs"
               + (f", {e.outputs} outputs" if e.outputs > 1 else ""))
    click.echo(f"source: {e.source}")
    if e.doc:
        click.echo(f"notes: {e.doc}")
    click.echo("\n" + e.network)


#: what ``model.export`` writes in a SavedModel folder; ``--overwrite`` replaces nothing else
SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb"}


def check_export_target(path, *, overwrite: bool, reads=()) -> Path:
    """Refuse an export folder before any work: an existing one without ``overwrite``, a file,
    and with ``overwrite`` anything but a SavedModel folder (a run folder, the folder holding the
    .keras file being exported)."""
    target = Path(path)
    if os.path.lexists(target) and not overwrite:
        raise KBlocksError(f"{target} already exists; pass --overwrite to replace it")
    if os.path.lexists(target) and (target.is_symlink() or not target.is_dir()):
        raise KBlocksError(f"{target} exists and is not a folder; a SavedModel is a folder")
    if not target.is_dir():
        return target
    for source in reads:
        if is_file_path(source) and Path(source).resolve().is_relative_to(
                target.resolve()):
            raise KBlocksError(f"{target} holds {source}, the model being exported; --overwrite "
                               f"would destroy it", hint="export to another folder")
    foreign = sorted(p.name for p in target.iterdir() if p.name not in SAVED_MODEL_ENTRIES)
    if foreign:
        listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise KBlocksError(f"{target} is not a SavedModel folder (it holds {listed}); "
                           f"--overwrite replaces only a SavedModel kblocks exported",
                           hint="export to a new or empty folder")
    return target


def export_saved_model(model, path, *, overwrite: bool = False, reads=()) -> Path:
    """Write ``model`` as a TensorFlow SavedModel at ``path`` with ``model.export``, atomically.

    The export goes to a temporary folder next to ``path`` and is renamed onto it only when
    complete, so ``path`` never holds half a model. An existing ``path`` is an error unless
    ``overwrite`` is true; then it is replaced and the old folder removed after the rename.
    """
    target = check_export_target(path, overwrite=overwrite, reads=reads)
    kept = f"{target} still holds the previous SavedModel" if target.exists() else None
    with writing(target, what="the SavedModel", kept=kept):  # a full disk: one line, exit 2
        try:
            return _export_into(model, target)
        except OSError:
            raise
        except Exception as err:  # TensorFlow words a full disk its own way
            if "No space left on device" not in str(err):
                raise
            raise OSError(errno.ENOSPC, "No space left on device") from None


def _export_into(model, target: Path) -> Path:
    """:func:`export_saved_model` once the target is checked: a temporary folder, renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


@main.command()
@architecture_options
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder to write the SavedModel to.")
@click.option("--overwrite", is_flag=True, help="Replace an existing folder.")
@click.option("--unsafe", is_flag=True,
              help="Load a .keras ARCHITECTURE file even if it holds a Lambda layer, whose Python "
                   "code then runs: only for files you trust.")
def export(architecture, input_shape, classes, blocks, variables, output, overwrite, unsafe):
    """Build ARCHITECTURE (text, YAML, zoo name, or a saved .keras file) and write a TensorFlow
    SavedModel for serving (tf.saved_model.load(path).serve(x)).

    A .keras file loads with safe_mode (kblocks.common.saving.load_model): one with a Lambda layer is
    refused unless --unsafe."""
    import kblocks

    try:
        import tensorflow  # noqa: F401  model.export writes a TensorFlow SavedModel
    except ModuleNotFoundError:
        raise KBlocksError("kblocks export needs TensorFlow (pip install 'kblocks[tf]')") from None
    check_export_target(output, overwrite=overwrite, reads=(architecture,))
    source = Path(architecture)
    if architecture.endswith(".keras") and "\n" not in architecture:
        if input_shape or classes or blocks or variables:
            raise KBlocksError(f"{architecture} is a saved model: --input-shape, --classes, "
                               f"--blocks and --set do not apply to it")
        if not source.is_file():
            raise KBlocksError(f"model file {architecture!r} does not exist")
        from kblocks.common.saving import load_model  # refuses a Lambda layer unless --unsafe

        model = load_model(source, compile=False, unsafe=unsafe)
    else:
        model = kblocks.build(architecture, **compile_kwargs(input_shape, classes, blocks, variables))
    target = export_saved_model(model, output, overwrite=overwrite, reads=(architecture,))
    click.echo(f"exported {target} ({model.count_params():,} params); serve with "
               f"tf.saved_model.load({str(target)!r}).serve(x)")
    from kblocks.lang.conventions import assumed_note, conventions

    conv = conventions(model)
    click.echo(f"serve() takes {conv['input']} and returns {conv['output']}")
    if assumed_note(conv):
        click.echo(f"note: {assumed_note(conv)}", err=True)

"""Zoo and export commands: ``kblocks zoo`` lists the architecture files, ``kblocks export`` writes a
TensorFlow SavedModel, a TFLite or an ONNX file for serving (:mod:`kblocks.training.export`)."""
from __future__ import annotations

from pathlib import Path

import click

from kblocks.cli.app import main
from kblocks.cli.core import architecture_options, check_source, compile_kwargs
from kblocks.common.errors import KBlocksError
# The export logic is the library's; SAVED_MODEL_ENTRIES and export_saved_model stay importable here.
from kblocks.training.export import (FORMATS, SAVED_MODEL_ENTRIES,  # noqa: F401
                                     check_export_target, export_saved_model)

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
                                "macs": e.macs, "outputs": e.outputs,
                                "inference_params": e.inference_params,
                                "inference_macs": e.inference_macs, "source": e.source,
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
    if e.outputs > 1:
        click.echo(f"inference (main output): {e.inference_params:,} params "
                   f"({e.params:,} with AUX heads), {e.inference_macs:,} MACs "
                   f"({e.macs:,} with AUX heads); the AUX heads are for training only")
    click.echo(f"source: {e.source}")
    if e.doc:
        click.echo(f"notes: {e.doc}")
    click.echo("\n" + e.network)


@main.command()
@architecture_options
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Where to write: a folder for savedmodel, NAME.tflite or NAME.onnx for the others.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="savedmodel", show_default=True,
              help="savedmodel (TensorFlow serving), tflite (LiteRT, TensorFlow's converter) or "
                   "onnx (tf2onnx; pip install 'kblocks[onnx]').")
@click.option("--no-check", is_flag=True,
              help="Skip the parity check (the model and the artifact on the same 4 images).")
@click.option("--overwrite", is_flag=True, help="Replace an existing artifact of the same format.")
@click.option("--unsafe", is_flag=True,
              help="Load a .keras ARCHITECTURE file even if it holds a Lambda layer, whose Python "
                   "code then runs: only for files you trust.")
def export(architecture, input_shape, classes, blocks, variables, output, fmt, no_check, overwrite,
           unsafe):
    """Build ARCHITECTURE (text, YAML, zoo name, or a saved .keras file) and export it for serving:
    a TensorFlow SavedModel (tf.saved_model.load(path).serve(x)), a TFLite file or an ONNX file.

    The artifact is run on 4 random images beside the Keras model and the largest difference
    printed (parity); over 1e-4 (relative to the outputs' scale) the command fails with exit code
    2 and keeps the artifact. The serving signature (input name, dtype, shape and range; output
    logits or probabilities) is printed.

    A .keras file loads with safe_mode (kblocks.common.saving.load_model): one with a Lambda layer is
    refused unless --unsafe."""
    import kblocks
    from kblocks.training.export import export_model

    try:
        import tensorflow  # noqa: F401  every format is written through TensorFlow
    except ModuleNotFoundError:
        raise KBlocksError("kblocks export needs TensorFlow (pip install 'kblocks[tf]')") from None
    check_source(architecture, "export")
    check_export_target(output, overwrite=overwrite, reads=(architecture,), format=fmt)
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
    report = export_model(model, output, format=fmt, check=not no_check, overwrite=overwrite,
                          reads=(architecture,))
    for line in report.lines():
        click.echo(line)
    if report.note:
        click.echo(f"note: {report.note}", err=True)

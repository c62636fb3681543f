"""``kblocks train`` and ``kblocks evaluate``."""
from __future__ import annotations

import json
import sys

import click

from kblocks.cli.app import main
from kblocks.cli.core import check_source, echo_warnings
from kblocks.cli.options import parse_assignments, train_config_values, train_options
from kblocks.common.errors import ConfigError

MAX_RECORD_BYTES = 16 << 20  #: a run.json read by evaluate --run


def _command_line(ctx) -> list:
    """The command as typed: ``kblocks train SOURCE`` and every option given on the line."""
    from click.core import ParameterSource

    argv = ["kblocks", ctx.info_name or "train"]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):
            argv.append(str(value))
            continue
        flag = max(param.opts, key=len)
        if param.is_flag and not param.secondary_opts:
            argv.append(flag)
        elif param.is_flag:
            argv.append(flag if value else max(param.secondary_opts, key=len))
        elif param.multiple:
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def _print_table(title: str, rows: dict):
    from rich.console import Console
    from rich.table import Table

    from kblocks.training import format_value

    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        if isinstance(value, dict):
            continue
        table.add_row(str(key), format_value(value, str(key)))
    Console(soft_wrap=True).print(table)


@main.command("train", context_settings={"show_default": True})
@click.argument("source", required=False)
@train_options("train")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Architecture variable (repeatable).")
@click.option("--out", default=None, help="Run folder [default: runs/<time>-<name>].")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@click.option("--no-tensorboard", is_flag=True, help="Do not write TensorBoard logs.")
@click.option("-q", "--quiet", is_flag=True, help="No per-epoch progress.")
@click.option("--resume", "resume", default=None, metavar="RUN",
              help="Continue the run in folder RUN from its last.keras (weights and optimizer "
                   "state) with its own options; --epochs N trains longer.")
@click.option("--unsafe", is_flag=True,
              help="Load a --transfer (or resumed) .keras file even if it holds a Lambda layer, "
                   "whose Python code then runs: only for files you trust.")
@click.option("--bn-momentum", "bn_momentum", default="auto", metavar="auto|keep|M",
              help="Momentum of the BatchNormalization layers the text leaves at Keras' 0.99: "
                   "auto = from the run's steps (0.9 for a short run, 0.99 from 2000 steps), "
                   "keep = 0.99, or a number.")
@echo_warnings
def train_command(source, sets, out, overwrite, no_tensorboard, quiet, resume, unsafe, bn_momentum,
                  **options):
    """Train SOURCE (architecture text, YAML file or zoo name) on --data.

    \b
    kblocks train "[[CONV(32)-RELU]*2-POOL]*2-FC(10)" --data digits --epochs 10
    kblocks train lenet5 --data digits --epochs 20
    kblocks train --transfer runs/a/best.keras --data images:photos/ --freeze-until backbone
    kblocks train --resume runs/a            # after Ctrl-C: continue from the last epoch

    Ctrl-C stops at once but never in the middle of writing a checkpoint; the run folder then
    holds the last completed epoch and the command exits with code 130.
    """
    from kblocks.training.runfolder import default_run_dir
    from kblocks.training import TrainConfig, train

    ctx = click.get_current_context()
    data, transfer = options["data"], options["transfer"]
    if resume is not None:
        _resume(ctx, resume, options["epochs"], quiet, unsafe, no_tensorboard)
        return
    if data is None:
        raise ConfigError("--data is required", what="--data",
                          hint="e.g. --data digits, --data cifar10:PATH, --data images:DIR")
    check_source(source, "train", what="SOURCE")
    if source is None and transfer is None:
        raise ConfigError("no architecture given", what="SOURCE",
                          hint="give architecture text, a YAML file or a zoo name, or --transfer "
                               "MODEL.keras")
    config = TrainConfig(**train_config_values(options), variables=parse_assignments(sets),
                         tensorboard=not no_tensorboard, verbose=0 if quiet else "auto",
                         unsafe=unsafe, bn_momentum=bn_momentum)
    name = source or transfer or "run"
    run_dir = out or str(default_run_dir(name if len(name) < 40 else name.split("-")[0]))
    click.echo(f"kblocks train: {name}\n  data {data}, run folder {run_dir}", err=False)
    try:
        result = train(source, config, out=run_dir, overwrite=overwrite,
                       command=_command_line(ctx))
    except KeyboardInterrupt as err:
        _interrupted(err, run_dir)
    _report(result)


def _interrupted(err, run_dir):
    """Ctrl-C: say what the run folder holds and how to resume; exit 130 (128 + SIGINT)."""
    from pathlib import Path

    from kblocks.training import TrainingInterrupted

    if isinstance(err, TrainingInterrupted):
        click.echo(f"\n{err.message()}", err=True)
    elif (Path(run_dir) / "run.json").exists():  # before or after the epochs (loading, scoring)
        try:
            done = int(json.loads((Path(run_dir) / "state.json").read_text())["epochs_done"])
        except (OSError, ValueError, KeyError, TypeError):
            done = 0
        click.echo(f"\ninterrupted: {run_dir} holds {done} completed epoch(s); resume with: "
                   f"kblocks train --resume {run_dir}", err=True)
    else:
        click.echo("\ninterrupted before the run folder was written; nothing to resume", err=True)
    sys.exit(130)


def _resume(ctx, run_dir, epochs, quiet, unsafe, no_tensorboard):
    """``kblocks train --resume RUN``: only --epochs, --quiet, --unsafe and --no-tensorboard may
    accompany it; the rest comes from the run's run.json."""
    from click.core import ParameterSource

    from kblocks.training import train

    allowed = {"resume", "epochs", "quiet", "unsafe", "no_tensorboard"}
    given = sorted(p.opts[0] if p.opts else p.name for p in ctx.command.params
                   if ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE
                   and p.name not in allowed)
    if given:
        raise ConfigError(f"--resume continues a run with its own options; drop {', '.join(given)}",
                          what="--resume", hint="only --epochs N (to train longer), -q, --unsafe "
                                                "and --no-tensorboard may be given")
    overrides = {"unsafe": unsafe}
    if ctx.get_parameter_source("epochs") == ParameterSource.COMMANDLINE:
        overrides["epochs"] = epochs
    if quiet:
        overrides["verbose"] = 0
    if no_tensorboard:
        overrides["tensorboard"] = False
    click.echo(f"kblocks train --resume {run_dir}")
    try:
        result = train(None, None, out=run_dir, resume=True, command=_command_line(ctx),
                       **overrides)
    except KeyboardInterrupt as err:
        _interrupted(err, run_dir)
    _report(result)


def _report(result):
    info = result.info
    click.echo(f"  seed {result.seed}, precision {info['precision']}, "
               f"{info['placement']['replicas']} device(s)")
    _print_table("final metrics (val from best.keras)", result.final)
    click.echo(f"run folder: {result.run_dir}")


@main.command("evaluate", context_settings={"show_default": True})
@click.argument("model_path", metavar="MODEL")
@click.option("--data", "data", default=None, help="Data source, as for kblocks train.")
@click.option("--run", "run_dir", default=None,
              help="A run folder: take --data, --val-split, --seed and --subset from its run.json "
                   "(so the model is scored on the validation split it was selected on).")
@click.option("--data-dir", default=None, help="Folder of prepared TFDS data sets (tfds:).")
@click.option("--image-size", default=None, help="Resize images:/tfds: data to H or HxW.")
@click.option("--val-split", default=None,
              help="Evaluate only on the validation split a training run with the same "
                   "--val-split and --seed used.")
@click.option("--seed", default=0, type=int, help="Seed of that split.")
@click.option("--subset", default=None, help="A stratified subset (count or fraction).")
@click.option("--batch-size", default=256, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--unsafe", is_flag=True,
              help="Load MODEL even if it holds a Lambda layer, whose Python code then runs: only "
                   "for files you trust.")
def evaluate_command(model_path, data, run_dir, data_dir, image_size, val_split, seed, subset,
                     batch_size, as_json, unsafe):
    """Accuracy and loss of a saved MODEL (.keras) on --data.

    \b
    kblocks evaluate runs/cifar/best.keras --data cifar10:train.npz --val-split 5000 --seed 1
    kblocks evaluate runs/cifar/best.keras --run runs/cifar
    """
    from pathlib import Path

    from kblocks.common.files import read_text
    from kblocks.training import evaluate
    from kblocks.training.config import check_seed
    from kblocks.training.data import parse_image_size

    check_source(model_path, "evaluate", what="MODEL")
    if run_dir is not None:
        record_path = Path(run_dir) / "run.json"
        if not record_path.exists():
            raise ConfigError(f"{record_path} does not exist", what="--run",
                              hint="give the folder a kblocks train run wrote")
        try:
            record = json.loads(read_text(record_path, what="run record", limit=MAX_RECORD_BYTES))
            cfg = record["config"]
            if not isinstance(cfg, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):
            raise ConfigError(f"{record_path} is not a kblocks run record", what="--run") from None
        data = data or cfg.get("data")
        data_dir = data_dir or cfg.get("data_dir")
        image_size = image_size or cfg.get("image_size")
        if val_split is None and not cfg.get("val_data"):
            val_split = cfg.get("val_split")
            seed = record.get("seed", seed)
            subset = subset or cfg.get("subset")
        elif cfg.get("val_data") and data is None:
            data = cfg["val_data"]
    if not data:
        raise ConfigError("no data given", what="--data",
                          hint="pass --data SOURCE or --run RUN_FOLDER")
    seed = check_seed(seed, "--seed")  # options (also those from --run) checked before loading
    parse_image_size(image_size)

    scores = evaluate(model_path, data, data_dir=data_dir, image_size=image_size,
                      val_split=val_split, seed=seed, batch_size=batch_size, subset=subset,
                      unsafe=unsafe)
    from kblocks.lang.conventions import assumed_note

    if assumed_note(scores["conventions"]):
        click.echo(f"note: {assumed_note(scores['conventions'])}", err=True)
    if as_json:
        click.echo(json.dumps(scores))
        return
    click.echo(f"model: input {scores['conventions']['input']}; outputs "
               f"{scores['conventions']['output']}")
    rows = {"samples": scores["samples"], "loss": scores["loss"], "accuracy": scores["accuracy"]}
    if "mean_iou" in scores:  # a per-pixel (segmentation) model: scored on every pixel
        rows = {"samples": scores["samples"], "pixels": scores["pixels"], "loss": scores["loss"],
                "pixel accuracy": scores["accuracy"], "mean IoU": scores["mean_iou"]}
        rows.update({f"IoU {name}": value for name, value in scores["per_class_iou"].items()
                     if value is not None})
    _print_table(f"{scores['model']} on {scores['data']}", rows)

"""``kblocks search`` (mini-NAS over a space with placeholders) and ``kblocks report``."""
from __future__ import annotations

import sys

import click

from kblocks.cli.app import main
from kblocks.cli.core import check_source, echo_warnings
from kblocks.cli.options import number, parse_assignments, train_config_values, train_options
from kblocks.common.errors import ConfigError

_TUNERS = click.Choice(["random", "grid", "bayesian", "hyperband", "evolution", "pareto"],
                       case_sensitive=False)


@main.command("search", context_settings={"show_default": True})
@click.argument("space", required=False)
@click.option("--blocks", default=None, type=click.Path(dir_okay=False),
              help="YAML file with named blocks (e.g. kblocks/search/spaces/blocks.yaml).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Bind variables of the space (repeatable).")
@click.option("--tuner", "tuner_kind", default=None, type=_TUNERS,
              help="[default: random; pareto with --minimize]")
@click.option("--trials", default=None, type=int,
              help="Architectures to train (random, grid, bayesian, evolution; a cap for "
                   "hyperband).")
@click.option("--max-epochs", default=None, type=int,
              help="Hyperband: the most epochs one architecture trains.")
@click.option("--factor", default=3, type=int, help="Hyperband: reduction factor.")
@click.option("--population", default=None, type=int,
              help="Evolution, pareto: population size P [default: 20].")
@click.option("--sample-size", default=None, type=int,
              help="Evolution: tournament sample S [default: P/4, at least 2; pareto: 2].")
@click.option("--initial-points", default=None, type=int,
              help="Bayesian: random trials before the model [Keras Tuner's default].")
@click.option("--objective", default="val_accuracy", help="The metric to maximise.")
@click.option("--minimize", default=None, type=click.Choice(["macs", "params", "latency"]),
              help="Accuracy against cost: a Pareto search (NSGA-II) that also minimises this.")
@click.option("--prescreen", default=None, metavar="SCORE:K",
              help="Each trial: score K candidates without training (naswot or synflow) and "
                   "train the best.")
@click.option("--max-params", default=None, help="Reject architectures with more parameters.")
@click.option("--max-macs", default=None, help="Reject architectures with more multiply-adds.")
@click.option("--max-activation-mb", default=None,
              help="Reject architectures with more activation memory per image (MiB).")
@train_options("search")
@click.option("--out", default=None, help="Search folder [default: runs/search-<time>].")
@click.option("--resume", is_flag=True, help="Continue the search in --out.")
@click.option("--time-budget", default=None, type=float,
              help="Seconds: start no new trial after this (continue later with --resume).")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty --out.")
@click.option("--isolate", is_flag=True,
              help="Train each trial in a child process: a crash or a hang fails that trial only.")
@click.option("--trial-timeout", default=None, type=float,
              help="With --isolate: seconds before a trial's process is killed (trial failed).")
@click.option("--distributed", default=None, type=click.Choice(["chief", "worker"]),
              help="Keras Tuner chief/worker mode.")
@click.option("--port", default=8000, type=int, help="Chief: port to listen on.")
@click.option("--bind", default="0.0.0.0", help="Chief: address to listen on.")
@click.option("--chief", "chief_address", default=None, metavar="HOST:PORT",
              help="Worker: where the chief listens.")
@click.option("--worker-id", default=None,
              help="Worker: a stable id (a restarted worker with the same id resumes its trial).")
@click.option("--chief-timeout", default=300.0, type=float,
              help="Worker: seconds to wait for the chief before giving up.")
@click.option("-v", "--verbose", is_flag=True, help="Per-epoch lines inside each trial.")
@click.option("--no-report", is_flag=True, help="Do not write the report at the end.")
@echo_warnings
def search_command(space, blocks, sets, tuner_kind, trials, max_epochs, factor, population,
                   sample_size, initial_points, objective, minimize, prescreen, max_params,
                   max_macs, max_activation_mb, out, resume, time_budget, overwrite, isolate,
                   trial_timeout, distributed, port, bind, chief_address, worker_id, chief_timeout,
                   verbose, no_report, **options):
    """Search the architectures of SPACE (text with {placeholders} or a YAML file) on --data.

    \b
    kblocks search "[[CONV({f#: 16|32})-RELU]*{n#: 1..2}-POOL?]*{m: 1..3}-FC(classes)" \\
        --data digits --tuner random --trials 10 --out runs/s
    kblocks search kblocks/search/spaces/cs231n_pattern.yaml --data digits --tuner evolution --trials 30
    kblocks search SPACE --data digits --trials 30 --minimize macs --isolate --trial-timeout 600
    kblocks search ... --out runs/s --resume        # after a crash or Ctrl-C
    kblocks report runs/s
    """
    from kblocks.training.runfolder import default_run_dir
    from kblocks.search.budget import Budget
    from kblocks.search.runner import SearchConfig, SearchFailed, run_search
    from kblocks.training import TrainConfig

    check_source(space, "search", what="SPACE")
    if prescreen is not None:  # a bad SCORE:K is refused before any data is read
        from kblocks.search.prescreen import parse

        prescreen = parse(prescreen).text()
    if out is None:
        if resume:
            raise ConfigError("--resume needs --out (the folder of the search to continue)",
                              what="--resume")
        out = str(default_run_dir("search"))
    if space is not None and options["data"] is None:
        raise ConfigError("no data given", what="--data", hint="e.g. --data digits")
    values = train_config_values(options)
    values["data"] = values["data"] or "digits"
    train = TrainConfig(**values, tensorboard=False, verbose=2 if verbose else 0)
    budget = Budget(number(max_params, "--max-params"), number(max_macs, "--max-macs"),
                    number(max_activation_mb, "--max-activation-mb"))
    cfg = SearchConfig(
        space=space, blocks=blocks, variables=parse_assignments(sets), train=train, tuner=tuner_kind,
        trials=trials, max_epochs=max_epochs, factor=factor, population=population,
        sample_size=sample_size, initial_points=initial_points, prescreen=prescreen,
        budget=budget, out=out,
        resume=resume, overwrite=overwrite, distributed=distributed, port=port, bind=bind,
        chief=chief_address, worker_id=worker_id, chief_timeout=chief_timeout,
        verbose=2 if verbose else 0,
        report=not no_report, time_budget=time_budget, objective=objective, minimize=minimize,
        isolate=isolate, trial_timeout=trial_timeout)
    try:
        run_search(cfg, echo=click.echo, command=["kblocks"] + sys.argv[1:])
    except SearchFailed as err:  # the options were fine; no architecture trained (exit 1)
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; continue with: kblocks search --out {out} --resume", err=True)
        sys.exit(130)


@main.command("report")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--top", default=30, type=int, help="Rows of the leaderboard printed (0 = all).")
def report_command(folder, top):
    """Leaderboard, best.yaml, trials.csv and search.png of a search FOLDER."""
    from kblocks.search.report import write_report

    report = write_report(folder)
    click.echo(report.render(limit=top or None))
    click.echo(f"wrote {folder}/leaderboard.txt, trials.csv, search.png"
               + (", best.yaml" if report.best is not None else ""))

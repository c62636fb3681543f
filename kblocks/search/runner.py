"""One search, start to finish: the search folder, data, tuner, resume, distribution, report.

    from kblocks.search.runner import SearchConfig, run_search
    run_search(SearchConfig(space="kblocks/search/spaces/cs231n_pattern.yaml", train=TrainConfig(data="digits"),
                            tuner="random", trials=10, out="runs/s"))

The search folder (``--out``) holds::

    search.json     what was searched and how (space, tuner, budget, training recipe, data, seed):
                    ``--resume`` and ``kblocks report`` rebuild everything from it
    kt/             the Keras Tuner project: oracle.json, trial_NN/trial.json, checkpoints
    report files    leaderboard.txt, trials.csv, best.yaml, search.png (kblocks.search.report)

Resuming reloads the Keras Tuner project: finished trials stay as they are, a trial that was
running when the search stopped is run again from its start, and the search goes on.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kblocks.common.errors import ConfigError, DataError, KBlocksError
from kblocks.common.folderlock import LOCK_NAME
from kblocks.search.budget import Budget
from kblocks.search.oracles import PARETO_TUNERS, TUNERS, write_json_atomic
from kblocks.search.record import FORMAT, SEARCH_FILE, load_record
from kblocks.search.tuner import PROJECT

#: what a search writes in its folder: all that ``--overwrite`` may remove
SEARCH_FOLDER_FILES = (SEARCH_FILE, PROJECT, "leaderboard.txt", "trials.csv", "best.yaml",
                       "search.png", "pareto.json")


class SearchFailed(KBlocksError):
    """The search ended and no trial completed (the CLI exits 1)."""


@dataclass
class SearchConfig:
    """Every option of ``kblocks search`` (the command line fills one of these)."""

    space: str | None = None  # architecture text with placeholders, or a YAML file
    blocks: str | None = None  # YAML file with extra named blocks
    variables: dict = field(default_factory=dict)
    train: object = None  # kblocks.training.TrainConfig: data, split, recipe of every trial
    tuner: str | None = None  # default: "pareto" with minimize=, else "random"
    trials: int | None = None
    objective: str = "val_accuracy"
    minimize: str | None = None  # "macs" | "params" | "latency": accuracy against cost (Pareto)
    max_epochs: int | None = None  # hyperband: the most epochs one model trains
    factor: int = 3  # hyperband
    hyperband_iterations: int = 1
    population: int | None = None  # evolution
    sample_size: int | None = None  # evolution
    initial_points: int | None = None  # bayesian
    prescreen: str | None = None  # "SCORE:K": train the best of K candidates (search.prescreen)
    budget: Budget = field(default_factory=Budget)
    out: str = "runs/search"
    resume: bool = False
    overwrite: bool = False
    distributed: str | None = None  # None | "chief" | "worker"
    port: int = 8000
    bind: str = "0.0.0.0"
    chief: str | None = None  # HOST:PORT, for a worker
    worker_id: str | None = None
    chief_timeout: float = 300.0  # worker: seconds to wait for the chief
    verbose: int = 0  # model.fit verbosity in a trial
    time_budget: float | None = None  # seconds: start no trial after this (resume goes on later)
    report: bool = True
    isolate: bool = False  # each trial in a child process (kblocks.search.isolate)
    trial_timeout: float | None = None  # isolate: seconds before a trial's process is killed


def _fingerprint(record: dict) -> dict:
    """What must not change between a search and its --resume."""
    train = dict(record["train"])
    for key in ("verbose", "tensorboard", "unsafe"):  # unsafe: never stored (older records had it)
        train.pop(key, None)
    tuner = {k: v for k, v in record["tuner"].items() if k != "trials"}  # may grow on resume
    tuner.setdefault("minimize", None)  # records from before --minimize
    return {"space": record["space"], "tuner": tuner, "budget": record["budget"],
            "train": train, "seed": record["seed"]}


def _describe_change(old: dict, new: dict) -> str:
    for key in old:
        if old[key] != new.get(key):
            if isinstance(old[key], dict) and isinstance(new.get(key), dict):
                for sub in sorted(set(old[key]) | set(new[key])):
                    if old[key].get(sub) != new[key].get(sub):
                        return f"{key}.{sub}: {old[key].get(sub)!r} then, {new[key].get(sub)!r} now"
            return f"{key}: {old[key]!r} then, {new.get(key)!r} now"
    return "nothing"


def _tuner_options(cfg: SearchConfig) -> dict:
    return {"kind": cfg.tuner.lower(), "trials": cfg.trials, "objective": cfg.objective,
            "max_epochs": cfg.max_epochs, "factor": cfg.factor,
            "hyperband_iterations": cfg.hyperband_iterations, "population": cfg.population,
            "sample_size": cfg.sample_size, "initial_points": cfg.initial_points,
            "minimize": cfg.minimize, **_prescreen_option(cfg)}


def _prescreen_option(cfg: SearchConfig) -> dict:
    """``{"prescreen": "naswot:8"}``, or nothing (so a record without it still resumes)."""
    if not cfg.prescreen:
        return {}
    from kblocks.search.prescreen import check_tuner, parse

    check_tuner(cfg.tuner)
    return {"prescreen": parse(cfg.prescreen, what="prescreen").text()}


def _check_options(cfg: SearchConfig):
    from kblocks.search.pareto import COSTS

    if cfg.minimize is not None and cfg.minimize not in COSTS:
        raise ConfigError(f"minimize= is one of {', '.join(COSTS)}, got {cfg.minimize!r}",
                          what="minimize", hint="e.g. minimize='macs'")
    if cfg.minimize is not None and cfg.tuner.lower() not in PARETO_TUNERS:
        raise ConfigError(f"the {cfg.tuner} tuner optimises {cfg.objective} alone; a search "
                          f"with minimize= uses the pareto tuner (or random, grid)",
                          what="tuner", hint="drop the tuner option, or use --tuner pareto")
    if cfg.tuner.lower() == "pareto" and cfg.minimize is None:
        raise ConfigError("the pareto tuner needs minimize= (macs, params or latency)",
                          what="minimize", hint="e.g. --minimize macs")
    if cfg.trial_timeout is not None and (cfg.trial_timeout <= 0 or not cfg.isolate):
        raise ConfigError(f"trial_timeout= ({cfg.trial_timeout}) needs isolate=True and a "
                          f"positive number of seconds", what="trial_timeout",
                          hint="add --isolate (a hung trial can only be stopped in a child "
                               "process)")
    if cfg.tuner.lower() not in TUNERS:
        raise ConfigError(f"unknown tuner {cfg.tuner!r}", what="tuner",
                          hint="use one of " + ", ".join(TUNERS))
    kind = cfg.tuner.lower()
    if cfg.trials is not None and cfg.trials < 1:
        raise ConfigError(f"trials must be at least 1, got trials={cfg.trials}", what="trials")
    if kind in ("random", "bayesian", "evolution", "pareto") and not cfg.trials:
        raise ConfigError(f"the {kind} tuner needs trials= (how many architectures to train)",
                          what="trials", hint="e.g. trials=20")
    if kind == "hyperband" and not cfg.max_epochs:
        raise ConfigError("hyperband needs max_epochs=", what="max_epochs",
                          hint="e.g. max_epochs=20")
    _prescreen_option(cfg)  # a bad SCORE:K is an error before any data is read
    if cfg.distributed not in (None, "chief", "worker"):
        raise ConfigError(f"distributed= is chief or worker, got {cfg.distributed!r}",
                          what="distributed")
    if cfg.distributed == "worker" and not cfg.chief:
        raise ConfigError("a worker needs chief=HOST:PORT (where the chief listens)",
                          what="chief", hint="e.g. chief=10.0.0.5:8000")
    if cfg.time_budget is not None and cfg.time_budget <= 0:
        raise ConfigError(f"time_budget= must be a positive number of seconds, got "
                          f"{cfg.time_budget}", what="time_budget")
    if cfg.distributed == "worker" and (cfg.overwrite):
        raise ConfigError("a worker never overwrites the search folder; only the chief may",
                          what="overwrite")


def _chief_address(text: str):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"chief= takes HOST:PORT, got {text!r}", what="chief",
                          hint="e.g. chief=127.0.0.1:8000")
    return host, int(port)


def _set_role(cfg: SearchConfig):
    """Keras Tuner's chief/worker environment variables for this process."""
    for key in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        os.environ.pop(key, None)
    if cfg.distributed == "chief":
        os.environ.update(KERASTUNER_TUNER_ID="chief", KERASTUNER_ORACLE_IP=cfg.bind,
                          KERASTUNER_ORACLE_PORT=str(cfg.port))
    elif cfg.distributed == "worker":
        host, port = _chief_address(cfg.chief)
        wid = cfg.worker_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        if "chief" in wid:
            raise ConfigError(f"a worker id may not contain 'chief', got {wid!r}",
                              what="worker_id")
        os.environ.update(KERASTUNER_TUNER_ID=wid, KERASTUNER_ORACLE_IP=host,
                          KERASTUNER_ORACLE_PORT=str(port))


def _prepare_folder(cfg: SearchConfig, record: dict, echo) -> dict:
    """Create or check the search folder; on --resume return the stored record."""
    out = Path(cfg.out)
    path = out / SEARCH_FILE
    if cfg.distributed == "worker":
        return record  # the chief owns the folder
    if path.exists() and cfg.resume:
        old = load_record(out)
        a, b = _fingerprint(old), _fingerprint(record)
        if a != b:
            raise ConfigError(f"the search in {out} was started with other options "
                              f"({_describe_change(a, b)})", what="resume",
                              hint="resume with the same options, or start a new out= folder")
        old["tuner"]["trials"] = record["tuner"]["trials"] or old["tuner"]["trials"]
        old["resumed"] = old.get("resumed", []) + [time.strftime("%Y-%m-%dT%H:%M:%S%z")]
        old["status"] = "running"
        write_json_atomic(path, old)
        return old
    if cfg.resume:
        raise ConfigError(f"{out} holds no search to continue", what="resume",
                          hint="drop resume=True to start a new search there")
    if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()) and \
            not (cfg.overwrite and path.exists()):
        if not path.exists():  # --overwrite removes only a search kblocks wrote
            raise ConfigError(f"{out} is not empty and holds no search (no {SEARCH_FILE}): "
                              f"kblocks will not write into it or remove what it holds",
                              what="out", hint="give a new or empty out= folder")
        raise ConfigError(f"{out} is not empty (it holds a search)", what="out",
                          hint="add resume=True to continue that search, overwrite=True to start "
                               "again, or give a new out= folder")
    if cfg.overwrite and path.exists():
        import shutil

        for name in SEARCH_FOLDER_FILES:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif os.path.lexists(target):
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return record


def _drop_ragged(x, y, batch_size: int):
    """Keep a whole number of batches, so one compiled train step serves every step."""
    n = len(x) - len(x) % batch_size if len(x) > batch_size else len(x)
    return x[:n], y[:n]


def run_search(cfg: SearchConfig, *, echo=print, command=None):
    """Run (or resume, or join) the search ``cfg`` describes; return the report (or None).

    The search folder is locked (:mod:`kblocks.common.folderlock`) from the first check to the last
    write, so a second search on it is refused ("... is in use by process N"); a worker of a
    distributed search does not take the lock: the chief is the folder's one writer. Raises
    :class:`SearchFailed` when the search ends with no completed trial."""
    if cfg.distributed == "worker":
        return _run_search(cfg, echo=echo, command=command)
    from kblocks.common import folderlock

    with folderlock.hold(cfg.out, what="search folder"):
        return _run_search(cfg, echo=echo, command=command)


@dataclass
class _Search:
    """What the phases of a search share (see :func:`_run_search`)."""

    cfg: SearchConfig
    train_cfg: object = None        # kblocks.training.TrainConfig, seed fixed
    seed: int = 1
    started: float = 0.0
    classes: int = 0
    space: object = None            # kblocks.search.space.SearchSpace
    record: dict = field(default_factory=dict)
    x: object = None                # training images and labels (a whole number of batches)
    y: object = None
    val: object = None              # validation ArrayData
    yv: object = None
    recipe: object = None           # kblocks.search.recipe.TrialRecipe
    tuner: object = None
    chief: tuple | None = None      # (host, port) of the chief, for a worker


def _run_search(cfg: SearchConfig, *, echo=print, command=None):
    """The phases of a search: data, space and folder; the trials' data and recipe; the tuner;
    the search itself (or serving it as chief, or working for one); its outcome and report."""
    run = _prepare(cfg, command, echo)
    _trial_data(run)
    _set_role(run.cfg)
    if run.cfg.distributed == "worker":
        from kblocks.search.distributed import join

        run.chief = _chief_address(run.cfg.chief)
        if not join(*run.chief, Path(run.cfg.out), run.cfg.chief_timeout, echo=echo):
            return None
    if run.cfg.distributed:
        from kblocks.search.distributed import quiet_condition_protos

        quiet_condition_protos()
    _make_tuner(run, echo)
    if not _search(run, echo):
        return None  # a worker: the chief keeps the record and writes the report
    return _outcome(run, echo)


def _prepare(cfg: SearchConfig, command, echo) -> _Search:
    """Options (from the folder on a bare ``--resume``), seed, data, the space, and the search
    folder with its record."""
    from kblocks.search.space import SearchSpace
    from kblocks.training import TrainConfig, prepare_data, set_seed
    from kblocks.training.data import check_fits

    started = time.time()
    if cfg.space is None:
        cfg = _from_folder(cfg)
    cfg = _with_tuner(cfg)
    _check_options(cfg)
    train_cfg = cfg.train or TrainConfig()
    seed = int(train_cfg.seed if train_cfg.seed is not None else 1)
    train_cfg = train_cfg.replace(seed=seed)
    set_seed(seed, train_cfg.deterministic)
    train, val = prepare_data(train_cfg, seed)
    if val is None:
        raise DataError("a search selects architectures on validation data; the split is empty",
                        what="val_split", hint="use e.g. val_split=0.1 or val_data=")
    space = SearchSpace(cfg.space, blocks=cfg.blocks, classes=train.num_classes,
                        input_shape=train.input_shape, variables=dict(cfg.variables))
    _check_output(space, train, check_fits)
    record = {
        "format": FORMAT, "kind": "kblocks-search", "space": space.to_dict(),
        "tuner": _tuner_options(cfg), "budget": cfg.budget.to_dict(), "train": train_cfg.to_record(),
        "seed": seed, "data": {"train": train.describe(), "val": val.describe()},
        "command": list(command) if command is not None else list(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running",
        "backend": _backend(),
        "isolation": {"isolate": bool(cfg.isolate), "trial_timeout": cfg.trial_timeout},
    }
    record = _prepare_folder(cfg, record, echo)
    return _Search(cfg=cfg, train_cfg=train_cfg, seed=seed, started=started,
                   classes=train.num_classes, space=space, record=record, x=train.x, y=train.y,
                   val=val)


def _trial_data(run: _Search):
    """Every trial's data (a whole number of batches, one-hot labels when the loss needs them)
    and its recipe."""
    from kblocks.search.recipe import TrialRecipe
    from kblocks.training import one_hot

    classes = run.classes
    run.x, run.y = _drop_ragged(run.x, run.y, int(run.train_cfg.batch_size))
    run.recipe = TrialRecipe.for_data(run.train_cfg, run.x, run.y, classes=classes,
                                      seed=run.seed, verbose=run.cfg.verbose)
    run.yv = run.val.y
    if run.recipe.one_hot:
        run.y, run.yv = one_hot(run.y, classes), one_hot(run.yv, classes)


def _make_tuner(run: _Search, echo):
    """The Keras Tuner tuner of the record's kind, with its oracle's own options."""
    from kblocks.search.tuner import make_tuner

    cfg, options = run.cfg, dict(run.record["tuner"])
    kind = options["kind"]
    oracle_options = {}
    if kind == "hyperband":
        oracle_options = dict(max_epochs=options["max_epochs"], factor=options["factor"],
                              hyperband_iterations=options["hyperband_iterations"])
    elif kind in ("evolution", "pareto"):
        oracle_options = dict(population_size=options["population"],
                              sample_size=options["sample_size"])
    elif kind == "bayesian" and options["initial_points"]:
        oracle_options = dict(num_initial_points=options["initial_points"])
    resuming = cfg.resume or cfg.distributed == "worker"
    isolation = None
    if cfg.isolate:
        from kblocks.search.isolate import Isolation

        isolation = Isolation(timeout=cfg.trial_timeout)
    run.tuner = make_tuner(run.space, kind, objective=options["objective"],
                           max_trials=options["trials"], directory=str(cfg.out),
                           project_name=PROJECT, overwrite=not resuming, seed=run.seed,
                           budget=Budget(**run.record["budget"]), recipe=run.recipe, echo=echo,
                           minimize=options.get("minimize"), isolation=isolation,
                           prescreen=options.get("prescreen"), data=run.x, **oracle_options)
    if cfg.time_budget:
        run.tuner.deadline = run.started + float(cfg.time_budget)


def _search(run: _Search, echo) -> bool:
    """Run the trials (alone, as chief, or as a worker); False for a worker, whose chief keeps
    the record. Keras Tuner's give-up and a full disk become one-line errors."""
    cfg, tuner, out = run.cfg, run.tuner, Path(run.cfg.out)
    if cfg.distributed != "worker":
        echo(_banner(run.space, run.record, cfg, len(run.x), len(run.val)))
    try:
        tuner.save()  # so a search killed in its first trial can be resumed
        if cfg.distributed == "chief":
            from kblocks.search.distributed import serve

            serve(tuner.oracle, cfg.bind, cfg.port, echo=echo)
        elif cfg.distributed == "worker":
            from kblocks.search.distributed import work

            work(tuner, (run.x, run.y), {"validation_data": (run.val.x, run.yv)},
                 host=run.chief[0], port=run.chief[1], folder=out, echo=echo)
            return False
        else:
            tuner.search(run.x, run.y, validation_data=(run.val.x, run.yv))
    except RuntimeError as err:  # Keras Tuner stops after too many failed trials in a row
        if "consecutive failures" not in str(err):
            raise
        _finish(out, "failed", str(err).splitlines()[0])
        raise KBlocksError(f"the search stopped: {str(err).splitlines()[0]}", what="search",
                           hint=f"see the trial messages in {out / PROJECT}/trial_*/trial.json; "
                                f"a lower lr= often helps") from None
    except OSError as err:  # the search's own files (oracle.json, trial.json) on a full disk
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        done = sorted(t.trial_id for t in tuner.oracle.trials.values() if t.status == "COMPLETED")
        kept = (f"the {len(done)} completed trial{'s' if len(done) != 1 else ''} "
                f"({', '.join(done[:10])}{', ...' if len(done) > 10 else ''}) are kept in "
                f"{out / PROJECT}" if done else f"no trial had completed; {out} holds the search "
                                                f"record")
        raise KBlocksError(f"no space left on the device while writing {err.filename or out}; "
                           f"nothing lost: {kept}",
                           what="search", hint=f"free some space, then continue with: kblocks "
                                               f"search --out {out} --resume") from None
    return True


def _outcome(run: _Search, echo):
    """The record's status, :class:`SearchFailed` when no trial completed, and the report."""
    cfg, tuner, out = run.cfg, run.tuner, Path(run.cfg.out)
    completed = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    if not completed and not tuner.stopped_for_time:
        ended = len(tuner.oracle.trials)
        why = getattr(tuner.oracle, "stop_reason", None)  # e.g. every draw over budget
        _finish(out, "failed", "no trial completed" + (f": {why}" if why else ""))
        raise SearchFailed(f"no trial completed ({ended} failed" + (f"; {why}" if why else "")
                           + f"); the trial errors are in {out / PROJECT}/trial_*/trial.json",
                           what="search",
                           hint="trials that failed for their architecture (shapes, a diverging "
                                "loss: a lower lr= often helps) stay failed; those that failed "
                                "for the machine (disk full, out of memory) run again with "
                                "resume=True")
    stop_reason = getattr(tuner.oracle, "stop_reason", None)
    if tuner.stopped_for_time:
        stop_reason = (f"the time budget of {cfg.time_budget:g} s is used; continue with "
                       f"resume=True")
    _finish(out, "stopped" if tuner.stopped_for_time else "finished", stop_reason)
    if stop_reason:
        echo(f"note: the search stopped early: {stop_reason}")
    if not cfg.report:
        return None
    from kblocks.search.report import write_report

    report = write_report(out, space=run.space)
    echo(report.render())
    return report


def _from_folder(cfg: SearchConfig) -> SearchConfig:
    """``kblocks search --out DIR --resume`` with nothing else: every option from search.json."""
    from dataclasses import replace

    from kblocks.training import TrainConfig

    if not cfg.resume:
        raise ConfigError("no search space given", what="SPACE",
                          hint="give architecture text with placeholders or a YAML file "
                               "(or resume=True with the out= folder of a search)")
    if not (Path(cfg.out) / SEARCH_FILE).exists():
        raise ConfigError(f"{cfg.out} holds no search to continue", what="resume",
                          hint="give the out= folder of a kblocks search")
    stored = load_record(cfg.out)
    tuner = stored["tuner"]
    isolation = stored.get("isolation") or {}
    verbose = cfg.train.verbose if cfg.train is not None else 0
    return replace(
        cfg, space=stored["space"], blocks=None, variables={},
        train=TrainConfig.from_record({**stored["train"], "verbose": verbose},
                                      unsafe=cfg.train.unsafe if cfg.train is not None else False),
        tuner=tuner["kind"],
        trials=cfg.trials or tuner["trials"], objective=tuner["objective"],
        max_epochs=tuner["max_epochs"], factor=tuner["factor"],
        hyperband_iterations=tuner["hyperband_iterations"], population=tuner["population"],
        sample_size=tuner["sample_size"], initial_points=tuner["initial_points"],
        minimize=tuner.get("minimize"), prescreen=tuner.get("prescreen"),
        budget=Budget(**stored["budget"]),
        isolate=cfg.isolate or bool(isolation.get("isolate")),
        trial_timeout=cfg.trial_timeout or isolation.get("trial_timeout"))


def _with_tuner(cfg: SearchConfig) -> SearchConfig:
    """The tuner a config leaves open: ``pareto`` for an accuracy-versus-cost search, else
    ``random``."""
    from dataclasses import replace

    if cfg.tuner:
        return cfg
    return replace(cfg, tuner="pareto" if cfg.minimize else "random")


def _check_output(space, train, check_fits):
    """The default architecture's output must match the data's classes (when it compiles)."""
    try:
        graph = space.compile()
    except KBlocksError:
        return
    units = graph.nodes[graph.outputs[0]].shape[-1] if graph.outputs and graph.outputs[0] >= 0 \
        else None
    check_fits(graph.input_shape, units, train, what="search space's network")


def _backend():
    try:
        import keras

        return keras.backend.backend()
    except Exception:  # noqa: BLE001
        return None


def _finish(out: Path, status: str, reason=None):
    path = out / SEARCH_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    record.update({"status": status, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "stop_reason": reason})
    write_json_atomic(path, record)


def _banner(space, record, cfg, n_train, n_val) -> str:
    tuner = record["tuner"]
    budget = {k: v for k, v in record["budget"].items() if v is not None}
    lines = [f"kblocks search: {len(space)} hyperparameters, tuner {tuner['kind']}"
             + (f", {tuner['trials']} trials" if tuner["trials"] else "")
             + (f", max {tuner['max_epochs']} epochs" if tuner["kind"] == "hyperband" else "")
             + (f", {record['tuner']['objective']} against {tuner['minimize']}"
                if tuner.get("minimize") else "")
             + (f", pre-screening {tuner['prescreen']}" if tuner.get("prescreen") else "")
             + (", isolated trials" if cfg.isolate else ""),
             f"  space: {space.text.strip()[:200]}",
             f"  data: {record['train']['data']} ({n_train} train / {n_val} val, seed "
             f"{record['seed']}); folder {cfg.out}"]
    if budget:
        lines.append("  budget: " + ", ".join(f"{k.replace('_', '-')} {v:g}"
                                              for k, v in budget.items()))
    if cfg.distributed == "chief":
        lines.append(f"  chief listening on {cfg.bind}:{cfg.port}")
    return "\n".join(lines)


def trial_child(argv) -> int:
    """The child process of an isolated trial (:mod:`kblocks.search.isolate`): rebuild the search
    in folder ``argv[0]`` from its record, train trial ``argv[1]`` and hand its results back.

    ``argv[2]`` is the parent's process id: the child ends when the parent does
    (:func:`kblocks.search.isolate.child_start`, which the child's command runs before it imports
    this module)."""
    from kblocks.search import isolate

    out, trial_id = argv[0], argv[1]
    isolate.child_start(argv)  # again, for a caller that did not (idempotent)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    trial_dir = Path(out) / PROJECT / f"trial_{trial_id}"
    state = json.loads((trial_dir / isolate.TRIAL_FILE).read_text())
    from dataclasses import replace

    cfg = replace(_from_folder(SearchConfig(out=out, resume=True)), isolate=False,
                  trial_timeout=None, time_budget=None, distributed=None, report=False)
    run = _child_run(cfg)
    import keras_tuner

    from kblocks.search.oracles import ENVIRONMENT_FAILURE

    trial = keras_tuner.engine.trial.Trial.from_state(state)
    try:
        results = run.tuner.run_trial(trial, run.x, run.y, validation_data=(run.val.x, run.yv))
    except keras_tuner.errors.FailedTrialError as err:
        isolate.hand_back(trial_dir, error=str(err),
                          environment=ENVIRONMENT_FAILURE in str(err))
        return 0
    except Exception as err:  # noqa: BLE001 - the parent records it as the trial's failure
        line = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        isolate.hand_back(trial_dir, error=f"{type(err).__name__}: {line}")
        return 0
    isolate.hand_back(trial_dir, results=_plain(results))
    return 0


def _child_run(cfg: SearchConfig) -> _Search:
    """What :func:`_prepare` and :func:`_make_tuner` make, without touching the search folder."""
    from kblocks.search.space import SearchSpace
    from kblocks.training import prepare_data, set_seed

    record = load_record(cfg.out)
    train_cfg = cfg.train
    seed = int(record["seed"])
    set_seed(seed, train_cfg.deterministic)
    train, val = prepare_data(train_cfg, seed)
    space = SearchSpace.from_dict(record["space"])
    run = _Search(cfg=cfg, train_cfg=train_cfg, seed=seed, started=time.time(),
                  classes=train.num_classes, space=space, record=record, x=train.x, y=train.y,
                  val=val)
    _trial_data(run)
    _make_tuner(run, echo=None)
    return run


def _plain(results):
    """Trial results as JSON numbers (a list of metric dicts, or one dict)."""
    def one(r):
        return {k: float(v) for k, v in r.items()} if isinstance(r, dict) else float(r)

    return [one(r) for r in results] if isinstance(results, list) else one(results)

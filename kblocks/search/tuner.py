"""The Keras Tuner side of a search: a HyperModel over a :class:`SearchSpace` and the tuners.

* :class:`SpaceHyperModel` builds a trial's model from the trial's values (through the space's
  :class:`~kblocks.search.resolver.ValuesResolver`) and trains it with the search's
  :class:`~kblocks.search.recipe.TrialRecipe`; its ``fit`` returns the best epoch's metrics plus
  ``epochs`` and ``seconds``, which Keras Tuner stores with the trial (so the chief of a
  distributed search knows them too).
* :class:`SearchTuner` is ``keras_tuner.Tuner`` with the whole space declared up front (no model
  is built to discover it), atomic state files, a one-line summary per trial, a time budget, and
  memory released after every trial (``clear_session`` before each build, as Keras Tuner does;
  TensorFlow's per-trace custom gradients, garbage and freed heap pages after; see
  :func:`release_memory`), and each trial's best-epoch weights (``trial_NN/checkpoint.weights.h5``)
  written atomically (:class:`AtomicSaveBestEpoch`).
* :func:`make_tuner` pairs a budget-aware oracle (:mod:`kblocks.search.oracles`) with the tuner;
  ``hyperband`` uses Keras Tuner's Hyperband tuner logic (epochs per round, weights carried from
  the trial a candidate continues).
"""
from __future__ import annotations

import errno
import gc
import math
import os
import time
import warnings

import keras_tuner
from keras_tuner.src import backend as kt_backend
from keras_tuner.src.engine import tuner_utils

from kblocks.common import saving
from kblocks.common.errors import ConfigError
from kblocks.search.budget import Budget, measure
from kblocks.search.oracles import ENVIRONMENT_FAILURE, make_oracle, write_json_atomic
from kblocks.search.recipe import TrialRecipe
from kblocks.search.record import shown, trial_number
from kblocks.training import feed

PROJECT = "kt"  #: the Keras Tuner project folder inside a search folder


class SpaceHyperModel(keras_tuner.HyperModel):
    """Builds and trains the architecture a trial's hyperparameters pick from ``space``."""

    def __init__(self, space, recipe: TrialRecipe, objective="val_accuracy"):
        super().__init__(name=space.name)
        self.space = space
        self.recipe = recipe
        self.objective = objective

    def declare_hyperparameters(self, hp):
        hp.merge(self.space.hyperparameters())

    def _epochs(self, hp) -> int:
        values = getattr(hp, "values", hp)
        total = int(values.get("tuner/epochs", self.recipe.config.epochs))
        return max(1, total - int(values.get("tuner/initial_epoch", 0)))

    def build(self, hp):
        network = self.recipe.network(self.space, hp.values)
        model = self.recipe.wrap(network)
        model._kblocks_network = network
        return self.recipe.compile(model, network, epochs=self._epochs(hp))

    def fit(self, hp, model, x, y=None, **kwargs):
        import keras

        from kblocks.training.callbacks import NaNGuard

        if self.recipe.needs_statistics:  # space.tuner(...) without data=: learn them from x
            self.recipe = self.recipe.with_statistics(x)
            model = self.build(hp)
        kwargs.setdefault("epochs", int(self.recipe.config.epochs))
        epochs = int(kwargs["epochs"]) - int(kwargs.get("initial_epoch", 0))
        if getattr(model, "_kblocks_schedule", None) != (len(x), epochs):
            self.recipe.compile(model, model._kblocks_network, epochs=epochs, train_size=len(x))
        guard = NaNGuard()
        callbacks = list(kwargs.pop("callbacks", [])) + [guard]
        batch = int(kwargs.pop("batch_size", self.recipe.config.batch_size))
        kwargs.setdefault("verbose", self.recipe.verbose)
        kwargs.pop("shuffle", None)  # the feed shuffles (seeded, every epoch)
        inputs = feed.fit_arguments(
            self.recipe.feed(len(x)), x, y, batch_size=batch, seed=self.recipe.seed,
            validation=kwargs.pop("validation_data", None),
            validation_batch_size=kwargs.pop("validation_batch_size", None),
            initial_epoch=int(kwargs.get("initial_epoch", 0)))
        callbacks = inputs.pop("callbacks") + callbacks
        if self.recipe.config.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=self.objective, patience=int(self.recipe.config.early_stopping),
                mode="min" if "loss" in self.objective else "max"))
        started = time.perf_counter()
        history = model.fit(callbacks=callbacks, **inputs, **kwargs)
        seconds = time.perf_counter() - started
        if guard.where is not None:
            epoch, step, value = guard.where
            raise keras_tuner.errors.FailedTrialError(
                f"the loss became {value} in epoch {epoch}" + (f", step {step}" if step else "")
                + "; lower lr= or add warmup=")
        return summarise(history.history, self.objective, seconds=seconds,
                         initial_epoch=int(kwargs.get("initial_epoch", 0)))


def summarise(history: dict, objective="val_accuracy", *, seconds=0.0, initial_epoch=0) -> dict:
    """The metrics of the best epoch of a ``History.history``, plus epochs and seconds."""
    values = history.get(objective) or []
    finite = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if not finite:
        raise keras_tuner.errors.FailedTrialError(
            f"no finite {objective} was measured; does the search have validation data?")
    maximise = "loss" not in objective
    best, _ = (max if maximise else min)(finite, key=lambda iv: iv[1])
    out = {k: float(v[best]) for k, v in history.items() if len(v) > best and
           v[best] is not None and k != "learning_rate"}
    out.update({"epochs": float(initial_epoch + len(values)), "best_epoch":
                float(initial_epoch + best + 1), "seconds": round(float(seconds), 3)})
    return out


class AtomicSaveBestEpoch(tuner_utils.SaveBestEpoch):
    """Keras Tuner's best-epoch checkpoint callback, writing through
    :func:`kblocks.common.saving.save_weights` (temporary ``.weights.h5`` in the trial folder, fsync,
    ``os.replace``): a kill during the write leaves the previous checkpoint, never a truncated one.

    Keras Tuner 1.4.8 builds its ``SaveBestEpoch`` inside ``Tuner.run_trial`` and shares that one
    instance (and its best value) across a trial's executions, so :func:`atomic_checkpoints` turns
    that instance into this class in place rather than replacing it."""

    def _save_model(self):
        if not str(self.filepath).endswith(saving.WEIGHTS_SUFFIX):  # Keras 2's TF checkpoints
            return super()._save_model()
        path = self.filepath
        strategy = None
        if kt_backend.config.backend() == "tensorflow":  # as SaveBestEpoch: a non-chief worker
            strategy = self.model.distribute_strategy        # writes to a temporary folder
            path = kt_backend.io.write_filepath(self.filepath, strategy)
        _check_space(self.model, path)
        try:
            saving.save_weights(self.model, path)
        except OSError as err:  # ENOSPC, EIO...: a failure of this trial, not of the search
            raise OSError(err.errno, _os_problem(err, path), str(path)) from None
        if strategy is not None:
            kt_backend.io.remove_temp_dir_with_filepath(path, strategy)


#: starts the message of a trial that failed for a reason outside its architecture (disk full, out
#: of memory, an I/O error): ``--resume`` runs such a trial again (see BudgetedOracle.reload)
def environment_problem(err: BaseException) -> str | None:
    """What went wrong outside the architecture, in one line, or None for any other error."""
    if isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError":
        return "out of memory" + (f": {str(err).splitlines()[0][:200]}" if str(err) else "")
    if isinstance(err, OSError):
        return _os_problem(err, getattr(err, "filename", None))
    return None


def _os_problem(err: OSError, path=None) -> str:
    if err.errno == errno.ENOSPC:
        return f"no space left on the device writing {path or 'a trial file'}"
    if err.errno is None and not path:  # e.g. our own re-raise already says it all
        return str(err)
    what = err.strerror or str(err)
    return f"{what} writing {path}" if path else what


def _check_space(model, path):
    """Refuse (OSError ENOSPC) a checkpoint the disk cannot hold, before HDF5 starts writing: an
    HDF5 write that runs out of space mid-file can take the whole process down."""
    import shutil

    try:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        need = sum(int(v.numpy().nbytes) if hasattr(v, "numpy") else 0
                   for v in model.weights) * 1.1 + (1 << 20)
    except Exception:  # noqa: BLE001 - a check that cannot be made is skipped
        return
    if free < need:
        raise OSError(errno.ENOSPC, f"no space left on the device writing {path} "
                                    f"({free} bytes free, about {int(need)} needed)", str(path))


def atomic_checkpoints(callbacks) -> None:
    """Make each Keras Tuner ``SaveBestEpoch`` in ``callbacks`` an :class:`AtomicSaveBestEpoch`."""
    for callback in callbacks or ():
        if type(callback) is tuner_utils.SaveBestEpoch:
            callback.__class__ = AtomicSaveBestEpoch


class SearchTuner(keras_tuner.Tuner):
    """``keras_tuner.Tuner`` for a search space (see the module doc)."""

    def __init__(self, oracle, hypermodel, *, directory, project_name=PROJECT, overwrite=False,
                 echo=None, minimize=None, isolation=None, **kwargs):
        self.echo = echo
        self.minimize = minimize  # "latency": each trial measures its inference time
        self.isolation = isolation  # a kblocks.search.isolate.Isolation: trials in child processes
        self._last_metrics = {}
        self.deadline = None  # time.time() after which no new trial starts (set by the runner)
        self.stopped_for_time = False
        self._trial_seconds = []
        self._trial_started = None
        # Not super().__init__: for Hyperband that would make its own oracle.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel,
                                   directory=directory, project_name=project_name,
                                   overwrite=overwrite, **kwargs)

    @property
    def space(self):
        return self.hypermodel.space

    def _populate_initial_space(self):
        """The oracle holds the whole space from the start: nothing to discover by building."""

    def run_trial(self, trial, *args, **kwargs):
        self._last_metrics = {}
        if self.isolation is not None:
            results = self._run_isolated(trial)
            self._last_metrics = _first(results)
            return results
        registry = _custom_gradients()
        before = set(registry) if registry is not None else None
        try:
            results = super().run_trial(trial, *args, **kwargs)
            if self.minimize == "latency":
                results = self._with_latency(trial, results)
            self._last_metrics = _first(results)
            return results
        except Exception as err:  # sorted into architecture and environment
            problem = environment_problem(err)
            if problem is None:
                raise
            raise keras_tuner.errors.FailedTrialError(ENVIRONMENT_FAILURE + problem) from None
        finally:
            release_memory(before)

    def _run_isolated(self, trial):
        """The trial trained in a child process (:mod:`kblocks.search.isolate`)."""
        from kblocks.search.isolate import TrialProcessFailed

        out = os.path.dirname(os.path.abspath(self.project_dir))
        try:
            return self.isolation.run(out, self.get_trial_dir(trial.trial_id), trial.get_state(),
                                      trial.trial_id)
        except TrialProcessFailed as err:
            prefix = ENVIRONMENT_FAILURE if err.environment and \
                ENVIRONMENT_FAILURE not in str(err) else ""
            raise keras_tuner.errors.FailedTrialError(prefix + str(err)) from None

    def _with_latency(self, trial, results):
        """``results`` with the inference time of the trial's architecture (ms per image,
        :mod:`kblocks.search.latency`, cached in the project folder) added to each execution."""
        from kblocks.search.latency import CACHE_FILE, LatencyCache
        from kblocks.search.pareto import LATENCY_METRIC

        values = trial.hyperparameters.values
        cache = LatencyCache(os.path.join(self.project_dir, CACHE_FILE))
        ms = cache.latency(self.space.fixed(values), lambda: self.space.build(values),
                           self.space.input_shape)
        if isinstance(results, list):
            return [dict(r, **{LATENCY_METRIC: ms}) if isinstance(r, dict) else r
                    for r in results]
        return dict(results, **{LATENCY_METRIC: ms}) if isinstance(results, dict) else results

    def _build_and_fit_model(self, trial, *args, **kwargs):
        """Keras Tuner's hook between ``run_trial`` (which adds its checkpoint callback, after
        Hyperband's epochs) and ``HyperModel.fit``: the checkpoint is made atomic here."""
        atomic_checkpoints(kwargs.get("callbacks"))
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def pre_create_trial(self):
        """With a deadline, start no trial that the time left cannot hold (judged by the longest
        trial so far): the oracle's next answer is then STOPPED, and --resume goes on later."""
        if self.deadline is None or self._is_worker():
            return
        left = self.deadline - time.time()
        if left <= 0 or (self._trial_seconds and left < max(self._trial_seconds)):
            self.oracle.max_trials = len(self.oracle.trials)
            self.stopped_for_time = True

    def on_trial_begin(self, trial):
        self._trial_started = time.time()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        if self._trial_started is not None:
            self._trial_seconds.append(time.time() - self._trial_started)
        super().on_trial_end(trial)
        if self.echo is not None:
            self.echo(trial_line(self, trial, self._last_metrics))

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        write_json_atomic(self._get_tuner_fname(), self.get_state())


def _custom_gradients():
    """TensorFlow's registry of custom gradients (None on other backends).

    Every trace of a training step under TensorFlow registers a ``CustomGradient-N`` (from
    ``tf.distribute``'s all-reduce) in a process-wide registry that nothing ever empties, and each
    entry keeps the whole traced graph of its model alive: about 2 graphs per trial, several MiB.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops

        return ops._gradient_registry._registry
    except (ImportError, AttributeError):  # a TensorFlow that keeps it elsewhere
        return None


def release_memory(before=None):
    """Free what a finished trial left: the custom gradients its traces registered (names not in
    ``before``, a snapshot of :func:`_custom_gradients`), garbage, and freed heap pages (glibc's
    ``malloc_trim``), so a long search stays at the size of one trial."""
    registry = _custom_gradients()
    if registry is not None and before is not None:
        for name in [k for k in registry if k not in before and k.startswith("CustomGradient-")]:
            del registry[name]
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): collecting is all we can do
        pass


def _first(results):
    if isinstance(results, list):
        results = results[0] if results else {}
    return dict(results) if isinstance(results, dict) else {}


def trial_line(tuner, trial, metrics: dict) -> str:
    objective = tuner.oracle.objective.name
    score = metrics.get(objective)
    head = f"trial {trial_number(trial.trial_id)} {trial.status.lower()}"
    if score is not None:
        head += f"  {objective} {score:.4f}  ({int(metrics.get('epochs', 0))} epochs, " \
                f"{metrics.get('seconds', 0):.1f}s)"
        if metrics.get("latency_ms") is not None:
            head += f"  latency {metrics['latency_ms']:.3g} ms"
    elif trial.message:
        head += "  " + trial.message.strip().splitlines()[-1][:160]
    try:
        text = shown(tuner.space.fixed(trial.hyperparameters.values), trial.hyperparameters.values)
    except Exception:  # noqa: BLE001 - a summary line never stops a search
        text = ""
    return f"{head}\n    {text}" if text else head


class HyperbandSearchTuner(SearchTuner, keras_tuner.Hyperband):
    """Hyperband's run_trial (epochs per round) and weight carry-over, with a SearchTuner.

    A trial that continues another starts from that trial's best weights with a fresh optimiser
    and a schedule spanning the epochs it adds."""

    def _build_hypermodel(self, hp):
        with warnings.catch_warnings():  # the saved optimiser state is not carried over
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return super()._build_hypermodel(hp)


def make_tuner(space, kind="random", *, objective="val_accuracy", max_trials=None,
               directory=None, project_name=PROJECT, overwrite=False, seed=None,
               budget: Budget | None = None, train=None, data=None, recipe=None, echo=None,
               minimize=None, isolation=None, prescreen=None, **oracle_options):
    """A tuner over ``space``.

    Args:
        kind: ``random``, ``grid``, ``bayesian``, ``hyperband`` or ``evolution``.
        objective: the metric to maximise (``val_accuracy``) or a ``keras_tuner.Objective``.
        max_trials: trials to run (for ``hyperband`` an optional cap on its own schedule).
        directory, project_name, overwrite: as for any Keras Tuner tuner; an existing project is
            reloaded (resumed) unless ``overwrite``.
        budget: a :class:`~kblocks.search.budget.Budget`; architectures over it, or whose shapes
            collapse, are rejected before training.
        train: a :class:`kblocks.training.TrainConfig` (the trainer's options; default
            ``TrainConfig()``: SGD, cosine schedule, per-channel standardisation).
        data: the training images ``x`` or ``(x, y)``: normalisation statistics and epoch length.
        recipe: a ready :class:`~kblocks.search.recipe.TrialRecipe` instead of ``train``/``data``.
        echo: a function called with one line of text after each trial.
        minimize: ``macs``, ``params`` or ``latency``: an accuracy-versus-cost search (the
            ``pareto`` tuner selects on both; ``random`` and ``grid`` only report the front).
            With ``latency`` each trial measures its inference time (``latency_ms``).
        isolation: a :class:`kblocks.search.isolate.Isolation`: each trial in a child process.
        prescreen: ``"naswot:8"`` (or a :class:`kblocks.search.prescreen.Prescreen`): each new
            trial trains the best of K candidates by that zero-cost score, measured on one batch
            of ``data`` (:mod:`kblocks.search.prescreen`).
        **oracle_options: ``max_epochs``, ``factor``, ``hyperband_iterations`` (hyperband),
            ``population_size``, ``sample_size`` (evolution), ``num_initial_points`` (bayesian).
    """
    from kblocks.training import TrainConfig

    if directory is None:
        raise ConfigError("a tuner needs directory= (where trials and checkpoints go)",
                          what="directory")
    if recipe is None:
        config = train or TrainConfig()
        if data is not None:
            x, y = data if isinstance(data, tuple) else (data, None)
            recipe = TrialRecipe.for_data(config, x, y, classes=space.classes,
                                          seed=config.seed or 0)
        else:
            if space.input_shape is None or space.classes is None:
                raise ConfigError("give the space input_shape= and classes=, or data=",
                                  what="SearchSpace")
            recipe = TrialRecipe(config, tuple(space.input_shape), int(space.classes),
                                 seed=config.seed or 0)
    if isinstance(objective, str):
        direction = "min" if "loss" in objective else "max"
        objective = keras_tuner.Objective(objective, direction)

    def checker(values):
        return measure(space, values, budget)

    kind = (kind or ("pareto" if minimize else "random")).lower()
    if minimize is not None:
        oracle_options.update(minimize=minimize, cost=trial_cost(space, minimize))
    oracle = make_oracle(kind, space=space, objective=objective, max_trials=max_trials,
                         seed=seed, checker=checker, **oracle_options)
    oracle.verbose = 0
    if prescreen is not None:
        from kblocks.search.prescreen import screen

        screen(oracle, prescreen, space=space, recipe=recipe, data=data, seed=seed)
    cls = HyperbandSearchTuner if kind == "hyperband" else SearchTuner
    hypermodel = SpaceHyperModel(space, recipe, objective=objective.name)
    return cls(oracle, hypermodel, directory=os.fspath(directory), project_name=project_name,
               overwrite=overwrite, echo=echo, minimize=minimize, isolation=isolation)


def trial_cost(space, minimize: str):
    """``trial -> cost`` for ``minimize``: multiply-adds or parameters of the trial's fixed text
    (kblocks' analysis, no model built; remembered per architecture), or the latency the trial
    measured."""
    from kblocks.search.pareto import COSTS, LATENCY_METRIC

    if minimize not in COSTS:
        raise ConfigError(f"minimize= is one of {', '.join(COSTS)}, got {minimize!r}",
                          what="minimize")
    if minimize == "latency":
        def latency(trial):
            return trial.metrics.get_last_value(LATENCY_METRIC) \
                if trial.metrics.exists(LATENCY_METRIC) else None

        return latency
    known = {}

    def static(trial):
        values = {k: v for k, v in trial.hyperparameters.values.items()
                  if not str(k).startswith("tuner/")}
        key = tuple(sorted((k, repr(v)) for k, v in values.items()))
        if key not in known:
            known[key] = getattr(measure(space, values), minimize)
        return known[key]

    return static

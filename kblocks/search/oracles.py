"""Keras Tuner's oracles made budget-aware, and atomic state files.

:class:`BudgetedOracle` is mixed in front of an oracle class. Before a trial is created, its values
are compiled and measured (:func:`kblocks.search.budget.measure`); an architecture over budget or
whose shapes collapse is *rejected*: counted, remembered as tried (so it is not drawn again) and
replaced, without any training:

* random draws (random search, Hyperband's new candidates, Bayesian optimisation's first points,
  evolution's first population) are drawn again, up to ``max_rejections`` times in a row;
* a Bayesian suggestion that is rejected is replaced by a random architecture within budget;
* grid search walks on to the next combination of the grid;
* evolution mutates again (see :mod:`kblocks.search.evolution`).

The oracle's state (``oracle.json``) and each ``trial.json`` are written to a temporary file and
moved into place, so a search killed at any moment leaves files that ``--resume`` can read.
"""
from __future__ import annotations

import os

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from kblocks.common import atomic
from kblocks.common.errors import ConfigError
from kblocks.search.evolution import ParetoOracle, RegularizedEvolutionOracle

TUNERS = ("random", "grid", "bayesian", "hyperband", "evolution", "pareto")
#: the tuners a search with ``minimize=`` may use: ``pareto`` selects on both objectives; random
#: and grid draw without looking at scores, so their front is only reported
PARETO_TUNERS = ("pareto", "random", "grid")
MAX_REJECTIONS = 500  #: rejected draws in a row before a search stops as "space exhausted"
#: how a trial's message starts when it failed for the machine (memory, disk), not its architecture:
#: such a trial is run again on --resume (the tuner writes it, the oracle reads it)
ENVIRONMENT_FAILURE = "environment failure (run again on --resume): "
EXAMPLES_KEPT = 50  #: rejected architectures kept (with their reason) in the oracle's state


def write_json_atomic(path, obj):
    """``json.dumps(obj)`` to ``path`` atomically (the tuner's and oracle's state files)."""
    atomic.write_json(path, obj)


def _kind(reason: str) -> str:
    if reason.startswith("does not compile"):
        return "does not compile"
    return " + ".join(part.split()[0] for part in reason.split("; "))


class BudgetedOracle:
    """Mixin: check values with ``checker`` (values -> Verdict) before a trial is created."""

    max_rejections = MAX_REJECTIONS

    def __init__(self, *args, checker=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.checker = checker
        self._verdicts = {}  # values hash -> accepted (this process only)
        self.rejections = {"count": 0, "by_reason": {}, "examples": []}
        self.stop_reason = None

    # -- checking ---------------------------------------------------------------------------------
    def _hash(self, values):
        return self._compute_values_hash(
            {k: v for k, v in values.items() if not str(k).startswith("tuner/")})

    def _acceptable(self, values) -> bool:
        if self.checker is None:
            return True
        key = self._hash(values)
        if key not in self._verdicts:
            verdict = self.checker(values)
            self._verdicts[key] = verdict.ok
            if not verdict.ok:
                self._tried_so_far.add(key)  # never drawn again
                rec = self.rejections
                rec["count"] += 1
                kind = _kind(verdict.reason)
                rec["by_reason"][kind] = rec["by_reason"].get(kind, 0) + 1
                rec["examples"] = (rec["examples"] + [
                    {"values": {k: v for k, v in values.items() if not k.startswith("tuner/")},
                     "reason": verdict.reason}])[-EXAMPLES_KEPT:]
        return self._verdicts[key]

    def _random_values(self):
        for _ in range(self.max_rejections):
            values = super()._random_values()
            if values is None:
                return None
            if self._acceptable(values):
                return values
        self.stop_reason = (f"{self.max_rejections} architectures in a row were over budget or "
                            f"did not compile")
        return None

    def _replacement(self, values):
        """What to try instead of a rejected suggestion (a random architecture within budget)."""
        return self._random_values()

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        values = response.get("values")
        if response.get("status") == TrialStatus.RUNNING and values and \
                not self._acceptable(values):
            values = self._replacement(values)
            if values is None:
                return {"status": TrialStatus.STOPPED, "values": None}
            response = {"status": TrialStatus.RUNNING, "values": values}
        return response

    # -- state ------------------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state["kblocks"] = {"rejections": self.rejections, "stop_reason": self.stop_reason}
        return state

    def set_state(self, state):
        super().set_state(state)
        own = state.get("kblocks") or {}
        self.rejections = own.get("rejections") or {"count": 0, "by_reason": {}, "examples": []}
        self.stop_reason = own.get("stop_reason")

    def save(self):
        write_json_atomic(self._get_oracle_fname(), self.get_state())

    @keras_tuner.synchronized
    def end_trial(self, trial):
        # Keras Tuner saves its state before it drops the trial from the running ones; save again,
        # so that a chief killed now does not run a finished trial again when resumed.
        super().end_trial(trial)
        self.save()

    def reload(self):
        super().reload()
        done = (TrialStatus.COMPLETED, TrialStatus.FAILED)
        self._retry_queue = [t for t in self._retry_queue if self.trials[t].status not in done]
        # A trial that failed for a reason outside its architecture (disk full, out of memory) is
        # run again: it waits in the retry queue, and no longer counts as ended or failed.
        for trial_id in sorted(self.trials):
            trial = self.trials[trial_id]
            if trial.status == TrialStatus.FAILED and is_environment_failure(trial.message):
                trial.status = TrialStatus.INVALID  # waiting to run again
                trial.message = None
                self.end_order = [t for t in self.end_order if t != trial_id]
                if trial_id not in self._retry_queue:
                    self._retry_queue.insert(0, trial_id)  # pop() takes from the end: in order

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        write_json_atomic(path, trial.get_state())


class RandomOracle(BudgetedOracle, keras_tuner.oracles.RandomSearchOracle):
    pass


class BayesianOracle(BudgetedOracle, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class HyperbandOracle(BudgetedOracle, keras_tuner.oracles.HyperbandOracle):
    pass


class EvolutionOracle(BudgetedOracle, RegularizedEvolutionOracle):
    pass


class ParetoSearchOracle(BudgetedOracle, ParetoOracle):
    pass


class GridOracle(BudgetedOracle, keras_tuner.oracles.GridSearchOracle):
    """Grid search that steps over rejected grid points."""

    def _get_next_combination(self, values):
        nxt = super()._get_next_combination(values)
        while nxt is not None and not self._acceptable(nxt):
            nxt = super()._get_next_combination(nxt)
        return nxt

    def _replacement(self, values):
        return self._get_next_combination(values)


def is_environment_failure(message) -> bool:
    """Whether a failed trial's message says the machine failed (see ``ENVIRONMENT_FAILURE``)."""
    return bool(message) and ENVIRONMENT_FAILURE in message


def make_oracle(kind: str, *, space, objective="val_accuracy", max_trials=None, seed=None,
                checker=None, max_epochs=None, factor=3, hyperband_iterations=1,
                population_size=None, sample_size=None, num_initial_points=None, minimize=None,
                cost=None):
    """The oracle for ``--tuner kind``, holding the whole space of ``space`` from the start.

    ``pareto`` needs ``minimize`` (one of :data:`kblocks.search.pareto.COSTS`) and ``cost``
    (``trial -> float or None``)."""
    kind = (kind or "random").lower()
    common = dict(objective=objective, seed=seed, hyperparameters=space.hyperparameters(),
                  allow_new_entries=False, tune_new_entries=False,
                  max_consecutive_failed_trials=5, checker=checker)
    if kind == "random":
        return RandomOracle(max_trials=max_trials, **common)
    if kind == "grid":
        return GridOracle(max_trials=max_trials, **common)
    if kind == "bayesian":
        extra = {"num_initial_points": num_initial_points} if num_initial_points else {}
        return BayesianOracle(max_trials=max_trials, **extra, **common)
    if kind == "hyperband":
        if not max_epochs or int(max_epochs) < 1:
            raise ConfigError("hyperband needs max_epochs= (the most epochs one model trains)",
                              what="max_epochs", hint="e.g. max_epochs=20")
        oracle = HyperbandOracle(max_epochs=int(max_epochs), factor=int(factor),
                                 hyperband_iterations=int(hyperband_iterations), **common)
        oracle.max_trials = max_trials  # an optional cap on top of Hyperband's own schedule
        return oracle
    if kind == "evolution":
        population = int(population_size or 20)
        sample = int(sample_size or max(2, population // 4))
        if population < 1 or not 1 <= sample <= population:
            raise ConfigError(f"evolution needs 1 <= sample_size= ({sample}) <= "
                              f"population= ({population})", what="sample_size")
        return EvolutionOracle(max_trials=max_trials, population_size=population,
                               sample_size=sample, **common)
    if kind == "pareto":
        if cost is None:
            raise ConfigError("the pareto tuner needs minimize= (macs, params or latency)",
                              what="minimize", hint="e.g. minimize='macs'")
        population = int(population_size or 20)
        sample = int(sample_size or 2)
        if population < 1 or not 1 <= sample <= population:
            raise ConfigError(f"pareto needs 1 <= sample_size= ({sample}) <= "
                              f"population= ({population})", what="sample_size")
        return ParetoSearchOracle(max_trials=max_trials, population_size=population,
                                  sample_size=sample, cost=cost, minimize=minimize, **common)
    raise ConfigError(f"unknown tuner {kind!r}", what="tuner",
                      hint="use one of " + ", ".join(TUNERS))

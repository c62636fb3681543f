"""Regularized (aging) evolution as a Keras Tuner oracle (Real, Aggarwal, Huang and Le 2019,
"Regularized Evolution for Image Classifier Architecture Search", Algorithm 1).

The population is the ``population_size`` most recently *finished* trials: each new trial joins it
when it finishes and pushes out the oldest, whatever its score (that is the "aging"). Until the
population is started, trials are random. Afterwards each trial is a child: ``sample_size``
members are drawn at random, the best of them is the parent, and one of the parent's active
hyperparameters, chosen at random, is changed to another value. Hyperparameters that the change
activates (a deeper stage's widths when a count grows) get random values; ones it deactivates are
dropped.

:class:`ParetoOracle` is the same machinery with NSGA-II's selection for two objectives, the
score and a cost (``--minimize``; :mod:`kblocks.search.pareto` has the sorting and the crowding
distance).

Everything the algorithm needs is in the base oracle's state (trials, their end order, the seed
counter), so resume after a crash and Keras Tuner's chief/worker distribution work unchanged.
Given a seed and the same sequence of results, the sequence of trials is the same.
"""
from __future__ import annotations

import math
import random

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from kblocks.search import pareto

_DISCRETE = ("Choice", "Boolean", "Fixed")


class RegularizedEvolutionOracle(keras_tuner.Oracle):
    """Aging evolution over a Keras Tuner search space.

    Args:
        objective, max_trials, seed, hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as for ``keras_tuner.Oracle``.
        population_size: P, the number of most recent finished trials that can be parents.
        sample_size: S, how many members of the population compete to be the parent (S <= P).
        max_mutation_attempts: children tried (duplicates and rejected ones are skipped) before a
            random architecture is taken instead.
    """

    def __init__(self, objective=None, max_trials=None, population_size=20, sample_size=5,
                 seed=None, hyperparameters=None, allow_new_entries=True, tune_new_entries=True,
                 max_retries_per_trial=0, max_consecutive_failed_trials=3,
                 max_mutation_attempts=50):
        if isinstance(population_size, bool) or not isinstance(population_size, int) or \
                population_size < 1:
            raise ValueError(f"population_size must be a whole number >= 1, got "
                             f"{population_size!r}")
        if isinstance(sample_size, bool) or not isinstance(sample_size, int) or \
                not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be a whole number in 1..population_size "
                             f"({population_size}), got {sample_size!r}")
        super().__init__(objective=objective, max_trials=max_trials,
                         hyperparameters=hyperparameters, allow_new_entries=allow_new_entries,
                         tune_new_entries=tune_new_entries, seed=seed,
                         max_retries_per_trial=max_retries_per_trial,
                         max_consecutive_failed_trials=max_consecutive_failed_trials)
        self.population_size = population_size
        self.sample_size = sample_size
        self.max_mutation_attempts = max_mutation_attempts

    # -- the algorithm ----------------------------------------------------------------------------
    def population(self) -> list:
        """The youngest ``population_size`` finished (COMPLETED) trials, oldest first."""
        done = [self.trials[t] for t in self.end_order
                if self.trials[t].status == TrialStatus.COMPLETED]
        return done[-self.population_size:]

    def populate_space(self, trial_id):
        population = self.population()
        if len(self.start_order) < self.population_size or not population:
            return self._running(self._random_values())
        rng = self._rng()
        for _ in range(self.max_mutation_attempts):
            parent = self._select(population, rng)
            child = self.mutate(parent.hyperparameters.values, rng)
            if child is None or self._duplicate(child) or not self._acceptable(child):
                continue
            return self._running(child)
        return self._running(self._random_values())

    def _select(self, population, rng):
        sample = rng.sample(population, min(self.sample_size, len(population)))
        best = max if self.objective.direction == "max" else min
        return best(sample, key=lambda t: t.score)

    def mutate(self, values: dict, rng: random.Random) -> dict | None:
        """A copy of ``values`` with one active hyperparameter changed (None if none can change)."""
        values = {k: v for k, v in values.items() if not str(k).startswith("tuner/")}
        space = self.hyperparameters.space
        candidates = [hp for hp in space if hp.name in values and _can_change(hp)]
        if not candidates:
            return None
        hp = rng.choice(candidates)
        child = dict(values)
        child[hp.name] = _other_value(hp, values[hp.name], rng)
        for other in space:  # parents come before children in the space
            if all(c.is_active(child) for c in other.conditions):
                if other.name not in child:
                    child[other.name] = other.prob_to_value(rng.random())
            else:
                child.pop(other.name, None)
        return child

    def _acceptable(self, values) -> bool:
        """Whether a child may be trained; a budget-aware subclass says no to some."""
        return True

    def _rng(self) -> random.Random:
        rng = random.Random(self._seed_state)
        self._seed_state += 1
        return rng

    @staticmethod
    def _running(values):
        if values is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        return {"status": TrialStatus.RUNNING, "values": values}

    # -- state ------------------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state.update({"population_size": self.population_size, "sample_size": self.sample_size})
        return state

    def set_state(self, state):
        super().set_state(state)
        self.population_size = state.get("population_size", self.population_size)
        self.sample_size = state.get("sample_size", self.sample_size)


class ParetoOracle(RegularizedEvolutionOracle):
    """NSGA-II-style selection over (objective, cost), see :mod:`kblocks.search.pareto`.

    Args:
        cost: ``trial -> float or None``: the cost to minimise (None: the trial has none and is
            left out of the population).
        population_size, sample_size: the parents kept (P) and the tournament's size (default 2).
        the rest: as for :class:`~kblocks.search.evolution.RegularizedEvolutionOracle`.
    """

    def __init__(self, *args, cost=None, minimize="macs", **kwargs):
        super().__init__(*args, **kwargs)
        self.cost = cost
        self.minimize = minimize

    def objectives(self, trial):
        """The trial's objectives, both minimised: (-score or score, cost), or None."""
        if trial.status != TrialStatus.COMPLETED or trial.score is None or self.cost is None:
            return None
        cost = self.cost(trial)
        if cost is None or not math.isfinite(float(cost)):
            return None
        score = float(trial.score)
        return (-score if self.objective.direction == "max" else score, float(cost))

    def _scored(self):
        done = [self.trials[t] for t in self.end_order]
        pairs = [(t, self.objectives(t)) for t in done]
        return [(t, o) for t, o in pairs if o is not None]

    def population(self) -> list:
        """The ``population_size`` best completed trials by (front, crowding distance)."""
        scored = self._scored()
        points = [o for _, o in scored]
        return [scored[i][0] for i in sorted(pareto.select(points, self.population_size))]

    def _select(self, population, rng):
        points = [self.objectives(t) for t in population]
        keys = pareto.rank(points)
        sample = rng.sample(range(len(population)), min(self.sample_size, len(population)))
        return population[min(sample, key=lambda i: (keys[i], i))]

    def get_state(self):
        state = super().get_state()
        state["minimize"] = self.minimize
        return state

    def set_state(self, state):
        super().set_state(state)
        self.minimize = state.get("minimize", self.minimize)


def _can_change(hp) -> bool:
    name = type(hp).__name__
    if name == "Fixed":
        return False
    if name == "Choice":
        return len(hp.values) > 1
    if name == "Int":
        return hp.max_value > hp.min_value
    return True


def _other_value(hp, current, rng: random.Random):
    """A value of ``hp`` different from ``current`` (uniform over the others where discrete)."""
    name = type(hp).__name__
    if name == "Boolean":
        return not current
    if name == "Choice":
        return rng.choice([v for v in hp.values if v != current])
    if name == "Int" and (hp.step is not None or hp.max_value - hp.min_value <= 1000):
        others = [v for v in _int_values(hp) if v != current]
        if others:
            return rng.choice(others)
    for _ in range(100):
        value = hp.prob_to_value(rng.random())
        if value != current:
            return value
    return current


def _int_values(hp) -> list:
    if hp.step is None:
        return list(range(hp.min_value, hp.max_value + 1))
    return list(hp.values)

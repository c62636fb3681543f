"""Oracles without training: budget rejection before any trial runs, and regularized evolution
(deterministic with a seed, one mutation per child, aging population). Scores are made up."""
import random

import pytest

from kblocks.search import SearchSpace
from kblocks.search.budget import Budget, measure
from kblocks.search.evolution import RegularizedEvolutionOracle
from kblocks.search.oracles import EvolutionOracle, GridOracle, RandomOracle, make_oracle

SPACE = "[[CONV({f#: 8|16|32})-RELU]*{n#: 1..3}-POOL?]*{stages: 1..3}-FC({u: 16..64 step 16})-FC(4)"


@pytest.fixture(scope="module")
def space():
    return SearchSpace(SPACE, input_shape=(16, 16, 1))


def drive(oracle, folder, trials, score):
    """Create, score and end trials as a tuner would; return the values of each trial."""
    oracle._set_project_dir(str(folder), "p")
    oracle.verbose = 0
    seen = []
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        values = dict(trial.hyperparameters.values)
        seen.append(values)
        oracle.update_trial(trial.trial_id, {"val_accuracy": score(values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return seen


def fake_score(space):
    def score(values):  # deterministic: wider and deeper is better, up to a point
        params = measure(space, values).params
        return 1.0 - abs(params - 20000) / 1e5
    return score


def test_measure_gives_figures_and_reasons(space):
    small = measure(space, space.defaults(), Budget(max_params=1e6))
    assert small.ok and small.params > 0 and small.macs > 0 and small.activation_mb > 0
    big = measure(space, space.defaults(), Budget(max_params=100, max_macs=10))
    assert not big.ok and big.reason.startswith("params ") and "MACs" in big.reason
    with pytest.raises(Exception, match="max_params= must be a positive number"):
        Budget(max_params=-1)


def test_random_oracle_rejects_over_budget_without_training(space, tmp_path):
    limit = 6000
    oracle = make_oracle("random", space=space, max_trials=8, seed=3,
                         checker=lambda v: measure(space, v, Budget(max_params=limit)))
    seen = drive(oracle, tmp_path, 8, fake_score(space))
    assert len(seen) == 8
    assert all(measure(space, v).params <= limit for v in seen)  # only these were "trained"
    rejected = oracle.rejections
    assert rejected["count"] > 0 and set(rejected["by_reason"]) == {"params"}
    assert all(ex["reason"].startswith("params ") for ex in rejected["examples"])
    # Rejected values are remembered as tried, and the count survives a reload of the state.
    again = make_oracle("random", space=space, max_trials=8, seed=3)
    again.set_state(oracle.get_state())
    assert again.rejections["count"] == rejected["count"]


def test_collapsing_shapes_are_rejected_and_grid_steps_over_them(tmp_path):
    space = SearchSpace("[CONV(4)-POOL]*{n: 1..6}-FC(2)", input_shape=(8, 8, 1))
    oracle = GridOracle(objective="val_accuracy", max_trials=20, hyperparameters=space.hyperparameters(),
                        allow_new_entries=False, tune_new_entries=False,
                        checker=lambda v: measure(space, v))
    seen = drive(oracle, tmp_path, 20, lambda v: 0.5)
    assert [v["n"] for v in seen] == [1, 2, 3]  # 8 -> 4 -> 2 -> 1; a 4th pool collapses
    assert oracle.rejections["by_reason"] == {"does not compile": 3}
    assert "does not compile" in oracle.rejections["examples"][0]["reason"]


def test_a_budget_nothing_fits_stops_the_search(space, tmp_path):
    oracle = RandomOracle(objective="val_accuracy", max_trials=5, seed=1, hyperparameters=space.hyperparameters(),
                          allow_new_entries=False, tune_new_entries=False,
                          checker=lambda v: measure(space, v, Budget(max_params=10)))
    oracle.max_rejections = 30
    assert drive(oracle, tmp_path, 5, lambda v: 0.5) == []
    assert "in a row were over budget" in oracle.stop_reason


def evolve(space, folder, seed, trials=24, checker=None):
    oracle = EvolutionOracle(objective="val_accuracy", max_trials=trials, population_size=6, sample_size=3, seed=seed,
                             hyperparameters=space.hyperparameters(), allow_new_entries=False,
                             tune_new_entries=False, checker=checker)
    return oracle, drive(oracle, folder, trials, fake_score(space))


def test_evolution_is_deterministic_with_a_seed(space, tmp_path):
    _, a = evolve(space, tmp_path / "a", seed=11)
    _, b = evolve(space, tmp_path / "b", seed=11)
    _, c = evolve(space, tmp_path / "c", seed=12)
    assert len(a) == 24 and a == b
    assert a != c
    assert len({tuple(sorted(v.items())) for v in a}) == len(a)  # no architecture twice


def test_evolution_children_differ_from_a_population_member_by_one_mutation(space, tmp_path):
    oracle, seen = evolve(space, tmp_path, seed=5)
    for i, child in enumerate(seen[6:], start=6):
        earlier = seen[max(0, i - 6 - 1):i]  # the population at the time (plus slack)
        assert any(_one_mutation(space, parent, child) for parent in earlier), child
    assert [t.trial_id for t in oracle.population()] == oracle.end_order[-6:]  # aging


def _one_mutation(space, parent, child):
    common = [k for k in parent if k in child]
    changed = [k for k in common if parent[k] != child[k]]
    if len(changed) != 1:
        return False
    moved = set(parent) ^ set(child)  # names switched on or off by the change
    return all(changed[0] in dict(space.conditions[k]) for k in moved)


def test_mutate_changes_exactly_one_active_hyperparameter(space):
    oracle = RegularizedEvolutionOracle(objective="val_accuracy", max_trials=1,
                                        population_size=2, sample_size=1, seed=1,
                                        hyperparameters=space.hyperparameters())
    rng = random.Random(0)
    parent = space.complete({"stages": 2, "n_1": 2, "n_2": 3})
    for _ in range(50):
        child = oracle.mutate(parent, rng)
        assert _one_mutation(space, parent, child)
        assert child == space.complete(child)  # exactly the active names, nothing stale


def test_evolution_respects_the_budget(space, tmp_path):
    limit = 8000
    oracle, seen = evolve(space, tmp_path, seed=2,
                          checker=lambda v: measure(space, v, Budget(max_params=limit)))
    assert all(measure(space, v).params <= limit for v in seen)
    assert oracle.rejections["count"] > 0


def test_evolution_checks_its_arguments():
    with pytest.raises(ValueError, match="sample_size"):
        RegularizedEvolutionOracle(objective="val_accuracy", population_size=4, sample_size=5)

"""Accuracy against cost (``--minimize``): non-dominated sorting and crowding distance on a
hand-made set of trials (front and order derived by hand below), the Pareto oracle's selection on
a fixed history, the latency cache (a second request measures nothing), and a digits search with
``--minimize macs`` whose reported front is checked against the trials by brute force."""
import csv
import json
import math
import re

import pytest

from kblocks.search import pareto

# Six trials (accuracy, cost). By hand: E, A, B, C are beaten by no other trial (front 0);
# D (.93, 30) is beaten by B (.95, 20) and F (.90, 15) by A (.90, 10), and neither beats the other
# (front 1).
TRIALS = {"A": (0.90, 10), "B": (0.95, 20), "C": (0.97, 40), "D": (0.93, 30), "E": (0.85, 5),
          "F": (0.90, 15)}
NAMES = list(TRIALS)
POINTS = [(-acc, cost) for acc, cost in TRIALS.values()]  # both minimised


def idx(*names):
    return [NAMES.index(n) for n in names]


def test_non_dominated_sort_gives_the_hand_made_fronts():
    assert pareto.non_dominated_sort(POINTS) == [sorted(idx("E", "A", "B", "C")),
                                                 sorted(idx("D", "F"))]
    assert pareto.dominates(POINTS[idx("A")[0]], POINTS[idx("F")[0]])  # equal accuracy, cheaper
    assert not pareto.dominates(POINTS[idx("D")[0]], POINTS[idx("F")[0]])


def test_crowding_distance_and_order_by_hand():
    front = sorted(idx("E", "A", "B", "C"))
    d = pareto.crowding_distance(POINTS, front)
    a, b, c, e = (d[i] for i in idx("A", "B", "C", "E"))
    assert c == math.inf and e == math.inf  # the extremes of both objectives
    # accuracy span .97-.85 = .12, cost span 40-5 = 35:
    # A: neighbours B, E in accuracy (.95-.85)/.12, E, B in cost (20-5)/35
    # B: neighbours C, A in accuracy (.97-.90)/.12, A, C in cost (40-10)/35
    assert a == pytest.approx(0.10 / 0.12 + 15 / 35)
    assert b == pytest.approx(0.07 / 0.12 + 30 / 35)
    # environmental selection of 3 cuts front 0 by crowding: the extremes, then B (not A)
    assert sorted(pareto.select(POINTS, 3)) == sorted(idx("E", "C", "B"))
    assert sorted(pareto.select(POINTS, 4)) == sorted(idx("E", "A", "B", "C"))
    assert len(pareto.select(POINTS, 5)) == 5 and set(idx("E", "A", "B", "C")) < \
        set(pareto.select(POINTS, 5))
    # the report's front of (cost, accuracy): cheapest first
    pairs = [(cost, acc) for acc, cost in TRIALS.values()]
    assert pareto.pareto_front(pairs) == idx("E", "A", "B", "C")


class Pick:
    """A stand-in for random.Random whose sample() returns the given members."""

    def __init__(self, chosen):
        self.chosen = chosen

    def sample(self, population, k):
        return list(self.chosen)


@pytest.fixture(scope="module")
def space():
    from kblocks.search import SearchSpace

    return SearchSpace("[CONV({f: 4|8|12|16|20|24})-RELU]*{n: 1..3}-FC(4)", input_shape=(8, 8, 1))


def test_pareto_oracle_selects_on_a_fixed_history(space, tmp_path):
    from kblocks.search.oracles import make_oracle

    scores, costs = {}, {}
    oracle = make_oracle("pareto", space=space, max_trials=6, seed=1, population_size=3,
                         sample_size=2, minimize="macs",
                         cost=lambda t: costs[t.trial_id])
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.verbose = 0
    for name in NAMES:  # the six trials, in this order
        trial = oracle.create_trial("tuner0")
        scores[trial.trial_id], costs[trial.trial_id] = TRIALS[name]
        oracle.update_trial(trial.trial_id, {"val_accuracy": TRIALS[name][0]})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    ids = {name: oracle.end_order[i] for i, name in enumerate(NAMES)}
    population = oracle.population()
    assert [t.trial_id for t in population] == [ids["B"], ids["C"], ids["E"]]  # as select(3)
    by = {t.trial_id: t for t in population}
    # binary tournaments: the larger crowding distance wins within front 0 (C, E: infinite)
    assert oracle._select(population, Pick([0, 1])).trial_id == ids["C"]  # B against C
    assert oracle._select(population, Pick([0, 2])).trial_id == ids["E"]  # B against E
    assert oracle._select(population, Pick([1, 2])).trial_id == ids["C"]  # tie: the elder
    assert set(by) == {ids["B"], ids["C"], ids["E"]}
    # the next trial is a child: one active hyperparameter of a parent changed
    child = oracle.create_trial("tuner0").hyperparameters.values
    parents = [t.hyperparameters.values for t in population]
    assert any(sum(child.get(k) != v for k, v in p.items()) >= 1 for p in parents)
    state = oracle.get_state()
    assert state["minimize"] == "macs" and state["population_size"] == 3


def test_latency_is_measured_once_per_text_and_device(tmp_path):
    import keras

    from kblocks.search.latency import LatencyCache

    built = []

    def build():
        built.append(1)
        return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(3)])

    path = tmp_path / "kt" / "latency.json"
    cache = LatencyCache(path, warmup=1, repeats=3)
    first = cache.latency("FLAT-FC(3)", build, (4, 4, 1))
    again = cache.latency("FLAT-FC(3)", build, (4, 4, 1))
    assert first > 0 and again == first
    assert cache.measurements == 1 and len(built) == 1
    later = LatencyCache(path, warmup=1, repeats=3)  # another process, the same search folder
    assert later.latency("FLAT-FC(3)", build, (4, 4, 1)) == first
    assert later.measurements == 0 and len(built) == 1
    other = LatencyCache(path, batch=2, warmup=1, repeats=3)  # another batch size: measured
    other.latency("FLAT-FC(3)", build, (4, 4, 1))
    assert other.measurements == 1 and len(built) == 2
    entries = json.loads(path.read_text())
    assert len(entries) == 2
    assert {e["backend"] for e in entries.values()} == {keras.backend.backend()}
    assert all(e["text"] == "FLAT-FC(3)" and e["device"] for e in entries.values())


def _check_front(rows, front):
    """Brute force: a member is beaten by no trial, a non-member by some trial; cheapest first."""
    pts = {int(r["trial"]): (float(r["val_accuracy"]), int(r["macs"])) for r in rows}

    def beaten(t):
        a, c = pts[t]
        return any(a2 >= a and c2 <= c and (a2 > a or c2 < c) for a2, c2 in pts.values())

    members = [m["trial"] for m in front["front"]]
    assert members and all(not beaten(t) for t in members)
    assert {pts[t] for t in members} == {pts[t] for t in pts if not beaten(t)}  # equal ones once
    assert [m["macs"] for m in front["front"]] == sorted(m["macs"] for m in front["front"])


def _search_digits(out, *args):
    """``kblocks search ... --data digits --minimize macs --out OUT``: the CLI result, the
    completed rows of trials.csv and pareto.json."""
    from click.testing import CliRunner

    from kblocks.cli import main

    result = CliRunner().invoke(main, ["search", *args, "--data", "digits", "--minimize", "macs",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [r for r in csv.DictReader((out / "trials.csv").open()) if r["status"] == "COMPLETED"]
    return result, rows, json.loads((out / "pareto.json").read_text())


@pytest.mark.slow
def test_digits_search_minimising_macs_reports_its_front(tmp_path):
    out = tmp_path / "s"
    result, rows, front = _search_digits(
        out, "kblocks/search/spaces/cs231n_pattern.yaml", "--objective", "val_accuracy",
        "--trials", "6", "--population", "3", "--subset", "500", "--epochs", "1",
        "--batch-size", "64", "--optimizer", "adam", "--seed", "3")
    assert "tuner pareto" in result.output and "val_accuracy against macs" in result.output
    assert len(rows) == 6
    assert front["minimize"] == "macs" and len(front["front"]) >= 3
    _check_front(rows, front)
    for m in front["front"]:  # 1-based numbers, the fixed text of each member
        assert m["trial"] == int(m["kt_trial_id"]) + 1
        assert m["text"] == next(r["architecture"] for r in rows if int(r["trial"]) == m["trial"])
    assert "Pareto front (val_accuracy against macs" in result.output
    assert (out / "search.png").exists()


@pytest.mark.slow  # 5 trials of a NAS-Bench-201 space on digits: about 50 s on 2 cores
def test_a_cell_space_searched_against_macs_with_prescreening(tmp_path):
    """The three parts of issue 16 in one search: the NAS-Bench-201 cell space (operation
    choices on six edges), Pareto selection against MACs and synflow pre-screening of 4 candidates
    a trial (5 trials of 1 epoch: a front of 3 or more). The console shows each long architecture
    by its choices; the best network rebuilt from best.yaml has the parameters its trial row
    reports (Keras' count_params)."""
    import kblocks

    out = tmp_path / "s"
    result, rows, front = _search_digits(
        out, "kblocks/search/spaces/nasbench201.yaml", "--set", "N=1 C=8 C2=16 C4=32",
        "--trials", "5", "--population", "2", "--prescreen", "synflow:4", "--subset", "400",
        "--epochs", "1", "--seed", "2")
    assert "tuner pareto" in result.output and "pre-screening synflow:4" in result.output
    assert len(rows) == 5
    _check_front(rows, front)
    assert len(front["front"]) >= 3  # issue 16: a front of at least three architectures
    for r in rows:  # every trial trained the best-scored of its candidates
        screened = json.loads((out / "kt" / f"trial_{r['kt_trial_id']}" / "prescreen.json")
                              .read_text())
        candidates = screened["candidates"]  # up to 4: a draw equal to another candidate is dropped
        assert 1 <= len(candidates) <= 4 and screened["k"] == 4
        chosen = candidates[screened["chosen"]]
        assert chosen["text"] == r["architecture"]
        assert chosen["score"] == max(c["score"] for c in candidates)
        assert json.loads(r["hyperparameters"]) == chosen["values"]
        assert set(chosen["values"]) == {"e01", "e02", "e12", "e03", "e13", "e23"}
    front_lines = result.output.split("Pareto front (val_accuracy against macs")[1].splitlines()[1:]
    assert front_lines[0].lstrip().startswith("trial ") and "e01=" in front_lines[0]
    assert "INPUT(8, 8, 1)" not in result.output.split("Pareto front")[1]
    number = int(re.search(r"^best: trial (\d+),", result.output, re.M).group(1))
    best = next(r for r in rows if int(r["trial"]) == number)
    model = kblocks.build(str(out / "best.yaml"))
    assert model.count_params() == int(best["params"])

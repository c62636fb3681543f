"""Zero-cost pre-screening (issue 16): naswot and synflow against hand computations in numpy, the
minimum score for nets whose units tell no image apart, the oracle mixin (best of K candidates,
Hyperband's continuations left alone) and ``kblocks search --prescreen`` (K scored, one trained
per trial, scores recorded; a bad SCORE:K exits 2)."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

import kblocks
from kblocks.cli import main
from kblocks.search import SearchSpace
from kblocks.search import prescreen as ps
from kblocks.search.oracles import make_oracle

MLP = "FC(6)-RELU-FC(5)-RELU-FC(2)"
SPACE = "[CONV({f#: 4|8|12|16})-RELU-POOL?]*{m: 1..2}-FC(classes)"


@pytest.fixture(scope="module")
def mlp():
    model = kblocks.build(MLP, input_shape=(4,))
    rng = np.random.default_rng(0)
    for v in model.weights:  # biases too, so that the codes differ between images
        v.assign(rng.normal(size=v.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).normal(size=(7, 4)).astype("float32")


def weights(model):
    return [np.asarray(v.numpy(), dtype=np.float64) for v in model.weights]


def test_naswot_equals_a_hand_computation(mlp, images):
    w1, b1, w2, b2, _, _ = weights(mlp)
    h1 = np.maximum(images @ w1 + b1, 0)
    h2 = np.maximum(h1 @ w2 + b2, 0)
    codes = np.concatenate([h1 > 0, h2 > 0], axis=1)  # 11 ReLU units per image
    n, units = codes.shape
    hamming = np.array([[np.sum(codes[i] != codes[j]) for j in range(n)] for i in range(n)])
    kernel = units - hamming  # Mellor et al. 2021: K_H = N_A - d_H
    sign, expected = np.linalg.slogdet(kernel.astype(np.float64))
    assert sign > 0 and len({tuple(c) for c in codes}) == n  # a non-trivial case
    assert ps.naswot(mlp, images) == pytest.approx(expected, abs=1e-9)
    np.testing.assert_array_equal(ps.naswot_kernel(ps.activation_codes(mlp, images)), kernel)


def test_nets_whose_units_tell_no_image_apart_get_the_minimum(mlp, images):
    alive = ps.naswot(mlp, images)
    assert math.isfinite(alive)
    for bias in (-1e4, 1e4):  # every ReLU of the first layer dead, then every one on
        model = kblocks.build(MLP, input_shape=(4,))
        for v, w in zip(model.weights, mlp.weights):
            v.assign(w)
        model.layers[1].bias.assign(np.full(6, bias, "float32"))
        model.layers[3].bias.assign(np.full(5, bias, "float32"))
        assert ps.naswot(model, images) == -math.inf < alive
    linear = kblocks.build("FC(6)-FC(2)", input_shape=(4,))  # no ReLU at all: no codes
    assert ps.naswot(linear, images) == -math.inf


def test_synflow_equals_a_hand_computation():
    model = kblocks.build("FC(5)-RELU-FC(3)", input_shape=(4,))
    rng = np.random.default_rng(2)
    for v in model.weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    w1, b1, w2, b2 = [np.abs(w) for w in weights(model)]
    # R = sum of the outputs of the |theta| network on an all-ones input; score = sum theta dR/dtheta
    z = w1.sum(axis=0) + b1          # first layer's outputs (all positive: ReLU passes them)
    s = w2.sum(axis=1)               # dR/dz
    expected = (w2 * z[:, None]).sum() + b2.sum() + (w1 * s[None, :]).sum() + (b1 * s).sum()
    assert ps.synflow(model) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("text,message", [
    ("naswot", "takes SCORE:K"), ("zen:4", "unknown zero-cost score 'zen'"),
    ("naswot:x", "K must be a whole number"), ("synflow:1", "K must be 2..1000"),
])
def test_bad_score_k_is_a_clear_cli_error(tmp_path, text, message):
    result = CliRunner().invoke(main, ["search", SPACE, "--data", "digits", "--trials", "2",
                                       "--prescreen", text, "--out", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert f"--prescreen: {message}" in result.output and "hint: e.g. naswot:8" in result.output
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_grid_search_refuses_prescreening(tmp_path):
    result = CliRunner().invoke(main, ["search", SPACE, "--data", "digits", "--tuner", "grid",
                                       "--prescreen", "naswot:3", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "grid search trains every point" in result.output


class FakeScorer:
    """Scores without Keras: more filters in the first stage is better."""

    def __init__(self, space):
        self.space, self.calls = space, 0

    def __call__(self, values):
        self.calls += 1
        return float(values["f_1"]) + 0.1 * values["m"]


def drive(oracle, folder, trials):
    oracle._set_project_dir(str(folder), "p")
    oracle.verbose = 0
    out = []
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        out.append((trial.trial_id, dict(trial.hyperparameters.values)))
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return out


@pytest.mark.parametrize("kind,options", [
    ("random", {}), ("evolution", {"population_size": 2, "sample_size": 2}),
    ("hyperband", {"max_epochs": 4, "factor": 2}),
])
def test_each_new_trial_is_the_best_of_k_candidates(tmp_path, kind, options):
    space = SearchSpace(SPACE, classes=10, input_shape=(8, 8, 1))
    oracle = make_oracle(kind, space=space, max_trials=6, seed=3, **options)
    scorer = FakeScorer(space)
    ps.attach(oracle, "naswot:4", scorer)
    trials = drive(oracle, tmp_path, 6)
    screens = ps.load(tmp_path / "p")
    assert len(trials) == 6
    for trial_id, values in trials:
        if "tuner/trial_id" in values:  # Hyperband continues a trained trial: nothing to screen
            assert trial_id not in screens
            continue
        record = screens[trial_id]
        scores = [c["score"] for c in record["candidates"]]
        assert 2 <= len(scores) <= 4 and record["k"] == 4
        chosen = record["candidates"][record["chosen"]]
        assert chosen["chosen"] and chosen["score"] == max(scores)
        assert chosen["values"] == {k: v for k, v in values.items() if not k.startswith("tuner/")}
        assert chosen["text"] == space.fixed(values)
    assert scorer.calls >= 2 * len(screens)
    if kind == "hyperband":
        assert any("tuner/trial_id" in v for _, v in trials) and screens


def test_search_prescreen_scores_k_and_trains_one_per_trial(tmp_path, monkeypatch):
    from kblocks.search.tuner import SpaceHyperModel

    fits, scored = [], []
    fit, naswot = SpaceHyperModel.fit, ps.naswot

    def counting_fit(self, hp, *args, **kwargs):
        fits.append(dict(hp.values))
        return fit(self, hp, *args, **kwargs)

    def counting_naswot(model, x):
        scored.append(naswot(model, x))
        assert x.shape == (64, 8, 8, 1) and 0.5 < float(x.std()) < 1.5  # standardised
        return scored[-1]

    monkeypatch.setattr(SpaceHyperModel, "fit", counting_fit)
    monkeypatch.setattr(ps, "naswot", counting_naswot)
    out = tmp_path / "s"
    result = CliRunner().invoke(main, [
        "search", SPACE, "--data", "digits", "--subset", "300", "--trials", "2", "--epochs", "1",
        "--batch-size", "64", "--optimizer", "adam", "--prescreen", "naswot:3", "--out", str(out),
        "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pre-screening naswot:3" in result.output
    assert len(fits) == 2 and len(scored) == 6  # 3 scored, 1 trained, per trial
    screens = ps.load(out / "kt")
    assert sorted(screens) == ["0", "1"]
    recorded = [c["score"] for t in sorted(screens) for c in screens[t]["candidates"]]
    assert recorded == pytest.approx(scored)
    for trial_id, fitted in zip(sorted(screens), fits):
        record = screens[trial_id]
        chosen = record["candidates"][record["chosen"]]
        assert chosen["score"] == max(c["score"] for c in record["candidates"])
        assert chosen["values"] == fitted  # the one that trained
        trial = json.loads((out / "kt" / f"trial_{trial_id}" / "trial.json").read_text())
        assert trial["hyperparameters"]["values"] == fitted
    record = json.loads((out / "search.json").read_text())
    assert record["tuner"]["prescreen"] == "naswot:3"

    # --resume with one more trial: the option comes back from search.json, the new trial is
    # screened too, and the two finished ones are neither screened nor trained again.
    more = CliRunner().invoke(main, ["search", "--out", str(out), "--resume", "--trials", "3",
                                     "--no-report"], catch_exceptions=False)
    assert more.exit_code == 0, more.output
    after = ps.load(out / "kt")
    assert sorted(after) == ["0", "1", "2"] and after["0"] == screens["0"]
    drawn = len(after["2"]["candidates"])  # 2 or 3: a draw equal to another one is scored once
    assert len(fits) == 3 and len(scored) == 6 + drawn and drawn >= 2
    assert fits[-1] == after["2"]["candidates"][after["2"]["chosen"]]["values"]


def test_the_python_api_takes_prescreen_and_needs_data_for_naswot(tmp_path):
    from kblocks.common.errors import ConfigError

    space = SearchSpace(SPACE, classes=10, input_shape=(8, 8, 1))
    x = np.random.default_rng(0).integers(0, 17, size=(32, 8, 8, 1)).astype("uint8")
    tuner = space.tuner("evolution", max_trials=2, directory=str(tmp_path), data=x,
                        prescreen="synflow:2")
    assert isinstance(tuner.oracle, ps.PrescreenOracle) and tuner.oracle.prescreen.k == 2
    with pytest.raises(ConfigError, match="give data="):
        space.tuner("random", max_trials=2, directory=str(tmp_path / "b"), prescreen="naswot:2")
    with pytest.raises(ConfigError, match="grid search trains every point"):
        space.tuner("grid", directory=str(tmp_path / "c"), data=x, prescreen="naswot:2")

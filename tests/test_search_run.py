"""Searches that train, through the command line: a 6-trial search on digits, its report and its
best architecture file; every tuner on a small subset; user errors exit 2 with a message."""
import csv
import json

import pytest
from click.testing import CliRunner

import kblocks
from kblocks.cli import main

SPACE = ("[[CONV({f#: 8|16|32})-RELU]*{n#: 1..2}-POOL?]*{stages: 1..3}"
         "-[FC({u#: 16..64 step 16})-RELU]*{k: 0..1}-FC(classes)")


def search(*args):
    result = CliRunner().invoke(main, ["search", *args], catch_exceptions=False)
    return result


@pytest.mark.slow
def test_six_trial_search_on_digits_and_its_best_architecture(tmp_path):
    out = tmp_path / "s"
    result = search(SPACE, "--data", "digits", "--tuner", "random", "--trials", "6",
                    "--epochs", "2", "--batch-size", "64", "--optimizer", "adam",
                    "--max-params", "20k", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.count("completed  val_accuracy") == 6
    for name in ("search.json", "leaderboard.txt", "trials.csv", "search.png", "best.yaml"):
        assert (out / name).exists(), name

    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 6 and all(r["status"] == "COMPLETED" for r in rows)
    assert all(int(r["params"]) <= 20000 for r in rows)  # the budget held for every trial
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    assert float(best["val_accuracy"]) > 0.5

    # best.yaml is a complete architecture file: it rebuilds the reported model as it is.
    best_file = str(out / "best.yaml")
    assert kblocks.format_text(best_file) == best["architecture"]
    model = kblocks.build(best_file)
    assert model.count_params() == int(best["params"])
    assert model.input_shape[1:] == (8, 8, 1) and model.output_shape[-1] == 10
    summary = CliRunner().invoke(main, ["summary", best_file])
    assert summary.exit_code == 0 and f"Total params: {int(best['params']):,}" in summary.output

    # kblocks report reads the folder again and prints the same leaderboard.
    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert f"best: trial {best['trial']}," in report.output
    record = json.loads((out / "search.json").read_text())
    assert record["status"] == "finished" and record["space"]["network"] == SPACE


@pytest.mark.slow
@pytest.mark.parametrize("tuner,extra", [
    ("grid", ["--trials", "2"]),
    ("bayesian", ["--trials", "3", "--initial-points", "2"]),
    ("hyperband", ["--max-epochs", "2", "--factor", "2", "--trials", "3"]),
    ("evolution", ["--trials", "3", "--population", "2", "--sample-size", "2"]),
])
def test_every_tuner_runs(tmp_path, tuner, extra):
    out = tmp_path / tuner
    result = search("[CONV({f: 4|8})-RELU-POOL?]*{m: 1..2}-FC(classes)", "--data", "digits",
                    "--subset", "400", "--tuner", tuner, "--epochs", "1", "--batch-size", "64",
                    "--optimizer", "adam", "--out", str(out), *extra)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert rows and all(r["status"] == "COMPLETED" for r in rows)
    assert (out / "best.yaml").exists()
    if tuner == "hyperband":
        assert any(r["continues"] for r in rows) or len(rows) <= 2


@pytest.mark.parametrize("args,message", [
    (["--tuner", "random"], "needs --trials"),
    (["--trials", "2", "--max-params", "lots"], "--max-params takes a number"),
    (["--trials", "2", "--max-macs", "-5"], "--max-macs must be a positive number"),
    (["--tuner", "hyperband"], "hyperband needs --max-epochs"),
    (["--trials", "2", "--distributed", "worker"], "needs --chief HOST:PORT"),
    (["--trials", "2", "--distributed", "worker", "--chief", "nohost"], "HOST:PORT"),
    (["--trials", "2", "--time-budget", "0"], "--time-budget must be a positive"),
])
def test_option_errors_exit_2_with_a_message(tmp_path, args, message):
    result = CliRunner().invoke(main, ["search", SPACE, "--data", "digits", "--out",
                                       str(tmp_path / "s"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_errors_in_the_space_and_folders_exit_2(tmp_path):
    bad = CliRunner().invoke(main, ["search", "CONV({f: 8|8})-FC(classes)", "--data", "digits",
                                    "--trials", "1", "--out", str(tmp_path / "s")])
    assert bad.exit_code == 2 and "lists a value twice" in bad.output
    resume = CliRunner().invoke(main, ["search", "--out", str(tmp_path / "none"), "--resume"])
    assert resume.exit_code == 2 and "holds no search" in resume.output
    report = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert report.exit_code == 2 and "not a search folder" in report.output


@pytest.mark.slow
def test_python_api_as_the_issue_writes_it(tmp_path):
    from kblocks.training.data import load_data, split_data

    train, val = split_data(load_data("digits"), 0.2, seed=0)
    space = kblocks.SearchSpace("[CONV({f#: 8|16})-RELU]*{n: 1..2}-POOL?-FC(classes)",
                                classes=10, input_shape=(8, 8, 1))
    tuner = space.tuner("bayesian", objective="val_accuracy", max_trials=2,
                        directory=str(tmp_path), project_name="api")
    tuner.search(train.x, train.y, validation_data=(val.x, val.y), epochs=2, batch_size=64)
    best = tuner.get_best_hyperparameters()[0]
    best_text = space.fixed(best)
    assert "{" not in best_text and best_text.startswith("INPUT(8, 8, 1) - CONV(")
    assert kblocks.build(best_text).count_params() == space.build(best).count_params()
    model = tuner.get_best_models()[0]  # Keras Tuner's own reload of the trained weights
    assert model.evaluate(val.x, val.y, verbose=0)[1] > 0.3

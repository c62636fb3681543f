"""Isolated trials (``--isolate``): a trial whose process segfaults or is killed fails alone and
the search goes on; a hanging trial is stopped by ``--trial-timeout``; a search whose parent is
killed with SIGKILL leaves no child behind and loses nothing on ``--resume``. Faults come from the
``KBLOCKS_TEST_TRIAL_FAULT`` hook (the child crashes before it trains, which keeps these tests
short: a child that trains imports TensorFlow, seconds each)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

SPACE = "[CONV({f: 4|8})-RELU]*{n: 1..2}-FC(classes)"
FAULT = "KBLOCKS_TEST_TRIAL_FAULT"


def config(out, **extra):
    from kblocks.search.runner import SearchConfig
    from kblocks.training import TrainConfig

    train = TrainConfig(data="digits", subset=400, epochs=1, batch_size=64, seed=5,
                        tensorboard=False, verbose=0)
    return SearchConfig(space=SPACE, train=train, tuner="random", out=str(out), isolate=True,
                        **extra)


def trial(out, number):
    return json.loads((out / "kt" / f"trial_{number - 1}" / "trial.json").read_text())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_a_hanging_trial_is_stopped_by_the_trial_timeout(tmp_path, monkeypatch):
    from kblocks.search.runner import SearchFailed, run_search

    monkeypatch.setenv(FAULT, "1=hang")
    out = tmp_path / "s"
    lines = []
    with pytest.raises(SearchFailed, match="no trial completed"):
        run_search(config(out, trials=1, trial_timeout=2), echo=lines.append)
    state = trial(out, 1)
    assert state["status"] == "FAILED"
    assert "timed out after 2 s (--trial-timeout)" in state["message"].strip().splitlines()[-1]
    assert any(line.startswith("trial 1 failed") and "timed out" in line for line in lines)


@pytest.mark.slow
def test_crashes_fail_one_trial_and_a_killed_parent_loses_nothing(tmp_path, monkeypatch):
    from kblocks.search.runner import SearchConfig, run_search

    out = tmp_path / "s"
    # The parent: a command-line search whose first trial hangs; killed with SIGKILL.
    cmd = [sys.executable, "-m", "kblocks", "search", SPACE, "--data", "digits", "--subset",
           "400", "--tuner", "random", "--trials", "3", "--epochs", "1", "--batch-size", "64",
           "--seed", "5", "--isolate", "--minimize", "latency", "--out", str(out)]
    env = {**os.environ, FAULT: "1=hang", "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              text=True)
    child = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and child is None:
            assert parent.poll() is None, parent.stdout.read()
            try:
                with open(f"/proc/{parent.pid}/task/{parent.pid}/children") as f:
                    kids = [int(p) for p in f.read().split()]
            except OSError:
                kids = []
            if kids and (out / "kt" / "trial_0" / "isolated_trial.json").exists():
                child = kids[0]
            time.sleep(0.2)
        assert child is not None, "the first trial's process never started"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    for _ in range(100):  # the kernel ends the child with its parent (PR_SET_PDEATHSIG)
        if not alive(child):
            break
        time.sleep(0.1)
    assert not alive(child)
    assert trial(out, 1)["status"] == "RUNNING"

    # Resume (options from search.json, isolation included): trial 1 runs again and completes;
    # trial 2's process segfaults, trial 3's is killed; the search still finishes.
    monkeypatch.setenv(FAULT, "2=segv,3=kill")
    lines = []
    report = run_search(SearchConfig(out=str(out), resume=True), echo=lines.append)
    first, second, third = trial(out, 1), trial(out, 2), trial(out, 3)
    assert first["status"] == "COMPLETED" and first["score"] > 0
    assert (out / "kt" / "trial_0" / "checkpoint.weights.h5").exists()  # written by the child
    # --minimize latency (random draws, front reported): the child measured it and cached it
    latency = first["metrics"]["metrics"]["latency_ms"]["observations"][0]["value"][0]
    cached = json.loads((out / "kt" / "latency.json").read_text())
    assert [e["ms"] for e in cached.values()] == [latency] and latency > 0
    assert json.loads((out / "pareto.json").read_text())["front"][0]["trial"] == 1
    assert second["status"] == "FAILED"
    assert "the trial's process died (SIGSEGV)" in second["message"]
    assert third["status"] == "FAILED"
    assert "killed (SIGKILL; out of memory?)" in third["message"]
    assert "environment failure" in third["message"]  # run again on a later --resume
    oracle = json.loads((out / "kt" / "oracle.json").read_text())
    assert oracle["end_order"] == ["0", "1", "2"]  # each trial ended once
    record = json.loads((out / "search.json").read_text())
    assert record["status"] == "finished" and record["isolation"]["isolate"] is True
    assert report.best.number == 1
    assert [line.split()[:3] for line in lines if line.startswith("trial ")] == [
        ["trial", "1", "completed"], ["trial", "2", "failed"], ["trial", "3", "failed"]]


@pytest.mark.parametrize("args,message", [
    (["--trial-timeout", "60"], "--trial-timeout (60.0) needs --isolate"),
    (["--minimize", "macs", "--tuner", "bayesian"], "the bayesian tuner optimises val_accuracy"),
    (["--tuner", "pareto"], "the pareto tuner needs --minimize"),
])
def test_contradictory_options_are_refused_before_anything_runs(tmp_path, args, message):
    from click.testing import CliRunner

    from kblocks.cli import main

    out = tmp_path / "s"
    result = CliRunner().invoke(main, ["search", SPACE, "--data", "digits", "--trials", "2",
                                       "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (out / "search.json").exists()

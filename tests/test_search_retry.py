"""Trials that failed for the machine are retried (issue 21, point 6): a full disk while a trial
writes its checkpoint is a clean failure of that trial (one line naming the file and "no space
left"), never a crash; --resume runs it again; a search in which no trial completed fails (the
library raises SearchFailed, the command line exits 1), while architecture failures stay failed."""
import errno
import json
import os
import subprocess
import sys

import keras_tuner
import pytest
from conftest import ROOT

from kblocks.common import saving
from kblocks.search import oracles
from kblocks.search import tuner as ktuner
from kblocks.search.runner import SearchConfig, SearchFailed, run_search
from kblocks.training import TrainConfig

SPACE = "CONV({f#: 4|8})-RELU-GAP-FC(classes)"


def config(out, resume=False):
    train = TrainConfig(data="digits", subset=300, val_split=60, epochs=1, batch_size=50, seed=3,
                        verbose=0, tensorboard=False)
    return SearchConfig(space=SPACE, train=train, tuner="random", trials=2, out=str(out),
                        resume=resume, report=False)


def trials(out):
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted((out / "kt").glob("trial_*/trial.json"))}


def test_a_full_disk_fails_the_trial_cleanly_and_resume_runs_it_again(tmp_path, monkeypatch):
    out = tmp_path / "s"
    real = saving._write_atomically

    def full_disk(path, ending, write, kept=None):
        if str(path).endswith(saving.WEIGHTS_SUFFIX):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, ending, write, kept)

    monkeypatch.setattr(saving, "_write_atomically", full_disk)
    lines = []
    with pytest.raises(SearchFailed, match="no trial completed") as failed:
        run_search(config(out), echo=lines.append)
    assert f"{out / 'kt'}/trial_*/trial.json" in str(failed.value)
    first = trials(out)
    assert sorted(first) == ["trial_0", "trial_1"]
    for name, state in first.items():
        assert state["status"] == "FAILED"
        last = state["message"].strip().splitlines()[-1]
        assert "no space left on the device writing" in last
        assert f"{name}/checkpoint.weights.h5" in last
        assert oracles.is_environment_failure(state["message"])
    shown = [line for line in lines if line.startswith("trial ")]
    assert len(shown) == 2 and all("no space left" in line for line in shown)
    assert json.loads((out / "search.json").read_text())["status"] == "failed"

    monkeypatch.setattr(saving, "_write_atomically", real)  # space freed
    lines = []
    run_search(config(out, resume=True), echo=lines.append)
    ran = [line.split()[:3] for line in lines if line.startswith("trial ")]
    assert ran == [["trial", "1", "completed"], ["trial", "2", "completed"]]  # numbered from 1
    again = trials(out)
    assert sorted(again) == ["trial_0", "trial_1"]  # the same trials, none added
    assert all(s["status"] == "COMPLETED" and not s["message"] for s in again.values())
    assert (out / "kt" / "trial_0" / "checkpoint.weights.h5").exists()
    assert again["trial_0"]["hyperparameters"]["values"] == \
        first["trial_0"]["hyperparameters"]["values"]  # the very architecture that failed
    assert json.loads((out / "search.json").read_text())["status"] == "finished"


def test_a_full_disk_under_the_searchs_own_files_ends_it_with_one_line(tmp_path, monkeypatch):
    from kblocks.common.errors import KBlocksError
    from kblocks.search import oracles

    real = oracles.write_json_atomic

    def full_disk(path, obj):
        if str(path).endswith("oracle.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(oracles, "write_json_atomic", full_disk)
    out = tmp_path / "s"
    with pytest.raises(KBlocksError, match="no space left on the device while writing .*oracle.json") \
            as err:
        run_search(config(out), echo=lambda line: None)
    assert f"--out {out} --resume" in str(err.value)


def test_a_checkpoint_the_disk_cannot_hold_is_refused_before_hdf5_writes(tmp_path, monkeypatch):
    import shutil

    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1000)])
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(OSError) as err:
        ktuner._check_space(model, tmp_path / "checkpoint.weights.h5")
    assert err.value.errno == errno.ENOSPC and "no space left" in str(err.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("err, retried", [
    (OSError(errno.ENOSPC, "No space left on device", "x.h5"), True),
    (OSError(errno.EIO, "Input/output error"), True),
    (MemoryError(), True),
    (ValueError("Negative dimension size"), False),
    (keras_tuner.errors.FailedTrialError("the loss became nan in epoch 1"), False),
])
def test_failures_are_sorted_into_machine_and_architecture(err, retried):
    assert (ktuner.environment_problem(err) is not None) is retried


@pytest.mark.slow  # two small searches in a subprocess (TensorFlow imports): ~40 s
def test_a_search_whose_every_trial_diverges_exits_1_and_resume_keeps_them_failed(tmp_path):
    out = tmp_path / "s"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "kblocks", "search", SPACE, "--data", "digits", "--subset",
            "300", "--trials", "2", "--epochs", "1", "--batch-size", "50", "--seed", "3",
            "--lr", "1e12", "--out", str(out)]
    run = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    error = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "no trial completed (2 failed)" in error[0]  # one line, not a crash
    assert f"{out / 'kt'}/trial_*/trial.json" in error[0]
    states = trials(out)
    assert len(states) == 2 and all(s["status"] == "FAILED" for s in states.values())
    assert not any(oracles.is_environment_failure(s["message"]) for s in states.values())

    again = subprocess.run(args + ["--resume"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 1, again.stdout + again.stderr
    assert not [line for line in again.stdout.splitlines() if line.startswith("trial ")]

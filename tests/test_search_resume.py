"""A search killed with SIGKILL in the middle of a trial continues with --resume: the finished
trials stay as they were, only the interrupted one runs again, none is lost or run twice."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

SPACE = "[[CONV({f#: 8|16})-RELU]*{n#: 1..2}-POOL?]*{m: 1..2}-FC(classes)"


def search_cmd(out, *extra):
    return [sys.executable, "-m", "kblocks", "search", SPACE, "--data", "digits", "--tuner",
            "random", "--trials", "3", "--epochs", "3", "--batch-size", "64", "--seed", "7",
            "--out", str(out), *extra]


def env():
    return {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}


def trial_state(out, trial_id):
    path = out / "kt" / f"trial_{trial_id}" / "trial.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.Popen(search_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env(), text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait until trial 1 runs (trial 0 is then finished)
            state = trial_state(out, 1)
            if state is not None and state["status"] == "RUNNING":
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        else:
            pytest.fail("trial 1 never started")
        time.sleep(1.0)  # into its training
        assert trial_state(out, 1)["status"] == "RUNNING"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = trial_state(out, 0)
    assert before["status"] == "COMPLETED"
    interrupted = trial_state(out, 1)["hyperparameters"]["values"]

    again = subprocess.run(search_cmd(out, "--resume"), capture_output=True, text=True, env=env(),
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    ran = [line.split()[1] for line in again.stdout.splitlines() if line.startswith("trial ")]
    assert ran == ["2", "3"]  # trial_1 (trial 2) again, then the one never started
    assert trial_state(out, 0) == before  # untouched
    assert trial_state(out, 1)["hyperparameters"]["values"] == interrupted  # the same architecture
    oracle = json.loads((out / "kt" / "oracle.json").read_text())
    assert oracle["end_order"] == ["0", "1", "2"]  # each trial finished exactly once
    assert sorted(p.name for p in (out / "kt").glob("trial_*")) == ["trial_0", "trial_1", "trial_2"]
    assert all(trial_state(out, i)["status"] == "COMPLETED" for i in range(3))
    record = json.loads((out / "search.json").read_text())
    assert record["status"] == "finished" and len(record["resumed"]) == 1
    assert (out / "best.yaml").exists()


def test_resume_refuses_other_options(tmp_path):
    from click.testing import CliRunner

    from kblocks.cli import main

    out = tmp_path / "s"
    out.mkdir()
    record = {"format": 1, "space": {"network": SPACE}, "tuner": {"kind": "grid"}, "budget": {},
              "train": {}, "seed": 1}
    (out / "search.json").write_text(json.dumps(record))
    result = CliRunner().invoke(main, ["search", SPACE, "--data", "digits", "--trials", "2",
                                       "--out", str(out)])
    assert result.exit_code == 2
    assert "--resume to continue" in result.output


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_trial_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """Keras Tuner's best-epoch checkpoint (trial_NN/checkpoint.weights.h5) goes through
    kblocks.common.saving.save_weights: no temporary left after a search, and a write that fails half-way
    leaves the previous checkpoint intact (Keras Tuner's own SaveBestEpoch writes in place)."""
    from pathlib import Path

    from keras_tuner.src.engine import tuner_utils

    import kblocks
    from kblocks.common import saving
    from kblocks.training.data import load_data, split_data

    train, val = split_data(load_data("digits"), 0.2, seed=0)
    space = kblocks.SearchSpace("CONV({f#: 4|8})-RELU-GAP-FC(classes)", classes=10,
                                input_shape=(8, 8, 1))
    tuner = space.tuner("random", max_trials=1, directory=str(tmp_path), project_name="kt")
    saved, checkpoints = [], []
    real_save = saving.save_weights
    monkeypatch.setattr(saving, "save_weights",
                        lambda model, path: saved.append(str(path)) or real_save(model, path))
    real_set_model = tuner_utils.SaveBestEpoch.set_model

    def remember(callback, model):  # the checkpoint callback Keras Tuner builds for the trial
        checkpoints.append(callback)
        real_set_model(callback, model)

    monkeypatch.setattr(tuner_utils.SaveBestEpoch, "set_model", remember)
    tuner.search(train.x, train.y, validation_data=(val.x, val.y), epochs=2, batch_size=64,
                 verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    path = Path(tuner._get_checkpoint_fname(trial.trial_id))
    assert saved and set(saved) == {str(path)}  # every checkpoint write was the atomic one
    assert [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name] == []
    good = path.read_bytes()
    assert good.startswith(b"\x89HDF")

    callback = checkpoints[0]
    monkeypatch.setattr(saving, "save_weights", real_save)

    def dies_half_way(model, filepath, *args, **kwargs):  # a kill or a full disk mid-write
        with open(filepath, "wb") as f:
            f.write(good[:len(good) // 3])
        raise OSError("no space left on device")

    monkeypatch.setattr(type(callback.model), "save_weights", dies_half_way)
    with pytest.raises(OSError, match="no space left"):
        callback._save_model()  # what Keras Tuner calls at an epoch that beats the best so far
    assert path.read_bytes() == good  # the previous checkpoint, complete
    assert [p.name for p in path.parent.iterdir() if ".tmp" in p.name] == []
    monkeypatch.undo()
    assert tuner.get_best_models()[0].count_params() > 0  # Keras Tuner reloads the checkpoint

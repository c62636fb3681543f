"""Training faults lose nothing (issue 8): a NaN loss keeps the last good checkpoints, Ctrl-C
leaves a resumable run folder and exits 130, and --resume finishes the remaining epochs."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from kblocks.training import interrupts
from kblocks.common import saving
from kblocks.cli import main
from kblocks.training import TrainConfig, TrainingDiverged, train

FAST = dict(data="digits", subset=300, val_split=60, batch_size=50, verbose=0, tensorboard=False)


@keras.saving.register_keras_serializable(package="kblocks_test")
class PoisonAfter(keras.layers.Layer):
    """The identity until it has run ``steps`` training steps, then NaN: a fault at a known step."""

    def __init__(self, steps, **kwargs):
        super().__init__(**kwargs)
        self.steps = steps

    def build(self, input_shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

    def call(self, x, training=False):
        if training:
            self.count.assign_add(1.0)
        return keras.ops.where(self.count > self.steps, x * np.nan, x)

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}


def test_nan_loss_keeps_the_checkpoints_of_the_last_good_epoch(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = PoisonAfter(7)(x)  # 240 training images / 50 = 5 steps an epoch: NaN at epoch 2, step 3
    outputs = keras.layers.Dense(10)(x)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train(keras.Model(inputs, outputs), TrainConfig(**FAST, epochs=4, seed=0), out=out)
    msg = str(info.value)
    assert "at epoch 2, step 3" in msg and "keep epoch 1" in msg
    state = json.loads((out / "state.json").read_text())
    assert state["epochs_done"] == 1 and state["best_epoch"] == 1
    for name in ("best.keras", "last.keras"):  # written after epoch 1, intact, safe_mode loads them
        model = saving.load_model(out / name)
        assert all(np.isfinite(w).all() for w in model.get_weights()), name
        assert float(model.get_layer(index=-1).layers[2].count.numpy()) == 5  # after 5 steps
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "diverged" and record["diverged_at"] == {
        "epoch": 2, "step": 3, "loss": "nan"}
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert rows[0]["epoch"] == "1" and np.isfinite(float(rows[0]["loss"]))


def test_sigint_inside_a_checkpoint_write_waits_for_it():
    order = []
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs as a background job
    with pytest.raises(KeyboardInterrupt):
        with interrupts.graceful():
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                order.append("write finished")  # the handler held the interrupt
            order.append("not reached")
    assert order == ["write finished"]
    assert signal.getsignal(signal.SIGINT) is before  # restored, whatever it was


def _rows(path):
    return list(csv.DictReader(path.open()))


@pytest.mark.slow  # one training process (a TensorFlow import) and a resumed run: ~30 s
def test_ctrl_c_saves_state_and_resume_finishes_the_run(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "kblocks", "train", "CONV(8)-RELU-POOL-FC(32)-RELU-FC",
            "--data", "digits", "--epochs", "8", "--batch-size", "16", "--seed", "1", "-q",
            "--no-tensorboard", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "history.csv").exists() and len(_rows(out / "history.csv")) >= 1:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)  # during epoch 2
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"resume with: kblocks train --resume {out}" in stderr and "Traceback" not in stderr
    state = json.loads((out / "state.json").read_text())
    done = state["epochs_done"]
    assert 1 <= done < 8 and state["optimizer_iterations"] == done * 102  # 1617 images / 16
    assert len(_rows(out / "history.csv")) == done
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    saving.load_model(out / "last.keras")  # complete, loads with safe_mode

    result = CliRunner().invoke(main, ["train", "--resume", str(out), "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = _rows(out / "history.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))  # the remaining epochs, once each
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == 0.0  # one cosine schedule throughout
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["resumed"][0]["at_epoch"] == done
    assert record["final"]["epochs_run"] == 8 and record["final"]["val_accuracy"] > 0.8
    assert json.loads((out / "state.json").read_text())["optimizer_iterations"] == 8 * 102


def test_resume_keeps_the_runs_options(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"config": {"data": "digits", "epochs": 2},
                                              "seed": 1, "architecture": "CONV-GAP-FC"}))
    (out / "state.json").write_text(json.dumps({"epochs_done": 2}))
    (out / "last.keras").write_bytes(b"")
    r = CliRunner().invoke(main, ["train", "--resume", str(out), "--lr", "0.1"])
    assert r.exit_code == 2 and "drop --lr" in r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(out)])
    assert r.exit_code == 2 and "already trained 2 of 2 epochs" in r.output and "--epochs" in r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(tmp_path)])
    assert r.exit_code == 2 and "no run.json" in r.output

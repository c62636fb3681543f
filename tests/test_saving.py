"""Models: everything kblocks writes loads with safe_mode=True, a Lambda layer is refused unless
--unsafe, and saving is atomic even under SIGKILL (issue 8; kblocks/common/saving.py)."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import keras
import pytest
from click.testing import CliRunner

from conftest import ROOT
from kblocks.common import saving
from kblocks.cli import main


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    """A digits-sized classifier with a Lambda layer (Python bytecode in the file)."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 1.0, name="scale")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    path = tmp_path_factory.mktemp("lambda") / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_library_refuses_lambda_unless_unsafe(lambda_model):
    with pytest.raises(saving.UnsafeModelError) as info:
        saving.load_model(lambda_model)
    msg = str(info.value)
    assert str(lambda_model) in msg and "'scale'" in msg and "--unsafe" in msg
    assert "run Python code" in msg
    assert saving.load_model(lambda_model, unsafe=True).get_layer("scale") is not None


def test_cli_commands_refuse_lambda_and_accept_it_with_unsafe(lambda_model, tmp_path):
    commands = {
        "evaluate": ["evaluate", lambda_model, "--data", "digits", "--subset", "100"],
        "inspect": ["inspect", lambda_model, "--method", "filters", "--layer", "conv",
                    "-o", tmp_path / "f.png"],
        "train --transfer": ["train", "--transfer", lambda_model, "--data", "digits", "--subset",
                             "200", "--val-split", "40", "--epochs", "1", "--no-tensorboard",
                             "-q", "--out", tmp_path / "run"],
        "export": ["export", lambda_model, "-o", tmp_path / "serving"],
    }
    for name, args in commands.items():
        refused = _cli(*args)
        assert refused.exit_code == 2, (name, refused.output)
        assert "--unsafe" in refused.output and "Lambda" in refused.output, (name, refused.output)
        assert "Traceback" not in refused.output
        accepted = _cli(*args, "--unsafe")
        assert accepted.exit_code == 0, (name, accepted.output)
    assert (tmp_path / "f.png").exists() and (tmp_path / "run" / "best.keras").exists()
    assert (tmp_path / "serving" / "saved_model.pb").is_file()


def test_kblocks_build_output_loads_with_safe_mode(tmp_path):
    out = tmp_path / "m.keras"
    text = "CONV(4)-BN-LRN-PRELU-POOL-SEPCONV(8)-GN(4)-GAP-FC(3)-SOFTMAX"
    assert _cli("build", text, "--input-shape", "16,16,3", "-o", out).exit_code == 0
    assert saving.lambda_layers(out) == []
    model = saving.load_model(out)  # safe_mode=True
    assert model.count_params() > 0
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary left behind


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(saving.ModelFileError, match="cannot load"):
        saving.load_model(bad)
    with pytest.raises(saving.ModelFileError, match="does not exist"):
        saving.load_model(tmp_path / "missing.keras")


def test_save_weights_is_atomic_and_keeps_the_previous_file_on_failure(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    target = tmp_path / "w.weights.h5"
    assert saving.save_weights(model, target) == target
    good = target.read_bytes()
    model.load_weights(target)  # a real Keras weights file
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights.h5"]
    written = []

    def dies_half_way(self, filepath, *args, **kwargs):
        written.append(os.path.basename(filepath))
        with open(filepath, "wb") as f:
            f.write(good[:len(good) // 2])
        raise OSError("killed")

    monkeypatch.setattr(type(model), "save_weights", dies_half_way)
    with pytest.raises(OSError, match="killed"):
        saving.save_weights(model, target)
    assert written[0].startswith(".w.") and written[0].endswith(".weights.h5")  # Keras' rule
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights.h5"]  # the temporary is removed
    with pytest.raises(saving.ModelFileError, match="must end in .weights.h5"):
        saving.save_weights(model, tmp_path / "w.h5")


# --- atomic saving under SIGKILL -------------------------------------------------------------------

SLOW_SAVER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    from kblocks.common.saving import save_model

    class Model:  # what save_model needs of a Keras model: save(path), here slow and big
        def __init__(self, i):
            self.i = i
        def save(self, path):
            with open(path, "wb") as f:
                for _ in range(64):
                    f.write(bytes([self.i % 256]) * 65536)
                    f.flush()
                    time.sleep(0.001)

    for i in range(1, 10**6):
        save_model(Model(i), sys.argv[1])
        print(i, flush=True)
""")


def _complete(path, size=64 * 65536):
    data = path.read_bytes()
    return len(data) == size and data == data[:1] * size


def test_save_is_atomic_under_sigkill_many_trials(tmp_path):
    """30 kills at random moments of a save loop (no Keras: the saving logic alone, fast)."""
    script = tmp_path / "saver.py"
    script.write_text(SLOW_SAVER.format(root=str(ROOT)))
    rng = random.Random(8)
    target = tmp_path / "model.keras"
    outcomes = {"absent": 0, "complete": 0}
    for trial in range(30):
        proc = subprocess.Popen([sys.executable, str(script), str(target)],
                                stdout=subprocess.PIPE, text=True)
        if trial % 5 == 0:
            time.sleep(rng.uniform(0.0, 0.2))  # sometimes before the first save finished
        else:
            proc.stdout.readline()  # one save done: the target holds a good file
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if target.exists():
            assert _complete(target), f"trial {trial}: a truncated or mixed file"
            outcomes["complete"] += 1
        else:
            outcomes["absent"] += 1
            assert trial % 5 == 0, f"trial {trial}: a good file disappeared"
        for leftover in tmp_path.glob(".model.*"):
            leftover.unlink()  # a killed writer leaves its temporary (never the target) behind
        if trial % 5 == 4:
            target.unlink(missing_ok=True)
    assert outcomes["complete"] >= 24


KERAS_SAVER = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.path.insert(0, {root!r})
    import keras, numpy as np
    from kblocks.common.saving import save_model

    inputs = keras.Input((1000,))
    x = keras.layers.Dense(4000, name="big")(inputs)
    outputs = keras.layers.Dense(10, name="marker")(x)
    model = keras.Model(inputs, outputs)  # 4 million parameters, a 16 MB file
    for i in range(1, 10**6):
        model.get_layer("marker").set_weights([np.full((4000, 10), i, np.float32),
                                               np.full((10,), i, np.float32)])
        save_model(model, sys.argv[1])
        print(i, flush=True)
""")


@pytest.mark.slow  # four Keras processes (a TensorFlow import each), run side by side: ~25 s
def test_keras_save_is_atomic_under_sigkill(tmp_path):
    script = tmp_path / "keras_saver.py"
    script.write_text(KERAS_SAVER.format(root=str(ROOT)))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    rng = random.Random(3)
    trials = []
    for k in range(4):
        folder = tmp_path / f"t{k}"
        folder.mkdir()
        target = folder / "model.keras"
        proc = subprocess.Popen([sys.executable, str(script), str(target)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        trials.append((proc, target))
    for proc, _target in trials:
        first = proc.stdout.readline()  # the first save is complete
        assert first.strip() == "1", first
        for _ in range(rng.randint(0, 3)):
            proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.4))  # then kill it at a random moment of a later save
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    for _proc, target in trials:
        model = saving.load_model(target)  # complete and loadable, with safe_mode
        kernel, bias = model.get_layer("marker").get_weights()
        assert kernel.min() == kernel.max() == bias[0] >= 1  # one save's weights, not a mix
        assert [p.name for p in target.parent.iterdir() if not p.name.startswith(".")] == \
            ["model.keras"]

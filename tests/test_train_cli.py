"""``kblocks train`` / ``kblocks evaluate`` end to end on real data (digits), through the CLI."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kblocks.cli import main

LENET = "[CONV(6,5)-RELU-POOL]*1-CONV(16,3)-RELU-POOL-FC(120)-RELU-FC(84)-RELU-FC"


def _run(args):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    result = _run(["train", LENET, "--data", "digits", "--epochs", "12", "--batch-size", "32",
                   "--lr", "0.03", "--weight-decay", "0", "--schedule", "onecycle",
                   "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow  # shares a ~20 s LeNet training run
def test_lenet_reaches_95_percent_on_digits(lenet_run):
    out, output = lenet_run
    record = json.loads((out / "run.json").read_text())
    assert record["final"]["val_accuracy"] >= 0.95, record["final"]
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 12  # 12 epochs, no more
    assert "val_accuracy" in output and "final metrics" in output


@pytest.mark.slow  # shares a ~20 s LeNet training run
def test_run_folder_artefacts(lenet_run):
    import keras
    from PIL import Image

    import kblocks.training.augment  # noqa: F401 - registers the augmentation layers for safe loading

    out, _ = lenet_run
    record = json.loads((out / "run.json").read_text())
    assert record["seed"] == 7 and record["status"] == "finished"
    assert record["command"][:3] == ["kblocks", "train", LENET]
    assert record["command_line"].startswith("kblocks train '[CONV(6,5)")
    assert "--seed 7" in record["command_line"] and "--epochs 12" in record["command_line"]
    assert record["config"]["epochs"] == 12 and record["data"]["train"]["samples"] == 1617
    assert record["data"]["val"]["samples"] == 180
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == 12 and {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"} \
        <= set(rows[0])
    assert float(rows[-1]["val_accuracy"]) > 0.9
    with Image.open(out / "curves.png") as png:
        assert png.size == (1000, 400)
    text = (out / "architecture.txt").read_text()
    assert "CONV(6" in text and "FC(10)" in text  # canonical text, class count resolved
    assert "fc_" in (out / "summary.txt").read_text()
    assert any((out / "logs").rglob("events.out.tfevents.*"))
    assert not list(out.glob(".*"))  # no temporary files left behind
    for name in ("best.keras", "last.keras"):
        model = keras.saving.load_model(out / name, safe_mode=True)
        assert model.input_shape == (None, 8, 8, 1)
        probs = model.predict(np.zeros((2, 8, 8, 1), np.uint8), verbose=0)
        assert probs.shape == (2, 10)


@pytest.mark.slow  # shares a ~20 s LeNet training run
def test_evaluate_matches_training_numbers(lenet_run):
    out, _ = lenet_run
    record = json.loads((out / "run.json").read_text())
    result = _run(["evaluate", str(out / "best.keras"), "--run", str(out), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["samples"] == 180
    assert scores["accuracy"] == pytest.approx(record["final"]["val_accuracy"], abs=1e-6)
    assert scores["loss"] == pytest.approx(record["final"]["val_loss"], abs=1e-3)
    table = _run(["evaluate", str(out / "best.keras"), "--data", "digits"])
    assert table.exit_code == 0 and "accuracy" in table.output


@pytest.mark.slow  # shares a ~20 s LeNet training run
def test_existing_run_folder_is_not_overwritten(lenet_run):
    out, _ = lenet_run
    result = _run(["train", "FC", "--data", "digits", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 2 and "already holds a run" in result.output


def test_tfds_source_through_the_cli(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=60):
        result = _run(["train", "CONV(4)-RELU-POOL(4)-FC", "--data", "tfds:mnist", "--data-dir",
                       str(tmp_path / "tfds"), "--epochs", "1", "--val-split", "10",
                       "--no-tensorboard", "-q", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["data"]["train"]["input_shape"] == [28, 28, 1]
    assert record["data"]["val"]["samples"] == 10


def _bad_npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize("case", ["missing", "shape", "labels", "classes", "augment", "freeze",
                                  "batch", "set"])
def test_user_mistakes_exit_2_without_traceback(tmp_path, case):
    data = "digits"
    arch = "CONV(4)-RELU-POOL-FC"
    extra = []
    expect = ""
    if case == "missing":
        data, expect = "npz:/no/such/file.npz", "no such file"
    elif case == "shape":
        data, expect = _bad_npz(tmp_path, x=np.zeros((6, 8)), y=np.zeros(6, int)), "shape"
    elif case == "labels":
        data = _bad_npz(tmp_path, x=np.zeros((6, 8, 8)), y=np.array([0, 1, 2, 0, 1, 9]),
                        classes=np.array(["a", "b", "c"]))
        expect = "out of range"
    elif case == "classes":
        data = _bad_npz(tmp_path, x=np.zeros((6, 8, 8)), y=np.array([0, 1, 2, 0, 1, 2]))
        arch, expect = "CONV(4)-RELU-POOL-FC(10)", "10 outputs but"
    elif case == "augment":
        extra, expect = ["--augment", "rotate90"], "unknown augmentation"
    elif case == "freeze":
        extra, expect = ["--freeze-until", "conv"], "needs --transfer"
    elif case == "batch":  # the library's batch_size=0, in the command's words
        extra, expect = ["--batch-size", "0"], "--batch-size: batch size must be >= 1, got --batch-size 0"
    elif case == "set":
        extra, expect = ["--set", "width"], "NAME=VALUE"
    result = CliRunner().invoke(main, ["train", arch, "--data", data, "--epochs", "1",
                                       "--out", str(tmp_path / "run"), *extra])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error:" in result.output and expect in result.output
    assert not (tmp_path / "run" / "best.keras").exists()


def test_real_process_exit_code_and_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from kblocks.cli import main; main()", "train", "FC", "--data",
         "npz:/no/such.npz", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "no such file" in proc.stderr

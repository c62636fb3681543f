"""What a student meets on a first short run (issue 17): BatchNorm on short runs, the transfer head,
and the docs and figures that must match what the code prints."""
import json
import re
import shlex

import numpy as np
import pytest
from click.testing import CliRunner

from kblocks.cli.app import main

from conftest import ROOT


def _cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- point 7: docs and --json ------------------------------------------------------------------

def test_readme_did_you_mean_example_is_what_the_command_prints():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```\n\$ (kblocks summary \"CONV\(32\)-RELUU-POOL\"[^\n]*)\n(.*?)```", text,
                      re.S)
    assert block, "the README's mistake example is gone"
    command, expected = block.group(1), block.group(2)
    result = _cli(*shlex.split(command)[1:])
    assert result.exit_code == 2
    assert result.output.strip("\n").splitlines() == expected.strip("\n").splitlines()


def test_cs231n_space_comment_counts_its_hyperparameters():
    from kblocks.search.space import SearchSpace

    path = next((ROOT / "kblocks").rglob("cs231n_pattern.yaml"))
    said = re.search(r"^# (\d+) hyperparameters", path.read_text(), re.M)
    assert said, "the comment no longer says how many hyperparameters the space has"
    assert int(said.group(1)) == len(SearchSpace(str(path))) == 13


def test_summary_json_gives_numbers_as_numbers():
    result = _cli("summary", "[CONV(32)-BN-RELU]*2-POOL-FC(10)", "--input-shape", "8,8,1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    conv = data["layers"][1]
    assert conv["params"] == 9 * 32 + 32 == 320 and isinstance(conv["params"], int)
    second = data["layers"][4]  # CONV(32) after CONV(32): 9,248 parameters, written 9248
    assert second["dsl"] == "CONV(32)" and second["params"] == 9248
    assert second["macs"] == 8 * 8 * 9 * 32 * 32 and second["shape"] == [8, 8, 32]
    assert second["rf"] == 5 and second["jump"] == 1
    assert data["layers"][0]["index"] is None and data["layers"][1]["index"] == 0
    for row in data["layers"]:
        for key in ("params", "activations", "macs"):
            assert isinstance(row[key], int), (row, key)
    assert sum(row["params"] for row in data["layers"]) == data["params"]


# -- point 1: BatchNorm on short runs ----------------------------------------------------------

BN_NET = "[CONV(32)-BN-RELU]*3-GAP-FC(10)"  # keep: 0.98 train, 0.39-0.57 validation on 8 epochs


@pytest.mark.slow  # 8 epochs: 17-40 s on a shared 2-core machine
def test_bn_net_on_digits_for_8_epochs_validates_near_its_train_accuracy():
    from kblocks.training import TrainConfig, train
    from kblocks.training.trainer import batch_norm_layers

    result = train(BN_NET, TrainConfig(data="digits", epochs=8, seed=1, verbose=0,
                                       tensorboard=False))  # in memory: no checkpoints to write
    train_acc = result.final["train_accuracy (last epoch)"]
    val_acc = result.final["val_accuracy"]
    assert train_acc > 0.9
    assert val_acc > 0.9 and val_acc >= train_acc - 0.05, (train_acc, val_acc)
    batch_norm = result.info["batch_norm"]
    assert batch_norm["rule"] == "auto" and batch_norm["momentum"] == 0.9
    assert batch_norm["layers"] == 3 and batch_norm["steps"] == 13 * 8  # 1617 images / 128
    assert result.info["warnings"] == []
    assert [layer.momentum for layer in batch_norm_layers(result.model)] == [0.9] * 3


def test_bn_momentum_rule():
    from kblocks.common.errors import ConfigError
    from kblocks.training.config import bn_momentum_for

    assert bn_momentum_for("auto", 104) == (0.9, "auto")      # 8 epochs of digits
    assert bn_momentum_for("auto", 1000) == (0.98, "auto")    # 20 time constants of 50 steps
    assert bn_momentum_for("auto", 50_000) == (0.99, "auto")  # a long run: Keras' own
    assert bn_momentum_for("keep", 104) == (None, "keep")
    assert bn_momentum_for("0.95", 104) == (0.95, "given")
    for bad in ("fast", "1", "0", "-0.5"):
        with pytest.raises(ConfigError) as info:
            bn_momentum_for(bad, 104)
        assert info.value.what == "bn_momentum" and "auto, keep or a number" in str(info.value)


def test_only_layers_left_at_keras_default_are_set_and_build_keeps_it():
    import kblocks
    from kblocks.training.trainer import batch_norm_layers, set_bn_momentum

    net = kblocks.build("CONV(8)-BN-RELU-CONV(8)-BN(momentum=0.8)-RELU-GAP-FC(10)",
                        input_shape=(8, 8, 1))
    assert [layer.momentum for layer in batch_norm_layers(net)] == [0.99, 0.8]  # build: Keras'
    record = set_bn_momentum(net, "auto", 104)
    assert [layer.momentum for layer in batch_norm_layers(net)] == [0.9, 0.8]
    assert record == {"rule": "auto", "momentum": 0.9, "layers": 1, "kept": 1, "steps": 104,
                      "in_effect": [0.8, 0.9]}
    net = kblocks.build("CONV(8)-BN-RELU-GAP-FC(10)", input_shape=(8, 8, 1))
    assert set_bn_momentum(net, "keep", 104)["in_effect"] == [0.99]


def test_cli_bn_momentum_flag_is_recorded_and_checked(tmp_path):
    result = _cli("train", "CONV(8)-BN-RELU-GAP-FC(10)", "--data", "digits", "--epochs", "1",
                  "--subset", "300", "--bn-momentum", "keep", "--no-tensorboard", "-q",
                  "--out", str(tmp_path / "keep"))
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "keep" / "run.json").read_text())
    assert record["config"]["bn_momentum"] == "keep"
    assert record["info"]["batch_norm"] == {"rule": "keep", "momentum": None, "layers": 0,
                                            "kept": 1, "steps": 3 * 1, "in_effect": [0.99]}
    assert "warnings" in record["info"]
    result = _cli("train", "CONV(8)-BN-RELU-GAP-FC(10)", "--data", "digits", "--epochs", "1",
                  "--subset", "300", "--no-tensorboard", "-q", "--out", str(tmp_path / "auto"))
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert record["config"]["bn_momentum"] == "auto"
    assert record["info"]["batch_norm"]["momentum"] == 0.9  # 3 steps: the shortest of runs
    import keras

    saved = keras.saving.load_model(tmp_path / "auto" / "best.keras", safe_mode=True)
    from kblocks.training.trainer import batch_norm_layers

    assert [layer.momentum for layer in batch_norm_layers(saved)] == [0.9]  # in the saved model
    result = _cli("train", "CONV(8)-BN-RELU-GAP-FC(10)", "--data", "digits", "--epochs", "1",
                  "--bn-momentum", "fast", "--out", str(tmp_path / "bad"))
    assert result.exit_code == 2
    assert "--bn-momentum" in result.output and "auto, keep or a number" in result.output
    assert not (tmp_path / "bad").exists()  # refused before any work


def _ended_run(train_acc, val_acc, *, batch_norm=None, report=None, classes=10):
    from kblocks.training import TrainConfig
    from kblocks.training.trainer import _Run

    run = _Run(cfg=TrainConfig(), source=None, classes=classes, lr=0.005)
    run.final = {"train_accuracy (last epoch)": train_acc, "val_accuracy": val_acc}
    run.batch_norm = batch_norm or {}
    run.transfer_report = report
    return run


def test_warning_when_bn_net_trains_well_but_validates_far_lower():
    from kblocks.training.trainer import _end_warnings

    kept = {"rule": "keep", "momentum": None, "layers": 0, "kept": 3, "steps": 104,
            "in_effect": [0.99]}
    (warning,) = _end_warnings(_ended_run(0.98, 0.57, batch_norm=kept))
    assert "training accuracy 0.98 but validation 0.57" in warning
    assert "3 BatchNormalization layer(s) at momentum 0.99 over 104 steps" in warning
    assert "--bn-momentum 0.9" in warning and "--epochs" in warning
    assert _end_warnings(_ended_run(0.98, 0.95, batch_norm=kept)) == []  # they agree
    assert _end_warnings(_ended_run(0.98, 0.57)) == []                   # no BN layer: overfitting
    assert _end_warnings(_ended_run(0.5, 0.1, batch_norm=kept)) == []    # not trained yet
    auto = dict(kept, rule="auto", momentum=0.9, layers=3, kept=0, in_effect=[0.9])
    (warning,) = _end_warnings(_ended_run(0.98, 0.57, batch_norm=auto))
    assert "overfitting" in warning


# -- point 2: the transfer head ------------------------------------------------------------------

SMALL = "CONV(8)-BN-RELU-POOL-FC(32)-RELU-FC"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A run folder trained on digits, and two other data sets: the digits with their labels
    shifted by one (10 classes, another meaning) and four of the classes."""
    from kblocks.training import TrainConfig, train
    from kblocks.training.data import load_data

    root = tmp_path_factory.mktemp("student_transfer")
    train(SMALL, TrainConfig(data="digits", epochs=1, seed=1, verbose=0, tensorboard=False),
          out=root / "base")
    digits = load_data("digits")
    np.savez(root / "shifted.npz", x=digits.x, y=(digits.y + 1) % 10)
    keep = digits.y < 4
    np.savez(root / "four.npz", x=digits.x[keep], y=digits.y[keep])
    return root


def _fine_tune(root, data, *extra):
    out = root / f"fine-{len(list(root.iterdir()))}"
    result = _cli("train", "--transfer", str(root / "base" / "best.keras"), "--data", data,
                  "--epochs", "1", "--no-tensorboard", "-q", "--seed", "2", "--out", str(out),
                  *extra)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    table = next(i for i, line in enumerate(lines) if "final metrics" in line)
    return lines[:table], json.loads((out / "run.json").read_text())["info"]


def test_kept_head_on_other_data_says_so_and_suggests_reset_head(digits_run):
    shifted = f"npz:{digits_run / 'shifted.npz'}"
    before, info = _fine_tune(digits_run, shifted)
    head = [line for line in before if line.startswith("head:")]
    assert head == ["head: kept: fc_7 with its 10 outputs as trained on digits"]
    (hint,) = [line for line in before if line.startswith("hint:")]
    assert f"this run's data is {shifted}, not digits" in hint and "--reset-head" in hint
    assert info["transfer"]["head"] == "kept" and info["transfer"]["head_trained_on"] == "digits"


def test_kept_head_on_the_same_data_gives_no_hint(digits_run):
    before, info = _fine_tune(digits_run, "digits")
    assert "head: kept: fc_7 with its 10 outputs as trained on digits" in before
    assert not any(line.startswith("hint:") for line in before)


def test_reset_head_is_said_and_really_fresh(digits_run):
    import keras

    from kblocks.training.transfer import find_head, unwrap_trained

    before, info = _fine_tune(digits_run, f"npz:{digits_run / 'shifted.npz'}", "--reset-head",
                              "--freeze-until", "backbone", "--lr", "1e-9")
    assert any(line.startswith("head: reset: a fresh fc_7 for the 10 classes of npz:")
               and "trained on digits" in line for line in before), before
    assert info["transfer"]["head"] == "reset" and info["transfer"]["head_replaced"]
    assert "fc_7" in info["transfer"]["fresh_layers"]
    old = find_head(unwrap_trained(keras.saving.load_model(digits_run / "base" / "best.keras")))[0]
    out = sorted(digits_run.glob("fine-*"))[-1]
    new = find_head(unwrap_trained(keras.saving.load_model(out / "best.keras")))[0]
    assert not np.allclose(old.get_weights()[0], new.get_weights()[0])


def test_replaced_head_for_another_class_count(digits_run):
    before, info = _fine_tune(digits_run, f"npz:{digits_run / 'four.npz'}")
    assert any(line.startswith("head: replaced: a fresh fc_7 for the 4 classes of npz:")
               and "the saved head had 10 outputs, trained on digits" in line
               for line in before), before
    assert info["transfer"]["head"] == "replaced"


def test_head_line_without_a_run_record(tmp_path):
    import kblocks
    from kblocks.training import transfer

    net = kblocks.build(SMALL, input_shape=(8, 8, 1), classes=10)
    net.save(tmp_path / "m.keras")
    _, report = transfer.prepare(tmp_path / "m.keras", classes=10, input_shape=(8, 8, 1))
    lines = report.head_lines("digits")
    assert lines[0] == "head: kept: fc_7 with its 10 outputs as trained on data no run.json " \
                       "beside m.keras records"
    assert "--reset-head" in lines[1]


def test_warning_when_fine_tuned_accuracy_is_near_chance():
    from kblocks.training.trainer import _end_warnings
    from kblocks.training.transfer import TransferReport

    kept = TransferReport(source="runs/a/best.keras", head="kept", trained_on="digits")
    (warning,) = _end_warnings(_ended_run(0.09, 0.13, report=kept))
    assert "after fine-tuning, accuracy 0.13 is near chance (0.10 for 10 classes)" in warning
    assert "the head was kept (trained on digits)" in warning and "--reset-head" in warning
    fresh = TransferReport(source="runs/a/best.keras", head="replaced", trained_on="digits")
    (warning,) = _end_warnings(_ended_run(0.09, 0.13, report=fresh))
    assert "--lr (now 0.005)" in warning and "--reset-head" not in warning
    assert _end_warnings(_ended_run(0.9, 0.85, report=kept)) == []
    assert _end_warnings(_ended_run(0.09, 0.13)) == []  # not a transfer run


def test_reset_head_is_fresh_in_a_rebuilt_architecture_and_from_weights(tmp_path):
    import kblocks
    from kblocks.training import transfer

    def build(classes):
        return kblocks.build(SMALL, input_shape=(8, 8, 1), classes=classes)

    source = build(10)
    source.save(tmp_path / "m.keras")
    source.save_weights(tmp_path / "m.weights.h5")
    old = transfer.find_head(source)[0].get_weights()[0]
    for path in (tmp_path / "m.keras", tmp_path / "m.weights.h5"):
        network, report = transfer.prepare(path, classes=10, input_shape=(8, 8, 1), build=build,
                                           reset_head=True)
        head = transfer.find_head(network)[0]
        assert report.head == "reset" and head.name in report.skipped, path
        assert head.name not in report.copied and not np.allclose(head.get_weights()[0], old)
        network, report = transfer.prepare(path, classes=10, input_shape=(8, 8, 1), build=build)
        assert report.head == "kept" and report.old_classes == 10, path
        np.testing.assert_array_equal(transfer.find_head(network)[0].get_weights()[0], old)


def test_training_doc_shows_the_warning_the_code_prints():
    from kblocks.training.trainer import _end_warnings

    doc = (ROOT / "docs" / "training.md").read_text()
    assert "### BatchNorm on short runs" in doc
    kept = {"rule": "keep", "momentum": None, "layers": 0, "kept": 3, "steps": 104,
            "in_effect": [0.99]}
    (warning,) = _end_warnings(_ended_run(0.98, 0.57, batch_norm=kept))
    assert f"warning: {warning}\n" in doc

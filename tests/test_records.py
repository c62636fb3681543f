"""Issue 21, point 7: --monitor must name a metric the run logs, and the config.json size limit of
.keras files is enforced (its error was a ValueError swallowed by the Lambda pre-check)."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import kblocks
from kblocks.common import saving
from kblocks.common.errors import ConfigError
from kblocks.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def test_monitor_typo_is_refused_with_the_close_match(tmp_path):
    with pytest.raises(ConfigError) as info:
        train("FC", TrainConfig(data="digits", epochs=1, monitor="val_acc", verbose=0),
              out=tmp_path / "run")
    message = str(info.value)
    assert "monitor=" in message and "'val_acc'" in message  # the Python argument
    for name in ("val_accuracy", "val_loss", "accuracy", "loss"):
        assert name in message
    assert "did you mean val_accuracy?" in message
    assert not (tmp_path / "run").exists()  # refused before anything ran


@pytest.mark.parametrize("name", ["val_accuracy", "val_loss", "accuracy", "loss"])
def test_every_logged_metric_is_accepted(name):
    from kblocks.training import validate_config

    validate_config(TrainConfig(data="digits", monitor=name))


def test_monitor_typo_on_the_command_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "kblocks", "train", "FC", "--data", "digits", "--epochs", "1",
         "--monitor", "val_acc", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--monitor" in proc.stderr and "val_accuracy" in proc.stderr
    assert not (tmp_path / "r" / "best.keras").exists()


def test_config_size_limit_is_enforced(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    kblocks.build("FC(4)-FC", input_shape=(3,), classes=2).save(path)
    with zipfile.ZipFile(path) as archive:
        size = archive.getinfo("config.json").file_size
    assert saving.load_model(path) is not None  # loads under the real limit
    monkeypatch.setattr(saving, "MAX_CONFIG_BYTES", size - 1)  # keeps the test file small
    for unsafe in (False, True):
        with pytest.raises(saving.ModelFileError, match="over the .*-byte limit") as info:
            saving.load_model(path, unsafe=unsafe)
        assert "config.json" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(saving.ModelFileError):
        saving.lambda_layers(path)


def test_declared_size_is_checked_before_reading(tmp_path, monkeypatch):
    """A crafted archive whose config.json is just over the (patched) limit: refused from the zip
    directory; its content is never parsed (it is not even JSON)."""
    path = tmp_path / "crafted.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b"x" * 1025)
        archive.writestr("metadata.json", b"{}")
    monkeypatch.setattr(saving, "MAX_CONFIG_BYTES", 1024)
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("config was read"))
    with pytest.raises(saving.ModelFileError, match="1,025 bytes"):
        saving.load_model(path)

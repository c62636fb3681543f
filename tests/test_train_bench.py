"""bench/cifar10_speed.py runs end to end (CPU smoke: tiny network, small subset, fit loop)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train.npz"


@pytest.mark.skipif(not DATA.exists(), reason="the shared CIFAR-10 file is not beside the repo")
def test_cifar10_speed_smoke_run(capsys):
    spec = importlib.util.spec_from_file_location("cifar10_speed", ROOT / "bench/cifar10_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert "(SKIP + CONV(512" in bench.RESNET9
    record = bench.main(["--data", str(DATA), "--cpu-subset", "200", "--epochs", "1",
                         "--batch-size", "50", "--precision", "fp32", "--quiet", "--with-trainer",
                         "--arch", "CONV(8)-BN-RELU-POOL-(SKIP + CONV(8)-BN-RELU)-GMP-FC(10)"])
    assert record["train_images"] == 200 and record["val_images"] == 100
    assert record["steps_per_epoch"] == 4 and 0.0 <= record["val_accuracy"] <= 1.0
    assert record["trainer_steps_per_epoch"] == 4 and record["trainer_feed"]["kind"] == "host"
    assert record["ratio_trainer_over_loop_seconds_per_epoch"] > 0
    out = capsys.readouterr().out
    assert "kblocks train" in out and "ratio" in out
    assert out.count('{"bench": "cifar10_speed"') == 1 and "val acc" in out

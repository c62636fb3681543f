"""bench/nas_cifar10.py as the GPU benchmark runs it, in miniature on the CPU: two calls, the second
restoring the first's archive and resuming its search, then the best architecture trained."""
import csv
import importlib.util
import json

import pytest

from conftest import ROOT, SHARED

DATA = SHARED / "data" / "cifar10" / "train.npz"


def _bench():
    spec = importlib.util.spec_from_file_location("nas_cifar10", ROOT / "bench/nas_cifar10.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_default_space_is_the_cs231n_pattern():
    import kblocks

    bench = _bench()
    text = bench.space_text(1)
    assert text.startswith("[@bn_stage(") and "]*{M: 2..4}" in text and "POOL?" in \
        bench.BLOCKS["bn_stage"]["body"]
    space = kblocks.SearchSpace(text, blocks=bench.BLOCKS, classes=10, input_shape=(32, 32, 3))
    names = {hp.name for hp in space.hyperparameters().space}
    assert {"M", "K", "N_1", "f_1", "pool_opt_1", "N_4", "f_4", "u_1"} <= names
    # The default budgets reject a stage left at full resolution before any training, and
    # keep a VGG-like member.
    from kblocks.search.budget import Budget, measure

    budget = Budget(max_params=8e6, max_macs=1e9)
    wide = {"M": 2, "K": 0, "N_1": 3, "f_1": 512, "pool_opt_1": False, "N_2": 3, "f_2": 512,
            "pool_opt_2": False}
    verdict = measure(space, wide, budget)
    assert not verdict.ok and "MACs" in verdict.reason and verdict.macs > 1e9
    vgg = {"M": 3, "K": 1, "u_1": 256, **{f"N_{i}": 2 for i in (1, 2, 3)},
           **{f"f_{i}": w for i, w in ((1, 128), (2, 256), (3, 512))},
           **{f"pool_opt_{i}": True for i in (1, 2, 3)}}
    verdict = measure(space, vgg, budget)
    assert verdict.ok and 4e6 < verdict.params < 8e6, verdict


@pytest.mark.slow
def test_two_calls_the_second_resuming_the_first(tmp_path, capsys):
    bench = _bench()
    archive = tmp_path / "out" / "nas.tar.gz"
    first = bench.main(["--cpu-smoke", "--data", str(DATA), "--out", str(tmp_path / "a"),
                        "--trials", "2", "--final-epochs", "0", "--archive", str(archive)])
    assert first["completed"] == 2 and archive.exists()
    # A fresh machine: the second call unpacks the archive somewhere else and resumes there.
    second = bench.main(["--cpu-smoke", "--data", str(DATA), "--out", str(tmp_path / "b"),
                         "--trials", "3", "--restore", str(archive), "--final-epochs", "1"])
    rows = list(csv.DictReader((tmp_path / "b" / "trials.csv").open()))
    assert second["completed"] == 3 and len(rows) == 3
    assert len({r["trial"] for r in rows}) == 3  # no trial ran twice
    first_rows = list(csv.DictReader((tmp_path / "a" / "trials.csv").open()))
    assert [r["architecture"] for r in rows[:2]] == [r["architecture"] for r in first_rows]
    assert 0.0 <= second["final_val_accuracy"] <= 1.0 and second["final_epochs"] == 1
    out = capsys.readouterr().out
    assert out.count('{"bench": "nas_cifar10"') == 2 and "final: val accuracy" in out
    assert json.loads((tmp_path / "b" / "search.json").read_text())["status"] == "finished"

"""Smoke tests of the benchmark scripts in bench/: each runs (on the CPU, TensorFlow backend) and
prints a ratio that is a number. No time threshold is ever asserted: CI machines vary.

The scripts start together as subprocesses (module fixture) so the whole file costs about
as long as the slowest one (the throughput smoke test, which compiles two tiny models).
"""
import json
import math
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = {
    "build_time": ["bench/build_time.py", "--text", "CONV(8)-GAP-FC(2)", "--input-shape",
                   "16,16,3", "--repeats", "1", "--warmup", "0"],
    "compile_overhead": ["bench/compile_overhead.py", "--quick"],
    "throughput": ["bench/throughput.py", "--cpu-smoke"],
    "train_vs_fit": ["bench/train_vs_fit.py", "--epochs", "1", "--rounds", "1"],
    "bn_short_runs": ["bench/bn_short_runs.py", "--epochs", "1", "--seeds", "0"],
    "train_from_python": ["bench/train_from_python.py", "--train", "512", "--val", "128",
                          "--epochs", "1", "--rounds", "1"],
}


@pytest.fixture(scope="module")
def runs():
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    procs = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in SCRIPTS.items()}
    out = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out[name] = (proc.returncode, stdout, stderr)
    return out


def _result(runs, name):
    code, stdout, stderr = runs[name]
    assert code == 0, f"{name} exited {code}\n{stdout[-2000:]}\n{stderr[-3000:]}"
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"{name} printed no JSON line:\n{stdout[-2000:]}"
    return json.loads(lines[-1]), stdout


def _is_ratio(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_build_time_prints_a_ratio(runs):
    record, stdout = _result(runs, "build_time")
    assert record["bench"] == "build_time"
    assert _is_ratio(record["results"]["text"]["ratio"])
    assert record["results"]["text"]["kb_params"] == record["results"]["text"]["peer_params"]
    assert re.search(r"worst ratio kblocks/keras: \d+\.\d+", stdout)


def test_compile_overhead_prints_a_share(runs):
    record, stdout = _result(runs, "compile_overhead")
    (result,) = record["results"]
    assert result["nodes"] >= 150
    assert _is_ratio(result["share"]) and result["share"] < 1
    assert result["params_match"]
    assert re.search(r"share \d+\.\d+ \(ratio kblocks/total\)", stdout)


def test_throughput_cpu_smoke_prints_a_ratio(runs):
    record, stdout = _result(runs, "throughput")
    assert record["bench"] == "throughput"
    tiny = record["keras"]["tiny"]
    assert _is_ratio(tiny["ratio_kblocks_over_keras_applications"])
    assert tiny["kblocks"]["params"] == tiny["keras_applications"]["params"]
    assert record["torch"].get("error")  # skipped in the smoke test: its columns read n/a
    assert re.search(r"^tiny\s+8\s+[\d,]+\s+[\d,]+\s+n/a\s+n/a\s+\d+\.\d+\s+n/a", stdout, re.M)


def test_train_vs_fit_prints_a_ratio(runs):
    record, stdout = _result(runs, "train_vs_fit")
    assert record["bench"] == "train_vs_fit"
    assert _is_ratio(record["ratio"])
    assert re.search(r"kblocks train / plain fit: \d+\.\d+x", stdout)


def test_bn_short_runs_prints_ratios(runs):
    record, _ = _result(runs, "bn_short_runs")
    assert _is_ratio(record["ratio_auto_over_keep"]) and _is_ratio(record["ratio_auto_over_written"])


def test_train_from_python_prints_ratios(runs):
    record, stdout = _result(runs, "train_from_python")
    assert set(record["ratios"]) == {"arrays", "dataset"}
    assert all(_is_ratio(v) for v in record["ratios"].values()), record["ratios"]
    assert re.search(r"train\(x=, y=\) / fit\(x, y\): \d+\.\d+x", stdout)

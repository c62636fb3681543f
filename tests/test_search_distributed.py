"""Keras Tuner's chief/worker mode through the command line: one chief and two workers on
127.0.0.1 finish every trial, none twice, and all three processes stop by themselves."""
import json
import os
import socket
import subprocess
import sys

import pytest

SPACE = "[CONV({f#: 8|16})-RELU-POOL?]*{m: 1..2}-FC(classes)"
TRIALS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers(tmp_path):
    out = tmp_path / "d"
    port = free_port()
    base = [sys.executable, "-m", "kblocks", "search", SPACE, "--data", "digits", "--tuner",
            "random", "--trials", str(TRIALS), "--epochs", "1", "--batch-size", "64",
            "--out", str(out)]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    chief = subprocess.Popen(base + ["--distributed", "chief", "--port", str(port),
                                     "--bind", "127.0.0.1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    workers = [subprocess.Popen(base + ["--distributed", "worker", "--chief",
                                        f"127.0.0.1:{port}", "--worker-id", f"w{i}",
                                        "--chief-timeout", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
               for i in (1, 2)]
    procs = [chief] + workers
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text
    ran = [line.split()[1] for text in outputs[1:] for line in text.splitlines()
           if line.startswith("trial ") and "completed" in line]
    assert sorted(ran) == [str(i) for i in range(1, TRIALS + 1)]  # every trial, each once
    oracle = json.loads((out / "kt" / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == [str(i) for i in range(TRIALS)]
    assert oracle["ongoing_trials"] == {}
    trials = sorted(p.parent.name for p in (out / "kt").glob("trial_*/trial.json"))
    assert len(trials) == TRIALS
    assert (out / "best.yaml").exists() and "best:" in outputs[0]  # the chief wrote the report

"""One writer per run or search folder (issue 21, point 5): while a process writes a folder, a
second ``kblocks train`` / ``kblocks search`` on it is refused with "FOLDER is in use by process
N" (exit 2), fresh start or --resume alike; the lock of a process killed with SIGKILL is taken over.

Process A below is a real second process that takes the lock through the library and waits; the
other writer is the real command line (``python -m kblocks``) or the library in this process."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT

from kblocks.common import folderlock
from kblocks.training import TrainConfig, train

FAST = dict(data="digits", subset=300, val_split=60, batch_size=50, verbose=0, tensorboard=False)
ARCH = "CONV(4)-RELU-GAP-FC"

HOLDER = textwrap.dedent("""
    import sys, time
    from kblocks.common import folderlock
    with folderlock.hold(sys.argv[1]):
        open(sys.argv[2], "w").close()
        time.sleep(600)
""")


def env():
    return dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
                CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))


def hold_in_another_process(folder, tmp_path):
    """Process A: holds ``folder``'s lock until killed."""
    ready = tmp_path / "a-holds"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(ready)], cwd=ROOT,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 120  # a safety net only
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "process A never took the lock"
        time.sleep(0.05)
    return proc


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "kblocks", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def test_hold_is_exclusive_between_processes_and_released(tmp_path):
    folder = tmp_path / "run"
    a = hold_in_another_process(folder, tmp_path)
    try:
        assert folderlock.holder(folder) == a.pid
        with pytest.raises(folderlock.FolderInUse, match=f"{folder} is in use by process {a.pid}"):
            with folderlock.hold(folder):
                pass
    finally:
        kill(a)
    # A died without letting go: its lock file (with its pid) is still there, the lock is not.
    assert folderlock.holder(folder) == a.pid
    with folderlock.hold(folder):
        assert folderlock.holder(folder) == os.getpid()
    assert not (folder / folderlock.LOCK_NAME).exists()  # let go: the lock file goes too


def test_a_folder_made_only_for_the_lock_is_removed_again(tmp_path):
    folder = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError):
        with folderlock.hold(folder):
            assert folder.is_dir()
            raise RuntimeError("an early error: nothing written")
    assert not folder.exists()


def test_library_train_is_refused_on_a_held_folder_fresh_or_resumed(tmp_path):
    folder = tmp_path / "run"
    a = hold_in_another_process(folder, tmp_path)
    try:
        with pytest.raises(folderlock.FolderInUse, match=f"in use by process {a.pid}"):
            train(ARCH, TrainConfig(epochs=1, **FAST), out=folder)
        with pytest.raises(folderlock.FolderInUse, match=f"in use by process {a.pid}"):
            train(None, out=folder, resume=True)
    finally:
        kill(a)
    assert not (folder / "run.json").exists()


@pytest.mark.slow  # a one-epoch training here, then a TensorFlow process (twice): ~40 s
def test_second_train_resume_is_refused_until_the_holder_is_killed(tmp_path):
    run = tmp_path / "run"
    train(ARCH, TrainConfig(epochs=1, seed=1, **FAST), out=run)
    before = json.loads((run / "state.json").read_text())["epochs_done"]
    assert before == 1
    a = hold_in_another_process(run, tmp_path)
    try:
        refused = cli("train", "--resume", str(run), "--epochs", "2", "-q")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"{run} is in use by process {a.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert json.loads((run / "state.json").read_text())["epochs_done"] == 1  # untouched
    finally:
        kill(a)
    assert folderlock.holder(run) == a.pid  # a stale lock file, from a killed process
    resumed = cli("train", "--resume", str(run), "--epochs", "2", "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 2
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["final"]["epochs_run"] == 2
    assert not (run / folderlock.LOCK_NAME).exists()


def test_search_is_refused_on_a_held_folder_and_leaves_it_alone(tmp_path):
    out = tmp_path / "s"
    a = hold_in_another_process(out, tmp_path)
    try:
        refused = cli("search", "CONV({f: 4|8})-GAP-FC(classes)", "--data", "digits",
                      "--trials", "2", "--epochs", "1", "--out", str(out))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"{out} is in use by process {a.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
        resumed = cli("search", "--out", str(out), "--resume")
        assert resumed.returncode == 2 and f"in use by process {a.pid}" in resumed.stderr
        assert sorted(p.name for p in out.iterdir()) == [folderlock.LOCK_NAME]  # nothing written
    finally:
        kill(a)


def test_a_distributed_worker_does_not_take_the_folder_lock(tmp_path, monkeypatch):
    """The chief is the folder's one writer: a worker beside it (sharing the folder) is not
    locked out, while a second chief is."""
    from kblocks.search import runner

    seen = []
    monkeypatch.setattr(runner, "_run_search", lambda cfg, **kw: seen.append(cfg.distributed))
    out = tmp_path / "s"
    chief = hold_in_another_process(out, tmp_path)  # the chief's lock, from another process
    try:
        runner.run_search(runner.SearchConfig(out=str(out), distributed="worker"))
        assert seen == ["worker"]
        with pytest.raises(folderlock.FolderInUse, match=f"in use by process {chief.pid}"):
            runner.run_search(runner.SearchConfig(out=str(out), distributed="chief"))
        assert seen == ["worker"]
    finally:
        kill(chief)

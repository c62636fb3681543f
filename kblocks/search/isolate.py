"""Trials in child processes (``--isolate``): a crash, an out-of-memory kill or a hang fails one
trial, not the search.

Keras Tuner runs every trial in the search process, so a segfault in a kernel, the kernel's
out-of-memory killer or a training step that never returns ends the whole search. With isolation
the search process (the *parent*) trains nothing: for each trial it writes the trial's state to
``kt/trial_NN/isolated_trial.json`` and starts a child,

    python -c "...kblocks.search.runner.trial_child..." OUT TRIAL_ID PARENT_PID

which rebuilds the search from ``search.json`` (the same data, split, recipe and tuner), trains that
one trial as an ordinary trial would be trained (its best-epoch checkpoint goes to the trial folder,
as without isolation) and hands its results back in ``kt/trial_NN/isolated_result.json`` (written
atomically). Its output goes to ``kt/trial_NN/isolated.log``. The parent waits for the child:

* results handed back: the trial completes with them;
* the child failed the trial itself (a diverging loss, shapes, a full disk): the trial fails with
  the child's message, as it would in process (environment failures stay environment failures);
* the child died by a signal: the trial fails, ``the trial's process died (SIGSEGV)``; a SIGKILL
  the search did not send is most often the out-of-memory killer, so that failure is an
  environment failure (``--resume`` runs it again);
* ``--trial-timeout`` seconds passed: the child is killed and the trial fails (``timed out``).

Either way the search goes on with the next trial. The child asks the kernel to kill it when the
parent dies (Linux ``PR_SET_PDEATHSIG``; elsewhere it checks its parent every second), so a parent
killed with SIGKILL leaves no training behind, and ``--resume`` runs the interrupted trial again
from its start, as without isolation.

``KBLOCKS_TEST_TRIAL_FAULT`` is a test hook: ``N=segv``, ``N=kill`` or ``N=hang`` (several, comma
separated) makes the child of trial number N (1-based) crash, kill itself or hang before it does
anything else.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kblocks.common import atomic

TRIAL_FILE = "isolated_trial.json"
RESULT_FILE = "isolated_result.json"
LOG_FILE = "isolated.log"
FAULT_VARIABLE = "KBLOCKS_TEST_TRIAL_FAULT"
#: the child's entry point (a string, so that this module does not import the runner): the
#: parent-death request and the test hook come first, before the runner imports TensorFlow (which
#: takes seconds, in which a killed parent would otherwise leave the child running)
CHILD_CODE = ("import sys; from kblocks.search.isolate import child_start; "
              "child_start(sys.argv[1:]); from kblocks.search.runner import trial_child; "
              "sys.exit(trial_child(sys.argv[1:]))")


class TrialProcessFailed(Exception):
    """A child ended without results; ``environment`` when the machine, not the trial, failed."""

    def __init__(self, message: str, environment: bool = False):
        super().__init__(message)
        self.environment = environment


@dataclass(frozen=True)
class Isolation:
    """How trials are isolated: ``timeout`` seconds per trial (None: no limit)."""

    timeout: float | None = None

    def run(self, out, trial_dir, trial_state: dict, trial_id: str) -> list:
        """Train one trial in a child process; its results (a list of metric dicts).

        Raises:
            TrialProcessFailed: the child crashed, was killed, timed out or failed the trial.
        """
        trial_dir = Path(trial_dir)
        trial_dir.mkdir(parents=True, exist_ok=True)
        result = trial_dir / RESULT_FILE
        if result.exists():
            result.unlink()  # from an earlier run of this trial (before a --resume)
        atomic.write_json(trial_dir / TRIAL_FILE, trial_state)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
        cmd = [sys.executable, "-c", CHILD_CODE, os.fspath(out), str(trial_id), str(os.getpid())]
        with open(trial_dir / LOG_FILE, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            try:
                code = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise TrialProcessFailed(f"timed out after {self.timeout:g} s (--trial-timeout); "
                                         f"the trial's process was killed") from None
            except BaseException:  # Ctrl-C or an error in the parent: take the child along
                proc.kill()
                proc.wait()
                raise
        return _outcome(code, result, trial_dir / LOG_FILE)


def _outcome(code: int, result: Path, log: Path) -> list:
    if result.exists():
        handed = json.loads(result.read_text())
        if "results" in handed:
            return handed["results"]
        raise TrialProcessFailed(handed.get("error") or "the trial failed",
                                 environment=bool(handed.get("environment")))
    if code < 0:
        name = _signal_name(-code)
        if -code == signal.SIGKILL:
            raise TrialProcessFailed(f"the trial's process was killed ({name}; out of memory?)",
                                     environment=True)
        raise TrialProcessFailed(f"the trial's process died ({name})" + _last_line(log))
    raise TrialProcessFailed(f"the trial's process exited with code {code} and handed back no "
                             f"results" + _last_line(log))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f": {lines[-1].strip()[:200]}" if lines else ""


# -- the child side -------------------------------------------------------------------------------
def child_start(argv) -> None:
    """What a child does first (``argv``: OUT TRIAL_ID PARENT_PID): end with its parent, and the
    test hook."""
    from kblocks.search.record import trial_number

    die_with_parent(int(argv[2]))
    apply_test_fault(trial_number(argv[1]))


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does (a parent killed by SIGKILL included)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: watch the parent instead
        def watch():
            while True:
                if os.getppid() != parent_pid:
                    os._exit(137)
                time.sleep(1.0)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os._exit(137)


def apply_test_fault(trial_number: int) -> None:
    """The :data:`FAULT_VARIABLE` test hook (see the module doc)."""
    for item in os.environ.get(FAULT_VARIABLE, "").split(","):
        number, _, action = item.strip().partition("=")
        if not number.strip().isdigit() or int(number) != trial_number:
            continue
        if action == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "hang":
            while True:
                time.sleep(3600)


def hand_back(trial_dir, *, results=None, error=None, environment=False) -> None:
    """Write the child's results (or its error) for the parent, atomically."""
    payload = {"results": results} if error is None else \
        {"error": error, "environment": bool(environment)}
    atomic.write_json(Path(trial_dir) / RESULT_FILE, payload)

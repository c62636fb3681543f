"""Ctrl-C (SIGINT) during training: stop between writes, never in the middle of one.

    with interrupts.graceful():          # around model.fit
        ...
        with interrupts.deferred():      # around writing last.keras + state.json
            ...

Inside :func:`graceful`, SIGINT raises ``KeyboardInterrupt`` at once, except inside
:func:`deferred`, where it is held until the block ends, so the files that must agree with each
other (the checkpoint and the state that says which epoch it holds) are written together or not at
all. Outside the main thread (where Python delivers no signals) both are no-ops.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_state = {"depth": 0, "pending": False, "active": False}


def _handler(signum, frame):
    if _state["depth"]:
        _state["pending"] = True
        return
    raise KeyboardInterrupt


@contextmanager
def graceful():
    """Turn SIGINT into ``KeyboardInterrupt`` except inside :func:`deferred` blocks."""
    if threading.current_thread() is not threading.main_thread() or _state["active"]:
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, _handler)
    _state.update(active=True, pending=False, depth=0)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _state.update(active=False, depth=0)


@contextmanager
def deferred():
    """Hold a SIGINT that arrives inside the block; raise it (``KeyboardInterrupt``) after."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if _state["depth"] == 0 and _state["pending"]:
        _state["pending"] = False
        raise KeyboardInterrupt

"""The ``kblocks`` command line: one click group (:mod:`app`), one module per family of commands.

Owns the commands, their options and how errors are printed. May import every other package of
kblocks; nothing imports it. Mistakes in user input (``KBlocksError``, missing files) print one
clear message on stderr and exit with code 2, never a traceback.
"""
from __future__ import annotations

# TensorFlow's log lines are silenced by the group itself (kblocks.cli.app.quiet_logs), unless
# ``kblocks --verbose``: nothing is set at import, so --verbose sees the user's environment.
from kblocks.cli.app import main


def _register():
    # Each module adds its commands to ``main``; import order is the order in --help.
    from kblocks.cli import core, generate, inspect, search, train, zoo  # noqa: F401


_register()

__all__ = ["main"]

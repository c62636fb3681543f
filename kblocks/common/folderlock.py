"""One writer per run or search folder: an exclusive lock held while a process writes it.

    with folderlock.hold("runs/x"):          # ConfigError if another process holds runs/x
        ...write runs/x...

The lock is ``fcntl.flock`` on ``FOLDER/.kblocks.lock``, which also holds the holder's process id
(so a second writer is told "runs/x is in use by process 12345"). The operating system drops a
``flock`` when its process ends, however it ends: a lock left by a process killed with SIGKILL (or
by a crash) is simply taken by the next writer; nothing needs cleaning up. The lock file is removed
when the lock is let go; a writer that opened the file just before it was removed notices (the path
no longer names the file it locked) and opens it again.

Where ``fcntl`` does not exist (Windows) :func:`hold` does not lock.
"""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

from kblocks.common.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

LOCK_NAME = ".kblocks.lock"  #: the lock file inside a locked folder


class FolderInUse(ConfigError):
    """Another process holds the folder's lock (the CLI prints one line and exits 2)."""

    def __init__(self, folder, pid, what="run folder"):
        self.folder = Path(folder)
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{folder} is in use by {holder} (another kblocks writes this {what})",
                         hint=f"wait for {holder} to end, or stop it; a lock left by a process "
                              f"that was killed is taken over by the next run")


def locking(argument: str = "out", what: str = "run folder"):
    """Decorator: hold the folder given as keyword ``argument`` (when not None) while the
    function runs."""
    def decorate(function):
        @functools.wraps(function)
        def locked(*args, **kwargs):
            folder = kwargs.get(argument)
            if folder is None:
                return function(*args, **kwargs)
            with hold(folder, what):
                return function(*args, **kwargs)
        return locked
    return decorate


def holder(folder) -> int | None:
    """The process id written in ``folder``'s lock file (None if there is none); the process may
    have ended since."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _try_lock(path: Path):
    """An open descriptor of ``path`` holding its lock, or None if another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder before us may have removed the file after we opened it: lock anew
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def hold(folder, what: str = "run folder"):
    """Hold ``folder``'s lock for the ``with`` block (creating the folder if needed; a folder
    created here and left empty is removed again). Raises :class:`FolderInUse` when another
    process holds it. Re-entrant within one process."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    if fcntl is None or key in _HELD:
        yield folder
        return
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder", what="out")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {folder}: {err.strerror}", what="out") from None
    path = folder / LOCK_NAME
    try:
        fd = _try_lock(path)
    except OSError as err:
        raise ConfigError(f"cannot lock {folder}: {err.strerror}", what="out") from None
    if fd is None:
        if created:
            _remove_if_empty(folder)
        raise FolderInUse(folder, holder(folder), what)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # a full disk: the lock holds all the same, the message lacks the id
        pass
    _HELD.add(key)
    try:
        yield folder
    finally:
        _HELD.discard(key)
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        if created:
            _remove_if_empty(folder)


_HELD: set = set()  # folders this process holds (so a nested hold() does not lock itself out)


def _remove_if_empty(folder: Path):
    with contextlib.suppress(OSError):
        folder.rmdir()

"""Atomic file writes, once for every package: write under a fresh temporary name in the target's
folder, flush it to the disk, rename it over the target. A reader (or a crash, or a kill) sees the
previous file or the new one, complete, never half a file.

The temporary is made by ``tempfile.mkstemp`` (``O_CREAT | O_EXCL``, a fresh name), so a name
planted there as a symlink is never followed, and the rename replaces a planted link at the target
instead of writing through it.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, *, suffix: str | None = None, prefix: str | None = None,
                durable: bool = True):
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    Args:
        path: the file to write.
        suffix: the temporary's ending (default: ``path``'s suffix, as writers that pick a
            format from the name need).
        prefix: the temporary's start (default: ``.<stem>.``, a hidden file).
        durable: fsync the file before the rename and the folder after it (a crash then leaves
            the new file); False for caches.

    Yields:
        The temporary ``Path`` (it exists, empty); write to it by name.

    On an exception inside the block the temporary is removed and ``path`` keeps what it held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{path.stem}.",
                               suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable and os.path.isfile(tmp):
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_bytes(path, data: bytes) -> None:
    """``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    """``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj, **dumps) -> None:
    """``json.dumps(obj, **dumps)`` to ``path`` atomically."""
    write_text(path, json.dumps(obj, **dumps))


def fsync_file(path) -> None:
    """Flush a written file to the disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

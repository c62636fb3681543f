"""Atomic file writes, once for every package: write under a fresh temporary name in the target's
folder, flush it to the disk, rename it over the target. A reader (or a crash, or a kill) sees the
previous file or the new one, complete, never half a file.

The temporary is made by ``tempfile.mkstemp`` (``O_CREAT | O_EXCL``, a fresh name), so a name
planted there as a symlink is never followed, and the rename replaces a planted link at the target
instead of writing through it.

A write that fails (a full disk, a read-only folder) removes the temporary, leaves the target as it
was, and raises :func:`kblocks.common.files.write_error` for the target: a ``DiskFullError`` ("no
space left on the device while writing PATH; nothing lost: ...") that is also the ``OSError``.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from kblocks.common.files import UserFileError, write_error


@contextmanager
def atomic_path(path, *, suffix: str | None = None, prefix: str | None = None,
                durable: bool = True, kept=None):
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    Args:
        path: the file to write.
        suffix: the temporary's ending (default: ``path``'s suffix, as writers that pick a
            format from the name need).
        prefix: the temporary's start (default: ``.<stem>.``, a hidden file).
        durable: fsync the file before the rename and the folder after it (a crash then leaves
            the new file); False for caches.
        kept: what earlier files still hold, for the message of a failed write (a string, or a
            callable returning one, called only then); default: the target keeps its previous
            content, when it had one.

    Yields:
        The temporary ``Path`` (it exists, empty); write to it by name.

    On an exception inside the block the temporary is removed and ``path`` keeps what it held;
    an ``OSError`` (inside the block, or in the fsync and rename) is raised as
    :func:`kblocks.common.files.write_error` naming ``path`` and what is kept.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=prefix or f".{path.stem}.",
                                   suffix=suffix or path.suffix or ".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        if durable and os.path.isfile(tmp):
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except UserFileError:
        raise  # already in words (a nested atomic write)
    except OSError as err:
        raise write_error(err, path, kept=_kept(kept, path)) from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _kept(kept, path: Path):
    """The ``kept`` note of a failed write of ``path``: the caller's, else whether ``path`` still
    holds an earlier version."""
    try:
        note = kept() if callable(kept) else kept
    except Exception:  # noqa: BLE001 - the note must never hide the write's own error
        note = None
    if note:
        return note
    try:
        return f"{path} still holds its previous content" if path.is_file() else None
    except OSError:
        return None


def write_bytes(path, data: bytes, *, kept=None) -> None:
    """``data`` to ``path`` atomically (``kept``: as :func:`atomic_path`)."""
    with atomic_path(path, kept=kept) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str, *, kept=None) -> None:
    """``text`` (UTF-8) to ``path`` atomically (``kept``: as :func:`atomic_path`)."""
    with atomic_path(path, kept=kept) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj, *, kept=None, **dumps) -> None:
    """``json.dumps(obj, **dumps)`` to ``path`` atomically (``kept``: as :func:`atomic_path`)."""
    write_text(path, json.dumps(obj, **dumps), kept=kept)


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

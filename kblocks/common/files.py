"""The file boundary: every user file or folder kblocks opens or writes passes through here.

The language has one boundary for text (:mod:`kblocks.lang.limits`); this module is the same for
files (issue 20). Reading:

* :func:`check_file` — the path exists and is a *regular* file (a FIFO, a device such as
  ``/dev/zero``, a socket or a folder is refused before anything is read, so nothing hangs or
  reads forever), and its size is under the caller's limit, judged by ``stat`` before reading.
* :func:`read_bytes` / :func:`read_text` — the same checks, then a bounded read (never more than
  the limit plus one byte, even if the file grows meanwhile) opened with ``O_NONBLOCK`` so a FIFO
  swapped in after the check cannot block.
* :func:`check_zip` — a zip archive's directory (``.keras`` files, ``.npz`` files) checked before
  any member is inflated: no encrypted member, only stored/deflated members, no absolute or
  ``..`` names, declared sizes and the total under limits, no member that inflates more than
  :data:`MAX_ZIP_RATIO` times (a zip bomb).
* :func:`json_depth` — how deeply a JSON text nests, counted without parsing it (Python's
  ``json`` recurses and would raise ``RecursionError`` on a config nested 10,000 deep).

Writing:

* :func:`check_output_path` — an output path whose folder is a file (``-o /etc/passwd/x.keras``)
  or that is itself a folder is refused before any work.
* :func:`os_error` / :func:`writing` — an ``OSError`` on a user's path becomes a
  :class:`UserFileError` in words (no space left, read-only, permission denied, ...) naming the
  path and saying what earlier files still hold (``kept=``); disk full is :class:`DiskFullError`.

May import: :mod:`kblocks.common.errors` only (no Keras, no numpy).
"""
from __future__ import annotations

import errno
import os
import stat
import zipfile
from contextlib import contextmanager
from pathlib import Path

from kblocks.common.errors import KBlocksError

MAX_ZIP_MEMBERS = 100_000  #: entries in one zip directory (.keras, .npz)
MAX_ZIP_RATIO = 1_000  #: a member may inflate at most this many times its stored size


class UserFileError(KBlocksError):
    """A user's file or folder is missing, of the wrong kind, too large, damaged or unwritable."""


class DiskFullError(UserFileError):
    """The disk (or the quota) filled up while kblocks wrote a file."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def size_words(n: int) -> str:
    """``n`` bytes in words: 1,536 bytes -> '1.5 KiB'."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value):,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n:,} bytes"  # pragma: no cover


def check_file(path, *, what: str = "file", limit: int | None = None, hint: str | None = None) -> Path:
    """``path`` as a ``Path`` after checking it names a regular file of at most ``limit`` bytes.

    Symlinks are followed (a link to a regular file is fine; a link to ``/dev/zero`` is a device).
    Raises :class:`UserFileError` naming ``what`` and the path."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserFileError(f"{what} {path} does not exist",
                            hint=hint or "check the path (it is relative to the current folder)") from None
    except OSError as err:
        raise os_error(err, path, action="read", what=what) from None
    if not stat.S_ISREG(st.st_mode):
        raise UserFileError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file",
                            hint=hint or "give the path of a file")
    if limit is not None and st.st_size > limit:
        raise UserFileError(f"{what} {path} is {size_words(st.st_size)}, over the "
                            f"{size_words(limit)} limit for {what}s",
                            hint=hint or "see docs/hardening.md for the file limits")
    return path


def read_bytes(path, *, what: str = "file", limit: int, hint: str | None = None) -> bytes:
    """The content of a regular file of at most ``limit`` bytes (:func:`check_file`), read with a
    bound: a file that grows past ``limit`` meanwhile is refused, not read to its end."""
    path = check_file(path, what=what, limit=limit, hint=hint)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise os_error(err, path, action="read", what=what) from None
    try:
        st = os.fstat(fd)  # the file opened may not be the file checked (a swap in between)
        if not stat.S_ISREG(st.st_mode):
            raise UserFileError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file")
        data = _read_fd(fd, limit + 1)
    except OSError as err:
        raise os_error(err, path, action="read", what=what) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UserFileError(f"{what} {path} is over the {size_words(limit)} limit for {what}s "
                            f"(it grew while being read)")
    return data


def _read_fd(fd: int, most: int) -> bytes:
    """At most ``most`` bytes from an open file, read in chunks of 1 MiB."""
    chunks, total = [], 0
    while total < most:
        chunk = os.read(fd, min(1 << 20, most - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_head(path, most: int) -> bytes:
    """The first ``most`` bytes of a file (opened non-blocking; b"" if it cannot be read): for
    messages about a file already refused, e.g. the line at which a size limit is crossed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return b""
    try:
        return _read_fd(fd, most)
    except OSError:
        return b""
    finally:
        os.close(fd)


def read_text(path, *, what: str = "file", limit: int, hint: str | None = None) -> str:
    """:func:`read_bytes` decoded as UTF-8; undecodable bytes are an error naming the offset."""
    raw = read_bytes(path, what=what, limit=limit, hint=hint)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserFileError(f"{what} {path} is not UTF-8 text (byte {err.start:,} is "
                            f"0x{raw[err.start]:02x})",
                            hint="save the file as UTF-8 text") from None


def check_zip(path, *, what: str = "file", max_total: int, max_member: int | None = None,
              names=None) -> list:
    """The ``ZipInfo`` entries of the zip archive ``path``, checked before anything is inflated.

    Refused (:class:`UserFileError`): not a zip archive, more than :data:`MAX_ZIP_MEMBERS`
    entries, an encrypted member, a compression method other than stored or deflated, a member
    name that is absolute or climbs with ``..``, a member declared larger than ``max_member`` or
    inflating more than :data:`MAX_ZIP_RATIO` times, declared sizes totalling over ``max_total``.
    ``names``, if given, restricts the size checks to the members whose name passes ``names``."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError,
            NotImplementedError) as err:  # a "version needed to extract" zipfile lacks
        raise UserFileError(f"{what} {path} is not a readable zip archive ({err})",
                            hint="the file is damaged or is not the kind of file expected") from None
    except OSError as err:
        raise os_error(err, path, action="read", what=what) from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise UserFileError(f"{what} {path} holds {len(infos):,} entries, over the "
                            f"{MAX_ZIP_MEMBERS:,} limit")
    total = 0
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise UserFileError(f"{what} {path}: member {name!r} is encrypted (password-protected)",
                                hint="kblocks reads only unencrypted archives; save it again "
                                     "without a password")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UserFileError(f"{what} {path}: member {name!r} uses compression method "
                                f"{info.compress_type}, not stored or deflated",
                                hint="Keras and numpy write stored or deflated archives; write "
                                     "the file again with them")
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise UserFileError(f"{what} {path}: member name {name!r} is absolute or climbs out of "
                                f"the archive with '..'", hint="the archive was not written by "
                                                               "Keras or numpy")
        if names is not None and not names(name):
            continue
        if max_member is not None and info.file_size > max_member:
            raise UserFileError(f"{what} {path}: member {name!r} declares "
                                f"{size_words(info.file_size)}, over the {size_words(max_member)} "
                                f"limit")
        if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
            raise UserFileError(f"{what} {path}: member {name!r} would inflate from "
                                f"{size_words(info.compress_size)} to {size_words(info.file_size)} "
                                f"(over {MAX_ZIP_RATIO:,} times): a zip bomb is refused")
        total += info.file_size
        if total > max_total:
            raise UserFileError(f"{what} {path}: its members declare over {size_words(max_total)} "
                                f"in all, the limit for {what}s",
                                hint="see docs/hardening.md for the file limits")
    return infos


def json_depth(raw) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text (bytes or str), without parsing it."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else raw
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def check_output_path(path, *, what: str = "-o") -> Path:
    """Refuse an output path that cannot be a file before any work is done: the path is a folder,
    or a part of its folder exists as a file (``-o /etc/passwd/x.keras``)."""
    path = Path(path)
    if path.is_dir():
        raise UserFileError(f"{what} {path} is a folder", hint="give a file name")
    parent = path.parent
    while True:
        if parent.exists():
            if not parent.is_dir():
                raise UserFileError(f"cannot write {what} {path}: {parent} is a file, not a folder",
                                    hint="give a path inside a folder")
            break
        if parent == parent.parent:
            break
        parent = parent.parent
    return path


_REASONS = {
    errno.ENOSPC: ("no space left on the device", "free some disk space (or write elsewhere) and "
                                                  "run the command again"),
    errno.EDQUOT: ("the disk quota is used up", "free some space under your quota and run the "
                                                "command again"),
    errno.EROFS: ("the file system is read-only", "write somewhere writable"),
    errno.EACCES: ("permission denied", "write somewhere you may write, or change the "
                                        "permissions"),
    errno.EPERM: ("the operation is not permitted", "write somewhere you may write"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "give a path inside a folder"),
    errno.EISDIR: ("it is a folder", "give a file name"),
    errno.EEXIST: ("it exists already", "give another name"),
    errno.ENOENT: ("a folder on the path does not exist", "check the path"),
    errno.ENAMETOOLONG: ("the file name is too long", "give a shorter name"),
    errno.EFBIG: ("the file is too large for the file system", "write somewhere else"),
    errno.EIO: ("an input/output error on the device", "check the disk"),
    errno.ELOOP: ("the path has a loop of symbolic links", "check the links on the path"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n)"),
}


def os_error(err: OSError, path=None, *, action: str = "write", what: str | None = None,
             kept: str | None = None) -> UserFileError:
    """An ``OSError`` met while ``action``-ing a user's ``path`` as a :class:`UserFileError`
    (a :class:`DiskFullError` for a full disk or quota). ``kept`` says what earlier files still
    hold, e.g. ``"runs/x/last.keras still holds epoch 3"``."""
    target = path if path is not None else (err.filename or "a file")
    reason, fix = _REASONS.get(err.errno, (err.strerror or str(err), "check the path and the disk"))
    label = f"{what} {target}" if what else str(target)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        cls, message = DiskFullError, f"{reason} while {action.rstrip('e')}ing {label}"
    else:
        cls, message = UserFileError, f"cannot {action} {label}: {reason}"
    if kept:
        message += f"; nothing lost: {kept}"
    return cls(message, hint=fix)


@contextmanager
def writing(path, *, what: str | None = None, kept=None):
    """Turn an ``OSError`` raised inside the block into :func:`os_error` for ``path``. ``kept`` is
    a string or a callable returning one (evaluated only when an error happens)."""
    try:
        yield
    except OSError as err:
        note = kept() if callable(kept) else kept
        raise os_error(err, path, action="write", what=what, kept=note) from None


class _DiskFullOSError(DiskFullError, OSError):
    """A :class:`DiskFullError` that is also the ``OSError`` it came from (see :func:`write_error`)."""

    def __str__(self):  # the words, not OSError's "[Errno 28] ..."
        return self.render()


class _UserFileOSError(UserFileError, OSError):
    """A :class:`UserFileError` that is also the ``OSError`` it came from (see :func:`write_error`)."""

    def __str__(self):
        return self.render()


def worded_disk_full(err: BaseException) -> OSError | None:
    """The ``OSError(ENOSPC)`` behind an error from a library that words a full disk its own way
    (h5py's ``OSError`` subclasses, TensorFlow's errors: "No space left on device", "errno = 28"),
    or None for any other error."""
    if "No space left on device" in str(err) or "errno = 28" in str(err):
        return OSError(errno.ENOSPC, "No space left on device")
    return None


def write_error(err: OSError, path, *, what: str | None = None, kept: str | None = None):
    """:func:`os_error` for a failed write of ``path``, as an exception that is *also* an
    ``OSError`` with the original ``errno`` and ``filename``: the writers of
    :mod:`kblocks.common.atomic` raise it, so the CLI prints the words ("no space left on the
    device while writing PATH; nothing lost: ...") and code that catches ``OSError`` around a
    write it may skip (a cache) still catches it."""
    words = os_error(err, path, action="write", what=what, kept=kept)
    cls = _DiskFullOSError if isinstance(words, DiskFullError) else _UserFileOSError
    out = cls(words.message, hint=words.hint)
    out.errno, out.strerror, out.filename = err.errno, err.strerror, str(path)
    return out

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    yield
    import keras

    keras.backend.clear_session()


class TooMuchWork(BaseException):
    """Raised inside a call that :func:`work_done` watches once it passes its budget of lines
    (a BaseException, so no ``except Exception`` in the code under test swallows it)."""


def work_done(fn, *args, budget=None, **kwargs):
    """``(result or the exception raised, work done)`` of ``fn(*args, **kwargs)``, where work is the
    lines of kblocks executed plus the calls made into other code (lark, PyYAML, ...).

    A count that does not depend on the machine or its load, for tests that a refusal comes early,
    that work grows linearly, or that no input makes kblocks work without end: they assert on this,
    never on seconds. With ``budget``, the call is stopped by :class:`TooMuchWork` past that count.
    """
    import sys

    own = str(ROOT / "kblocks")
    count = 0

    def add():
        nonlocal count
        count += 1
        if budget is not None and count > budget:
            raise TooMuchWork(f"over {budget:,} lines and calls")

    def lines(frame, event, arg):
        if event == "line":
            add()
        return lines

    def calls(frame, event, arg):
        add()
        return lines if frame.f_code.co_filename.startswith(own) else None

    sys.settrace(calls)
    try:
        outcome = fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the caller asserts on what was raised
        outcome = err
    finally:
        sys.settrace(None)
    return outcome, count


def patch_zip_headers(path, fields, value, fmt="<H"):
    """Overwrite one field of every local and central header of the zip archive ``path``:
    ``fields`` is its offset in the local and in the central header (flag bits at 6/8, method at
    8/10, uncompressed size at 22/24)."""
    import struct

    data = bytearray(path.read_bytes())
    for sig, field in ((b"PK\x03\x04", fields[0]), (b"PK\x01\x02", fields[1])):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            struct.pack_into(fmt, data, i + field, value)
            start = i + 4
    path.write_bytes(bytes(data))

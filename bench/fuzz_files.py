"""Fuzz kblocks' file boundary with hostile files and odd paths (issue 20).

    python bench/fuzz_files.py                          # 10,000 cases, seed 0
    python bench/fuzz_files.py --cases 500 --seed 7 --json files.json --dump failures/
    python bench/fuzz_files.py --replay failures/case0000.json

Each case is a set of files and paths made in a fresh folder, then one call that reads them:

* **npz**: a valid digits-like ``.npz`` (``x`` uint8 ``(12, 8, 8, 1)``, ``y`` in 0..3, written
  stored or deflated) with byte flips, truncation, ``.npy`` header edits (dtype, shape, fortran
  order, huge declared shapes), member renames (``..``, absolute, duplicates, missing ``x``/``y``),
  object arrays, wrong dtypes, ranks and shapes of ``x``/``y``/``classes``, and zip-directory
  edits (the encryption flag, a compression method, declared sizes, entry counts); read by
  ``kblocks.training.data.load_data("npz:PATH")`` and now and then by ``kblocks evaluate``;
* **keras**: a tiny model saved once (and one with a ``Lambda`` layer), then byte flips in
  ``config.json``, JSON edits (unknown classes and modules, wrong types, huge sizes, deep
  nesting), declared sizes, encrypted or unknown-method members, missing or extra members,
  damaged weights, truncation; read by ``kblocks.common.saving.load_model`` and now and then by
  ``kblocks evaluate`` / ``inspect`` / ``export``;
* **yaml**: ``bench/fuzz.py``'s YAML mutators (and undecodable bytes) written to disk, read as an
  architecture file by ``kblocks.compile(PATH)`` and as a ``blocks=`` file, and now and then by
  ``kblocks summary FILE`` / ``summary TEXT --blocks FILE``;
* **images**: an ``images:`` folder (two classes, PNG and JPEG files) with one file truncated,
  bit-flipped, given a huge IHDR/SOF size (a decompression bomb), emptied or replaced by a
  non-image; read by ``load_data("images:DIR", image_size=(8, 8))``;
* **paths**: FIFOs, symlinks to ``/dev/zero`` and to folders, folders where files are expected,
  missing parents, names with spaces, unicode and newlines, very long names, outputs under a
  file, existing outputs, read-only folders; given to ``kblocks summary``, ``build``, ``train
  --epochs 1``, ``evaluate``, ``export`` and ``inspect`` (in-process, click's ``CliRunner``).

The property: a library call ends in success or a ``KBlocksError``; a command exits 0, or 2 with
one ``error:`` line and no traceback; nothing else (another exception, another exit code, a case
past ``--time-limit`` seconds, library, or ``--cli-time-limit``, command: a hang) and no data lost:
every output that existed before a refused or failed command (file, folder, link, and what a link
points to) is byte-identical after it. ``tests/test_fuzz_files.py`` runs a few hundred cases of the
same engine. The script prints a progress bar, the outcomes per kind and one JSON line.
"""
from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import importlib.util
import io
import json
import os
import platform
import random
import shutil
import stat
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _text_fuzz():
    """bench/fuzz.py (its YAML mutators and its alarm), loaded once under the name
    tests/test_fuzz.py gives it."""
    name = "kblocks_bench_fuzz"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "fuzz.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


textfuzz = _text_fuzz()
CaseTimeout = textfuzz.CaseTimeout

KINDS = ("npz", "keras", "yaml", "images", "paths")
#: the share of each kind in a run (paths are command-line cases, about 1 s each)
WEIGHTS = {"npz": 0.30, "keras": 0.24, "yaml": 0.24, "images": 0.17, "paths": 0.05}
ARCH = "INPUT(8,8,1)-CONV(2)-GAP-FC(4)-SOFTMAX"  # the tiny model of the keras cases
BLOCKS_DOC = """\
blocks:
  pair:
    params: {f: 8, n: 2}
    body: "[CONV($f)-RELU]*$n-POOL"
  one:
    body: CONV(4)-BN
"""
GOOD_YAML = "name: tiny\ninput: [8, 8, 3]\nclasses: 2\nnetwork: CONV(4)-RELU-GAP-FC(classes)\n"
BLOCKS_TEXT = "INPUT(8,8,3)-@pair(4)-@one-GAP-FC(2)"


# --- zip and npy helpers ---------------------------------------------------------------------------

def write_zip(members, method=zipfile.ZIP_STORED) -> bytes:
    """A zip archive of ``[(name, bytes)]`` with fixed timestamps (the same bytes every run)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, warnings_off():
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return buf.getvalue()


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def read_zip(raw: bytes) -> list:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def npy(array, header_edit=None) -> bytes:
    """``array`` as ``.npy`` bytes; ``header_edit(dict) -> dict or str`` rewrites the header."""
    import numpy as np
    from numpy.lib import format as npyfmt

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=array.dtype.hasobject)
    raw = buf.getvalue()
    if header_edit is None:
        return raw
    hlen = struct.unpack("<H", raw[8:10])[0]
    header = npyfmt.header_data_from_array_1_0(array)
    new = header_edit(dict(header))
    text = new if isinstance(new, str) else repr(new)
    body = text.encode("latin1", "replace")
    total = 10 + len(body) + 1
    pad = (-total) % 64
    body = body + b" " * pad + b"\n"
    return raw[:8] + struct.pack("<H", len(body)) + body + raw[10 + hlen:]


# zip header field offsets: (local header, central directory header)
FLAGS, METHOD, CRC, CSIZE, USIZE = (6, 8), (8, 10), (14, 16), (18, 20), (22, 24)


def patch_zip(raw: bytes, fields, value, fmt="<H", which=(0, 1), member=None) -> bytes:
    """Overwrite a field of the local (0) and/or central (1) headers (of every member, or of the
    ``member``-th one)."""
    data = bytearray(raw)
    for part, sig in enumerate((b"PK\x03\x04", b"PK\x01\x02")):
        if part not in which:
            continue
        start, n = 0, 0
        while (i := data.find(sig, start)) >= 0:
            if member is None or n == member:
                if i + fields[part] + struct.calcsize(fmt) <= len(data):
                    struct.pack_into(fmt, data, i + fields[part], value)
            start, n = i + 4, n + 1
    return bytes(data)


def rename_in_directory(raw: bytes, rng) -> bytes:
    """Give a member a same-length name that climbs (``../``) or is absolute, in the central
    directory only or in both headers."""
    data = bytearray(raw)
    spots = []
    for sig, name_len_at, name_at in ((b"PK\x01\x02", 28, 46), (b"PK\x03\x04", 26, 30)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            if i + name_at <= len(data):
                n = struct.unpack_from("<H", data, i + name_len_at)[0]
                spots.append((sig, i + name_at, n))
            start = i + 4
    if not spots:
        return raw
    central = [s for s in spots if s[0] == b"PK\x01\x02"] or spots
    _, at, n = rng.choice(central)
    old = bytes(data[at:at + n])
    new = rng.choice([b"../" + old[3:], b"/" + old[1:], b"..\\" + old[3:], b"C:" + old[2:],
                      old[:-1] + b"\x00", old.upper(), old[::-1]])[:n].ljust(n, b"_")
    targets = [at] if rng.random() < 0.5 else [s[1] for s in spots if bytes(data[s[1]:s[1] + n]) == old]
    for t in targets:
        data[t:t + n] = new
    return bytes(data)


def patch_eocd(raw: bytes, rng) -> bytes:
    data = bytearray(raw)
    i = data.rfind(b"PK\x05\x06")
    if i < 0:
        return raw
    at, fmt = rng.choice([(8, "<H"), (10, "<H"), (12, "<I"), (16, "<I")])
    struct.pack_into(fmt, data, i + at, rng.choice([0, 1, 0xFFFF if fmt == "<H" else 0xFFFFFFFF,
                                                    3, 1000]))
    return bytes(data)


def flip_bytes(rng, raw: bytes, n=None, lo=0, hi=None) -> bytes:
    data = bytearray(raw)
    hi = len(data) if hi is None else hi
    if hi <= lo:
        return raw
    for _ in range(n or rng.choice([1, 1, 2, 4, 16])):
        i = rng.randrange(lo, hi)
        data[i] ^= rng.choice([1, 0x80, 0xFF, rng.randrange(1, 256)])
    return bytes(data)


def truncate(rng, raw: bytes) -> bytes:
    return raw[:rng.choice([0, 1, 4, 22, rng.randrange(len(raw) + 1), len(raw) - 1])]


def zip_directory_edit(rng, raw: bytes) -> tuple:
    r = rng.randrange(7)
    if r == 0:
        return patch_zip(raw, FLAGS, rng.choice([1, 9, 0x41]), member=rng.choice([None, 0])), \
            "encryption flag"
    if r == 1:
        return patch_zip(raw, METHOD, rng.choice([1, 6, 9, 12, 14, 93, 95, 99, 0xFFFF]),
                         member=rng.choice([None, 0])), "compression method"
    if r == 2:
        return patch_zip(raw, USIZE, rng.choice([0, 1, 7, 2 ** 20, 2 ** 31, 2 ** 32 - 1]), "<I",
                         which=rng.choice([(0,), (1,), (0, 1)]), member=rng.choice([None, 0, 1])), \
            "declared size"
    if r == 3:
        return patch_zip(raw, CSIZE, rng.choice([0, 1, 2 ** 31]), "<I",
                         which=rng.choice([(1,), (0, 1)]), member=rng.choice([None, 0])), \
            "compressed size"
    if r == 4:
        return patch_zip(raw, CRC, rng.randrange(2 ** 32), "<I", member=rng.choice([None, 0])), "crc"
    if r == 5:
        return rename_in_directory(raw, rng), "member name in the directory"
    return patch_eocd(raw, rng), "end-of-directory record"


# --- the case ---------------------------------------------------------------------------------------

@dataclass
class Case:
    """One case: files (relative path -> bytes) and setup steps made in a fresh folder, then a
    call. ``target`` names the call; ``args`` are its arguments, ``{d}`` standing for the folder;
    ``outputs`` are paths whose existing content must survive a refused or failed command."""

    kind: str
    target: str
    args: list
    desc: str
    files: dict = field(default_factory=dict)
    setup: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        out["files"] = {k: base64.b64encode(v).decode() for k, v in self.files.items()}
        return out

    @classmethod
    def from_json(cls, record: dict) -> "Case":
        record = dict(record)
        record["files"] = {k: base64.b64decode(v) for k, v in record["files"].items()}
        return cls(**record)


@dataclass
class Outcome:
    kind: str          # "ok", the KBlocksError subclass name, or "exit 2"
    seconds: float
    error: str = ""


class FileFuzzFailure(AssertionError):
    def __init__(self, problem, detail=""):
        super().__init__(f"{problem}: {detail}"[:2000])
        self.problem = problem
        self.detail = detail


# --- the corpus: valid files made once --------------------------------------------------------------

class Corpus:
    """The valid files every mutation starts from, made once in ``folder``."""

    def __init__(self, folder: Path):
        import numpy as np

        self.folder = Path(folder)
        rng = np.random.default_rng(0)
        self.x = rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8)
        self.y = np.arange(12, dtype=np.int64) % 4
        self.classes = np.array(["zero", "one", "two", "three"])
        self.npz_members = [("x.npy", npy(self.x)), ("y.npy", npy(self.y)),
                            ("classes.npy", npy(self.classes))]
        self.npz = write_zip(self.npz_members)
        self.npz_deflated = write_zip(self.npz_members, zipfile.ZIP_DEFLATED)
        self.good_npz = self.folder / "good.npz"
        self.good_npz.write_bytes(self.npz)
        self.yaml_docs = [textfuzz.SMALL_YAML] + textfuzz.zoo_documents()
        self.png, self.jpeg = self._images()
        self.keras = None  # made by load_keras(): TensorFlow is imported only then

    def _images(self):
        from PIL import Image
        import numpy as np

        pixels = (np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3) * 3)
        out = []
        for fmt in ("PNG", "JPEG"):
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format=fmt)
            out.append(buf.getvalue())
        return out

    def load_keras(self):
        """Save the tiny model (and a Lambda one) once; their bytes start every keras case."""
        if self.keras is not None:
            return
        import keras

        import kblocks
        from kblocks.common import saving

        self.good_keras = self.folder / "good.keras"
        saving.save_model(kblocks.build(ARCH), self.good_keras)
        self.keras = self.good_keras.read_bytes()
        self.keras_members = read_zip(self.keras)
        lam = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Lambda(lambda t: t * 2.0),
                                keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
        path = self.folder / "lambda.keras"
        lam.save(path)
        self.lambda_keras = path.read_bytes()


# --- npz cases --------------------------------------------------------------------------------------

def _npz_members(rng, corpus) -> tuple:
    """Members of an .npz with one semantic change (dtype, rank, shape, header, name...)."""
    import numpy as np

    x, y, classes = corpus.x, corpus.y, corpus.classes
    members = dict(corpus.npz_members)
    r = rng.randrange(12)
    if r == 0:  # header edits (CRC stays right: the edit is in the member's bytes)
        key = rng.choice(["x", "y", "classes"])
        arr = {"x": x, "y": y, "classes": classes}[key]
        edit = rng.choice([
            ("descr", "<f8"), ("descr", "|O"), ("descr", "<U5"), ("descr", ">i8"), ("descr", "|b1"),
            ("descr", "<c16"), ("descr", "V3"), ("descr", "nope"), ("shape", (10 ** 12,)),
            ("shape", (0,)), ("shape", ()), ("shape", (-1,)), ("shape", (2, 3, 4, 5, 6)),
            ("shape", (12, 8, 8, 10 ** 6)), ("shape", (2 ** 62, 2 ** 62)), ("shape", ("a",)),
            ("fortran_order", True), ("fortran_order", "yes"), ("raw", "{'descr': '<i8'"),
            ("raw", "[1, 2]"), ("raw", "{}"), ("raw", "{'descr': '<i8', 'fortran_order': False, "
                                                   "'shape': (3,), 'extra': 1}")])
        if edit[0] == "raw":
            members[key + ".npy"] = npy(arr, lambda h, t=edit[1]: t)
        else:
            members[key + ".npy"] = npy(arr, lambda h, e=edit: {**h, e[0]: e[1]})
        return members, f"npy header of {key}: {edit}"
    if r == 1:  # renames, missing and extra members
        op = rng.choice(["drop x", "drop y", "rename", "duplicate", "extra", "empty", "dir"])
        if op.startswith("drop"):
            members.pop(op[-1] + ".npy")
        elif op == "rename":
            old = rng.choice(list(members))
            new = rng.choice(["X.npy", "x", "x.npy.npy", "../x.npy", "/x.npy", "a/x.npy",
                              "x.NPY", ".npy", "y.npy", "é.npy"])
            members = {(new if k == old else k): v for k, v in members.items()}
        elif op == "duplicate":
            return list(members.items()) + [("x.npy", npy(y))], "duplicate member x.npy"
        elif op == "extra":
            members[rng.choice(["z.npy", "notes.txt", "x.pkl"])] = b"junk" * 10
        elif op == "empty":
            members = {}
        else:
            members["sub/"] = b""
        return members, f"members: {op}"
    if r == 2:  # object arrays (pickle)
        key = rng.choice(["x", "y", "classes"])
        members[key + ".npy"] = npy(np.array([{"a": 1}, [2], "s"] * 4, dtype=object))
        return members, f"object array {key}"
    if r == 3:  # wrong dtypes of x
        dt = rng.choice(["float64", "float16", "int64", "bool", "complex64", "U3", "S2", "uint16",
                         "int8", "float32", "datetime64[s]", [("a", "u1"), ("b", "f4")]])
        try:
            members["x.npy"] = npy(x.astype(dt))
        except (TypeError, ValueError):
            members["x.npy"] = npy(np.zeros(x.shape, dtype=dt))
        if dt == "float32" and rng.random() < 0.5:
            members["x.npy"] = npy(np.full(x.shape, rng.choice([np.nan, np.inf, -1e30, 1e30]),
                                           np.float32))
        return members, f"x dtype {dt}"
    if r == 4:  # wrong labels
        yy = rng.choice([y.astype(np.float64) + 0.5, -y - 1, y * 10 ** 9, y.astype(np.uint64) + 2 ** 63,
                         np.full(12, np.nan), np.full(12, 1e300), y.astype(bool), y.astype("U2"),
                         y.astype(np.float32), y * 0, np.full(12, 2 ** 62), y.astype(np.uint8),
                         np.full(12, 99_999), np.full(12, 100_000)])
        members["y.npy"] = npy(np.asarray(yy))
        return members, f"labels {np.asarray(yy).dtype} {np.asarray(yy)[:2]!r}"
    if r == 5:  # wrong ranks and shapes
        key, arr = rng.choice([
            ("x", x.reshape(-1)), ("x", x[..., 0]), ("x", x[None]), ("x", x[:0]), ("x", x[:, :0]),
            ("x", np.repeat(x, 5, axis=-1)), ("x", np.uint8(3)), ("x", x[:11]), ("x", x[:, :1, :1]),
            ("x", np.repeat(x, 2, axis=-1)), ("x", np.zeros((12, 8, 8, 3), np.uint8)),
            ("y", y[:, None]), ("y", y[:11]), ("y", np.int64(1)), ("y", y[:0]), ("y", np.tile(y, 2)),
            ("classes", classes[None]), ("classes", np.array("a")), ("classes", classes[:2]),
            ("classes", np.array([1.5, 2.5])), ("classes", np.array([], "U1")),
            ("classes", np.array(["a"] * 100_001))])
        members[key + ".npy"] = npy(np.asarray(arr))
        return members, f"{key} shape {np.asarray(arr).shape} dtype {np.asarray(arr).dtype}"
    if r == 6:  # a member that is not an .npy at all, or an npy of another version
        key = rng.choice(["x", "y", "classes"])
        members[key + ".npy"] = rng.choice([b"", b"\x93NUMPY", b"\x93NUMPY\x03\x00" + b"\x00" * 20,
                                            b"\x93NUMPY\x02\x00\xff\xff\xff\x7f" + b"{" * 40,
                                            b"not an array", members[key + ".npy"][:20],
                                            b"\x93NUMPY\x01\x00\x08\x00{'a':1}\n"])
        return members, f"{key} not an npy"
    if r == 7:  # big images, small file (sizes in the data limit checks)
        side = rng.choice([2048, 4096, 4097, 10 ** 5])
        members["x.npy"] = npy(x[:1], lambda h, s=side: {**h, "shape": (12, s, s, 1)})
        return members, f"x declares (12, {side}, {side}, 1)"
    # r >= 8: no semantic change (byte and directory mutations apply to the valid file)
    return members, "valid members"


def damage_archive(rng, raw: bytes, cuts, junk: list, junk_what: str):
    """``raw`` (a zip archive) damaged as the cumulative probabilities ``cuts`` say: byte flips,
    truncation, a zip-directory edit, or replaced by one of ``junk``; else left as written."""
    r = rng.random()
    if r < cuts[0]:
        return flip_bytes(rng, raw), "byte flips"
    if r < cuts[1]:
        return truncate(rng, raw), "truncated"
    if r < cuts[2]:
        return zip_directory_edit(rng, raw)
    if r < cuts[3]:
        return rng.choice(junk), junk_what
    return raw, "as written"


def npz_case(rng, corpus) -> Case:
    members, desc = _npz_members(rng, corpus)
    items = list(members.items()) if isinstance(members, dict) else members
    method = zipfile.ZIP_DEFLATED if rng.random() < 0.4 else zipfile.ZIP_STORED
    raw = write_zip(items, method)
    raw, more = damage_archive(rng, raw, (0.2, 0.3, 0.5, 0.53),
                               [b"", b"PK", b"PK\x05\x06" + b"\x00" * 18, corpus.png,
                                b"\x00" * 100, b"x,y\n1,2\n"], "not an npz")
    desc = f"{desc}; {more}; {'deflated' if method == zipfile.ZIP_DEFLATED else 'stored'}"
    files = {"data.npz": raw}
    if rng.random() < 0.03:  # the same file through the command line
        return Case("npz", "cli", ["evaluate", "{d}/../good.keras", "--data", "npz:{d}/data.npz"],
                    desc, files)
    return Case("npz", "load_data", ["npz:{d}/data.npz"], desc, files)


# --- keras cases ------------------------------------------------------------------------------------

def _config_edit(rng, config: bytes) -> tuple:
    """``config.json`` with byte flips or a JSON edit."""
    r = rng.randrange(5)
    if r == 0:
        return flip_bytes(rng, config), "config.json byte flips"
    if r == 1:
        depth = rng.choice([20, 99, 101, 1000, 100_000])
        return (b"[" * depth + config + b"]" * depth if rng.random() < 0.5
                else b'{"a":' * depth + b"1" + b"}" * depth), f"config.json nested {depth} deep"
    data = json.loads(config)
    nodes = []
    stack = [(data, None, None)]
    while stack:
        node, parent, key = stack.pop()
        nodes.append((node, parent, key))
        if isinstance(node, dict):
            stack.extend((v, node, k) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, node, i) for i, v in enumerate(node))
    node, parent, key = rng.choice(nodes[1:])
    value = rng.choice([None, -1, 0, 2 ** 40, 10 ** 20, 1e308, "x", "", [], {}, [1, 2, 3], True,
                        {"class_name": "Lambda", "config": {"name": "l", "function": "x"}},
                        {"module": "builtins", "class_name": "eval", "config": "1"},
                        {"module": "os", "class_name": "system", "config": {"command": "true"}},
                        "Nope", "keras.layers", "__main__", 1e-300, float("nan")])
    if r == 2 and parent is not None:
        parent[key] = value
        what = f"{key!r} = {value!r}"
    elif r == 3 and isinstance(parent, dict):
        del parent[key]
        what = f"{key!r} removed"
    else:
        if isinstance(parent, dict) and key in ("class_name", "module", "registered_name"):
            parent[key] = rng.choice(["Lambda", "Nope", "os", "builtins", "Functional",
                                      "Sequential", "keras.src.ops", ""])
        elif parent is not None:
            parent[key] = value
        what = f"edit at {key!r}"
    try:
        text = json.dumps(data)
    except ValueError:
        text = json.dumps(data, allow_nan=True)
    return text.encode(), f"config.json {what}"[:200]


def keras_case(rng, corpus) -> Case:
    corpus.load_keras()
    members = dict(corpus.keras_members)
    r = rng.randrange(10)
    if r <= 3:
        members["config.json"], desc = _config_edit(rng, members["config.json"])
    elif r == 4:
        name = rng.choice(list(members))
        op = rng.choice(["drop", "empty", "extra", "rename"])
        if op == "drop":
            members.pop(name)
        elif op == "empty":
            members[name] = b""
        elif op == "extra":
            members[rng.choice(["x.py", "assets/a", "../evil", "config.json.bak"])] = b"print(1)"
        else:
            members = {("Config.json" if k == name else k): v for k, v in members.items()}
        desc = f"member {name}: {op}"
    elif r == 5:
        w = members.get("model.weights.h5", b"")
        members["model.weights.h5"] = (flip_bytes(rng, w, rng.choice([1, 8, 64]))
                                       if rng.random() < 0.6 else truncate(rng, w))
        desc = "damaged model.weights.h5"
    elif r == 6:
        members = dict(read_zip(corpus.lambda_keras))
        desc = "a Lambda layer"
    elif r == 7:
        members["metadata.json"] = rng.choice([b"{}", b"[]", b"x", b'{"keras_version": "0.0.1"}',
                                               b'{"keras_version": 3}', b"{" * 1000])
        desc = "metadata.json edit"
    else:
        desc = "valid members"
    raw = write_zip(list(members.items()), rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    raw, more = damage_archive(rng, raw, (0.15, 0.22, 0.45, 0.48),
                               [b"", corpus.npz, b"PK\x03\x04", b"\x89HDF\r\n\x1a\n" + b"\x00" * 50],
                               "not a .keras file")
    desc = f"{desc}; {more}"
    files = {"model.keras": raw}
    c = rng.random()
    if c < 0.02:
        return Case("keras", "cli", ["evaluate", "{d}/model.keras", "--data", "npz:{d}/../good.npz"],
                    desc, files)
    if c < 0.035:
        return Case("keras", "cli", ["inspect", "{d}/model.keras", "-m", "filters", "-o",
                                     "{d}/f.png"], desc, files, outputs=["f.png"])
    if c < 0.04:
        return Case("keras", "cli", ["export", "{d}/model.keras", "-o", "{d}/saved", "--no-check"],
                    desc, files, outputs=["saved"])
    return Case("keras", "load_model", ["{d}/model.keras"], desc, files)


# --- yaml cases -------------------------------------------------------------------------------------

def yaml_case(rng, corpus) -> Case:
    blocks = rng.random() < 0.3
    doc = textfuzz.mutate_yaml(rng, BLOCKS_DOC if blocks else rng.choice(corpus.yaml_docs))
    raw = doc.encode("utf-8", "surrogatepass")
    desc = "mutated YAML"
    r = rng.random()
    if r < 0.1:  # bytes YAML cannot decode, byte-order marks, NULs
        raw = rng.choice([b"\xff\xfe" + raw, b"\xef\xbb\xbf" + raw, raw[:5] + b"\xc3\x28" + raw[5:],
                          raw.replace(b":", b"\x00", 1), raw.decode("utf-8", "replace").encode("utf-16"),
                          raw[:len(raw) // 2] + b"\x80", b"\xed\xa0\x80" + raw])
        desc = "YAML with undecodable bytes"
    files = {"arch.yaml": raw}
    cli = rng.random() < 0.04
    if blocks:
        if cli:
            return Case("yaml", "cli", ["summary", BLOCKS_TEXT, "--blocks", "{d}/arch.yaml"],
                        desc + " (blocks)", files)
        return Case("yaml", "compile_blocks", [BLOCKS_TEXT, "{d}/arch.yaml"], desc + " (blocks)",
                    files)
    if cli:
        return Case("yaml", "cli", ["summary", "{d}/arch.yaml"], desc, files)
    return Case("yaml", "compile", ["{d}/arch.yaml"], desc, files)


# --- image cases ------------------------------------------------------------------------------------

def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_size(png: bytes, width: int, height: int, crc_ok: bool, depth=None) -> bytes:
    ihdr = bytearray(png[16:29])
    struct.pack_into(">II", ihdr, 0, width, height)
    if depth is not None:
        ihdr[8], ihdr[9] = depth, 0  # bit depth, grey
    chunk = _png_chunk(b"IHDR", bytes(ihdr))
    if not crc_ok:
        chunk = chunk[:-4] + b"\x00\x00\x00\x00"
    return png[:8] + chunk + png[33:]


def _jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    i = jpeg.find(b"\xff\xc0")
    if i < 0:
        return jpeg
    data = bytearray(jpeg)
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def _bad_image(rng, corpus) -> tuple:
    png, jpeg = corpus.png, corpus.jpeg
    r = rng.randrange(9)
    if r == 0:
        return "png", truncate(rng, png), "truncated PNG"
    if r == 1:
        return "jpg", truncate(rng, jpeg), "truncated JPEG"
    if r == 2:
        return "png", flip_bytes(rng, png), "bit-flipped PNG"
    if r == 3:
        return "jpg", flip_bytes(rng, jpeg), "bit-flipped JPEG"
    if r == 4:
        w, h = rng.choice([(10_000, 10_000), (2 ** 31 - 1, 1), (0, 0), (6_000, 6_000), (1, 10 ** 6),
                           (4_096, 4_097), (65_535, 65_535), (2 ** 32 - 1, 2 ** 32 - 1)])
        ok = rng.random() < 0.8
        return "png", _png_size(png, w, h, ok, rng.choice([None, 1])), \
            f"PNG IHDR {w}x{h} (crc {'ok' if ok else 'wrong'})"
    if r == 5:
        w, h = rng.choice([(65_535, 65_535), (0, 8), (8, 0), (10_000, 5_000), (1, 1)])
        return "jpg", _jpeg_size(jpeg, w, h), f"JPEG SOF {w}x{h}"
    if r == 6:
        return rng.choice(["png", "jpg", "gif", "bmp"]), rng.choice([
            b"", b"not an image", corpus.npz, b"GIF89a", b"BM" + struct.pack("<I", 2 ** 31) + b"\x00" * 50,
            b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", png + b"trailing", png * 2]), "not an image"
    if r == 7:  # an image of another size or mode: resized and converted
        from PIL import Image

        buf = io.BytesIO()
        mode, size = rng.choice([("L", (3, 50)), ("RGBA", (16, 16)), ("P", (9, 7)), ("1", (8, 8)),
                                 ("I;16", (5, 5)), ("CMYK", (8, 8)), ("F", (4, 4))])
        fmt = rng.choice(["PNG", "GIF", "BMP", "JPEG"])
        try:
            Image.new(mode, size).save(buf, format=fmt)
        except (OSError, ValueError, KeyError):
            Image.new("RGB", size).save(buf, format="PNG")
            fmt = "PNG"
        return fmt.lower().replace("jpeg", "jpg"), buf.getvalue(), f"{mode} {size} {fmt}"
    return "png", png, "valid"


def images_case(rng, corpus) -> Case:
    files = {"imgs/a/0.png": corpus.png, "imgs/a/1.jpg": corpus.jpeg, "imgs/b/0.png": corpus.png,
             "imgs/b/1.jpeg": corpus.jpeg}
    descs = []
    for _ in range(rng.choice([1, 1, 2])):
        ext, raw, desc = _bad_image(rng, corpus)
        files[f"imgs/{rng.choice('ab')}/bad{len(descs)}.{ext}"] = raw
        descs.append(desc)
    setup = []
    if rng.random() < 0.08:
        odd = rng.choice([("fifo", "imgs/a/fifo.png"), ("symlink", "imgs/a/zero.png", "/dev/zero"),
                          ("mkdir", "imgs/b/dir.png"), ("symlink", "imgs/a/loop.png", "imgs/a/loop.png"),
                          ("symlink", "imgs/b/up.png", "{d}/imgs"), ("mkdir", "imgs/.hidden"),
                          ("symlink", "imgs/c", "{d}/imgs/a")])
        setup.append(list(odd))
        descs.append(f"{odd[0]} {odd[1]}")
    size = rng.choice([(8, 8), (8, 8), (4, 6), (1, 1)])
    return Case("images", "load_images", ["images:{d}/imgs", list(size)], "; ".join(descs), files,
                setup)


# --- odd paths through the command line -------------------------------------------------------------

LONG = "n" * 300


def paths_case(rng, corpus) -> Case:
    corpus.load_keras()
    good_yaml = GOOD_YAML.encode()
    odd_inputs = [  # (setup, files, name), name relative to {d}
        ([["fifo", "in"]], {}, "FIFO"),
        ([["symlink", "in", "/dev/zero"]], {}, "link to /dev/zero"),
        ([["symlink", "in", "/dev/null"]], {}, "link to /dev/null"),
        ([["symlink", "in", "{d}"]], {}, "link to a folder"),
        ([["symlink", "in", "{d}/in"]], {}, "link to itself"),
        ([["symlink", "in", "{d}/nowhere"]], {}, "dangling link"),
        ([["mkdir", "in"]], {}, "folder"),
        ([], {}, "missing"),
        ([], {"in": b""}, "empty file"),
        ([["chmod", "in", 0]], {"in": b"x"}, "mode 000"),
    ]
    cmd = rng.randrange(8)
    if cmd in (0, 1):  # an architecture file or a blocks file that is not a file
        setup, files, what = rng.choice(odd_inputs)
        ext = ".yaml"
        setup, files = _suffixed(setup, files, ext)
        name = rng.choice(["in" + ext, "no/such/in" + ext, LONG + ext])
        if rng.random() < 0.3:  # an odd but valid name
            name = rng.choice(["a b.yaml", "é ☃.yaml", "new\nline.yaml", "-x.yaml", " .yaml"])
            files, setup, what = {name: BLOCKS_DOC.encode() if cmd else good_yaml}, [], f"name {name!r}"
        args = (["summary", "{d}/" + name] if cmd == 0 else
                ["summary", BLOCKS_TEXT, "--blocks", "{d}/" + name])
        return Case("paths", "cli", args, f"{args[0]} input: {what}", files, setup)
    if cmd in (2, 3):  # outputs: build -o, export -o
        out, setup, files, what = _odd_output(rng, ".keras" if cmd == 2 else "")
        if cmd == 2:
            args = ["build", rng.choice(["CONV(2)-GAP-FC(2)", "{d}/arch.yaml"]), "--input-shape",
                    "8,8,3", "-o", "{d}/" + out]
            files["arch.yaml"] = good_yaml
        else:
            args = ["export", "{d}/../good.keras", "-o", "{d}/" + out, "--no-check"]
        return Case("paths", "cli", args, f"{args[0]} -o {what}", files, setup, outputs=[out.split("/")[0]])
    if cmd == 4:  # train: data path or --out folder
        if rng.random() < 0.5:
            setup, files, what = rng.choice(odd_inputs)
            args = ["train", "CONV(2)-GAP-FC(4)", "--data", "npz:{d}/in", "--epochs", "1", "-q",
                    "--no-tensorboard", "--out", "{d}/run", "--batch-size", "8"]
            return Case("paths", "cli", args, f"train --data npz: {what}", files, setup, ["run"])
        out, setup, files, what = _odd_output(rng, "", run=True)
        args = ["train", "CONV(2)-GAP-FC(4)", "--data", "npz:{d}/../good.npz", "--epochs", "1", "-q",
                "--no-tensorboard", "--out", "{d}/" + out, "--batch-size", "8"]
        return Case("paths", "cli", args, f"train --out {what}", files, setup,
                    outputs=[out.split("/")[0]])
    if cmd == 5:  # evaluate: the model or the data is odd
        setup, files, what = rng.choice(odd_inputs)
        if rng.random() < 0.5:
            setup, files = _suffixed(setup, files, ".keras")
            args = ["evaluate", "{d}/in.keras", "--data", "npz:{d}/../good.npz"]
        else:
            args = ["evaluate", "{d}/../good.keras", "--data", "npz:{d}/in"]
        return Case("paths", "cli", args, f"evaluate: {what}", files, setup)
    if cmd == 6:  # inspect: odd image or odd output
        if rng.random() < 0.5:
            setup, files, what = rng.choice(odd_inputs)
            args = ["inspect", "{d}/../good.keras", "-m", "featuremaps", "-i", "{d}/in", "-o",
                    "{d}/f.png"]
            return Case("paths", "cli", args, f"inspect -i {what}", files, setup, ["f.png"])
        out, setup, files, what = _odd_output(rng, ".png")
        args = ["inspect", "{d}/../good.keras", "-m", "filters", "-o", "{d}/" + out]
        return Case("paths", "cli", args, f"inspect -o {what}", files, setup, [out.split("/")[0]])
    # export or summary of an odd model file
    setup, files, what = rng.choice(odd_inputs)
    setup, files = _suffixed(setup, files, ".keras")
    args = rng.choice([["export", "{d}/in.keras", "-o", "{d}/saved", "--no-check"],
                       ["summary", "{d}/in.keras"], ["inspect", "{d}/in.keras", "-m", "filters"]])
    return Case("paths", "cli", args, f"{args[0]} model: {what}", files, setup, ["saved"])


def _suffixed(setup, files, ext) -> tuple:
    """The odd input ``in`` renamed ``in{ext}`` (a link to itself stays one)."""
    def fix(v):
        return v + ext if v == "in" else v.replace("{d}/in", "{d}/in" + ext) if isinstance(v, str) else v

    return [[step[0], *map(fix, step[1:])] for step in setup], {k + ext: v for k, v in files.items()}


def _odd_output(rng, ext, run=False) -> tuple:
    """``(output path relative to the case folder, setup, files, words)``."""
    r = rng.randrange(10)
    name = "out" + ext
    if r == 0:
        return "file/" + name, [], {"file": b"precious"}, "under a file"
    if r == 1:
        return name, [], {name: b"precious"}, "an existing file"
    if r == 2:
        return name, [["mkdir", name]], {name + "/keep": b"precious"}, "an existing folder"
    if r == 3:
        return "ro/" + name, [["chmod", "ro", 0o555]], {"ro/keep": b"precious"}, "a read-only folder"
    if r == 4:
        return name, [["symlink", name, "{d}/victim"]], {"victim": b"precious"}, "a link to a file"
    if r == 5:
        return name, [["symlink", name, "/dev/null"]], {}, "a link to /dev/null"
    if r == 6:
        return "no/such/" + name, [], {}, "missing parents"
    if r == 7:
        return LONG + ext, [], {}, "a very long name"
    if r == 8:
        odd = rng.choice(["a b", "é☃", "new\nline", "-x", "tab\t"]) + ext
        return odd, [], {}, f"name {odd!r}"
    return name, [["fifo", name]], {}, "a FIFO"


# --- running a case ---------------------------------------------------------------------------------

def make_case(rng, corpus, kind=None) -> Case:
    if kind is None:
        kind = rng.choices(KINDS, weights=[WEIGHTS[k] for k in KINDS])[0]
    return {"npz": npz_case, "keras": keras_case, "yaml": yaml_case, "images": images_case,
            "paths": paths_case}[kind](rng, corpus)


def _sub(value, folder: Path):
    return value.replace("{d}", str(folder)) if isinstance(value, str) else value


def materialize(case: Case, folder: Path):
    for rel, raw in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    for step in case.setup:
        op, rel = step[0], folder / step[1]
        rel.parent.mkdir(parents=True, exist_ok=True)
        if op == "fifo":
            os.mkfifo(rel)
        elif op == "symlink":
            os.symlink(_sub(step[2], folder), rel)
        elif op == "mkdir":
            rel.mkdir(parents=True, exist_ok=True)
        elif op == "chmod":
            os.chmod(rel, step[2])


def snapshot(path: Path):
    """What is at ``path``, to compare after a command: None when nothing is there (or the
    name cannot exist: too long)."""
    try:
        os.lstat(path)
    except OSError:
        return None
    if os.path.islink(path):
        target = os.readlink(path)
        inner = snapshot(Path(target)) if (os.path.isfile(target) and not target.startswith("/dev")) else None
        return ("link", target, inner)
    if path.is_dir():
        out = {}
        for root, _dirs, names in os.walk(path):
            for n in names:
                p = Path(root) / n
                out[str(p.relative_to(path))] = snapshot(p)
        return ("dir", out)
    if path.is_file():
        return ("file", path.read_bytes())
    if path.exists():
        return ("other", stat.S_IFMT(os.lstat(path).st_mode))
    return None


def kept(before, after) -> bool:
    """Everything ``before`` held is in ``after`` (a folder may gain files)."""
    if before is None:
        return True
    if after is None or before[0] != after[0]:
        return False
    if before[0] == "dir":
        return all(k in after[1] and kept(v, after[1][k]) for k, v in before[1].items())
    return before == after


def _unlock(folder: Path):
    for root, dirs, _ in os.walk(folder):
        for d in dirs:
            p = Path(root) / d
            if not p.is_symlink():
                os.chmod(p, 0o700)


def run_case(case: Case, workdir: Path, *, time_limit=5.0, cli_time_limit=20.0) -> Outcome:
    """Make the case's files in a fresh folder under ``workdir``, run its call under an alarm,
    check the property; raises :class:`FileFuzzFailure` (or the unexpected exception)."""
    folder = Path(tempfile.mkdtemp(prefix="case", dir=workdir))
    try:
        materialize(case, folder)
        before = {rel: snapshot(folder / rel) for rel in case.outputs}
        limit = cli_time_limit if case.target == "cli" else time_limit
        old = textfuzz._alarm(limit) if limit else None
        t0 = time.perf_counter()
        try:
            outcome = _call(case, folder)
        except CaseTimeout:
            raise FileFuzzFailure(f"{case.kind}/{case.target}: over {limit} s (a hang)") from None
        finally:
            if old is not None:
                textfuzz._disarm(old)
        outcome.seconds = time.perf_counter() - t0
        if outcome.kind != "ok":
            for rel, snap in before.items():
                if not kept(snap, snapshot(folder / rel)):
                    raise FileFuzzFailure(f"{case.kind}/{case.target}: data lost",
                                          f"{rel} changed after: {outcome.error}")
        return outcome
    finally:
        _unlock(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _call(case: Case, folder: Path) -> Outcome:
    from kblocks.common.errors import KBlocksError

    args = [_sub(a, folder) for a in case.args]
    if case.target == "cli":
        return _cli(args, case)
    try:
        if case.target == "load_data":
            from kblocks.training.data import ArrayData, load_data

            data = load_data(args[0])
            assert isinstance(data, ArrayData) and len(data.x) == len(data.y)
        elif case.target == "load_images":
            from kblocks.training.data import load_data

            data = load_data(args[0], image_size=tuple(args[1]))
            assert data.x.shape[1:] == (*args[1], 3), data.x.shape
        elif case.target == "load_model":
            from kblocks.common.saving import load_model

            load_model(args[0])
        elif case.target == "compile":
            import kblocks

            kblocks.analyse(kblocks.compile(args[0]))
        elif case.target == "compile_blocks":
            import kblocks

            kblocks.analyse(kblocks.compile(args[0], blocks=args[1]))
        else:
            raise ValueError(f"unknown target {case.target}")
    except KBlocksError as err:
        str(err)  # renders
        return Outcome(type(err).__name__, 0.0, err.message[:120])
    return Outcome("ok", 0.0)


def _cli(args, case) -> Outcome:
    from click.testing import CliRunner

    from kblocks.cli import main

    result = CliRunner().invoke(main, args, catch_exceptions=True)
    out = result.output
    where = f"{case.kind}/cli {args[0]}"
    if "Traceback" in out:
        raise FileFuzzFailure(f"{where}: a traceback", out[-600:])
    if result.exit_code == 0:
        return Outcome("ok", 0.0)
    if result.exit_code != 2 or not isinstance(result.exception, SystemExit):
        exc = result.exception
        detail = "".join(__import__("traceback").format_exception(exc))[-1500:] if exc else out[-600:]
        raise FileFuzzFailure(f"{where}: exit {result.exit_code} "
                              f"({type(exc).__name__ if exc else 'no exception'})", detail)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    usage = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
    if not errors and len(usage) == 1:  # click's own check of an option (click.Path(dir_okay=False))
        return Outcome("usage error (click)", 0.0, usage[0][:120])
    if len(errors) != 1:
        raise FileFuzzFailure(f"{where}: {len(errors)} 'error:' lines", result.stderr[-600:])
    return Outcome("exit 2", 0.0, errors[0][:120])


# --- the driver -------------------------------------------------------------------------------------

def warm_up(corpus, workdir: Path, commands=True):
    """Import TensorFlow and run each command once (``commands``), so one-off imports are not a
    slow case."""
    import kblocks  # noqa: F401
    from kblocks.training.data import load_data

    corpus.load_keras()
    load_data(f"npz:{corpus.good_npz}")
    textfuzz.warm_up()
    for args in () if not commands else (["summary", "{d}/../good.keras"],
                 ["evaluate", "{d}/../good.keras", "--data", "npz:{d}/../good.npz"],
                 ["inspect", "{d}/../good.keras", "-m", "filters", "-o", "{d}/w.png"],
                 ["export", "{d}/../good.keras", "-o", "{d}/model.tflite", "--format", "tflite",
                  "--no-check"]):
        try:
            run_case(Case("warm", "cli", args, "warm-up"), workdir, time_limit=0, cli_time_limit=0)
        except FileFuzzFailure:
            pass
    from PIL import Image  # noqa: F401
    images_case(random.Random(0), corpus)


def cases(seed: int, n: int, corpus, kind=None):
    """``n`` cases from ``seed``: case ``i`` depends only on ``(seed, i)`` (a failure replays)."""
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        yield i, make_case(rng, corpus, kind)


@dataclass
class Tally:
    cases: int = 0
    per_kind: collections.Counter = field(default_factory=collections.Counter)
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    failures: list = field(default_factory=list)
    data_lost: int = 0
    seconds_per_kind: collections.Counter = field(default_factory=collections.Counter)
    slowest: tuple = (0.0, "")


def run_one(case: Case, workdir: Path, tally: Tally, **limits):
    t0 = time.perf_counter()
    try:
        out = run_case(case, workdir, **limits)
        tally.outcomes[f"{case.kind}/{case.target}: {out.kind}"] += 1
        if out.seconds > tally.slowest[0]:
            tally.slowest = (out.seconds, f"{case.kind}/{case.target} {case.desc[:120]}")
    except FileFuzzFailure as f:
        tally.failures.append((case, f.problem, f.detail[:1500]))
        tally.data_lost += "data lost" in f.problem
    except Exception as err:  # noqa: BLE001 - exactly what the fuzzer looks for
        import traceback

        tally.failures.append((case, f"{case.kind}/{case.target}: {type(err).__name__}",
                               "".join(traceback.format_exception(err))[-1500:]))
    tally.cases += 1
    tally.per_kind[case.kind] += 1
    tally.seconds_per_kind[case.kind] += time.perf_counter() - t0


def replay(path: Path, corpus, workdir: Path) -> int:
    """Run the one case a ``--dump`` file holds, with its traceback."""
    record = json.loads(path.read_text(encoding="utf-8"))
    case = Case.from_json(record["case"])
    print(f"{case.kind}/{case.target}: {case.desc}\n  args {case.args}")
    try:
        print(run_case(case, workdir, time_limit=0, cli_time_limit=0))
    except FileFuzzFailure as f:
        print(f"FAIL {f.problem}\n{f.detail}")
        return 1
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", choices=KINDS, default=None, help="only cases of this kind")
    ap.add_argument("--time-limit", type=float, default=5.0, help="seconds per library case")
    ap.add_argument("--cli-time-limit", type=float, default=20.0, help="seconds per command case")
    ap.add_argument("--json", default=None, help="also write the summary here")
    ap.add_argument("--show", type=int, default=10, help="failures to print")
    ap.add_argument("--dump", default=None, help="write each failing case to a file in this folder")
    ap.add_argument("--replay", default=None, help="run the one case in this file (from --dump)")
    args = ap.parse_args(argv)

    import logging
    import warnings

    warnings.filterwarnings("ignore")  # Keras' warnings about the mutated files it still loads
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes
    with tempfile.TemporaryDirectory(prefix="kb-fuzz-files-") as tmp:
        workdir = Path(tmp)
        corpus = Corpus(workdir)
        warm_up(corpus, workdir, commands=args.kind in (None, "paths", "keras", "npz"))
        if args.replay:
            return replay(Path(args.replay), corpus, workdir)
        tally = Tally()
        t0 = time.perf_counter()
        tty = sys.stderr.isatty()
        for i, case in cases(args.seed, args.cases, corpus, args.kind):
            run_one(case, workdir, tally, time_limit=args.time_limit,
                    cli_time_limit=args.cli_time_limit)
            if case.kind in ("keras", "paths") and tally.per_kind[case.kind] % 200 == 0:
                import keras

                keras.backend.clear_session()  # models loaded so far are garbage
            if (i + 1) % 100 == 0 or i + 1 == args.cases:
                line = textfuzz._bar(i + 1, args.cases, t0) + f" failures {len(tally.failures)}"
                print(line, end="" if tty else "\n", file=sys.stderr, flush=True)
        seconds = time.perf_counter() - t0
    print(file=sys.stderr)
    print(f"{tally.cases:,} cases in {seconds:.1f} s (seed {args.seed}), "
          f"{len(tally.failures)} failures, data lost in {tally.data_lost}")
    for kind in KINDS:
        if tally.per_kind[kind]:
            print(f"  {kind:<8} {tally.per_kind[kind]:>7,} cases {tally.seconds_per_kind[kind]:>8.1f} s")
    print("outcomes:")
    for name, count in sorted(tally.outcomes.items()):
        print(f"  {name:<48} {count:>7,}")
    print(f"slowest case: {tally.slowest[0]:.2f} s: {tally.slowest[1]}")
    if args.dump:
        folder = Path(args.dump)
        folder.mkdir(parents=True, exist_ok=True)
        for n, (case, problem, detail) in enumerate(tally.failures):
            (folder / f"case{n:04d}.json").write_text(json.dumps(
                {"problem": problem, "detail": detail, "case": case.to_json()}), encoding="utf-8")
    kinds = collections.Counter(problem for _, problem, _ in tally.failures)
    for problem, count in kinds.most_common():
        print(f"  FAIL {count:>6} x {problem}")
    shown = set()
    for case, problem, detail in tally.failures:
        if problem not in shown and len(shown) < args.show:
            shown.add(problem)
            print(f"--- {problem}\n  {case.desc}\n  args {case.args}\n  {detail[-800:]}")
    summary = {"cases": tally.cases, "seed": args.seed, "seconds": round(seconds, 1),
               "failures": len(tally.failures), "data_lost": tally.data_lost,
               "failure_kinds": dict(kinds), "per_kind": dict(tally.per_kind),
               "seconds_per_kind": {k: round(v, 1) for k, v in tally.seconds_per_kind.items()},
               "outcomes": dict(tally.outcomes), "slowest_s": round(tally.slowest[0], 2),
               "slowest_case": tally.slowest[1], "python": platform.python_version(),
               "machine": platform.machine()}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())

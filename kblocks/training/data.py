"""Image-classification data sources behind one interface, and the seeded, stratified split.

``load_data("digits")``, ``load_data("npz:PATH")``, ``load_data("cifar10:PATH")``,
``load_data("images:DIR")`` and ``load_data("tfds:NAME")`` all return an :class:`ArrayData`: raw
``uint8`` images ``(N, H, W, C)``, integer labels ``(N,)`` in ``0..len(classes)-1`` and the class
names. Segmentation data (``load_data("shapes")``, ``load_data("masks:DIR")``, or an ``npz:``
whose ``y`` is ``(N, H, W)``) has a class per pixel instead: labels ``(N, H, W)``
(:attr:`ArrayData.per_pixel`), resized by nearest neighbour, split by each image's main object. Everything is held in memory as NumPy arrays, which makes splitting exact and reproducible
and lets the trainer hand the arrays to any Keras backend; normalisation happens inside the model.

A new source is one small class::

    @register_source("mything")
    class MyThing(DataSource):
        '''mything:PATH - what it reads.'''
        def load(self) -> ArrayData: ...

Every mistake (missing file, wrong keys or shapes, labels out of range) raises
:class:`kblocks.common.errors.DataError` naming the source and the fix.

Files go through the file boundary (:mod:`kblocks.common.files`, issue 20): a data file must be a
regular file (a FIFO or a device is refused before anything is read) of at most
:data:`MAX_DATA_BYTES`; an ``.npz``'s zip directory and each array's ``.npy`` header (dtype,
shape, hence size) are checked before any array is inflated; every image is decoded, and a bad,
truncated or oversized one named, before training starts. The limits below are listed in
docs/hardening.md.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tokenize
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kblocks.common import files
from kblocks.common.errors import ConfigError, DataError

__all__ = [
    "ArrayData", "DataSource", "register_source", "sources", "load_data", "split_data",
    "stratified_subset", "check_fits", "parse_image_size", "from_arrays", "scan_dataset",
    "StreamData", "class_names", "MAX_DATA_BYTES", "MAX_CLASSES", "MAX_IMAGE_SIDE",
    "MAX_SOURCE_PIXELS",
]

MAX_DATA_BYTES = 4 << 30  #: a data file, the arrays it inflates to, and the images after a resize
MAX_CLASSES = 100_000  #: classes of a data set (the largest label + 1, or the class names given)
MAX_IMAGE_SIDE = 4096  #: height or width of --image-size and of an image a data set holds
MAX_SOURCE_PIXELS = 40_000_000  #: pixels of one source image file (a decompression bomb is over)


@dataclass
class ArrayData:
    """Images, labels and class names of one data set (or one split of it)."""

    x: np.ndarray
    y: np.ndarray
    classes: list = field(default_factory=list)
    name: str = ""

    def __post_init__(self):
        self.y = np.asarray(self.y)
        if self.y.dtype.kind in "iub" and not (  # floats are checked (whole numbers?) by
                self.y.dtype == np.uint64 and self.y.size  # _validate, as is a uint64 that
                and self.y.max() > np.iinfo(np.int64).max):  # would wrap to a negative int64
            self.y = self.y.astype(np.int64, copy=False)
        self.classes = [str(c) for c in self.classes]

    def __len__(self):
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def per_pixel(self) -> bool:
        """Segmentation data: ``y`` holds a class per pixel ``(N, H, W)``, not one per image."""
        return self.y.ndim == 3

    def subset(self, index, name=None) -> "ArrayData":
        return ArrayData(self.x[index], self.y[index], list(self.classes), name or self.name)

    def class_counts(self) -> np.ndarray:
        """Images per class; pixels per class for per-pixel labels."""
        return np.bincount(self.y.ravel(), minlength=self.num_classes)

    def describe(self) -> dict:
        out = {"name": self.name, "samples": len(self), "input_shape": list(self.input_shape),
               "dtype": str(self.x.dtype), "classes": self.num_classes,
               "class_names": self.classes[:50]}
        if self.per_pixel:
            out["labels"] = "per-pixel"
        return out


# -- registry ---------------------------------------------------------------------------------

_SOURCES: dict = {}


def register_source(scheme: str):
    """Class decorator: make ``scheme:ARG`` (or bare ``scheme``) load with this class."""

    def deco(cls):
        cls.scheme = scheme
        _SOURCES[scheme] = cls
        return cls

    return deco


def sources() -> dict:
    """``{scheme: one-line description}`` of every registered source."""
    return {k: (v.__doc__ or "").strip().splitlines()[0] for k, v in sorted(_SOURCES.items())}


class DataSource:
    """One way of reading a labelled image data set into memory."""

    scheme = ""
    needs_argument = True
    optional_argument = False  #: with needs_argument False: ``scheme`` or ``scheme:ARG`` both work

    def __init__(self, argument: str | None, *, data_dir=None, image_size=None, split="train"):
        self.argument = argument
        self.data_dir = data_dir
        self.image_size = image_size
        self.split = split
        if self.needs_argument and not argument:
            raise DataError(f"data source '{self.scheme}' needs an argument",
                            what="data", hint=f"write it as {self.usage()}")

    @classmethod
    def usage(cls) -> str:
        if cls.optional_argument:
            return f"{cls.scheme}[:OPTIONS]"
        return f"{cls.scheme}:PATH" if cls.needs_argument else cls.scheme

    @property
    def spec(self) -> str:
        return f"{self.scheme}:{self.argument}" if self.argument else self.scheme

    def load(self) -> ArrayData:  # pragma: no cover - abstract
        raise NotImplementedError

    def path(self) -> Path:
        path = Path(os.path.expanduser(self.argument))
        if not path.exists() and not path.is_symlink():
            raise DataError(f"{self.spec}: no such file or folder: {path}", what="data",
                            hint="check the path (relative paths start at the current folder)")
        return path

    def read_npz(self, path: Path, required, optional=(), missing=None) -> dict:
        """:func:`read_npz` of ``path`` for this source."""
        return read_npz(path, self.spec, required, optional, missing=missing)


_NPZ_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
                    TypeError, SyntaxError, tokenize.TokenError)  # numpy tokenizes .npy headers


def _npz_hint(required) -> str:
    if "jpeg" in required:
        return "the container is damaged; copy it again from where it came from"
    return "write it again with np.savez(path, x=images, y=labels) from numeric arrays"


def _npz_headers(path: Path, spec: str, infos) -> dict:
    """``{array name: (shape, dtype)}`` from each ``.npy`` member's header, read without
    inflating the array (only the first bytes of a member are decompressed)."""
    from numpy.lib import format as npy

    out = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                with archive.open(info) as member:
                    version = npy.read_magic(member)
                    read = (npy.read_array_header_1_0 if version == (1, 0)
                            else npy.read_array_header_2_0)
                    shape, _, dtype = read(member)
                out[key] = (tuple(int(d) for d in shape), dtype, info.file_size)
    except _NPZ_READ_ERRORS as err:
        raise DataError(f"{_lead(spec)}{path} is damaged: an array header cannot be read "
                        f"({type(err).__name__}: {err})", what="data",
                        hint="write the file again with np.savez") from None
    return out


def read_npz(path, spec: str, required, optional=(), *, missing=None) -> dict:
    """The arrays ``required`` and those of ``optional`` present in the .npz ``path``.

    ``missing(absent, found)``, if given, makes the error for required arrays the file lacks.

    Checked before anything is inflated: a regular file of at most :data:`MAX_DATA_BYTES`, its
    zip directory (:func:`kblocks.common.files.check_zip`: declared sizes in all at most
    :data:`MAX_DATA_BYTES`), and each wanted array's ``.npy`` header: no object (pickled) dtype,
    a declared size that the member holds. Then each array is read with ``allow_pickle=False``;
    a damaged member (CRC, inflate errors) is a :class:`DataError` naming the file and the array.
    """
    path = Path(path)
    files.check_file(path, what="data file", limit=MAX_DATA_BYTES,
                     hint="see docs/hardening.md for the data limits")
    infos = files.check_zip(path, what="data file", max_total=MAX_DATA_BYTES,
                            max_member=MAX_DATA_BYTES)
    headers = _npz_headers(path, spec, infos)
    absent = [k for k in required if k not in headers]
    if absent:
        if missing is not None:
            raise missing(absent, sorted(headers))
        raise DataError(f"{_lead(spec)}missing array(s) {', '.join(absent)}; found "
                        f"{', '.join(sorted(headers)) or 'none'}", what="data",
                        hint="save with np.savez(path, x=images, y=labels)")
    wanted = [k for k in (*required, *optional) if k in headers]
    for key in wanted:
        shape, dtype, stored = headers[key]
        if dtype.hasobject:
            raise DataError(f"{_lead(spec)}array {key!r} in {path} holds Python objects (dtype "
                            f"{dtype}), which only pickle can read; kblocks never unpickles data",
                            what="data", hint=_npz_hint(required))
        need = math.prod(shape) * dtype.itemsize
        if need > stored:
            raise DataError(f"{_lead(spec)}array {key!r} in {path} declares shape {shape} "
                            f"({files.size_words(need)}) but its member holds "
                            f"{files.size_words(stored)}: the file is damaged", what="data",
                            hint=_npz_hint(required))
    out = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in wanted:
                try:
                    out[key] = np.asarray(archive[key])
                except _NPZ_READ_ERRORS as err:
                    reason = str(err) or type(err).__name__
                    raise DataError(f"{_lead(spec)}array {key!r} in {path} cannot be read: "
                                    f"{reason}", what="data", hint=_npz_hint(required)) from None
    except _NPZ_READ_ERRORS as err:
        raise DataError(f"{_lead(spec)}cannot read {path} as .npz ({err})", what="data",
                        hint=_npz_hint(required)) from None
    return out


def _names(values, spec: str, key: str = "classes") -> list:
    """An npz's ``classes`` array as a list of names: 1-D, at most :data:`MAX_CLASSES`."""
    if values.ndim != 1:
        raise DataError(f"{_lead(spec)}{key} must be a 1-D array of class names, got shape "
                        f"{values.shape}", what="data",
                        hint="save classes=np.array(['cat', 'dog', ...])")
    if len(values) > MAX_CLASSES:
        raise DataError(f"{_lead(spec)}{len(values):,} class names, over the limit of "
                        f"{MAX_CLASSES:,} classes", what="data",
                        hint="see docs/hardening.md for the data limits")
    if values.dtype.kind not in "USiub":
        raise DataError(f"{_lead(spec)}{key} must hold names (strings) or numbers, got dtype "
                        f"{values.dtype}", what="data")
    return [str(c) for c in values.tolist()]


def parse_image_size(value):
    """``"64"``, ``"64x48"``, ``64`` or ``(64, 48)`` -> ``(height, width)``; ``None`` stays."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConfigError(f"cannot read image size {value!r}", what="image_size")
    if isinstance(value, (int, np.integer)):
        h = w = int(value)
    elif isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigError(f"image size needs 2 numbers, got {value!r}", what="image_size")
        try:
            h, w = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"image size needs 2 whole numbers, got {value!r}",
                              what="image_size") from None
    else:
        match = re.fullmatch(r"\s*(\d{1,20})\s*(?:[x,]\s*(\d{1,20}))?\s*", str(value))
        if not match:
            raise ConfigError(f"cannot read image size {str(value)[:40]!r}", what="image_size",
                              hint="write HEIGHT or HEIGHTxWIDTH, e.g. 64 or 96x128")
        h = int(match.group(1))
        w = int(match.group(2) or h)
    if h < 1 or w < 1:
        raise ConfigError(f"image size must be positive, got {value!r}", what="image_size")
    if max(h, w) > MAX_IMAGE_SIDE:
        raise ConfigError(f"image size {h}x{w} is over the limit of {MAX_IMAGE_SIDE} pixels on "
                          f"a side", what="image_size",
                          hint="see docs/hardening.md for the data limits")
    return (h, w)


def load_data(spec: str, *, data_dir=None, image_size=None, split="train") -> ArrayData:
    """Load ``spec`` (``scheme:ARG``, a bare scheme such as ``digits``, or a path).

    A bare path is read by its kind: a folder as ``images:``, an ``.npz`` with ``jpeg``/``offsets``
    as ``cifar10:``, any other ``.npz`` as ``npz:``.
    """
    if not spec or not str(spec).strip():
        raise DataError("no data source given", what="data",
                        hint="e.g. data=digits, data=npz:train.npz, data=images:photos/")
    spec = str(spec).strip()
    scheme, sep, argument = spec.partition(":")
    if scheme not in _SOURCES:
        guessed = _guess_scheme(spec)
        if guessed is None:
            raise DataError(
                f"unknown data source {spec!r}", what="data",
                hint="use one of " + ", ".join(c.usage() for c in _SOURCES.values())
                + ", or a path to a folder or .npz file")
        scheme, argument = guessed, spec
    cls = _SOURCES[scheme]
    if not cls.needs_argument and argument and not cls.optional_argument:
        raise DataError(f"data source '{scheme}' takes no argument, got {spec!r}", what="data",
                        hint=f"write it as {cls.usage()}")
    source = cls(argument or None, data_dir=data_dir, image_size=parse_image_size(image_size),
                 split=split)
    data = source.load()
    data.name = data.name or source.spec
    _validate(data, source.spec)
    size = parse_image_size(image_size)
    if size is not None and data.x.shape[1:3] != size:
        data.x = resize_images(data.x, size)
        if data.per_pixel:
            data.y = resize_masks(data.y, size)
    return data


def resize_masks(y: np.ndarray, size) -> np.ndarray:
    """Nearest-neighbour resize of masks ``(N, H, W)`` to ``size``: class indices stay class
    indices (a bilinear resize would invent classes between two)."""
    size = parse_image_size(size)
    h, w = y.shape[1:3]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return y[:, rows[:, None], cols[None, :]]


def resize_images(x: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of uint8 images ``(N, H, W, C)`` to ``size = (height, width)``."""
    size = parse_image_size(size)
    _check_bytes(x.shape[0], size[0], size[1], x.shape[-1] if x.ndim == 4 else 1,
                 "the data", "resizing", what="image_size",
                 hint="use a smaller image_size=, or build the model for the data's own size")
    if x.dtype != np.uint8:
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return np.stack([_resize(image, size) for image in x])


def _guess_scheme(spec: str):
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return "images"
    if path.suffix == ".npz" and path.is_file():
        try:  # the zip directory only: nothing is inflated
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return "npz"  # an unreadable file gets its own error from npz:
        return "cifar10" if {"jpeg.npy", "offsets.npy"} <= names else "npz"
    if path.suffix == ".npz":
        return "npz"
    return None


def _lead(spec: str) -> str:
    return f"{spec}: " if spec else ""


def _as_images(x: np.ndarray, spec: str, what: str = "data") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{_lead(spec)}images must have shape (N, H, W) or (N, H, W, C), got "
                        f"{x.shape}", what=what)
    if x.shape[-1] not in (1, 2, 3, 4) and x.shape[1] in (1, 3):
        raise DataError(f"{_lead(spec)}images look channels-first {x.shape}; kblocks wants "
                        f"(N, H, W, C)", what=what,
                        hint="transpose with x.transpose(0, 2, 3, 1) first")
    return x


def _is_mask(y) -> bool:
    """Labels ``(N, H, W)`` or ``(N, H, W, 1)``: a class per pixel (segmentation masks)."""
    shape = np.shape(y)
    return len(shape) == 3 or (len(shape) == 4 and shape[-1] == 1)


def _as_labels(y: np.ndarray, n: int, spec: str, what: str = "data", size=None) -> np.ndarray:
    """Class indices: ``(N,)`` per image, or ``(N, H, W)`` per pixel when ``size = (H, W)``
    (the images' size) is given and ``y`` has that shape."""
    y = np.asarray(y)
    if size is not None and _is_mask(y):
        y = y[..., 0] if y.ndim == 4 else y
        if tuple(y.shape[1:]) != tuple(size):
            raise DataError(f"{_lead(spec)}masks are {y.shape[1]}x{y.shape[2]} but the images "
                            f"{size[0]}x{size[1]}; a mask gives a class to every pixel",
                            what=what, hint="give masks of the images' own size")
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 3):
        raise DataError(f"{_lead(spec)}labels must have shape (N,) of class indices (or "
                        f"(N, H, W) masks), got {y.shape}", what=what,
                        hint="for one-hot labels give y.argmax(axis=1) instead")
    if y.shape[0] != n:
        raise DataError(f"{_lead(spec)}{n} images but {y.shape[0]} labels", what=what)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{_lead(spec)}labels must be whole numbers (class indices)",
                            what=what)
    elif y.dtype.kind not in "iub":
        raise DataError(f"{_lead(spec)}labels must be integers, got dtype {y.dtype}", what=what)
    if y.size:  # the range before any cast: 2**63 as uint64 must not wrap to a negative int64
        low, high = y.min(), y.max()
        if low < 0:
            raise DataError(f"{_lead(spec)}labels must be >= 0, found {int(low)}", what=what)
        if high >= MAX_CLASSES:
            raise DataError(f"{_lead(spec)}label {int(high):,} would make {int(high) + 1:,} "
                            f"classes, over the limit of {MAX_CLASSES:,}", what=what,
                            hint="labels are class indices 0..classes-1; renumber them densely "
                                 "(np.unique(y, return_inverse=True))")
    return y.astype(np.int64)


def _validate(data: ArrayData, spec: str, what: str = "data", labels_what: str | None = None):
    """The checks every data set goes through; errors name ``what`` (the images' argument) and
    ``labels_what`` (the labels', default the same)."""
    labels_what = labels_what or what
    data.x = _as_images(data.x, spec, what)  # first: a 0-d x has no length
    if len(data) == 0:
        raise DataError(f"{_lead(spec)}the data set is empty", what=what)
    data.y = _as_labels(data.y, len(data.x), spec, labels_what, size=data.x.shape[1:3])
    if data.y.min() < 0:
        raise DataError(f"{_lead(spec)}labels must be >= 0, found {int(data.y.min())}",
                        what=labels_what)
    if not data.classes:
        data.classes = [str(i) for i in range(int(data.y.max()) + 1)]
    if data.y.max() >= data.num_classes:
        raise DataError(
            f"{_lead(spec)}label {int(data.y.max())} is out of range for {data.num_classes} "
            f"classes (labels must be 0..{data.num_classes - 1})", what=labels_what,
            hint="fix the labels or the list of class names")
    if data.x.dtype != np.uint8:
        if data.x.dtype.kind not in "iuf":
            raise DataError(f"{_lead(spec)}images must be numeric, got dtype {data.x.dtype}",
                            what=what)
        if data.x.dtype.kind == "f" and not np.all(np.isfinite(data.x)):
            raise DataError(f"{_lead(spec)}images contain NaN or infinite values", what=what)


# -- sources ----------------------------------------------------------------------------------


@register_source("digits")
class Digits(DataSource):
    """digits - scikit-learn's 1,797 8x8 handwritten digits (offline), as uint8 0..255."""

    needs_argument = False

    def load(self) -> ArrayData:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
        return ArrayData(x, bunch.target, [str(c) for c in bunch.target_names], "digits")


@register_source("npz")
class Npz(DataSource):
    """npz:PATH - a NumPy .npz with x (N,H,W[,C]) and y (N,) class indices; optional classes."""

    def load(self) -> ArrayData:
        path = self.path()
        z = self.read_npz(path, ("x", "y"), ("classes",))
        classes = _names(z["classes"], self.spec) if "classes" in z else []
        return ArrayData(z["x"], z["y"], classes, f"npz:{path.name}")


def _cache_dir() -> Path:
    root = os.environ.get("KBLOCKS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kblocks")
    return Path(root)


@register_source("cifar10")
class Cifar10(DataSource):
    """cifar10:PATH - the shared CIFAR-10 container (.npz of JPEG bytes: jpeg, offsets, labels)."""

    def load(self) -> ArrayData:
        path = self.path()

        def missing(absent, found):
            return DataError(f"{self.spec}: not a JPEG container, missing {', '.join(absent)}",
                             what="data", hint="for plain arrays use npz:PATH")

        z = self.read_npz(path, ("jpeg", "offsets", "labels"), ("classes",), missing=missing)
        labels = z["labels"]
        classes = _names(z["classes"], self.spec) if "classes" in z else []
        _check_offsets(z["offsets"], z["jpeg"], self.spec)
        if labels.ndim != 1 or len(labels) != len(z["offsets"]) - 1:
            raise DataError(f"{self.spec}: {len(z['offsets']) - 1} images (offsets) but labels "
                            f"of shape {labels.shape}", what="data",
                            hint="labels must be a 1-D array, one class index per image")
        x = self._cached(path)
        if x is None or len(x) != len(labels):
            x = decode_jpeg_container(z["jpeg"], z["offsets"], name=str(path))
            self._store(path, x)
        return ArrayData(x, labels, classes, f"cifar10:{path.name}")

    # Decoding 50,000 JPEGs takes ~15 s on two cores; keep the decoded array in a cache folder
    # (KBLOCKS_CACHE, else ~/.cache/kblocks), keyed by the file's path, size and mtime.
    @staticmethod
    def _key(path: Path) -> Path:
        st = path.stat()
        digest = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        return _cache_dir() / f"cifar10-{digest[:16]}.npy"

    def _cached(self, path):
        if os.environ.get("KBLOCKS_NO_CACHE"):
            return None
        key = self._key(path)
        try:
            if key.is_symlink():  # a planted link: decode again rather than read through it
                return None
            return np.load(key, allow_pickle=False)
        except Exception:  # noqa: BLE001 - absent or damaged cache: decode again
            return None

    def _store(self, path, x):
        if os.environ.get("KBLOCKS_NO_CACHE"):
            return
        from kblocks.common.atomic import atomic_path

        key = self._key(path)
        try:
            # A fresh O_EXCL name in the cache folder: a link planted there (under a guessable
            # name, for the next process ids) is never followed, and never renamed into the cache.
            with atomic_path(key, prefix=f".{key.name}.", suffix=".tmp", durable=False) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, x)
        except OSError:
            pass  # a read-only home is no reason to fail


def _check_offsets(offsets: np.ndarray, jpeg: np.ndarray, spec: str):
    """The JPEG container's ``offsets``: 1-D integers from 0, never decreasing, inside ``jpeg``."""
    if jpeg.ndim != 1 or jpeg.dtype != np.uint8:
        raise DataError(f"{_lead(spec)}jpeg must be a 1-D uint8 array of JPEG bytes, got "
                        f"{jpeg.dtype} of shape {jpeg.shape}", what="data",
                        hint=_npz_hint(("jpeg",)))
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or len(offsets) < 2:
        raise DataError(f"{_lead(spec)}offsets must be a 1-D integer array of at least 2 "
                        f"entries (image i is jpeg[offsets[i]:offsets[i+1]]), got "
                        f"{offsets.dtype} of shape {offsets.shape}", what="data",
                        hint=_npz_hint(("jpeg",)))
    if int(offsets[0]) < 0 or int(offsets[-1]) > len(jpeg):
        raise DataError(f"{_lead(spec)}offsets run from {int(offsets[0])} to {int(offsets[-1])}, "
                        f"outside the {len(jpeg):,} bytes of jpeg", what="data",
                        hint=_npz_hint(("jpeg",)))
    steps = np.diff(offsets.astype(np.int64))
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise DataError(f"{_lead(spec)}offsets must increase: image {i} would be "
                        f"jpeg[{int(offsets[i])}:{int(offsets[i + 1])}]", what="data",
                        hint=_npz_hint(("jpeg",)))


_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError,
                  zlib.error)


def _open_image(source, where: str):
    """``PIL.Image.open`` of ``source`` (a path or bytes) with its size checked against
    :data:`MAX_SOURCE_PIXELS` before any pixel is decoded; errors name ``where``."""
    from PIL import Image, UnidentifiedImageError

    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as err:
        raise DataError(f"{where} is a decompression bomb ({err})", what="data",
                        hint=f"images of at most {MAX_SOURCE_PIXELS:,} pixels are read; shrink "
                             "or remove it") from None
    except UnidentifiedImageError:
        raise DataError(f"{where} is not an image Pillow can read", what="data",
                        hint="remove the file, or convert it to PNG or JPEG") from None
    except _DECODE_ERRORS as err:
        raise DataError(f"{where} cannot be opened as an image ({type(err).__name__}: {err})",
                        what="data", hint="remove or replace the file") from None
    width, height = image.size
    if width * height > MAX_SOURCE_PIXELS:
        image.close()
        raise DataError(f"{where} is {width:,}x{height:,} pixels, over the limit of "
                        f"{MAX_SOURCE_PIXELS:,} pixels for one image (a decompression bomb is "
                        f"refused before decoding)", what="data",
                        hint="shrink the image first, or remove it")
    return image


def _decode_rgb(image, where: str) -> np.ndarray:
    """The pixels of an opened image as ``(H, W, 3)`` uint8 (the first frame of an animation);
    a truncated or corrupt file is a DataError naming ``where``."""
    try:
        with image:
            return np.asarray(image.convert("RGB"))
    except MemoryError:
        raise
    except _DECODE_ERRORS as err:
        raise DataError(f"{where} cannot be decoded ({type(err).__name__}: {err}); it is "
                        f"truncated or damaged", what="data",
                        hint="remove or replace the file") from None


def decode_jpeg_container(jpeg: np.ndarray, offsets: np.ndarray, indices=None, *,
                          name: str = "the JPEG container") -> np.ndarray:
    """Decode ``jpeg[offsets[i]:offsets[i+1]]`` for every i (or for ``indices``) into
    ``(N, H, W, 3)`` uint8.

    Raises:
        DataError: naming ``name`` and the image's index: offsets outside ``jpeg``, bytes that are
            not an image, a truncated image, one over :data:`MAX_SOURCE_PIXELS` pixels or
            :data:`MAX_IMAGE_SIDE` on a side, images of different sizes, or all of them over
            :data:`MAX_DATA_BYTES`.
    """
    if indices is None:
        indices = range(len(offsets) - 1)
    indices = [int(i) for i in indices]
    if not indices:
        raise DataError(f"{name} holds no images", what="data")
    if min(indices) < 0 or max(indices) + 1 >= len(offsets):
        raise DataError(f"{name}: image index out of range 0..{len(offsets) - 2}", what="data")
    lo, hi = int(offsets[0]), int(offsets[-1])
    if lo < 0 or hi > len(jpeg) or np.any(np.diff(np.asarray(offsets, np.int64)) < 0):
        raise DataError(f"{name}: offsets must increase and stay inside the {len(jpeg):,} bytes "
                        f"of jpeg", what="data", hint=_npz_hint(("jpeg",)))

    def opened(i):
        where = f"{name}: image {i} (bytes {int(offsets[i]):,}..{int(offsets[i + 1]):,})"
        return _open_image(jpeg[offsets[i]:offsets[i + 1]].tobytes(), where), where

    first, where = opened(indices[0])
    width, height = first.size
    first.close()
    if max(width, height) > MAX_IMAGE_SIDE:
        raise DataError(f"{where} is {width:,}x{height:,}, over the {MAX_IMAGE_SIDE:,}-pixel "
                        f"limit on a side", what="data")
    _check_bytes(len(indices), height, width, 3, name, "decoding")

    def one(i):
        image, where = opened(i)
        pixels = _decode_rgb(image, where)
        if pixels.shape[:2] != (height, width):
            raise DataError(f"{where} is {pixels.shape[1]}x{pixels.shape[0]} but image "
                            f"{indices[0]} is {width}x{height}; the images must share one size",
                            what="data")
        return pixels

    with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 2) * 2)) as pool:
        return np.stack(list(pool.map(one, indices)))


def _check_bytes(n: int, height: int, width: int, channels: int, name: str, doing: str,
                 what: str = "data", hint: str | None = None):
    """Refuse ``n`` images of ``height x width x channels`` bytes over :data:`MAX_DATA_BYTES`."""
    need = int(n) * int(height) * int(width) * int(channels)
    if need > MAX_DATA_BYTES:
        raise DataError(f"{doing} {name} makes {n:,} images of {height}x{width}x{channels} = "
                        f"{files.size_words(need)}, over the {files.size_words(MAX_DATA_BYTES)} "
                        f"limit for data in memory", what=what,
                        hint=hint or "use fewer or smaller images (see docs/hardening.md)")


#: the image files an images: folder's class folders hold (as keras.utils.image_dataset_from_directory)
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


@register_source("images")
class Images(DataSource):
    """images:DIR - one sub-folder per class (keras.utils.image_dataset_from_directory)."""

    def load(self) -> ArrayData:
        path = self.path()
        if not path.is_dir():
            raise DataError(f"{self.spec}: not a folder", what="data",
                            hint="images:DIR wants a folder with one sub-folder per class")
        classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{self.spec}: no class sub-folders in {path}", what="data",
                            hint="put the images of each class in DIR/<class name>/")
        if len(classes) > MAX_CLASSES:
            raise DataError(f"{self.spec}: {len(classes):,} class folders, over the limit of "
                            f"{MAX_CLASSES:,} classes", what="data")
        found, labels = [], []
        for label, name in enumerate(classes):
            # the order keras.utils.image_dataset_from_directory reads them in
            for root, _, names in sorted(os.walk(path / name), key=lambda entry: entry[0]):
                for fname in sorted(names):
                    if fname.lower().endswith(IMAGE_SUFFIXES) and not fname.startswith("."):
                        found.append(Path(root) / fname)
                        labels.append(label)
        if not found:
            raise DataError(f"{self.spec}: no images found (jpeg, png, bmp or gif)", what="data")
        size = self.image_size or (256, 256)
        _check_bytes(len(found), size[0], size[1], 3, self.spec, "reading", what="data",
                     hint="use a smaller image_size=")
        for file in found:  # FIFOs, devices, folders named x.png: refused before any decoding
            files.check_file(file, what="image file", limit=MAX_DATA_BYTES)
        # Every image is decoded (and a bad one named) before training starts; decoding runs in
        # threads (Pillow releases the GIL), each image resized as soon as it is decoded.
        with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
            x = np.stack(list(pool.map(lambda f: _read_image(f, size), found)))
        return ArrayData(x, np.asarray(labels, np.int64), classes, f"images:{path.name}")


def _read_image(path: Path, size) -> np.ndarray:
    """One image file as ``(H, W, 3)`` uint8 resized to ``size`` as Keras' directory reader does
    (bilinear, no antialiasing); errors name the file."""
    pixels = _decode_rgb(_open_image(path, f"image file {path}"), f"image file {path}")
    if pixels.shape[:2] == tuple(size):
        return pixels
    from keras import ops

    resized = ops.image.resize(pixels.astype("float32"), tuple(size), interpolation="bilinear",
                               antialias=False)
    return np.clip(np.round(ops.convert_to_numpy(resized)), 0, 255).astype(np.uint8)


# -- segmentation: a class per pixel -----------------------------------------------------------

#: the classes of ``shapes`` masks, by mask value
SHAPE_CLASSES = ("background", "circle", "square", "triangle")
#: ``shapes`` defaults: images, side in pixels, seed of the drawing
SHAPES_DEFAULTS = {"n": 512, "size": 32, "seed": 0}


def _shape_options(argument, spec: str) -> dict:
    """``n=400,size=32,seed=1`` (any of them, any order) -> ``{"n", "size", "seed"}``."""
    options = dict(SHAPES_DEFAULTS)
    for item in filter(None, (part.strip() for part in (argument or "").split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in options:
            raise DataError(f"{spec}: cannot read {item!r}", what="data",
                            hint="write shapes or shapes:n=512,size=32,seed=0 (any of them)")
        try:
            number = int(value.strip())
        except ValueError:
            raise DataError(f"{spec}: {key} must be a whole number, got {value.strip()!r}",
                            what="data") from None
        options[key] = number
    if options["n"] < 1 or not 8 <= options["size"] <= MAX_IMAGE_SIDE:
        raise DataError(f"{spec}: n must be at least 1 and size between 8 and {MAX_IMAGE_SIDE}",
                        what="data")
    _check_bytes(options["n"], options["size"], options["size"], 3 + 8, spec, "drawing")
    return options


def draw_shapes(n: int, size: int, seed: int = 0):
    """``n`` RGB images ``size x size`` of 1 to 3 circles, squares and triangles on noisy
    backgrounds, and their masks (:data:`SHAPE_CLASSES`: 0 background, 1 circle, 2 square,
    3 triangle; a later shape covers an earlier one). The same arguments give the same arrays.

    Each image has its own background and shape colours (uniform, at least 60 grey levels
    apart in some channel) and Gaussian noise of sigma 12, so colour alone never tells the class.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EA9]))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    x = np.empty((n, size, size, 3), np.uint8)
    y = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        background = rng.uniform(0, 255, 3)
        canvas = np.broadcast_to(background, (size, size, 3)).copy()
        mask = y[i]
        for _ in range(int(rng.integers(1, 3))):
            kind = int(rng.integers(1, 4))
            radius = rng.uniform(0.18, 0.32) * size
            cy, cx = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
            if kind == 1:
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
            elif kind == 2:
                inside = (np.abs(yy - cy) <= radius * 0.85) & (np.abs(xx - cx) <= radius * 0.85)
            else:  # apex up, base at the bottom: half-width grows from 0 to the radius
                top = cy - radius
                inside = (yy >= top) & (yy <= cy + radius) & (np.abs(xx - cx) <= (yy - top) / 2)
            colour = rng.uniform(0, 255, 3)
            while np.max(np.abs(colour - background)) < 60:
                colour = rng.uniform(0, 255, 3)
            canvas[inside] = colour
            mask[inside] = kind
        canvas += rng.normal(0.0, 12.0, canvas.shape)
        x[i] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return x, y


@register_source("shapes")
class Shapes(DataSource):
    """shapes[:n=512,size=32,seed=0] - drawn circles/squares/triangles and their per-pixel masks."""

    needs_argument = False
    optional_argument = True

    def load(self) -> ArrayData:
        options = _shape_options(self.argument, self.spec)
        x, y = draw_shapes(options["n"], options["size"], options["seed"])
        return ArrayData(x, y, list(SHAPE_CLASSES), self.spec)


#: the sub-folders of a masks: folder
MASK_FOLDERS = ("images", "masks")
#: PIL modes a mask file may have: one channel of class indices (P: a palette PNG's indices)
MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


@register_source("masks")
class Masks(DataSource):
    """masks:DIR - DIR/images/NAME.png|jpg and DIR/masks/NAME.png (a class index per pixel)."""

    def load(self) -> ArrayData:
        path = self.path()
        folders = [path / name for name in MASK_FOLDERS]
        if not path.is_dir() or not all(f.is_dir() for f in folders):
            raise DataError(f"{self.spec}: needs the folders {path}/images and {path}/masks",
                            what="data", hint="put image NAME.png in DIR/images/ and its mask "
                                              "(same NAME, .png) in DIR/masks/")
        images = _stems(folders[0], IMAGE_SUFFIXES)
        masks = _stems(folders[1], (".png",))
        if not images:
            raise DataError(f"{self.spec}: no images in {folders[0]}", what="data")
        lone = sorted(set(images) - set(masks))
        if lone:
            raise DataError(f"{self.spec}: image {images[lone[0]]} has no mask "
                            f"{folders[1] / (lone[0] + '.png')}"
                            + (f" ({len(lone)} images have none)" if len(lone) > 1 else ""),
                            what="data", hint="every image needs a PNG mask of the same name")
        extra = sorted(set(masks) - set(images))
        if extra:
            raise DataError(f"{self.spec}: mask {masks[extra[0]]} has no image of the same name "
                            f"in {folders[0]}", what="data",
                            hint="remove the mask or add its image")
        classes = self._classes(path)
        stems = sorted(images)
        for stem in stems:  # FIFOs, devices, folders named x.png: refused before any decoding
            files.check_file(images[stem], what="image file", limit=MAX_DATA_BYTES)
            files.check_file(masks[stem], what="mask file", limit=MAX_DATA_BYTES)
        size = self.image_size
        if size is not None:
            _check_bytes(len(stems), size[0], size[1], 3 + 8, self.spec, "reading",
                         hint="use a smaller image_size=")
        x, y = [], []
        for stem in stems:
            image = _decode_rgb(_open_image(images[stem], f"image file {images[stem]}"),
                                f"image file {images[stem]}")
            mask = _read_mask(masks[stem], image.shape[:2])
            if size is None:
                size = image.shape[:2]
                _check_bytes(len(stems), size[0], size[1], 3 + 8, self.spec, "reading")
            if image.shape[:2] != tuple(size):
                if self.image_size is None:
                    raise DataError(f"{self.spec}: image {images[stem]} is "
                                    f"{image.shape[1]}x{image.shape[0]} but the first is "
                                    f"{size[1]}x{size[0]}", what="data",
                                    hint="give --image-size HxW (image_size=) to resize them all")
                image = _resize(image, size)
                mask = resize_masks(mask[None], size)[0]
            x.append(image)
            y.append(mask)
        y = np.stack(y)
        if classes and int(y.max()) >= len(classes):
            where = stems[int(np.argmax(y.reshape(len(y), -1).max(1) >= len(classes)))]
            raise DataError(f"{self.spec}: mask {masks[where]} has value {int(y.max())} but "
                            f"classes.txt names {len(classes)} classes (0..{len(classes) - 1})",
                            what="data", hint="fix the mask or add the class to classes.txt")
        return ArrayData(np.stack(x), y, classes, f"masks:{path.name}")

    def _classes(self, path: Path) -> list:
        """The names in DIR/classes.txt (one per line, mask value 0 first), or none."""
        listing = path / "classes.txt"
        if not listing.exists():
            return []
        text = files.read_text(listing, what="class list", limit=1 << 20)
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if not names or len(names) > MAX_CLASSES or len(set(names)) != len(names):
            raise DataError(f"{self.spec}: {listing} must name each class once, one per line "
                            f"(at most {MAX_CLASSES:,})", what="data")
        return names


def _stems(folder: Path, suffixes) -> dict:
    """``{file stem: path}`` of the files in ``folder`` ending in ``suffixes``; a stem twice
    (cat.png and cat.jpg) is an error, since its mask would be ambiguous."""
    out = {}
    for file in sorted(folder.iterdir()):
        if file.name.startswith(".") or not file.name.lower().endswith(suffixes):
            continue
        if file.stem in out:
            raise DataError(f"{out[file.stem]} and {file} have the same name; a mask belongs to "
                            f"one image", what="data", hint="rename or remove one of them")
        out[file.stem] = file
    return out


def _read_mask(path: Path, size) -> np.ndarray:
    """A mask PNG as ``(H, W)`` class indices; it must be one channel of ``size`` = the image's
    ``(H, W)``."""
    where = f"mask file {path}"
    image = _open_image(path, where)
    if image.mode not in MASK_MODES:
        mode = image.mode
        image.close()
        raise DataError(f"{where} is a {mode} image; a mask is one channel of class indices",
                        what="data", hint="save it as a greyscale (L) or palette (P) PNG whose "
                                          "values are 0..classes-1")
    try:
        with image:
            mask = np.asarray(image).astype(np.int64)
    except _DECODE_ERRORS as err:
        raise DataError(f"{where} cannot be decoded ({type(err).__name__}: {err})",
                        what="data", hint="remove or replace the file") from None
    if mask.shape != tuple(size):
        raise DataError(f"{where} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                        f"{size[1]}x{size[0]}", what="data",
                        hint="a mask gives a class to every pixel of its image: same size")
    if mask.size and int(mask.max()) >= MAX_CLASSES:
        raise DataError(f"{where} has value {int(mask.max()):,}, over the limit of "
                        f"{MAX_CLASSES:,} classes", what="data")
    return mask


@register_source("tfds")
class Tfds(DataSource):
    """tfds:NAME - a TensorFlow Datasets set already prepared in --data-dir (never downloads)."""

    def load(self) -> ArrayData:
        try:
            import tensorflow_datasets as tfds
        except ImportError:
            raise DataError("tfds: tensorflow-datasets is not installed", what="data",
                            hint="pip install 'kblocks[tf]' (or tensorflow-datasets)") from None
        name = self.argument
        split = self.split or "train"
        if "/" not in name and "[" in name:  # tfds:mnist[:10%] style split
            name, split = name.split("[", 1)[0], "train[" + name.split("[", 1)[1]
        try:
            ds, info = tfds.load(name, split=split, data_dir=self.data_dir, as_supervised=True,
                                 with_info=True, download=False)
        except Exception as err:  # noqa: BLE001 - tfds raises many kinds for "not there"
            raise DataError(
                f"tfds:{name}: cannot load split {split!r} from "
                f"{self.data_dir or 'the default TFDS folder'} ({type(err).__name__}: {err})",
                what="data",
                hint="prepare it first (tfds build NAME --data_dir DIR on a machine with network) "
                     "and pass data_dir=DIR") from None
        try:
            classes = list(info.features["label"].names)
        except Exception:  # noqa: BLE001 - no label feature or no names
            classes = []
        xs, ys = [], []
        size = self.image_size
        for image, label in tfds.as_numpy(ds):
            image = np.asarray(image)
            if size is not None and image.shape[:2] != size:
                image = _resize(image, size)
            xs.append(image)
            ys.append(label)
        if not xs:
            raise DataError(f"tfds:{name}: split {split!r} is empty", what="data")
        shapes = {a.shape for a in xs}
        if len(shapes) > 1:
            raise DataError(f"tfds:{name}: images have different sizes {sorted(shapes)[:3]}...",
                            what="data", hint="pass image_size=HxW to resize them")
        return ArrayData(np.stack(xs), np.asarray(ys), classes, f"tfds:{name}")


def _resize(image: np.ndarray, size) -> np.ndarray:
    from PIL import Image

    squeeze = image.ndim == 3 and image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    out = np.asarray(pil.resize((size[1], size[0]), Image.BILINEAR))
    return out[..., None] if squeeze else out


# -- splitting --------------------------------------------------------------------------------


def _per_class_counts(counts: np.ndarray, total: int) -> np.ndarray:
    """Allocate ``total`` over classes in proportion to ``counts`` (largest remainder, stable)."""
    n = counts.sum()
    exact = counts * (total / n)
    take = np.floor(exact).astype(np.int64)
    remainder = total - take.sum()
    order = np.lexsort((np.arange(len(counts)), -(exact - take)))  # biggest remainder first
    for c in order[:remainder]:
        take[c] += 1
    return np.minimum(take, counts)


def _resolve_count(value, n: int, what: str) -> int:
    """A count (``5000``, ``"5000"``) or a fraction in [0, 1) (``0.1``, ``"0.1"``) -> a count."""
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"expected a count or a fraction, got {text!r}", what=what,
                                  hint="e.g. 5000 or 0.1") from None
    if isinstance(value, float):
        if 0 <= value < 1:
            return int(round(value * n))
        if not value.is_integer():
            raise ConfigError(f"a fraction must be between 0 and 1, got {value}", what=what)
    count = int(value)
    if count < 0:
        raise ConfigError(f"must be >= 0, got {count}", what=what)
    return count


def split_data(data: ArrayData, val=0.1, *, seed: int = 0):
    """Stratified, seeded split into ``(train, val)``.

    ``val`` is a count (``5000``) or a fraction (``0.1``). Each class gives the same share (largest
    remainder rounding makes the total exact); which images go where depends only on ``seed`` and
    the labels, so the same seed always gives the same split. Both parts keep the original order.
    """
    n = len(data)
    count = _resolve_count(val, n, "val_split")
    if count == 0:
        return data, None
    if count >= n:
        raise ConfigError(f"validation split of {count} leaves no training data ({n} samples)",
                          what="val_split", hint="use a smaller count or a fraction like 0.1")
    strata = image_strata(data)
    counts = np.bincount(strata, minlength=data.num_classes)
    take = _per_class_counts(counts, count)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B1D]))
    val_index = []
    for c in range(data.num_classes):
        members = np.flatnonzero(strata == c)
        if take[c]:
            val_index.append(rng.permutation(members)[:take[c]])
    val_index = np.sort(np.concatenate(val_index)) if val_index else np.zeros(0, np.int64)
    mask = np.ones(n, bool)
    mask[val_index] = False
    train_index = np.flatnonzero(mask)
    return data.subset(train_index, data.name), data.subset(val_index, data.name + " (val)")


def image_strata(data: ArrayData) -> np.ndarray:
    """The class each image is stratified by: its label, or for per-pixel labels the class
    other than 0 (the background) that covers most of its pixels (0 if none does), so every
    kind of object is in both parts of a split."""
    if not data.per_pixel:
        return data.y
    n, classes = len(data), max(data.num_classes, 1)
    flat = data.y.reshape(n, -1)
    counts = np.zeros((n, classes), np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), flat.shape[1]), flat.ravel()), 1)
    counts[:, 0] = 0
    return np.where(counts.max(1) > 0, counts.argmax(1), 0)


def stratified_subset(data: ArrayData, size, *, seed: int = 0) -> ArrayData:
    """A stratified, seeded subset of ``size`` samples (a count or a fraction), original order."""
    count = _resolve_count(size, len(data), "subset")
    if count <= 0 or count >= len(data):
        return data
    _, keep = split_data(data, count, seed=int(seed) + 7919)
    keep.name = data.name
    return keep


def check_fits(input_shape, num_outputs, data: ArrayData, *, what="model", output_shape=None):
    """Raise DataError if ``data`` does not fit a model with ``input_shape`` and ``num_outputs``.

    With ``output_shape`` (the model's, without the batch axis) a per-pixel model ``(H, W, C)``
    needs per-pixel labels of its ``H x W`` and a per-image model per-image labels; one output
    channel is a binary (sigmoid) mask of classes 0 and 1.
    """
    shape = tuple(input_shape)
    if len(shape) != len(data.input_shape) or any(
            a is not None and a != b for a, b in zip(shape, data.input_shape)):
        raise DataError(
            f"the {what} takes inputs of shape {tuple(shape)} but {data.name} has images of shape "
            f"{data.input_shape}", what="data",
            hint="resize the data (image_size=HxW for images:/tfds:) or build the model for "
                 "this shape")
    if output_shape is not None and _check_pixels_fit(tuple(output_shape), data, what):
        return
    if num_outputs is not None and num_outputs != data.num_classes:
        largest = int(data.y.max()) if len(data.y) else -1
        beyond = (f" (its largest label, {largest}, is past the {what}'s last output, "
                  f"{num_outputs - 1})" if largest >= num_outputs else "")
        raise DataError(
            f"the {what} has {num_outputs} outputs but {data.name} has {data.num_classes} "
            f"classes{beyond}",
            what="data",
            hint=f"end the architecture with FC (no units: the data's class count is used) or "
                 f"FC({data.num_classes}); a transfer= run replaces the head itself")
    if data.y.max() >= (num_outputs or data.num_classes):
        raise DataError(f"label {int(data.y.max())} is out of range for {num_outputs} outputs",
                        what="data")


def _check_pixels_fit(output_shape, data, what: str) -> bool:
    """:func:`check_fits` for segmentation: True when ``data`` and the per-pixel model fit (and
    nothing more is to check), False for a per-image model with per-image labels."""
    pixels, per_pixel = len(output_shape) == 3, bool(getattr(data, "per_pixel", False))
    if not pixels and not per_pixel:
        return False
    name = getattr(data, "name", "the data")
    if pixels and not per_pixel:
        raise DataError(f"the {what} gives a class per pixel {output_shape} but {name} has one "
                        f"label per image", what="data",
                        hint="give segmentation data (shapes, masks:DIR, or y of shape "
                             "(N, H, W)), or end the architecture with GAP - FC for classes")
    if not pixels:
        raise DataError(f"{name} has a class per pixel (masks) but the {what} gives one output "
                        f"per image {output_shape}", what="data",
                        hint="train a per-pixel network (e.g. unet_small, ending in "
                             "CONV(classes, 1)) on masks")
    if tuple(output_shape[:2]) != tuple(data.y.shape[1:3]):
        raise DataError(f"the {what} predicts {output_shape[0]}x{output_shape[1]} masks but "
                        f"{name} has {data.y.shape[1]}x{data.y.shape[2]} masks", what="data",
                        hint="use padding=same so the output is the input's size (unet_small), "
                             "or masks of the output's size")
    channels, largest = int(output_shape[2]), int(data.y.max())
    limit = 2 if channels == 1 else channels
    if largest >= limit:
        said = ("one output channel is a binary mask (classes 0 and 1)" if channels == 1
                else f"its last output is class {channels - 1}")
        raise DataError(f"{name} has mask value {largest} but the {what} has {channels} output "
                        f"channel(s): {said}", what="data",
                        hint=f"end the architecture with CONV(classes, 1) (classes="
                             f"{data.num_classes})")
    if channels > 1 and channels != data.num_classes:
        raise DataError(f"the {what} has {channels} output channels but {name} has "
                        f"{data.num_classes} classes", what="data",
                        hint=f"end the architecture with CONV(classes, 1) or "
                             f"CONV({data.num_classes}, 1)")
    return True


# -- data given in Python: arrays and tf.data ---------------------------------------------------
#
# ``train(..., x=, y=, validation_data=)`` turns the arrays into an ArrayData through the checks
# every source goes through (_validate), so from there on they are data like any other: subset,
# seeded split, normalisation statistics, feed. ``train(..., dataset=, validation_dataset=)``
# keeps the user's tf.data pipeline (its shuffling, batching and maps) and reads it once before
# training (scan_dataset) for what the trainer needs to know up front.


def class_names(classes, what: str = "classes"):
    """``classes=`` as a list of names: a count (names ``"0"``, ``"1"``, ...), a list of names,
    or None (inferred from the labels)."""
    if classes is None:
        return None
    if isinstance(classes, bool):
        raise ConfigError(f"classes= is a count or a list of names, got {classes!r}", what=what)
    if isinstance(classes, (int, np.integer)):
        if int(classes) < 1:
            raise ConfigError(f"classes= must be at least 1, got {classes}", what=what)
        if int(classes) > MAX_CLASSES:
            raise ConfigError(f"classes={classes} is over the limit of {MAX_CLASSES:,} classes",
                              what=what)
        return [str(i) for i in range(int(classes))]
    if isinstance(classes, (list, tuple)) and classes:
        if len(classes) > MAX_CLASSES:
            raise ConfigError(f"classes= names {len(classes):,} classes, over the limit of "
                              f"{MAX_CLASSES:,}", what=what)
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise ConfigError("classes= names a class twice", what=what)
        return names
    raise ConfigError(f"classes= is a count or a list of names, got {type(classes).__name__}",
                      what=what)


def from_arrays(x, y, *, classes=None, what=("x", "y"), name="arrays") -> ArrayData:
    """Images ``x`` ``(N, H, W[, C])`` and labels ``y`` ``(N,)`` given in Python as an
    :class:`ArrayData`, through the checks of every data source.

    Args:
        x: images: ``uint8`` pixels 0..255 (as the sources give them) or any numeric dtype.
        y: class indices ``0..classes-1`` (whole numbers; ``(N, 1)`` is accepted).
        classes: a count or a list of names; None: ``max(y) + 1``.
        what: the Python arguments the images and labels came from, for messages.
        name: the data's name in the run record.

    Raises:
        DataError: naming ``what``: a missing array, wrong shapes or dtypes, labels out of range.
    """
    if x is None or y is None:
        missing = what[0] if x is None else what[1]
        raise DataError("images and labels go together", what=missing,
                        hint=f"give both {what[0]}= and {what[1]}=")
    if hasattr(x, "element_spec"):
        raise DataError("a tf.data.Dataset goes in dataset=, not in arrays", what=what[0],
                        hint="train(..., dataset=ds, validation_dataset=val_ds)")
    try:
        x, y = np.asarray(x), np.asarray(y)
    except Exception as err:  # noqa: BLE001 - e.g. a ragged list
        raise DataError(f"cannot read as arrays ({err})", what=what[0]) from None
    data = ArrayData(x, y, class_names(classes) or [], name)
    _validate(data, "", what[0], what[1])
    return data


@dataclass
class StreamData:
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches and what one pass over it found."""

    dataset: object             # batched tf.data.Dataset
    input_shape: tuple
    classes: list
    samples: int
    batches: int
    label_max: int
    dtype: str
    mean: object = None         # per-channel, float64 (images as given)
    variance: object = None
    name: str = "tf.data"

    def __len__(self):
        return int(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def y(self):  # what check_fits reads: the largest label
        return np.asarray([self.label_max])

    def describe(self) -> dict:
        return {"name": self.name, "samples": self.samples, "batches": self.batches,
                "input_shape": list(self.input_shape), "dtype": self.dtype,
                "classes": self.num_classes, "class_names": self.classes[:50]}


def scan_dataset(dataset, *, batch_size: int, classes=None, what="dataset",
                 stats=True) -> StreamData:
    """Check a ``tf.data.Dataset`` of ``(image, label)`` elements or batches and read it once.

    The pass counts images and batches (the learning-rate schedule needs the steps of an
    epoch), checks every batch as loaded data is checked (numeric, finite images; whole-number
    labels from 0), finds the largest label (the class count unless ``classes=`` is given) and,
    with ``stats``, the per-channel mean and variance the ``standardize`` input layer uses.

    Args:
        dataset: elements ``(H, W, C)`` images with scalar labels (batched here by
            ``batch_size``), or batches ``(B, H, W, C)`` with ``(B,)`` labels (kept as they are).
        batch_size: the batch of an unbatched dataset.
        classes: a count or a list of names; None: the largest label + 1.
        what: the Python argument, for messages.
        stats: compute the normalisation statistics.

    Raises:
        DataError: naming ``what``: not a dataset, elements that are not ``(image, label)``,
            unknown image shape, a dataset that repeats forever, bad images or labels.
    """
    dataset, shape, dtype = _dataset_spec(dataset, batch_size, what)
    scan = _scan_batches(dataset, shape[-1], stats, what)
    names = _dataset_classes(scan, classes, what)
    mean = variance = None
    if stats:
        count = scan.samples * shape[0] * shape[1]
        mean = scan.total / count
        variance = np.maximum(scan.total_sq / count - mean ** 2, 0.0)
    return StreamData(dataset, tuple(int(d) for d in shape), names, scan.samples, scan.batches,
                      scan.high, dtype, mean, variance, what)


def _dataset_spec(dataset, batch_size: int, what: str):
    """:func:`scan_dataset`'s checks of the element spec, before any element is read: the
    dataset batched (if it was not) with its image shape and dtype name."""
    try:
        import tensorflow as tf
    except ImportError:
        raise DataError("a tf.data dataset needs TensorFlow installed", what=what) from None
    if not isinstance(dataset, tf.data.Dataset):
        raise DataError(f"takes a tf.data.Dataset of (image, label) pairs, got "
                        f"{type(dataset).__name__}", what=what,
                        hint="for NumPy arrays use x= and y=")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise DataError(f"elements must be (image, label) pairs, got {spec}", what=what,
                        hint="ds.map(lambda e: (e['image'], e['label']))")
    image, label = spec
    rank = image.shape.rank
    if rank not in (3, 4):
        raise DataError(f"images must be (H, W, C) elements or (B, H, W, C) batches, got shape "
                        f"{image.shape}", what=what,
                        hint="add a channel axis: ds.map(lambda x, y: (x[..., None], y))")
    batched = rank == 4
    shape = tuple(image.shape[-3:])
    if any(d is None for d in shape):
        raise DataError(f"images have an unknown size {shape}; the model needs a fixed one",
                        what=what, hint="resize in the pipeline: ds.map(lambda x, y: "
                                        "(tf.image.resize(x, (H, W)), y))")
    label_rank, most = label.shape.rank, (2 if batched else 1)
    if label_rank is not None and (label_rank > most or (label_rank == most
                                                         and label.shape[-1] not in (1, None))):
        raise DataError(f"labels must be class indices, got shape {label.shape}", what=what,
                        hint="for one-hot labels map y to tf.argmax(y, -1)")
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DataError("the dataset repeats forever; an epoch needs an end", what=what,
                        hint="drop .repeat() (every epoch reads the dataset once)")
    return (dataset if batched else dataset.batch(int(batch_size))), shape, str(image.dtype.name)


@dataclass
class _Scan:
    """What one pass over a dataset found (:func:`_scan_batches`)."""

    total: np.ndarray
    total_sq: np.ndarray
    samples: int = 0
    batches: int = 0
    low: int | None = None
    high: int | None = None


def _scan_batches(dataset, channels: int, stats: bool, what: str) -> _Scan:
    """One pass over the batches: each checked as loaded data is; counts, label range, sums."""
    scan = _Scan(np.zeros(channels), np.zeros(channels))
    for xb, yb in dataset.as_numpy_iterator():
        xb, yb = np.asarray(xb), np.asarray(yb).reshape(-1)
        if xb.dtype.kind not in "iuf":
            raise DataError(f"images must be numeric, got dtype {xb.dtype}", what=what)
        if xb.dtype.kind == "f" and not np.all(np.isfinite(xb)):
            raise DataError(f"images of batch {scan.batches + 1} contain NaN or infinite values",
                            what=what)
        if yb.shape[0] != xb.shape[0]:
            raise DataError(f"batch {scan.batches + 1} has {xb.shape[0]} images but {yb.shape[0]} "
                            f"labels", what=what)
        if yb.dtype.kind not in "iufb" or (yb.dtype.kind == "f" and not np.all(yb == np.round(yb))):
            raise DataError("labels must be whole numbers (class indices)", what=what)
        if stats:
            flat = xb.reshape(-1, channels).astype(np.float64)
            scan.total += flat.sum(0)
            scan.total_sq += (flat ** 2).sum(0)
        scan.samples += int(xb.shape[0])
        scan.batches += 1
        if yb.size:
            scan.low = int(yb.min()) if scan.low is None else min(scan.low, int(yb.min()))
            scan.high = int(yb.max()) if scan.high is None else max(scan.high, int(yb.max()))
    if scan.samples == 0:
        raise DataError("the dataset is empty", what=what)
    return scan


def _dataset_classes(scan: _Scan, classes, what: str) -> list:
    """The class names of a scanned dataset: ``classes`` or 0..largest label; labels checked."""
    low, high = scan.low, scan.high
    if low < 0:
        raise DataError(f"labels must be >= 0, found {low}", what=what)
    if high >= MAX_CLASSES:
        raise DataError(f"label {high:,} would make {high + 1:,} classes, over the limit of "
                        f"{MAX_CLASSES:,}", what=what)
    names = class_names(classes) or [str(i) for i in range(high + 1)]
    if high >= len(names):
        raise DataError(f"label {high} is out of range for {len(names)} classes (labels must be "
                        f"0..{len(names) - 1})", what=what,
                        hint="fix the labels, or give classes= (without it the class count is "
                             "the training dataset's largest label + 1)")
    return names

"""Loading and saving ``.keras`` files: safe loading and atomic saving (issue 8).

* :func:`load_model` loads with ``safe_mode=True`` after importing kblocks' own layer classes
  (``kblocks.lang.layers``, ``kblocks.training.augment``, ``kblocks.training.schedules``), so every model kblocks writes
  loads without running code from the file. A file holding a ``Lambda`` layer (Python code that
  Keras would run on loading) is refused with a :class:`UnsafeModelError` naming the file and the
  ``--unsafe`` flag, unless the caller passes ``unsafe=True``.
* :func:`save_model` writes under a temporary name in the target's folder, flushes it to the disk
  (``fsync``) and moves it over the target with ``os.replace``: a crash or a kill at any moment
  leaves either the previous file or the new one, complete, never a truncated file.
  :func:`save_weights` does the same for ``model.save_weights`` (``.weights.h5`` files: the search's
  per-trial checkpoints).

Before Keras opens a model file (issue 20) it must be a regular file (a FIFO or a link to a device is
refused, nothing blocks), a zip archive whose directory passes
:func:`kblocks.common.files.check_zip` (no encrypted member, only stored or deflated members, no
absolute or ``..`` names, declared sizes under :data:`MAX_MODEL_BYTES` and inflating at most
:data:`MAX_MODEL_INFLATE` times the file's size in all), and its ``config.json`` at most
:data:`MAX_CONFIG_BYTES` and :data:`MAX_CONFIG_DEPTH` deep, judged before it is parsed.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

from kblocks.common import files
from kblocks.common.atomic import atomic_path
from kblocks.common.errors import KBlocksError

CUSTOM_MODULES = ("kblocks.lang.layers", "kblocks.training.augment", "kblocks.training.schedules")
MAX_CONFIG_BYTES = 64 * 1024 * 1024  #: config.json inside a .keras file larger than this is refused
MAX_CONFIG_DEPTH = 100  #: nesting of [ and { in config.json (Keras' configs nest about 15 deep)
#: declared (inflated) size of all the members of a .keras file: 16 GiB, the float32 weights of
#: kblocks.lang.limits.MAX_PARAMS plus room for the config
MAX_MODEL_BYTES = 16 * 1024 ** 3 + MAX_CONFIG_BYTES
#: a .keras file may declare at most this many times its own size (Keras stores its members
#: uncompressed, ratio 1); beyond 64 MiB in all, more is a zip bomb
MAX_MODEL_INFLATE = 20
MAX_WEIGHTS_BYTES = 16 * 1024 ** 3  #: a .weights.h5 file given by a user (16 GiB, as above)


class ModelFileError(KBlocksError):
    """A model file is missing, is not a Keras model, or cannot be loaded."""


class UnsafeModelError(ModelFileError):
    """A model file would run code from the file when loaded (a Lambda layer)."""


def register_custom_objects() -> None:
    """Import the modules whose classes kblocks' saved models refer to."""
    import importlib

    for name in CUSTOM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - every module ships with kblocks
            pass


def check_model_file(path, *, what: str = "model file") -> Path:
    """``path`` after the checks of the module docstring, before Keras opens it: a regular
    ``.keras`` file whose zip directory and ``config.json`` are within the limits. Raises
    :class:`ModelFileError` in words (nothing is inflated beyond ``config.json``)."""
    try:
        path = files.check_file(path, what=what, hint="give a .keras file")
        if path.suffix != ".keras":
            raise ModelFileError(f"{path}: a model file must end in .keras",
                                 hint="save models with kblocks or model.save('name.keras')")
        try:
            infos = files.check_zip(path, what=what, max_total=MAX_MODEL_BYTES)
        except files.UserFileError as err:
            rest = err.message.removeprefix(f"{what} {path}").lstrip(": ")
            raise ModelFileError(f"cannot load {path}: " + ("it " + rest if rest.startswith("is ")
                                                           else rest), hint=err.hint) from None
        declared = sum(i.file_size for i in infos)
        size = path.stat().st_size
        if declared > 64 * 1024 * 1024 and declared > MAX_MODEL_INFLATE * max(size, 1):
            raise ModelFileError(f"{what} {path} would inflate from {files.size_words(size)} to "
                                 f"{files.size_words(declared)} (over {MAX_MODEL_INFLATE} times; "
                                 f"Keras stores its members uncompressed): a zip bomb is refused",
                                 hint="save the model again with model.save() or kblocks")
    except ModelFileError:
        raise
    except files.UserFileError as err:
        raise ModelFileError(err.message, hint=err.hint) from None
    except OSError as err:
        raise ModelFileError(files.os_error(err, path, action="read", what=what).message) from None
    return path


def check_weights_file(path, *, what: str = "weights file") -> Path:
    """A ``.weights.h5`` (or ``.h5``) file given by a user: a regular file (never a FIFO, which
    would block h5py) of at most :data:`MAX_WEIGHTS_BYTES`. Raises :class:`ModelFileError`."""
    try:
        return files.check_file(path, what=what, limit=MAX_WEIGHTS_BYTES,
                                hint="give a .weights.h5 file saved by model.save_weights()")
    except files.UserFileError as err:
        raise ModelFileError(err.message, hint=err.hint) from None


def _read_config(path):
    """The parsed ``config.json`` of a ``.keras`` archive, or None when ``path`` is not one (Keras'
    own error then says so). A config over :data:`MAX_CONFIG_BYTES` raises :class:`ModelFileError`,
    judged by the size the zip directory declares, before anything is read; the read itself stops
    one byte past the limit (zipfile never returns more than the declared size)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            size = info.file_size
            if size <= MAX_CONFIG_BYTES:
                with archive.open(info) as f:
                    raw = f.read(MAX_CONFIG_BYTES + 1)
                size = max(size, len(raw))
    except (zipfile.BadZipFile, KeyError, OSError, RuntimeError, EOFError, zlib.error):
        return None  # a damaged member (zlib.error: fuzzed, bench/fuzz_files.py): Keras says so
    if size > MAX_CONFIG_BYTES:  # outside the try: a KBlocksError is a ValueError (issue 21)
        raise ModelFileError(f"{path}: its config.json is {size:,} bytes or more, over the "
                             f"{MAX_CONFIG_BYTES:,}-byte limit",
                             hint="a model's config is a few megabytes at most; the file is not "
                                  "a model kblocks or Keras wrote")
    depth = files.json_depth(raw)
    if depth > MAX_CONFIG_DEPTH:  # json.loads (and Keras after it) would recurse that deep
        raise ModelFileError(f"{path}: its config.json nests {depth:,} levels deep, over the "
                             f"limit of {MAX_CONFIG_DEPTH}",
                             hint="a model's config nests about 15 levels; the file is not a "
                                  "model kblocks or Keras wrote")
    try:
        return json.loads(raw)
    except ValueError:
        return None  # not JSON: Keras' own error says so


def lambda_layers(path) -> list:
    """Names of the ``Lambda`` layers in a ``.keras`` file's config (nested models included).

    Reads only ``config.json`` from the zip archive; nothing is deserialised. Raises
    :class:`ModelFileError` when that config is over the size limit."""
    config = _read_config(path)
    if config is None:
        return []
    found = []
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
                found.append(str(cfg.get("name", "?")))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _refusal(path, names) -> UnsafeModelError:
    listed = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5
                                                       else "")
    return UnsafeModelError(
        f"{path} contains a Lambda layer ({listed}): loading it would run Python code stored in "
        f"the file, so kblocks refuses it (Keras safe_mode)",
        hint="if you trust where the file comes from, pass --unsafe (load_model(path, "
             "unsafe=True)); models kblocks writes never need it")


def load_model(path, *, unsafe: bool = False, compile: bool = False):
    """``keras.saving.load_model(path, safe_mode=not unsafe)`` with kblocks' layers registered.

    Raises :class:`UnsafeModelError` for a file with a ``Lambda`` layer unless ``unsafe``, and
    :class:`ModelFileError` for a missing or unreadable file, or one over the limits of
    :func:`check_model_file` (checked before Keras opens it)."""
    import keras

    path = check_model_file(path)  # a regular .keras file whose zip directory is within limits
    register_custom_objects()
    names = lambda_layers(path)  # also enforces the config size limit, --unsafe or not
    if names and not unsafe:
        raise _refusal(path, names)
    try:
        return keras.saving.load_model(str(path), compile=compile, safe_mode=not unsafe)
    except KBlocksError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure to load is a problem with the file
        text = str(err)
        if "arbitrary code execution" in text or "safe_mode" in text:
            raise _refusal(path, ["code in the config"]) from None
        raise ModelFileError(f"cannot load {path}: {_brief(text)}",
                             hint="give a .keras file saved by kblocks or model.save()") from None


def _brief(text: str, limit: int = 300) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[:limit] + "..."


def save_model(model, path, *, kept=None) -> Path:
    """``model.save(path)`` atomically: temporary file in the same folder, fsync, ``os.replace``.

    The target is never truncated: until the final rename it holds its previous content (or does
    not exist), and afterwards the new, complete file. A failed write (a full disk) raises
    :func:`kblocks.common.files.write_error` naming ``path`` and ``kept`` (what earlier files
    still hold: a string or a callable, as :func:`kblocks.common.atomic.atomic_path`)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: a model file must end in .keras")
    return _write_atomically(path, ".keras", model.save, kept)  # Keras wants the .keras suffix


WEIGHTS_SUFFIX = ".weights.h5"  #: Keras' ``save_weights`` accepts no other ending


def save_weights(model, path, *, kept=None) -> Path:
    """``model.save_weights(path)`` atomically, as :func:`save_model` (``path`` ends in
    ``.weights.h5``, and so does the temporary file, as Keras requires)."""
    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX) or path.name == WEIGHTS_SUFFIX:
        raise ModelFileError(f"{path}: a weights file must end in {WEIGHTS_SUFFIX}")
    return _write_atomically(path, WEIGHTS_SUFFIX, model.save_weights, kept)


def _write_atomically(path: Path, ending: str, write, kept=None) -> Path:
    """``write(tmp)`` to a temporary ``.{stem}.*{ending}.tmp{ending}`` in ``path``'s folder
    (Keras wants the ending), then moved onto ``path`` (:func:`kblocks.common.atomic.atomic_path`)."""
    stem = path.name[:-len(ending)]
    with atomic_path(path, prefix=f".{stem}.", suffix=f"{ending}.tmp{ending}", kept=kept) as tmp:
        try:
            write(str(tmp))
        except OSError:
            raise
        except Exception as err:  # h5py, TensorFlow: a full disk in their words
            disk_full = files.worded_disk_full(err)
            if disk_full is None:
                raise
            raise disk_full from None
    return path

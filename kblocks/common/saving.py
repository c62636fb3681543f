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
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from kblocks.common.atomic import atomic_path
from kblocks.common.errors import KBlocksError

CUSTOM_MODULES = ("kblocks.lang.layers", "kblocks.training.augment", "kblocks.training.schedules")
MAX_CONFIG_BYTES = 64 * 1024 * 1024  #: config.json inside a .keras file larger than this is refused


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
    except (zipfile.BadZipFile, KeyError, OSError, RuntimeError, EOFError):
        return None
    if size > MAX_CONFIG_BYTES:  # outside the try: a KBlocksError is a ValueError (issue 21)
        raise ModelFileError(f"{path}: its config.json is {size:,} bytes or more, over the "
                             f"{MAX_CONFIG_BYTES:,}-byte limit",
                             hint="a model's config is a few megabytes at most; the file is not "
                                  "a model kblocks or Keras wrote")
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
    :class:`ModelFileError` for a missing or unreadable file."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist" if not path.exists() else
                             f"{path} is not a file", hint="give a .keras file")
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: a model file must end in .keras",
                             hint="save models with kblocks or model.save('name.keras')")
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


def save_model(model, path) -> Path:
    """``model.save(path)`` atomically: temporary file in the same folder, fsync, ``os.replace``.

    The target is never truncated: until the final rename it holds its previous content (or does
    not exist), and afterwards the new, complete file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: a model file must end in .keras")
    return _write_atomically(path, ".keras", model.save)  # Keras wants the .keras suffix


WEIGHTS_SUFFIX = ".weights.h5"  #: Keras' ``save_weights`` accepts no other ending


def save_weights(model, path) -> Path:
    """``model.save_weights(path)`` atomically, as :func:`save_model` (``path`` ends in
    ``.weights.h5``, and so does the temporary file, as Keras requires)."""
    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX) or path.name == WEIGHTS_SUFFIX:
        raise ModelFileError(f"{path}: a weights file must end in {WEIGHTS_SUFFIX}")
    return _write_atomically(path, WEIGHTS_SUFFIX, model.save_weights)


def _write_atomically(path: Path, ending: str, write) -> Path:
    """``write(tmp)`` to a temporary ``.{stem}.*{ending}.tmp{ending}`` in ``path``'s folder
    (Keras wants the ending), then moved onto ``path`` (:func:`kblocks.common.atomic.atomic_path`)."""
    stem = path.name[:-len(ending)]
    with atomic_path(path, prefix=f".{stem}.", suffix=f"{ending}.tmp{ending}") as tmp:
        write(str(tmp))
    return path

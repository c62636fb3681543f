"""Drop TensorFlow's start-up log lines that no environment variable silences.

TensorFlow 2.21 logs its oneDNN notice (``I0000 ... port.cc ... oneDNN custom operations are on``)
through absl *before* absl's logging is initialised, and such early lines ignore
``TF_CPP_MIN_LOG_LEVEL`` (abseil-cpp PR 1957, tensorflow PR 102212): every ``kblocks`` command
printed two of them, with absl's ``All log messages before absl::InitializeLog()`` warning. They are
written by C++ straight to file descriptor 2, so Python's ``warnings``/``logging`` cannot reach them.

:func:`quiet_tensorflow_import` puts a finder first on ``sys.meta_path``: the first
``import tensorflow`` (from wherever: Keras' backend, TFDS) runs with descriptor 2 pointed at a
temporary file, and afterwards every line of it that is not start-up noise (:data:`NOISE`) is
written back to stderr, so real errors and Python warnings raised during the import still show.
The hook removes itself after that one import. Standard library only; imported by the CLI
(unless ``--verbose``) and ``make demo``.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

#: a stderr line written while TensorFlow is imported is dropped when it matches this
NOISE = re.compile(r"All log messages before absl::InitializeLog|^[IW]\d{4} .*\] |oneDNN custom operations"
                   r"|cpu_feature_guard|TF_ENABLE_ONEDNN_OPTS")


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's ``exec_module`` with descriptor 2 captured and filtered."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader  # what importlib.resources and pkgutil look at
        with _filtered_fd2():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... from the real loader
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the first ``import tensorflow``, then leaves ``sys.meta_path``."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _filtered_fd2:
    """Descriptor 2 goes to a temporary file; on exit its non-noise lines go back to stderr."""

    def __enter__(self):
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no real descriptor 2 (embedded, pythonw)
            self._saved = None
            return self
        self._file = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        if self._saved is None:
            return False
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        kept = [line for line in text.splitlines(keepends=True) if not NOISE.search(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return False


def quiet_tensorflow_import() -> None:
    """Filter TensorFlow's unsilenceable start-up lines out of its first import in this process
    (nothing happens when it is imported already or never)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())

"""Errors that kblocks raises for mistakes in what a user wrote.

Every error names the place (source, line, column, the offending text) and what was expected,
so the command line can print it without a traceback (exit code 2).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Where a piece of architecture text came from (1-based line and column)."""

    line: int = 0
    column: int = 0
    end_column: int = 0
    source: str = ""  # file name, or "" for an inline text

    def describe(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.line:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column}")
        return ", ".join(where)


class KBlocksError(ValueError):
    """Base class of every error about user input (text, YAML, data, files, options).

    Subclasses ``ValueError`` so that code written against Keras' own validation style catches it.
    """

    def __init__(self, message: str, *, span: Span | None = None, text: str | None = None,
                 hint: str | None = None, what: str | None = None):
        self.message = message
        self.span = span
        self.text = text
        self.hint = hint
        self.what = what
        super().__init__(self.render())

    def render(self) -> str:
        head = self.message
        if self.span is not None and (self.span.line or self.span.column):
            prefix = f"{self.what} at " if self.what else ""
            head = f"{prefix}{self.span.describe()}: {self.message}"
        elif self.what:
            head = f"{self.what}: {self.message}"
        out = [head]
        context = self.context()
        if context:
            out.append(context)
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def context(self) -> str:
        """The offending line of text with a caret under the column, as lark prints it."""
        if not self.text or self.span is None or not self.span.line:
            return ""
        lines = self.text.split("\n")  # as the parser counts lines (splitlines also splits at \x0c, \u2028...)
        if self.span.line > len(lines):
            return ""
        line = lines[self.span.line - 1]
        col = max(self.span.column, 1)
        start = max(0, col - 60)
        snippet = line[start:start + 120]
        width = max(1, (self.span.end_column or col + 1) - col) if self.span.end_column else 1
        return "  " + snippet + "\n  " + " " * (col - 1 - start) + "^" * min(width, 40)


class ParseError(KBlocksError):
    """The text does not follow the grammar (unbalanced brackets, stray characters, ...)."""


class ArchitectureError(KBlocksError):
    """The text parses but does not describe a valid network (unknown layer, bad argument, shape)."""


class LimitError(ArchitectureError):
    """A documented size limit was exceeded before any Keras object was made."""


class ConfigError(KBlocksError):
    """A YAML file or option has a wrong key, type or value."""


class DataError(KBlocksError):
    """A data source is missing or does not fit the model."""


#: The packages Keras imports for its backends (``KERAS_BACKEND``); a missing one is no backend.
BACKEND_PACKAGES = ("tensorflow", "jax", "jaxlib", "torch", "openvino")

#: What to install, said by :class:`BackendError`.
BACKEND_HINT = ("install tensorflow (pip install kblocks) or set KERAS_BACKEND=jax with "
                "pip install 'kblocks[jax]'")


class BackendError(KBlocksError, ModuleNotFoundError):
    """No usable Keras backend: the package ``KERAS_BACKEND`` names (TensorFlow by default) is not
    installed. Also a ``ModuleNotFoundError``, which is what Keras itself raises."""


def backend_error(err: BaseException) -> BackendError | None:
    """The :class:`BackendError` for an error raised by ``import keras``, or None when ``err`` is
    not about a missing backend (an ``ImportError`` of a backend package, or Keras' ``Unable to
    import backend`` for an unknown ``KERAS_BACKEND``)."""
    if isinstance(err, BackendError):
        return err
    if isinstance(err, ImportError):
        missing = (getattr(err, "name", None) or "").split(".")[0]
        if missing not in BACKEND_PACKAGES:
            return None
        return BackendError(f"no Keras backend: the package {missing!r} is not installed; "
                            f"{BACKEND_HINT}")
    if isinstance(err, ValueError) and "Unable to import backend" in str(err):
        return BackendError(f"no Keras backend: {err}; {BACKEND_HINT}")
    return None

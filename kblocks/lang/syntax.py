"""The syntax tree of the architecture language: immutable dataclasses that keep their source span.

Only :mod:`kblocks.lang.parser` builds these from text; every later stage (expansion, formatting) reads
them. Values inside argument lists are plain Python values (``int``, ``float``, ``bool``, ``str`` for
quoted strings, ``tuple`` for lists) or one of the marker types below for what needs resolving later.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from kblocks.common.errors import Span


@dataclass(frozen=True)
class Word:
    """A bare word (``same``, ``he_normal``, ``classes``, ``N``): a variable if bound, else a string."""

    name: str
    span: Span = field(default_factory=Span, compare=False)


@dataclass(frozen=True)
class Param:
    """``$name`` inside a block body: the block's parameter."""

    name: str
    span: Span = field(default_factory=Span, compare=False)


@dataclass(frozen=True)
class Placeholder:
    """``{name: ...}``: a hyperparameter of a search space (DSL section 6).

    ``kind`` is ``"choice"`` (``values``) or ``"range"`` (``low``, ``high``, ``step``, ``log``).
    """

    name: str
    kind: str
    values: tuple = ()
    low: Any = None
    high: Any = None
    step: Any = None
    log: bool = False
    span: Span = field(default_factory=Span, compare=False)

    @property
    def default(self):
        return self.values[0] if self.kind == "choice" else self.low


Value = Union[int, float, bool, str, tuple, Word, Param, Placeholder]


@dataclass(frozen=True)
class Args:
    positional: tuple = ()
    keyword: tuple = ()  # ((name, value, span), ...) in written order


@dataclass(frozen=True)
class Layer:
    """``NAME(args)``: one layer token (or ``SKIP``)."""

    name: str
    args: Args
    span: Span = field(compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class BlockCall:
    """``@name(args)``: a named block to expand (DSL section 5)."""

    name: str
    args: Args
    span: Span = field(compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Seq:
    """Items joined by ``-`` / ``->``; also what ``[ ... ]`` groups."""

    items: tuple
    span: Span = field(default_factory=Span, compare=False)


@dataclass(frozen=True)
class Branches:
    """``(A | B)``, ``(A + B)``, ``(A & B)``: parallel branches fed the same input, then merged."""

    op: str  # "|", "+", "&"
    branches: tuple  # of Seq
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Tagged:
    """``AUX[ ... ]``: an extra model output tapped from the current tensor."""

    tag: str
    body: Seq
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Repeat:
    """``X*N``: N copies of X in sequence; N is an int, a variable, ``$param`` or a placeholder."""

    item: Any
    count: Any
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Optional:
    """``X?`` or ``X?{name}``: present in a fixed build, a boolean in a search."""

    item: Any
    name: str | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class OpChoice:
    """``{op: A | B | SKIP}`` where an item stands: an operation choice (DSL section 6b).

    ``alternatives`` are the written items (a :class:`Seq` each); ``texts`` their canonical texts
    as written (:func:`format_node`, before ``$param`` and ``#`` are substituted), which are the
    values of the Keras Tuner ``Choice``.
    """

    name: str
    alternatives: tuple  # of Seq
    texts: tuple  # of str, one per alternative
    span: Span = field(compare=False)


Node = Union[Layer, BlockCall, Seq, Branches, Tagged, Repeat, Optional, OpChoice]


# --- canonical text of a syntax tree (the values of an operation choice) --------------------------
def format_value(value) -> str:
    """A written value as canonical text: ``$f``, ``{f: 16 | 32}``, ``same``, ``[3, 5]``, ``1e-4``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Word):
        return value.name
    if isinstance(value, Param):
        return f"${value.name}"
    if isinstance(value, Placeholder):
        return format_placeholder(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        quote = "'" if '"' in value else '"'
        return quote + value + quote
    return repr(value) if isinstance(value, float) else str(value)


def format_placeholder(ph: Placeholder) -> str:
    if ph.kind == "choice":
        return "{" + ph.name + ": " + " | ".join(format_value(v) for v in ph.values) + "}"
    text = f"{format_value(ph.low)}..{format_value(ph.high)}"
    if ph.step is not None:
        text += f" step {format_value(ph.step)}"
    return "{" + ph.name + ": " + text + (" log" if ph.log else "") + "}"


def _format_args(args: Args) -> str:
    parts = [format_value(v) for v in args.positional]
    parts += [f"{k}={format_value(v)}" for k, v, _ in args.keyword]
    return f"({', '.join(parts)})" if parts else ""


def format_node(node) -> str:
    """Canonical text of a written item: one spacing (``CONV(16, 3) - RELU``), layer names in
    capitals, everything else (``$param``, ``#``, placeholders, blocks) kept as written."""
    if isinstance(node, Layer):
        return node.name.upper() + _format_args(node.args)
    if isinstance(node, BlockCall):
        return f"@{node.name}" + _format_args(node.args)
    if isinstance(node, Seq):
        return " - ".join(_format_inner(item) for item in node.items)
    if isinstance(node, Branches):
        return "(" + f" {node.op} ".join(format_node(b) for b in node.branches) + ")"
    if isinstance(node, Tagged):
        return f"{node.tag}[{format_node(node.body)}]"
    if isinstance(node, Repeat):
        count = node.count
        return _format_inner(node.item, wrap=True) + "*" + (
            format_value(count) if not isinstance(count, int) else str(count))
    if isinstance(node, Optional):
        return _format_inner(node.item, wrap=True) + "?" + ("{" + node.name + "}" if node.name else "")
    if isinstance(node, OpChoice):
        return "{" + node.name + ": " + " | ".join(node.texts) + "}"
    raise TypeError(node)  # pragma: no cover


def _format_inner(node, wrap=False) -> str:
    """A group keeps its brackets: inside a sequence always, under ``*``/``?`` when it has more
    than one item."""
    if isinstance(node, Seq) and (len(node.items) != 1 or wrap):
        return "[" + format_node(node) + "]"
    return format_node(node)


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


Node = Union[Layer, BlockCall, Seq, Branches, Tagged, Repeat, Optional]

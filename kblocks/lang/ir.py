"""The expanded program: what remains of a text after repetitions, variables, blocks and
placeholders are resolved — a tree of concrete layers, branches and extra outputs.

:func:`format_text` prints it back as canonical architecture text; parsing and expanding that text
gives the same tree (the round trip tested in tests/test_roundtrip.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kblocks.common.errors import Span
from kblocks.lang.vocab import VOCAB


@dataclass(frozen=True)
class Op:
    """One concrete layer: canonical token, every DSL argument resolved, extra Keras keywords."""

    token: str
    params: tuple  # ((name, value), ...) in the token's argument order
    extra: tuple = ()  # ((keras keyword, value), ...) passed through to the Keras constructor
    span: Span = field(default_factory=Span, compare=False)
    text: str = field(default="", compare=False)
    scope: str = field(default="", compare=False)  # outermost named-block instance, e.g. "basic3"

    def get(self, name, default=None):
        for k, v in self.params:
            if k == name:
                return v
        return default

    def replace_param(self, name, value) -> "Op":
        return Op(self.token, tuple((k, value if k == name else v) for k, v in self.params),
                  self.extra, self.span, self.text, self.scope)


@dataclass(frozen=True)
class Merge:
    """Parallel branches (each a tuple of nodes; an empty tuple is SKIP) merged by ``op``."""

    op: str  # "|", "+", "&"
    branches: tuple
    skip_proj: tuple = ()  # per branch: for SKIP branches, whether a projection is allowed
    span: Span = field(default_factory=Span, compare=False)


@dataclass(frozen=True)
class Aux:
    """An extra model output computed from the current tensor."""

    body: tuple
    span: Span = field(default_factory=Span, compare=False)


@dataclass(frozen=True)
class As:
    """``AS(name)``: names the current tensor and passes it on (DSL section 4b). ``name`` is unique
    in the program: a name made inside a block call is spelled ``{name}_{block}{k}`` here."""

    name: str
    span: Span = field(default_factory=Span, compare=False)


@dataclass(frozen=True)
class From:
    """``FROM(name)``: the path continues from the named tensor (DSL section 4b)."""

    name: str
    span: Span = field(default_factory=Span, compare=False)
    defined: Span = field(default_factory=Span, compare=False)  # where its AS was written


@dataclass(frozen=True)
class Program:
    """A fully expanded network: its nodes and the input shape written with ``INPUT`` (if any)."""

    nodes: tuple
    input_shape: tuple | None = None


_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "inf" in text or "nan" in text) else text + ".0"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        if _BARE.match(value) and value.lower() not in ("true", "false"):
            return value
        quote = "'" if '"' in value else '"'  # 'a"b' reads back; "a"b" would not
        return quote + value + quote
    raise TypeError(f"cannot format {value!r}")


def format_op(op: Op) -> str:
    spec = VOCAB[op.token]
    params = dict(op.params)
    parts = []
    for i, arg in enumerate(spec.args):
        value = params.get(arg.name)
        default = spec.default(arg, params)
        leading = i == 0 and arg.type in ("int", "ints", "float")  # CONV(32), FC(10), POOL(2)
        if value is None and default is None:  # bare CROP, HIGHWAY without units
            continue
        if not leading and value == default and type(value) is type(default):
            continue
        if leading:
            parts.append(format_value(value))
        else:
            parts.append(f"{arg.name}={format_value(value)}")
    parts += [f"{k}={format_value(v)}" for k, v in op.extra]
    return op.token + (f"({', '.join(parts)})" if parts else "")


def _format_nodes(nodes) -> str:
    out = []
    for node in nodes:
        if isinstance(node, Op):
            out.append(format_op(node))
        elif isinstance(node, Merge):
            branches = []
            for body, proj in zip(node.branches, node.skip_proj or (True,) * len(node.branches)):
                branches.append(_format_nodes(body) if body else ("SKIP" if proj else "SKIP(proj=false)"))
            out.append("(" + f" {node.op} ".join(branches) + ")")
        elif isinstance(node, As):
            out.append(f"AS({node.name})")
        elif isinstance(node, From):
            out.append(f"FROM({node.name})")
        elif isinstance(node, Aux):  # an empty tap (AUX[CONV*0]) reads back from AUX[SKIP]
            out.append("AUX[" + (_format_nodes(node.body) or "SKIP") + "]")
        else:
            raise TypeError(node)
    return " - ".join(out)


def format_text(program: Program) -> str:
    """Canonical text of an expanded program: no repetitions, variables, blocks or placeholders."""
    body = _format_nodes(program.nodes)
    if program.input_shape:
        head = "INPUT(" + ", ".join(str(d) for d in program.input_shape) + ")"
        return head + (" - " + body if body else "")
    return body

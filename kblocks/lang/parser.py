"""Text to syntax tree: the lark grammar in ``grammar.lark`` and a transformer to :mod:`kblocks.lang.syntax`.

This is the only module that sees architecture text character by character. Every failure becomes a
:class:`~kblocks.common.errors.ParseError` with line, column, the offending text and what was expected.
"""
from __future__ import annotations

import functools
import math
import re
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from kblocks.lang import limits
from kblocks.lang import syntax as S
from kblocks.common.errors import KBlocksError, LimitError, ParseError, Span

_TERMINAL_WORDS = {
    "_SEP": "'-' or '->'", "RPAR": "')'", "LPAR": "'('", "RSQB": "']'", "LSQB": "'['",
    "NAME": "a layer name", "INT": "an integer", "FLOAT": "a number", "STRING": "a quoted string",
    "COMMA": "','", "STAR": "'*'", "QMARK": "'?'", "BRANCH_OP": "'|', '+' or '&'", "EQUAL": "'='",
    "AT": "'@'", "PARAM": "a $parameter", "LBRACE": "'{'", "RBRACE": "'}'", "HPNAME": "a name",
    "COLON": "':'", "HASHNAME": "a name with #", "VBAR": "'|'", "MINUS": "'-'", "__ANON_0": "'..'", "LOG": "'log'",
    "STEP": "'step'", "$END": "the end of the text",
}


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark.open(str(Path(__file__).with_name("grammar.lark")), parser="lalr",
                     propagate_positions=True, maybe_placeholders=False)


def _span(meta_or_token, source: str) -> Span:
    line = getattr(meta_or_token, "line", 0) or 0
    col = getattr(meta_or_token, "column", 0) or 0
    end_line = getattr(meta_or_token, "end_line", line) or line
    end_col = getattr(meta_or_token, "end_column", 0) or 0
    return Span(line, col, end_col if end_line == line else 0, source)


class _ToSyntax(Transformer):
    def __init__(self, text: str, source: str):
        super().__init__()
        self.text = text
        self.source = source
        self._line_starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self._line_starts.append(i + 1)

    def _slice(self, meta) -> str:
        if getattr(meta, "empty", True):
            return ""
        return self.text[meta.start_pos:meta.end_pos]

    # --- structure -------------------------------------------------------------------------
    def start(self, items):
        return items[0]

    @v_args(meta=True)
    def seq(self, meta, items):
        return S.Seq(tuple(items), _span(meta, self.source))

    @v_args(meta=True)
    def postfix(self, meta, items):
        node = items[0]
        for suffix in items[1:]:
            kind, payload, span = suffix
            if kind == "repeat":
                node = S.Repeat(node, payload, span)
            else:
                node = S.Optional(node, payload, span)
        return node

    @v_args(meta=True)
    def repeat(self, meta, items):
        return ("repeat", items[0], _span(meta, self.source))

    @v_args(meta=True)
    def optional(self, meta, items):
        return ("optional", items[0] if items else None, _span(meta, self.source))

    def optname(self, items):
        return str(items[0])

    def count_int(self, items):
        return self._number(items[0], int)

    def count_var(self, items):
        return S.Word(str(items[0]), _span(items[0], self.source))

    def count_param(self, items):
        return S.Param(str(items[0])[1:], _span(items[0], self.source))

    @v_args(meta=True)
    def layer(self, meta, items):
        name = items[0]
        args = items[1] if len(items) > 1 else S.Args()
        return S.Layer(str(name), args, _span(name, self.source), self._slice(meta))

    @v_args(meta=True)
    def block(self, meta, items):
        name = items[0]
        args = items[1] if len(items) > 1 else S.Args()
        return S.BlockCall(str(name), args, _span(meta, self.source), self._slice(meta))

    @v_args(meta=True)
    def tagged(self, meta, items):
        tag, body = items
        if str(tag).upper() != "AUX":
            raise ParseError(f"'{tag}[' is not allowed: only AUX[...] taps an extra output; "
                             f"put '-' between '{tag}' and '['", span=_span(tag, self.source),
                             text=self.text)
        return S.Tagged("AUX", body, _span(tag, self.source))

    def group(self, items):
        return items[0]

    @v_args(meta=True)
    def branches(self, meta, items):
        seqs = [it for it in items if isinstance(it, S.Seq)]
        ops = [it for it in items if isinstance(it, Token)]
        span = _span(meta, self.source)
        if not ops:  # "(A - B)" is a plain group
            return seqs[0]
        kinds = {str(op) for op in ops}
        if len(kinds) > 1:
            bad = next(op for op in ops if str(op) != str(ops[0]))
            raise ParseError(f"branches mix merge operators {' and '.join(sorted(kinds))}; one pair of "
                             f"parentheses merges one way: nest them, e.g. ((A | B) + C)",
                             span=_span(bad, self.source), text=self.text)
        return S.Branches(str(ops[0]), tuple(seqs), span)

    @v_args(meta=True)
    def opchoice(self, meta, items):
        name, rest = items[0], items[1:]
        alternatives = [it for it in rest if isinstance(it, S.Seq)]
        for op in (it for it in rest if isinstance(it, Token)):
            if str(op) != "|":
                raise ParseError(f"an operation choice separates its alternatives with '|', got "
                                 f"{str(op)!r}", span=_span(op, self.source), text=self.text,
                                 hint=f"write {{{name}: A | B}}; to merge branches, put them in "
                                      f"parentheses inside one alternative: {{{name}: (A {op} B) | C}}")
        texts = tuple(S.format_node(alt) for alt in alternatives)
        seen = {}
        for alt, text in zip(alternatives, texts):
            if text in seen:
                raise ParseError(f"the operation choice {{{name}: ...}} lists {text} twice",
                                 span=_item_start(alt, self.source), text=self.text,
                                 hint="write each alternative once")
            seen[text] = alt
        return S.OpChoice(str(name), tuple(alternatives), texts, _span(name, self.source))

    # --- arguments ---------------------------------------------------------------------------
    @v_args(meta=True)
    def args(self, meta, items):
        positional, keyword, seen = [], [], set()
        for it in items:
            if isinstance(it, tuple) and len(it) == 3 and it[0] == "__kw__":
                _, (name, tok), value = it
                if name in seen:
                    raise ParseError(f"argument '{name}' is given twice", span=_span(tok, self.source),
                                     text=self.text)
                seen.add(name)
                keyword.append((name, value, _span(tok, self.source)))
            else:
                if keyword:  # a number has no position of its own: point at the argument list
                    span = self._value_span(it)
                    raise ParseError("a positional argument follows a keyword argument",
                                     span=span if span.line else _span(meta, self.source),
                                     text=self.text)
                positional.append(it)
        return S.Args(tuple(positional), tuple(keyword))

    def _value_span(self, value):
        return getattr(value, "span", None) or Span()

    def kwarg(self, items):
        name, value = items
        return ("__kw__", (str(name), name), value)

    def _number(self, token, cast):
        """``int`` or ``float`` of a number token; a number too long for Python (over 4,300 digits)
        or too large for a float (1e999) is an error at its place, not an exception or ``inf``."""
        try:
            value = cast(str(token))
        except (ValueError, OverflowError):
            value = None
        if value is None or (cast is float and not math.isfinite(value)):
            shown = str(token) if len(token) <= 30 else f"{str(token)[:20]}... ({len(token):,} characters)"
            raise ParseError(f"the number {shown} is too large", span=_span(token, self.source),
                             text=self.text, hint="write a number of a sensible size")
        return value

    def int(self, items):
        return self._number(items[0], int)

    def float(self, items):
        return self._number(items[0], float)

    def neg_int(self, items):
        return -self._number(items[0], int)

    def neg_float(self, items):
        return -self._number(items[0], float)

    def word(self, items):
        name = str(items[0])
        low = name.lower()
        if low in ("true", "false"):
            return low == "true"
        return S.Word(name, _span(items[0], self.source))

    def string(self, items):
        return str(items[0])[1:-1]

    def param(self, items):
        return S.Param(str(items[0])[1:], _span(items[0], self.source))

    def list(self, items):
        return tuple(items)

    # --- placeholders -------------------------------------------------------------------------
    def placeholder(self, items):
        name, spec = items
        return S.Placeholder(name=str(name), span=_span(name, self.source), **spec)

    def choice(self, items):
        return {"kind": "choice", "values": tuple(items)}

    def step(self, items):
        return ("step", items[0])

    def range(self, items):
        low, high, *rest = items
        spec = {"kind": "range", "low": low, "high": high}
        for r in rest:
            if isinstance(r, tuple) and r[0] == "step":
                spec["step"] = r[1]
            elif str(r) == "log":
                spec["log"] = True
        return spec


def _item_start(seq, source: str) -> Span:
    first = seq.items[0] if isinstance(seq, S.Seq) and seq.items else seq
    span = getattr(first, "span", None)
    return span if span is not None and span.line else Span()


def _check_nesting(text: str, source: str) -> None:
    depth, line, col = 0, 1, 0
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        if ch in "([{":
            depth += 1
            if depth > limits.MAX_NESTING:
                raise LimitError(f"brackets nest deeper than {limits.MAX_NESTING} levels",
                                 span=Span(line, col, 0, source), text=text,
                                 hint="flatten the structure or use named blocks (@name)")
        elif ch in ")]}":
            depth -= 1


def _expected(exc: UnexpectedInput) -> str:
    names = sorted({_TERMINAL_WORDS.get(t, t) for t in (getattr(exc, "expected", None) or
                                                         getattr(exc, "allowed", None) or ())})
    return ", ".join(n for n in names if not n.startswith("__")) or "something else"


#: One word with a ``/`` or ``\\`` in it, or ending in ``.suffix``: a file name, not architecture
#: text (which has neither: ``runs/x/best.keras``, ``old.h5``, ``notes.txt``).
_PATH_LIKE = re.compile(r"[\w.~:/\\-]+")
_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]*$")


def looks_like_path(text) -> bool:
    """Whether ``text`` is one word that names a file rather than architecture text: it holds a
    ``/`` or ``\\``, or ends in a file suffix (``.h5``, ``.txt``)."""
    word = str(text).strip()
    return (bool(word) and len(word) <= 4096 and _PATH_LIKE.fullmatch(word) is not None
            and ("/" in word or "\\" in word or _SUFFIX.search(word) is not None))


def _path_error(text: str, source: str) -> ParseError | None:
    if source or not looks_like_path(text):
        return None
    return ParseError(f"{text.strip()!r} is not architecture text: it looks like a file name",
                      hint="an architecture is text like CONV(32)-RELU-POOL-FC(10), a YAML file "
                           "(.yaml) or a zoo name")


def parse(text: str, *, source: str = "") -> S.Seq:
    """Parse architecture text into a :class:`kblocks.lang.syntax.Seq`. Raises :class:`ParseError`."""
    if not isinstance(text, str):
        raise KBlocksError(f"architecture text must be a string, got {type(text).__name__}")
    if len(text) > limits.MAX_TEXT_CHARS:
        raise LimitError(f"the text is {len(text):,} characters long; the limit is "
                         f"{limits.MAX_TEXT_CHARS:,}", hint="use named blocks and repetition (*N)")
    if not text.strip():
        raise ParseError("the architecture text is empty", hint="write layers like CONV(32)-RELU-POOL")
    _check_nesting(text, source)
    try:
        tree = _lark().parse(text)
    except UnexpectedCharacters as exc:
        if _path_error(text, source):
            raise _path_error(text, source) from None
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        raise ParseError(f"unexpected character {ch!r}; expected {_expected(exc)}",
                         span=Span(exc.line, exc.column, exc.column + 1, source), text=text) from None
    except UnexpectedEOF as exc:
        raise ParseError(f"the text ends too early (an unclosed bracket?); expected {_expected(exc)}",
                         span=_eof_span(text, source), text=text) from None
    except UnexpectedToken as exc:
        tok = exc.token
        if tok.type == "$END":
            opened = _unclosed(text)
            if opened:
                close = {"(": ")", "[": "]", "{": "}"}[opened[0]]
                msg = (f"unbalanced brackets: {opened[0]!r} opened at column {opened[1]} is never "
                       f"closed; add {close!r}")
            else:
                msg = f"the text ends too early; expected {_expected(exc)}"
            raise ParseError(msg, span=_eof_span(text, source), text=text) from None
        in_choice = _in_choice(text, tok) if "AT" in (exc.expected or ()) else None
        if in_choice:
            raise ParseError(in_choice[0], span=Span(tok.line, tok.column, tok.end_column or 0, source),
                             text=text, hint=in_choice[1]) from None
        what = f"unexpected {tok!s}" if tok.type not in ("RPAR", "RSQB", "RBRACE") else \
            f"unbalanced {tok!s}: nothing open to close here"
        raise ParseError(f"{what}; expected {_expected(exc)}",
                         span=Span(tok.line, tok.column, tok.end_column or 0, source), text=text) from None
    except UnexpectedInput as exc:  # any other lark input error
        raise ParseError(f"cannot parse: {exc}", span=Span(getattr(exc, "line", 0),
                         getattr(exc, "column", 0), 0, source), text=text) from None
    try:
        return _ToSyntax(text, source).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, KBlocksError):
            raise exc.orig_exc from None
        raise


_ITEM_HINT = "an alternative is an item: a layer, a [group], (branches), an @block, SKIP or ZERO"


def _in_choice(text: str, tok):
    """``(message, hint)`` when ``tok`` is a mistake inside an operation choice ``{op: A | B}``: an
    empty alternative, or a value where an item stands; else None. Called only where the parser
    expected an item."""
    pos = getattr(tok, "start_pos", None)
    if pos is None:
        return None
    stack = []
    for i, ch in enumerate(text[:pos]):
        if ch in "([{":
            stack.append(i)
        elif ch in ")]}" and stack:
            stack.pop()
    if not stack or text[stack[-1]] != "{":
        return None
    before = text[stack[-1] + 1:pos].rstrip()
    head = re.match(r"\s*([A-Za-z_#][A-Za-z0-9_#]*)\s*:", before)
    if head is None:
        return None
    name = head.group(1)
    if before.endswith(("|", ":")) and str(tok) in ("|", "}"):
        return (f"an empty alternative in the operation choice {{{name}: ...}}",
                _ITEM_HINT + "; write SKIP for the identity")
    if before.endswith(":") and tok.type in ("INT", "FLOAT", "STRING", "MINUS"):
        return (f"{{{name}: ...}} stands where an item stands, so it is an operation choice and its "
                f"alternatives are items, not values",
                _ITEM_HINT + "; a value choice or range goes where an argument or a count stands, "
                             "e.g. CONV({f: 16 | 32}) or [CONV]*{n: 1..3}")
    return None


def _eof_span(text: str, source: str) -> Span:
    lines = text.split("\n")  # lines as lark counts them: splitlines() also breaks at \r, \x0c...
    return Span(len(lines), len(lines[-1]) + 1, 0, source)


def _unclosed(text: str):
    stack = []
    for i, ch in enumerate(text):
        if ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}" and stack:
            stack.pop()
    if not stack:
        return None
    ch, pos = stack[-1]
    line_start = text.rfind("\n", 0, pos) + 1
    return ch, pos - line_start + 1

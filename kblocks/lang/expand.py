"""Syntax tree to expanded program: repetitions unrolled, variables and ``$params`` bound, named
blocks inlined, placeholders resolved, arguments checked against the vocabulary.

Placeholders (``{name: ...}``) are resolved by a :class:`Resolver`: the default one takes each
default (first choice, lower bound, optional present); :mod:`kblocks.search` supplies one backed by
Keras Tuner hyperparameters.
"""
from __future__ import annotations

import difflib
from pathlib import Path
import functools
import inspect
import math
import re
from dataclasses import dataclass, field, replace

from kblocks.common.suggest import close_matches
from kblocks.lang import limits
from kblocks.lang import syntax as S
from kblocks.lang.blocks import REQUIRED, BlockLibrary, builtin_library
from kblocks.common.errors import ArchitectureError, LimitError, Span
from kblocks.lang.ir import As, Aux, From, Merge, Op, Program
from kblocks.lang.keras_keywords import refusal
from kblocks.lang.parser import parse
from kblocks.lang.vocab import VOCAB, LayerSpec, pytorch_hint


class Resolver:
    """Chooses values for placeholders. ``scope`` lists the enclosing repetitions as
    ``(count_name, index)`` pairs (count_name is None for fixed counts), outermost first;
    ``conds`` the enclosing operation-choice alternatives and optional items as ``(name, value)``
    pairs (``("op_1", "SKIP")``, ``("pool_opt_2", True)``), outermost first (DSL section 6b), passed
    to resolvers whose methods take it.

    A resolver whose ``explores`` is true (search-space discovery) also has every alternative of
    an operation choice expanded, so that the placeholders inside each are reached; only the
    chosen one's output is kept."""

    explores = False

    def value(self, name: str, ph: S.Placeholder, scope: tuple, conds: tuple = ()):
        return ph.default

    def flag(self, name: str, scope: tuple, conds: tuple = ()) -> bool:
        return True

    def choose(self, name: str, choice: S.OpChoice, scope: tuple, conds: tuple = ()) -> str:
        """The text of the chosen alternative (one of ``choice.texts``); the default is the first."""
        return choice.texts[0]


@dataclass(frozen=True)
class _Signature:
    """What a call's arguments are matched against: a layer token's arguments or a block's
    parameters (see :meth:`Expander._match`)."""

    owner: str  # "CONV" or "@basic", in messages
    names: tuple  # in positional order
    what: str  # the error's subject, as written
    noun: str  # "argument" or "parameter"
    takes: str  # "takes at most 7 positional argument(s)"
    lookup: object  # keyword -> its name in ``names``, or None when unknown


@dataclass
class _Ctx:
    variables: dict
    params: dict = field(default_factory=dict)  # $param values inside a block body
    reps: tuple = ()  # ((count_name | None, index 1-based), ...)
    block_stack: tuple = ()  # block names being expanded (recursion check)
    scope: str = ""  # outermost block instance name
    text: str = ""  # source text for error context
    source: str = ""
    depth: int = 0  # nesting, counted through named blocks (limits.MAX_NESTING)
    copies: int = 1  # product of the enclosing repetition counts (limits.MAX_REPEAT_PRODUCT)
    ns: int = 0  # namespace of tensor names (AS/FROM): 0 for the network, one per block call
    ns_label: str = ""  # how names of this namespace are spelled in the canonical text (cell2)
    param_ns: dict = field(default_factory=dict)  # $param -> namespace where its value was written
    conds: tuple = ()  # ((hyperparameter, value), ...): the alternatives and optional items around


class _Recording(dict):
    """The variables of an expansion, noting each one read (``read``): a variable given but never
    read is warned of (:mod:`kblocks.lang.lint`)."""

    def __init__(self, values):
        super().__init__(values)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key in self:
            self.read.add(key)
        return super().get(key, default)


class Expander:
    def __init__(self, *, variables=None, blocks: BlockLibrary | None = None, resolver=None,
                 defaults=None):
        self.variables = dict(variables or {})
        self.blocks = blocks or builtin_library()
        self.resolver = resolver or Resolver()
        self._conds = {m: "conds" in inspect.signature(getattr(self.resolver, m)).parameters
                       for m in ("value", "flag", "choose")}  # a resolver written before 6b
        self.defaults = {k.upper(): dict(v) for k, v in (defaults or {}).items()}
        self.layer_count = 0
        self.block_counts: dict = {}
        self.input_shape = None
        self.opt_names: dict = {}
        self.opt_bases: dict = {}  # base name -> how many optional items use it
        self.items = 0  # items expanded so far (limits.MAX_EXPANDED_ITEMS)
        self.names: dict = {}  # (namespace, name) -> (spelling, span of its AS, text, source)
        self.spellings: set = set()  # unique spellings of the program's tensor names
        self.pending: dict = {}  # (namespace, name) -> first FROM that read it before its AS
        self.namespaces = 0
        self.used: set = set()  # the variables the text read, once expanded

    # --- entry ---------------------------------------------------------------------------------
    def expand(self, tree: S.Seq, *, text: str = "", source: str = "") -> Program:
        ctx = _Ctx(_Recording(self.variables), text=text, source=source)
        self.used = ctx.variables.read  # the variables the text reads (kblocks warns of the others)
        nodes = self._seq(tree, ctx, top=True)
        self._check_pending(0)
        return Program(tuple(nodes), self.input_shape)

    def _error(self, msg, span, ctx, *, what=None, hint=None, cls=ArchitectureError):
        return cls(msg, span=span, text=ctx.text if (span and span.source == ctx.source) else None,
                   what=what, hint=hint)

    # --- structure -------------------------------------------------------------------------------
    def _seq(self, seq: S.Seq, ctx: _Ctx, top=False) -> list:
        out = []
        for i, item in enumerate(seq.items):
            if isinstance(item, S.Layer) and item.name.upper() == "INPUT":
                if not (top and i == 0 and not ctx.block_stack):
                    raise self._error("INPUT may only stand first in the network", item.span, ctx,
                                      what="INPUT")
                self.input_shape = self._input_shape(item, ctx)
                continue
            out.extend(self._item(item, ctx))
        return out

    def _step(self, span, ctx: _Ctx) -> None:
        """Count one expanded item: repetitions and named blocks that make nothing (SKIP, *0) can
        still multiply into billions of steps without ever reaching the layer limit."""
        self.items += 1
        if self.items > limits.MAX_EXPANDED_ITEMS:
            raise self._error(f"the network expands to more than {limits.MAX_EXPANDED_ITEMS:,} items "
                              f"(layers, groups, SKIPs and block calls)", span, ctx, cls=LimitError,
                              hint="reduce the repetition counts or the block calls; see 'Limits' in "
                                   "docs/language.md")

    def _deeper(self, item, ctx: _Ctx) -> _Ctx:
        """One level more of nesting: brackets, ``*N``, ``?`` and ``@block`` count alike, through
        named blocks, so that expansion (recursive, like every later stage) stays shallow."""
        if ctx.depth >= limits.MAX_NESTING:
            raise self._error(f"the network nests deeper than {limits.MAX_NESTING} levels (brackets, "
                              f"*N and ? suffixes and named blocks counted together)",
                              _item_span(item), ctx, cls=LimitError,
                              hint="flatten the structure: fewer nested groups, suffixes or blocks")
        return replace(ctx, depth=ctx.depth + 1)

    def _item(self, item, ctx: _Ctx) -> list:
        self._step(_item_span(item), ctx)
        if isinstance(item, S.Layer):
            return self._layer(item, ctx)
        ctx = self._deeper(item, ctx)
        if isinstance(item, S.Seq):
            return self._seq(item, ctx)
        if isinstance(item, S.Repeat):
            return self._repeat(item, ctx)
        if isinstance(item, S.Optional):
            name = item.name or self._auto_opt_name(item)
            name = self._hash_name(name, ctx)
            present = self._ask("flag", name, ctx)
            inner = replace(ctx, conds=ctx.conds + ((name, True),))
            return self._item(item.item, inner) if present else []
        if isinstance(item, S.OpChoice):
            return self._op_choice(item, ctx)
        if isinstance(item, S.Branches):
            return [self._branches(item, ctx)]
        if isinstance(item, S.Tagged):
            return [Aux(tuple(self._seq(item.body, ctx)), item.span)]
        if isinstance(item, S.BlockCall):
            return self._block(item, ctx)
        raise TypeError(item)  # pragma: no cover

    def _ask(self, method: str, name: str, ctx: _Ctx, node=None):
        """The resolver's answer for one placeholder, optional item or operation choice."""
        ask = getattr(self.resolver, method)
        args = (name, ctx.reps) if node is None else (name, node, ctx.reps)
        return ask(*args, conds=ctx.conds) if self._conds[method] else ask(*args)

    # --- operation choices (DSL section 6b) -------------------------------------------------------
    def _op_choice(self, item: S.OpChoice, ctx: _Ctx) -> list:
        """The chosen alternative, expanded with the condition ``name == its text`` around it."""
        name = self._hash_name(item.name, ctx)
        for alt in item.alternatives:  # stable automatic names whatever is chosen
            self._name_optionals(alt)
        chosen = self._ask("choose", name, ctx, item)
        if chosen not in item.texts:
            raise self._error(f"{chosen!r} is not an alternative of {{{item.name}: ...}}", item.span,
                              ctx, what=item.name, hint="its alternatives are " + " | ".join(item.texts))
        if self.resolver.explores:  # discovery: reach the placeholders of every alternative
            before = self._snapshot()
            for text, alt in zip(item.texts, item.alternatives):
                if text != chosen:
                    self._restore(before)
                    self._seq(alt, replace(ctx, conds=ctx.conds + ((name, text),)))
            self._restore(before)
        alt = item.alternatives[item.texts.index(chosen)]
        return self._seq(alt, replace(ctx, conds=ctx.conds + ((name, chosen),)))

    def _snapshot(self):
        """The expansion state an explored alternative may change (tensor names, counters)."""
        return (self.layer_count, dict(self.block_counts), self.input_shape, self.items,
                dict(self.names), set(self.spellings), dict(self.pending), self.namespaces)

    def _restore(self, snap) -> None:
        (self.layer_count, block_counts, self.input_shape, self.items, names, spellings, pending,
         self.namespaces) = snap
        self.block_counts, self.names = dict(block_counts), dict(names)
        self.spellings, self.pending = set(spellings), dict(pending)

    def _name_optionals(self, node) -> None:
        """Give the optional items written in ``node`` their automatic names in written order."""
        if isinstance(node, S.Optional):
            if node.name is None:
                self._auto_opt_name(node)
            self._name_optionals(node.item)
        elif isinstance(node, S.Seq):
            for child in node.items:
                self._name_optionals(child)
        elif isinstance(node, S.Repeat):
            self._name_optionals(node.item)
        elif isinstance(node, S.Branches):
            for child in node.branches:
                self._name_optionals(child)
        elif isinstance(node, S.Tagged):
            self._name_optionals(node.body)
        elif isinstance(node, S.OpChoice):
            for child in node.alternatives:
                self._name_optionals(child)

    def _auto_opt_name(self, item: S.Optional) -> str:
        """``POOL?`` is named ``pool_opt#``; a second optional POOL elsewhere ``pool_opt2#``."""
        key = (item.span.source, item.span.line, item.span.column)
        if key not in self.opt_names:
            inner = item.item
            while isinstance(inner, (S.Repeat, S.Optional)):
                inner = inner.item
            base = (getattr(inner, "name", None) or "group").lower() + "_opt"
            taken = self.opt_bases.get(base, 0)  # a count, not a scan: 30,000 'X?' stay linear
            self.opt_bases[base] = taken + 1
            self.opt_names[key] = base + (str(taken + 1) if taken else "") + "#"
        return self.opt_names[key]

    def _repeat(self, item: S.Repeat, ctx: _Ctx) -> list:
        count, count_name = self._count(item.count, ctx, item.span)
        copies = ctx.copies * count
        if copies > limits.MAX_REPEAT_PRODUCT:
            raise self._error(f"nested repetitions make {copies:,} copies of this item, more than the "
                              f"limit of {limits.MAX_REPEAT_PRODUCT:,}", item.span, ctx, what="'*'",
                              cls=LimitError, hint="reduce the repetition counts; see 'Limits' in "
                                                   "docs/language.md")
        out = []
        for i in range(count):
            inner = replace(ctx, reps=ctx.reps + ((count_name, i + 1),), copies=copies)
            out.extend(self._item(item.item, inner))
        return out

    def _count(self, count, ctx: _Ctx, span: Span):
        name = None
        value = count
        if isinstance(count, S.Placeholder):
            name = self._hash_name(count.name, ctx)
            value = self._ask("value", name, ctx, count)
        elif isinstance(count, (S.Word, S.Param)):
            value = self._lookup(count, ctx, role="repetition count")
            if isinstance(value, S.Placeholder):  # $n bound to a placeholder at the call site
                name, value = value.name, self._ask("value", value.name, ctx, value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(f"a repetition count must be a whole number, got {value!r}", span, ctx,
                              what="'*'")
        if value < 0:
            raise self._error(f"a repetition count cannot be negative ({value})", span, ctx, what="'*'")
        if value > limits.MAX_REPEAT:
            raise self._error(f"repetition count {value:,} is over the limit of {limits.MAX_REPEAT:,}",
                              span, ctx, what="'*'", cls=LimitError,
                              hint="see 'Limits' in docs/language.md")
        return value, name

    def _hash_name(self, name: str, ctx: _Ctx) -> str:
        if "#" not in name:
            return name
        idx = "".join(f"_{i}" for _, i in ctx.reps)
        return name.replace("#", idx)

    def _branches(self, item: S.Branches, ctx: _Ctx) -> Merge:
        bodies, proj = [], []
        for seq in item.branches:
            self._step(seq.span if seq.span.line else item.span, ctx)
            if (len(seq.items) == 1 and isinstance(seq.items[0], S.Layer)
                    and VOCAB.get(seq.items[0].name) is VOCAB["SKIP"]):
                op = self._bind(seq.items[0], VOCAB["SKIP"], ctx)
                bodies.append(())
                proj.append(bool(op.get("proj")))
            else:
                body = tuple(self._seq(seq, ctx))
                bodies.append(body)
                proj.append(True)
        return Merge(item.op, tuple(bodies), tuple(proj), item.span)

    # --- layers ----------------------------------------------------------------------------------
    def _layer(self, item: S.Layer, ctx: _Ctx) -> list:
        if item.name.upper() in ("AS", "FROM"):  # structure, not layers: no vocabulary entry
            return [self._named(item, item.name.upper(), ctx)]
        spec = VOCAB.get(item.name)
        if spec is None or not spec.user:
            known = VOCAB.suggest(item.name)
            hint = pytorch_hint(item.name) or (f"did you mean {' or '.join(known)}?" if known else
                                               "see the layer table in docs/language.md")
            if self.blocks.get(item.name) is not None:
                hint = f"{item.name} is a named block: write @{item.name}(...)"
            raise self._error(f"unknown layer {item.name!r}", item.span, ctx, what=item.name, hint=hint)
        if spec.token == "SKIP":
            self._bind(item, spec, ctx)  # validate its arguments; a lone SKIP is the identity
            return []
        self._count_layer(item.span, ctx)
        try:
            return [self._bind(item, spec, ctx)]
        except ArchitectureError as err:  # Linear(10): LINEAR is an activation here, FC in PyTorch
            hint = pytorch_hint(item.name, spec.token)
            if hint is None:
                raise
            raise type(err)(err.message, span=err.span, text=err.text, what=err.what,
                            hint=hint) from None

    # --- named tensors (DSL section 4b) -----------------------------------------------------------
    def _tensor_name(self, item: S.Layer, token: str, ctx: _Ctx):
        """``(namespace, name)`` of ``AS(name)`` / ``FROM(name)``: ``#`` replaced by the repetition
        indices, a ``$param`` read in the namespace where its value was written."""
        args = item.args
        if len(args.positional) != 1 or args.keyword:
            raise self._error(f"{token} takes one tensor name, e.g. {token}(e1)", item.span, ctx,
                              what=item.name)
        raw, ns = args.positional[0], ctx.ns
        if isinstance(raw, S.Param):
            ns = ctx.param_ns.get(raw.name, ctx.ns)
            raw = self._lookup(raw, ctx, role=f"tensor name of {token}")
            raw = raw.name if isinstance(raw, S.Word) else raw
        elif isinstance(raw, S.Word):
            raw = raw.name
        if not isinstance(raw, str) or not _NAME.match(raw.replace("#", "")):
            raise self._error(f"{token} needs a tensor name (an identifier such as e1), got "
                              f"{_short(raw)}", item.span, ctx, what=item.name)
        if "#" in raw:
            if not ctx.reps:
                raise self._error(f"'#' in the tensor name {raw!r} is replaced by the indices of the "
                                  f"enclosing repetitions, and {token}({raw}) is in none", item.span,
                                  ctx, what=item.name,
                                  hint=f"write the name out ({raw.replace('#', '_1')}) or put the item "
                                       f"under a repetition [...]*N")
            raw = self._hash_name(raw, ctx)
        return ns, raw

    def _named(self, item: S.Layer, token: str, ctx: _Ctx):
        key = self._tensor_name(item, token, ctx)
        name = key[1]
        if token == "AS":
            if key in self.names:
                _, first, _, _ = self.names[key]
                raise self._error(f"the tensor name {name!r} is defined twice: AS({name}) here and at "
                                  f"{_where(first)}", item.span, ctx, what=item.name,
                                  hint="give each tensor its own name; under a repetition write "
                                       "AS(name#) for one name per copy")
            spelling = name if key[0] == 0 else f"{name}_{ctx.ns_label}"
            base, k = spelling, 1
            while spelling in self.spellings:
                k += 1
                spelling = f"{base}_{k}"
            self.spellings.add(spelling)
            self.names[key] = (spelling, item.span, ctx.text, ctx.source)
            early = self.pending.pop(key, None)
            if early is not None:
                span, text, source = early
                raise ArchitectureError(
                    f"FROM({name}) reads the tensor {name!r} before it is defined: AS({name}) comes "
                    f"later, at {_where(item.span)}", span=span, text=text if span.source == source
                    else None, what="FROM",
                    hint=f"a name is visible after its AS: move AS({name}) before FROM({name})")
            return As(spelling, item.span)
        if key not in self.names:
            self.pending.setdefault(key, (item.span, ctx.text, ctx.source))
            return From("", item.span)
        spelling, defined, _, _ = self.names[key]
        return From(spelling, item.span, defined)

    def _check_pending(self, ns: int) -> None:
        """A FROM of a name that no AS of its namespace defined (checked when the namespace ends)."""
        for (space, name), (span, text, source) in list(self.pending.items()):
            if space != ns:
                continue
            known = sorted(n for s, n in self.names if s == ns)
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = (f"did you mean {' or '.join(close)}?" if close else
                    f"names defined here: {', '.join(known)}" if known else
                    "name a tensor first with AS(name)")
            elsewhere = [sp for (s2, n2), (sp, *_rest) in self.names.items() if n2 == name and s2 != ns]
            if ns:
                hint += (f"; a block reads its caller's names only through parameters: "
                         f"@block(x={name}) with FROM($x) in its body")
            elif elsewhere:
                hint = (f"{name!r} is named inside a block call ({elsewhere[0]}), and names made in a "
                        f"block are local to that call: pass the name in as a parameter, "
                        f"@block(out={name}) with AS($out) in its body")
            raise ArchitectureError(f"FROM({name}): no tensor is named {name!r}", span=span,
                                    text=text if span.source == source else None, what="FROM",
                                    hint=hint)

    def _count_layer(self, span, ctx):
        self.layer_count += 1
        if self.layer_count > limits.MAX_LAYERS:
            raise self._error(f"the network expands to more than {limits.MAX_LAYERS:,} layers", span,
                              ctx, cls=LimitError, hint="reduce the repetition counts; see 'Limits' "
                              "in docs/language.md")

    def _match(self, args: S.Args, sig: _Signature, span, ctx: _Ctx, *, value=None,
               unknown=None) -> dict:
        """The one argument binder, for layer tokens and named blocks alike: positional arguments
        by position, keywords by name (through ``sig.lookup``), each passed through ``value``
        (default: kept as written) as it is matched. A keyword ``sig.lookup`` does not know goes to
        ``unknown(key, raw, span)``, which raises or keeps it."""
        value = value or (lambda raw: raw)
        if len(args.positional) > len(sig.names):
            raise self._error(f"{sig.owner} {sig.takes} ({', '.join(sig.names) or 'none'}), got "
                              f"{len(args.positional)}", span, ctx, what=sig.what)
        bound = {name: value(raw) for name, raw in zip(sig.names, args.positional)}
        positional = set(bound)
        for key, raw, kspan in args.keyword:
            name = sig.lookup(key)
            if name is None:
                unknown(key, raw, kspan)
                continue
            if name in positional:
                raise self._error(f"{sig.noun} {name!r} of {sig.owner} is given twice", kspan, ctx,
                                  what=sig.what)
            bound[name] = value(raw)
        return bound

    def _bind(self, item: S.Layer, spec: LayerSpec, ctx: _Ctx) -> Op:
        """A layer with every argument resolved and checked; unknown keywords that the Keras layer
        takes pass through as ``extra``."""
        extra, spans = {}, {}

        def keras_keyword(key, raw, kspan):
            if key in _keras_keywords(spec) or key in _installed_keras_keywords(spec):
                extra[key], spans[key] = raw, kspan
                return
            raise self._error(f"{spec.token} has no argument {key!r}", kspan or item.span, ctx,
                              what=item.name, hint=_no_argument_hint(spec, key))

        sig = _Signature(spec.token, tuple(spec.arg_names), item.name, "argument",
                         f"takes at most {len(spec.args)} positional argument(s)",
                         lambda key: getattr(spec.arg(key), "name", None))
        written = self._match(item.args, sig, item.span, ctx, unknown=keras_keyword)
        values = {**self.defaults.get(spec.token, {}), **written}  # YAML layer defaults first
        for key in list(values):
            if spec.arg(key) is None:  # a YAML default that is a Keras keyword
                extra.setdefault(key, values.pop(key))
        typed = {arg.name: self._typed(values.get(arg.name, arg.default), arg, spec, item, ctx)
                 for arg in spec.args}
        params = tuple((arg.name, spec.default(arg, typed) if typed[arg.name] is None and arg.same_as
                        else typed[arg.name]) for arg in spec.args)
        resolved_extra = tuple((k, self._plain(v, ctx, item.span)) for k, v in extra.items())
        self._refuse_unmodelled(spec, resolved_extra, spans, item, ctx)
        return Op(spec.token, params, resolved_extra, item.span, item.text, ctx.scope)

    def _refuse_unmodelled(self, spec, extra, spans, item, ctx):
        """Refuse pass-through keywords that would change shapes or weights the analysis does not
        model (``keras_keywords.REFUSED_KEYWORDS``), pointing at the keyword."""
        for key, value in extra:
            refused = refusal(spec.keras_class, key, value)
            if refused is not None:
                raise self._error(f"{spec.token} does not take {key}={_short(value)}: {refused[0]}",
                                  spans.get(key) or item.span, ctx, what=item.name, hint=refused[1])

    def _plain(self, raw, ctx, span):
        """Resolve variables / params / placeholders in a pass-through Keras keyword value."""
        if isinstance(raw, S.Word):
            if raw.name in ctx.variables:
                return ctx.variables[raw.name]
            return raw.name
        if isinstance(raw, S.Param):
            return self._plain(self._lookup(raw, ctx, role="argument"), ctx, span)
        if isinstance(raw, S.Placeholder):
            return self._ask("value", self._hash_name(raw.name, ctx), ctx, raw)
        if isinstance(raw, tuple):
            return tuple(self._plain(v, ctx, span) for v in raw)
        return raw

    def _lookup(self, ref, ctx: _Ctx, *, role: str):
        if isinstance(ref, S.Param):
            if ref.name in ctx.params:
                return ctx.params[ref.name]
            where = f"block @{ctx.block_stack[-1]}" if ctx.block_stack else "the network"
            raise self._error(f"${ref.name} is not a parameter of {where}", ref.span, ctx,
                              what=f"${ref.name}",
                              hint="$name refers to a block parameter; declare it under params:"
                              if ctx.block_stack else "use a variable (vars:, --set) or a block")
        if ref.name in ctx.variables:
            return ctx.variables[ref.name]
        hint = f"bind it: variables={{{ref.name!r}: ...}} or --set {ref.name}=... or YAML vars:"
        if ref.name == "classes":
            hint = "give classes= (CLI --classes, YAML classes:)"
        msg = f"unbound variable {ref.name!r} (used as a {role})"
        given = [k for k in ctx.variables if k.lower() == ref.name.lower()] or \
            close_matches(ref.name, [k for k in ctx.variables if k != "classes"], n=1, cutoff=0.6)
        if given:  # --set n=2 for a text that says N
            msg += f"; {given[0]!r} was given ({given[0]}={ctx.variables[given[0]]!r})"
            hint = (f"variable names are case-sensitive: give {ref.name}=... instead" if
                    given[0].lower() == ref.name.lower() else f"did you mean {ref.name}=... ?")
        raise self._error(msg, ref.span, ctx, what=ref.name, hint=hint)

    def _typed(self, raw, arg, spec, item, ctx):
        value = raw
        if isinstance(value, S.Param):
            value = self._lookup(value, ctx, role="argument")
        if isinstance(value, S.Placeholder):
            value = self._ask("value", self._hash_name(value.name, ctx), ctx, value)
        if isinstance(value, S.Word):
            if value.name in ctx.variables:
                value = ctx.variables[value.name]
            elif arg.type in ("int", "float", "ints", "bool"):
                self._lookup(value, ctx, role=f"{arg.name} of {spec.token}")
            else:
                value = value.name
        if isinstance(value, tuple):
            value = tuple(self._plain(v, ctx, item.span) for v in value)
        if value is None and arg.default is None:  # FC units, POOL stride: filled in later
            return None
        return _coerce(value, arg, spec, lambda msg: self._error(msg, item.span, ctx, what=item.name))

    def _input_shape(self, item: S.Layer, ctx: _Ctx):
        dims = []
        for raw in item.args.positional:
            v = raw
            if isinstance(v, (S.Word, S.Param)):
                v = self._lookup(v, ctx, role="INPUT dimension")
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise self._error(f"INPUT dimensions must be positive whole numbers, got {v!r}",
                                  item.span, ctx, what="INPUT")
            dims.append(v)
        if item.args.keyword:
            raise self._error("write INPUT(height, width, channels), e.g. INPUT(32,32,3)", item.span,
                              ctx, what="INPUT")
        if not dims:  # a bare INPUT, as slides write it: the caller's input_shape (DSL.md section 1)
            return None
        if max(dims) > limits.MAX_INT or math.prod(dims) > limits.MAX_ACTIVATION_ELEMENTS:
            raise self._error(f"the input has {math.prod(dims):,} elements per image, over the limit "
                              f"of {limits.MAX_ACTIVATION_ELEMENTS:,}", item.span, ctx, what="INPUT",
                              cls=LimitError, hint="use a smaller input")
        return tuple(dims)

    # --- blocks ----------------------------------------------------------------------------------
    def _block(self, call: S.BlockCall, ctx: _Ctx) -> list:
        block = self._find_block(call, ctx)
        bound = self._bind_block(call, block, ctx)
        where = f"{Path(block.source).name if block.source else 'blocks='}: body of block @{block.name}"
        body = _parse_block_body(block.body, where, block.name)
        self.block_counts[call.name] = self.block_counts.get(call.name, 0) + 1
        scope = ctx.scope or f"{call.name}{self.block_counts[call.name]}"
        self.namespaces += 1
        ns = self.namespaces
        label = f"{ctx.ns_label}_" if ctx.ns_label else ""
        inner = replace(ctx, params=bound, block_stack=ctx.block_stack + (call.name,), scope=scope,
                        text=block.body, source=body.span.source, ns=ns,
                        ns_label=f"{label}{call.name}{self.block_counts[call.name]}",
                        param_ns=self._param_namespaces(call, block, ctx, ns))
        try:
            out = self._seq(body, inner)
            self._check_pending(ns)
            return out
        except ArchitectureError as err:
            if getattr(err, "_via", None):
                raise
            err._via = True
            raise type(err)(f"{err.message} (inside @{call.name})", span=err.span or call.span,
                            text=err.text, hint=err.hint, what=err.what) from None

    def _param_namespaces(self, call: S.BlockCall, block, ctx: _Ctx, ns: int) -> dict:
        """Where each parameter's value was written: a tensor name passed as an argument
        (``@up(skip=e_2)``) is the caller's; a default from the block's definition is the block's."""
        names = block.param_names()
        written = dict(zip(names, call.args.positional))
        written.update({k: v for k, v, _ in call.args.keyword})
        out = {}
        for pname in names:
            raw = written.get(pname)
            if raw is None:
                out[pname] = ns
            elif isinstance(raw, S.Param):
                out[pname] = ctx.param_ns.get(raw.name, ctx.ns)
            else:
                out[pname] = ctx.ns
        return out

    def _find_block(self, call: S.BlockCall, ctx: _Ctx):
        """The block a call names, refusing unknown names, recursion and deep nesting."""
        block = self.blocks.get(call.name)
        if block is None:
            close = difflib.get_close_matches(call.name, self.blocks.names(), n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join('@' + c for c in close)}?" if close else \
                f"known blocks: {', '.join(self.blocks.names()) or 'none'}"
            raise self._error(f"unknown block @{call.name}", call.span, ctx, what=f"@{call.name}",
                              hint=hint)
        if call.name in ctx.block_stack:
            chain = " -> ".join("@" + b for b in (*ctx.block_stack, call.name))
            raise self._error(f"block @{call.name} calls itself ({chain})", call.span, ctx,
                              what=f"@{call.name}", hint="blocks cannot be recursive: use *N")
        if len(ctx.block_stack) >= limits.MAX_BLOCK_DEPTH:
            raise self._error(f"blocks nest deeper than {limits.MAX_BLOCK_DEPTH}", call.span, ctx,
                              cls=LimitError)
        return block

    def _bind_block(self, call: S.BlockCall, block, ctx: _Ctx) -> dict:
        """The block's parameters: the call's arguments evaluated at the call site, then defaults."""
        names = block.param_names()
        what = f"@{call.name}"

        def no_parameter(key, raw, kspan):
            close = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
            raise self._error(f"@{call.name} has no parameter {key!r}", kspan, ctx, what=what,
                              hint=f"did you mean {' or '.join(close)}?" if close else
                              f"its parameters are {', '.join(names) or 'none'}")

        sig = _Signature(what, tuple(names), what, "parameter", f"takes {len(names)} argument(s)",
                         lambda key: key if key in names else None)
        bound = self._match(call.args, sig, call.span, ctx, unknown=no_parameter,
                            value=lambda raw: self._arg_value(raw, ctx))
        for pname, default in block.params:
            if pname not in bound:
                if default is REQUIRED:
                    raise self._error(f"@{call.name} needs its parameter {pname!r}", call.span, ctx,
                                      what=what)
                bound[pname] = default
        return bound

    def _arg_value(self, raw, ctx: _Ctx):
        """A block argument evaluated at the call site ($params and variables of the caller)."""
        if isinstance(raw, S.Param):
            return self._lookup(raw, ctx, role="block argument")
        if isinstance(raw, S.Word) and raw.name in ctx.variables:
            return ctx.variables[raw.name]
        if isinstance(raw, S.Placeholder):  # keep it: resolved where used, named with call-site '#'
            return S.Placeholder(self._hash_name(raw.name, ctx), raw.kind, raw.values, raw.low,
                                 raw.high, raw.step, raw.log, raw.span)
        if isinstance(raw, S.Word):  # e# (a tensor name) takes the call site's indices
            return self._hash_name(raw.name, ctx) if ctx.reps else raw.name
        if isinstance(raw, tuple):  # [4, $f]: its $f is the caller's, resolved here (a $f left in
            return tuple(self._arg_value(v, ctx) for v in raw)  # the list recursed forever)
        return raw


@functools.lru_cache(maxsize=512)
def _parse_block_body(body: str, source: str, name: str) -> S.Seq:
    return parse(body, source=source)


@functools.lru_cache(maxsize=None)
def _keras_keywords(spec: LayerSpec) -> frozenset:
    """Keyword arguments the Keras layer constructor accepts (what kblocks passes through)."""
    from kblocks.lang.keras_keywords import KERAS_KEYWORDS

    if not spec.keras_class:
        return frozenset()
    base = {"name", "dtype", "trainable", "autocast"}  # Layer's, for a class the table lacks
    names = set(KERAS_KEYWORDS.get(spec.keras_class, base))
    names -= {a.keras for a in spec.args if a.keras}
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def _installed_keras_keywords(spec: LayerSpec) -> frozenset:
    """The installed Keras' constructor keywords (imports Keras: only for keywords not in the table).
    Of kblocks' own layers only those that subclass a Keras layer (the binary layers) pass
    that layer's keywords on; the others take their DSL arguments."""
    if not spec.keras_class:
        return frozenset()
    if spec.kind.custom:
        from kblocks.lang import layers

        cls = getattr(layers, spec.keras_class)
        if cls.__bases__[0].__name__ == "Layer":
            return frozenset()
    else:
        import keras

        cls = getattr(keras.layers, spec.keras_class)
    names = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        sig = inspect.signature(klass.__init__)
        names |= {p.name for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        if klass.__name__ == "Layer" or not any(p.kind == p.VAR_KEYWORD
                                                for p in sig.parameters.values()):
            break  # SpatialDropout2D(rate, data_format, seed, name, dtype) passes nothing on
    return frozenset(names - {a.keras for a in spec.args if a.keras})


def _no_argument_hint(spec: LayerSpec, key: str) -> str:
    choices = spec.arg_names + sorted(_keras_keywords(spec))
    close = difflib.get_close_matches(key, choices, n=2, cutoff=0.6)
    if close:
        return f"did you mean {' or '.join(close)}?"
    return (f"{spec.token} takes {', '.join(spec.arg_names) or 'no arguments'}"
            + (f" and the Keras {spec.keras_class} keywords" if spec.keras_class else ""))


def _coerce(value, arg, spec, fail):
    """``value`` checked and converted to the argument's type; ``fail(message)`` makes the error."""
    coerce = _COERCE.get(arg.type)
    return coerce(value, arg, spec, fail) if coerce else value


def _to_int(value, arg, spec, fail):
    if isinstance(value, bool) or not isinstance(value, int):
        if not (isinstance(value, float) and value.is_integer()):
            raise fail(f"{arg.name} of {spec.token} must be a whole number, got {_short(value)}")
        value = int(value)  # 32.0 is 32; -0.0 is 0, refused below like 0
    if value < arg.minimum:
        raise fail(f"{arg.name} of {spec.token} must be at least {arg.minimum}, got {value}")
    if value > limits.MAX_INT:
        raise fail(f"{arg.name} of {spec.token} must be at most {limits.MAX_INT:,}, got {_short(value)}")
    return value


def _to_float(value, arg, spec, fail):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"{arg.name} of {spec.token} must be a number, got {_short(value)}")
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise fail(f"{arg.name} of {spec.token} must be a finite number, got {_short(value)}")
    if arg.name == "rate" and not 0.0 <= value < 1.0:
        raise fail(f"rate of {spec.token} must be in [0, 1), got {value}")
    return value


def _to_ints(value, arg, spec, fail):
    items = value if isinstance(value, tuple) else (value,)
    if not items or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
        raise fail(f"{arg.name} of {spec.token} must be a whole number or a list of them, "
                   f"got {value!r}")
    if any(v < arg.minimum for v in items):
        raise fail(f"{arg.name} of {spec.token} must be at least {arg.minimum}, got {_short(value)}")
    if any(v > limits.MAX_INT for v in items):
        raise fail(f"{arg.name} of {spec.token} must be at most {limits.MAX_INT:,}, got "
                   f"{_short(value)}")
    return value


def _to_padding(value, arg, spec, fail):
    if isinstance(value, str) and value.lower() in ("same", "valid"):
        return value.lower()
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limits.MAX_INT:
        return value
    raise fail(f"padding of {spec.token} must be same, valid or a number of pixels, got "
               f"{_short(value)}")


def _to_bool(value, arg, spec, fail):
    if not isinstance(value, bool):
        raise fail(f"{arg.name} of {spec.token} must be true or false, got {_short(value)}")
    return value


def _to_shape(value, arg, spec, fail):
    items = value if isinstance(value, tuple) else (value,)
    if not items or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= limits.MAX_INT
                        for v in items):
        raise fail(f"shape of {spec.token} must be a list of positive whole numbers, got "
                   f"{_short(value)}")
    return tuple(items)


_COERCE = {"int": _to_int, "float": _to_float, "ints": _to_ints, "padding": _to_padding,
           "bool": _to_bool, "shape": _to_shape}


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _where(span: Span) -> str:
    """``line 1, column 20`` (with the file when it has one), for an error naming a second place."""
    return span.describe() or "an unknown place"


def _short(value) -> str:
    """``repr`` for an error message, cut short (a value may be a 4,000-digit number)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"... ({len(text):,} characters)"


def _item_span(item) -> Span:
    span = getattr(item, "span", None) or Span()
    if not span.line and isinstance(item, S.Seq) and item.items:
        return _item_span(item.items[0])
    return span


def finalize_units(program: Program, classes, *, text="", source="") -> Program:
    """Give units to every FC written without them: ``classes`` for the last FC of the main path
    and of each AUX head, the default (128) for the others."""

    def fix(nodes, is_output: bool):
        nodes = list(nodes)
        last = None
        if is_output:
            for i in range(len(nodes) - 1, -1, -1):
                if isinstance(nodes[i], Op) and nodes[i].token == "FC":
                    last = i
                    break
        out = []
        for i, node in enumerate(nodes):
            if isinstance(node, Op) and node.token == "FC" and node.get("units") is None:
                if i == last:
                    if classes is None:
                        raise ArchitectureError(
                            "the last FC has no units and no classes were given", span=node.span,
                            text=text if node.span.source == source else None, what="FC",
                            hint="write FC(10), or give classes= (CLI --classes, YAML classes:)")
                    node = node.replace_param("units", int(classes))
                else:
                    node = node.replace_param("units", 128)
            elif isinstance(node, Merge):
                node = Merge(node.op, tuple(tuple(fix(b, False)) for b in node.branches),
                             node.skip_proj, node.span)
            elif isinstance(node, Aux):
                node = Aux(tuple(fix(node.body, True)), node.span)
            out.append(node)
        return out

    return Program(tuple(fix(program.nodes, True)), program.input_shape)

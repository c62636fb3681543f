"""Placeholders (DSL section 6) as Keras Tuner hyperparameters, and the resolvers the expander asks.

Three resolvers implement :class:`kblocks.lang.expand.Resolver`:

* :class:`DiscoveryResolver` expands a space once with every count and range at its upper end,
  every choice at its largest number, every optional item present and every alternative of an
  operation choice explored, so each placeholder is reached at every place it can be used; it
  records the enclosing repetitions, alternatives and optional items of each use.
* :class:`ValuesResolver` builds one architecture from a ``{name: value}`` mapping (a trial's
  ``HyperParameters.values``); a name without a value takes its default.

:func:`conditions_of` turns the recorded uses into the conditions of one ``keras_tuner``
hyperparameter per name: the repetition counts whose index it sits under (``n_1 >= 2`` for the
second convolution of stage 1), the operation choice whose alternative holds it (``op_1 ==
SEPCONV(16, 5)``) and the optional items around it (``pool_opt_1 == true``), so an inactive one
is never sampled and a trial lists only active ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from kblocks.lang import syntax as S
from kblocks.common.errors import ArchitectureError
from kblocks.lang.expand import Resolver

BOOLEAN = "boolean"


def _dsl_key(value):
    """A choice value as Keras Tuner stores it: numbers and booleans as they are, words as text."""
    if isinstance(value, S.Word):
        return value.name
    return value


@dataclass(frozen=True)
class HPSpec:
    """What one hyperparameter is, independent of where it is used.

    ``kind`` is ``choice``, ``int``, ``float`` or ``boolean``; ``values`` are the DSL values of a
    choice (numbers, booleans, strings or :class:`~kblocks.lang.syntax.Word`), ``tuner_values`` the same
    values as Keras Tuner holds them (one Python type; mixed choices become text).
    """

    name: str
    kind: str
    values: tuple = ()
    tuner_values: tuple = ()
    low: object = None
    high: object = None
    step: object = None
    log: bool = False
    where: str = ""  # "line L, column C" of the first use, for messages
    op: bool = False  # an operation choice (DSL 6b): its values are the alternatives' texts

    @property
    def default(self):
        """The DSL default: the first choice, the lower bound, or True for an optional item."""
        if self.kind == "choice":
            return self.tuner_values[0]
        if self.kind == BOOLEAN:
            return True
        return self.low

    def possible_counts(self):
        """The whole numbers this hyperparameter can take, or None if it is not a count."""
        if self.kind == "int":
            return list(range(self.low, self.high + 1, self.step or 1))
        if self.kind == "choice" and all(isinstance(v, int) and not isinstance(v, bool)
                                         for v in self.tuner_values):
            return sorted(self.tuner_values)
        return None

    def to_dsl(self, value):
        """A Keras Tuner value back to the DSL value the expander expects."""
        if self.kind == "choice":
            for key, original in zip(self.tuner_values, self.values):
                if key == value and type(key) is type(value):
                    return original
            for key, original in zip(self.tuner_values, self.values):
                if key == value:
                    return original
            return self.values[0]
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        return bool(value)

    def check(self, value) -> str | None:
        """Why ``value`` is not a possible value of this hyperparameter (None if it is)."""
        if self.kind == "choice":
            if any(key == value for key in self.tuner_values):
                return None
            return f"is one of {', '.join(map(str, self.tuner_values))}"
        if self.kind == BOOLEAN:
            return None if isinstance(value, bool) else "is true or false"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"is a number in {self.low}..{self.high}"
        if not self.low <= value <= self.high:
            return f"is in {self.low}..{self.high}"
        if self.kind == "int":
            if value != int(value):
                return "is a whole number"
            if self.step and not self.log and (value - self.low) % self.step:
                return f"is {self.low} plus a multiple of {self.step}"
        return None

    def size(self):
        """How many values it can take (``math.inf`` for a float range)."""
        if self.kind == "choice":
            return len(self.tuner_values)
        if self.kind == BOOLEAN:
            return 2
        if self.kind == "int":
            if self.log and self.step:
                n, v = 0, self.low
                while v <= self.high:
                    n, v = n + 1, v * self.step
                return n
            return len(range(self.low, self.high + 1, self.step or 1))
        return math.inf

    def describe(self) -> str:
        if self.kind == "choice":
            return " | ".join(str(v) for v in self.tuner_values)
        if self.kind == BOOLEAN:
            return "true | false"
        text = f"{self.low}..{self.high}"
        if self.step:
            text += f" step {self.step}"
        return text + (" log" if self.log else "")

    def tuner_config(self, conditions: list) -> dict:
        """The ``{"class_name", "config"}`` Keras Tuner serialises this hyperparameter as."""
        conds = [{"class_name": "Parent", "config": {"name": n, "values": list(v)}}
                 for n, v in conditions]
        if self.kind == "choice":
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in self.tuner_values)
            return {"class_name": "Choice", "config": {
                "name": self.name, "default": self.default, "conditions": conds,
                "values": list(self.tuner_values), "ordered": numeric}}
        if self.kind == BOOLEAN:
            return {"class_name": "Boolean", "config": {
                "name": self.name, "default": True, "conditions": conds}}
        sampling = "log" if self.log else "linear"
        cls = "Int" if self.kind == "int" else "Float"
        return {"class_name": cls, "config": {
            "name": self.name, "default": self.default, "conditions": conds,
            "min_value": self.low, "max_value": self.high, "step": self.step,
            "sampling": sampling}}


def _where(ph: S.Placeholder | None) -> str:
    span = getattr(ph, "span", None)
    if span is None or not span.line:
        return ""
    return span.describe()


def spec_of(name: str, ph: S.Placeholder, fail) -> HPSpec:
    """Check a placeholder and describe it as a hyperparameter; ``fail(msg, hint)`` makes the error."""
    where = _where(ph)
    if ph.kind == "choice":
        values = tuple(ph.values)
        keys = tuple(_dsl_key(v) for v in values)
        if len(set(map(repr, keys))) != len(keys):
            raise fail(f"{{{ph.name}: ...}} lists a value twice", "write each choice once")
        kinds = {type(k) for k in keys}
        if kinds <= {int} or kinds <= {bool} or kinds <= {str} or kinds <= {float}:
            tuner = keys
        elif kinds <= {int, float}:
            tuner = tuple(float(k) for k in keys)
        else:  # a mixed choice such as {p: 1|same}: Keras Tuner holds it as text
            tuner = tuple(str(k) for k in keys)
        return HPSpec(name, "choice", values, tuner, where=where)
    low, high, step = ph.low, ph.high, ph.step
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (low, high)):
        raise fail(f"the range of {{{ph.name}: ...}} needs two numbers", "write {n: 1..3}")
    if not low < high:
        raise fail(f"the range {low}..{high} of {{{ph.name}: ...}} is empty or reversed",
                   "write the lower bound first, e.g. {n: 1..3}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                             or step <= 0):
        raise fail(f"the step of {{{ph.name}: ...}} must be a positive number, got {step!r}",
                   "write e.g. {u: 64..512 step 64}")
    if ph.log and low <= 0:
        raise fail(f"a log range needs a positive lower bound, got {low}",
                   "write e.g. {lr: 1e-4..1e-2 log}")
    is_int = all(isinstance(v, int) for v in (low, high)) and (step is None or isinstance(step, int))
    if ph.log and step is not None and is_int and step < 2:
        raise fail("with 'log' the step multiplies (as in Keras Tuner) and must be at least 2",
                   "drop the step, or write e.g. {u: 16..512 step 2 log} for 16, 32, ..., 512")
    return HPSpec(name, "int" if is_int else "float", low=low, high=high, step=step,
                  log=bool(ph.log), where=where)


def same_spec(a: HPSpec, b: HPSpec) -> bool:
    return (a.kind, a.tuner_values, a.low, a.high, a.step, a.log) == \
        (b.kind, b.tuner_values, b.low, b.high, b.step, b.log)


@dataclass
class Use:
    spec: HPSpec
    scopes: list = field(default_factory=list)  # the `scope` of every use
    conds: list = field(default_factory=list)  # the `conds` of every use (DSL 6b), as scopes


def _show(spec: HPSpec) -> str:
    if spec.kind == BOOLEAN:
        return "an optional item"
    if spec.op:
        return "an operation choice {" + " | ".join(spec.tuner_values) + "}"
    return f"a value choice {{{spec.describe()}}}" if spec.kind == "choice" else \
        f"{{{spec.describe()}}}"


class DiscoveryResolver(Resolver):
    """Records every hyperparameter and the repetitions each use sits in (see the module doc)."""

    explores = True  # every alternative of an operation choice is expanded

    def __init__(self):
        self.uses: dict = {}  # name -> Use, in order of first use

    def _record(self, spec: HPSpec, scope, conds=(), span=None):
        use = self.uses.get(spec.name)
        if use is None:
            self.uses[spec.name] = use = Use(spec)
        elif not same_spec(use.spec, spec):
            first = f" (first at {use.spec.where})" if use.spec.where else ""
            raise ArchitectureError(
                f"hyperparameter {spec.name!r} is {_show(use.spec)}{first} and {_show(spec)} at "
                f"{spec.where or 'another place'}; a name is one hyperparameter wherever it "
                f"appears", span=span, what=spec.name,
                hint="give the two places different names, or the same values")
        use.scopes.append(tuple(scope))
        use.conds.append(tuple(conds))

    def choose(self, name, choice, scope, conds=()):
        span = choice.span if choice.span.line else None
        spec = HPSpec(name, "choice", tuple(choice.texts), tuple(choice.texts), where=_where(choice),
                      op=True)
        self._record(spec, scope, conds, span)
        return choice.texts[0]

    def value(self, name, ph, scope, conds=()):
        def fail(msg, hint):
            return ArchitectureError(msg, span=ph.span if ph.span.line else None, what=name,
                                     hint=hint)

        spec = spec_of(name, ph, fail)
        self._record(spec, scope, conds, ph.span if ph.span.line else None)
        if spec.kind == "choice":
            numbers = [i for i, v in enumerate(spec.tuner_values)
                       if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(numbers) == len(spec.values):
                return spec.values[max(numbers, key=lambda i: spec.tuner_values[i])]
            return spec.values[0]
        return spec.high

    def flag(self, name, scope, conds=()):
        self._record(HPSpec(name, BOOLEAN), scope, conds)
        return True


def _possible(spec: HPSpec) -> list:
    """Every value a parent of a condition can take, in order."""
    if spec.kind == BOOLEAN:
        return [True, False]
    if spec.kind == "choice":
        return list(spec.tuner_values)
    return spec.possible_counts() or []


def use_conditions(scope, conds, specs: dict) -> dict:
    """``{parent: allowed values}`` that must all hold for one use to be reached: the repetition
    indices it sits under (``n >= 2``), the alternatives it is written in (``op == SKIP``) and
    the optional items around it (``pool_opt == true``). Conditions that always hold are left out."""
    out: dict = {}

    def need(parent, allowed):
        possible = _possible(specs[parent])
        keep = [v for v in possible if v in allowed and v in out.get(parent, possible)]
        out[parent] = keep

    for count_name, index in scope:
        if count_name is not None and count_name in specs and specs[count_name].possible_counts():
            need(count_name, [c for c in specs[count_name].possible_counts() if c >= index])
    for parent, value in conds:
        if parent in specs:
            need(parent, [value])
    return {p: v for p, v in out.items() if len(v) < len(_possible(specs[p]))}


def conditions_of(use: Use, specs: dict) -> list:
    """``[(parent, allowed_values), ...]``: the Keras Tuner conditions of a name, one conjunction.

    A name written in several places is active when any of its uses is (DSL 6b). Keras Tuner's
    conditions are a conjunction of ``parent in values``, so a disjunction of the uses is written
    as its closest such form: the parents that every use depends on, each allowed the union of
    the values the uses allow. That is exact when the uses differ in one parent only (a width
    shared by the copies of a repetition, a name in two alternatives of one choice); otherwise a
    value may be sampled in a trial that does not use it (``space.size()`` still counts exactly).
    """
    per_use = [use_conditions(scope, conds, specs)
               for scope, conds in zip(use.scopes, use.conds or [()] * len(use.scopes))]
    common = set(per_use[0]).intersection(*per_use[1:]) if per_use else set()
    out = []
    for parent in per_use[0] if per_use else ():
        if parent not in common:
            continue
        union = set()
        for cond in per_use:
            union.update(map(_hashable, cond[parent]))
        allowed = [v for v in _possible(specs[parent]) if _hashable(v) in union]
        if len(allowed) < len(_possible(specs[parent])):
            out.append((parent, allowed))
    return out


def _hashable(value):
    return (type(value).__name__, value)


class ValuesResolver(Resolver):
    """Resolves each placeholder from ``values`` (Keras Tuner values), else its default."""

    def __init__(self, specs: dict, values: dict):
        self.specs = specs
        self.values = values

    def value(self, name, ph, scope, conds=()):
        spec = self.specs.get(name)
        if spec is None:  # not seen by discovery: cannot happen for a space built here
            return ph.default
        if name in self.values:
            return spec.to_dsl(self.values[name])
        return spec.to_dsl(spec.default)

    def flag(self, name, scope, conds=()):
        return bool(self.values.get(name, True))

    def choose(self, name, choice, scope, conds=()):
        spec = self.specs.get(name)
        value = self.values.get(name, choice.texts[0])
        if spec is not None and not spec.op:  # one name as value choice and op choice: same texts
            value = str(value)
        return value if value in choice.texts else choice.texts[0]

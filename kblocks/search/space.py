"""A search space: architecture text with placeholders (DSL section 6) and its hyperparameters.

    space = SearchSpace("[[CONV({f#: 32|64})-RELU]*{n#: 1..3}-POOL?]*{stages: 1..4}-FC(10)",
                        input_shape=(32, 32, 3))
    space.hyperparameters()      # keras_tuner.HyperParameters: names, kinds, ranges, conditions
    space.fixed({"stages": 2})   # canonical text, no placeholders: rebuilds the same model
    tuner = space.tuner("random", max_trials=10, directory="runs", project_name="s")

A space is plain data (:meth:`to_dict` / :meth:`from_dict`): the network text, input shape,
classes, variables and the raw ``blocks:`` mapping, so a search folder can rebuild it exactly even
if the files it came from change later.
"""
from __future__ import annotations

import copy
from pathlib import Path

from kblocks.common.errors import ConfigError, KBlocksError
from kblocks.search.resolver import (BOOLEAN, DiscoveryResolver, ValuesResolver, conditions_of,
                                     use_conditions)

_DATA_KEYS = ("name", "input", "classes", "vars", "blocks", "defaults", "network", "doc")


def tuning_path(name: str):
    """The file of a ready space in ``kblocks/search/spaces/`` (package data), or None."""
    import importlib.resources

    folder = importlib.resources.files("kblocks.search") / "spaces"
    path = folder / f"{name}.yaml"
    return Path(str(path)) if path.is_file() else None


def _read_source(source):
    """``(mapping, source name)`` for a YAML file path, a ready space's name (``kblocks/search/spaces/``), a
    mapping, or architecture text."""
    from kblocks.lang.spec import load_yaml_text, read_yaml_file

    if isinstance(source, dict):
        return copy.deepcopy(source), "<space>"
    if isinstance(source, str) and source.strip().isidentifier() and tuning_path(source.strip()):
        source = tuning_path(source.strip())
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source.strip()
                                    and source.strip().lower().endswith((".yaml", ".yml"))):
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"search space file {str(path)!r} does not exist", what="SPACE",
                              hint="give architecture text in quotes or the path of a YAML file")
        data, _ = load_yaml_text(read_yaml_file(path, what="search space file"), str(path))
        return data, str(path)
    if not isinstance(source, str):
        raise KBlocksError(f"a search space is architecture text or a YAML path, got "
                           f"{type(source).__name__}")
    return {"network": source}, ""


def _read_blocks(blocks) -> dict:
    """The raw ``name: body`` mapping of ``blocks=`` (a YAML path or a mapping)."""
    from kblocks.lang.spec import load_yaml_text, read_yaml_file

    if blocks is None:
        return {}
    if isinstance(blocks, dict):
        return copy.deepcopy(blocks)
    if isinstance(blocks, (str, Path)):
        path = Path(blocks)
        if not path.exists():
            raise ConfigError(f"blocks file {str(path)!r} does not exist", what="blocks")
        data, _ = load_yaml_text(read_yaml_file(path, what="blocks file"), str(path))
        body = data.get("blocks", {})
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: 'blocks' must be a mapping name: body", what="blocks")
        return body
    raise KBlocksError("blocks= takes a YAML path or a mapping name: body", what="blocks")


def _values_of(hp) -> dict:
    """A plain ``{name: value}`` from HyperParameters, a Trial, a mapping or None."""
    if hp is None:
        return {}
    if hasattr(hp, "hyperparameters") and hasattr(hp, "trial_id"):  # a keras_tuner Trial
        hp = hp.hyperparameters
    if hasattr(hp, "values") and not isinstance(hp, dict):
        return dict(hp.values)
    if isinstance(hp, dict):
        return dict(hp)
    raise KBlocksError(f"hyperparameter values are a mapping, a keras_tuner.HyperParameters or a "
                       f"Trial, got {type(hp).__name__}")


_SPACE_ARGUMENTS = ("source", "blocks", "classes", "input_shape", "name", "variables")


def _space_variables(variables, legacy: dict) -> dict:
    """``variables=`` of :class:`SearchSpace`, with the old keyword form (``SearchSpace(text,
    N=2)``) still taken, with a DeprecationWarning, and a misspelt argument refused as in
    :func:`kblocks.build`."""
    import warnings

    from kblocks.common.suggest import close_matches

    if variables is not None and not isinstance(variables, dict):
        raise KBlocksError(f"variables= takes a mapping name: value, got {type(variables).__name__}",
                           what="SearchSpace")
    variables = dict(variables or {})
    for key in legacy:
        near = close_matches(key, _SPACE_ARGUMENTS, n=1, cutoff=0.75)
        if near:
            raise KBlocksError(f"unknown argument {key}=", what="SearchSpace",
                               hint=f"did you mean {near[0]}=?")
        if key in variables:
            raise KBlocksError(f"variable {key!r} is given twice (as {key}= and in variables=)",
                               what="SearchSpace")
    if legacy:
        warnings.warn(f"SearchSpace(): variables given as keyword arguments "
                      f"({', '.join(f'{k}=' for k in legacy)}) are deprecated; pass "
                      f"variables={{...}}", DeprecationWarning, stacklevel=3)
    return {**variables, **legacy}


class SearchSpace:
    """Architecture text with placeholders, and the Keras Tuner hyperparameters it defines.

    Args:
        source: architecture text, a YAML architecture file (its ``input``, ``classes``, ``vars``
            and ``blocks`` are used), or a mapping with the keys of such a file.
        blocks: extra named blocks: a YAML file with a ``blocks:`` mapping, or the mapping itself.
        classes: number of classes (the units of a bare final ``FC``); overrides the file's.
        input_shape: ``(height, width, channels)``; overrides the file's ``input``.
        name: the space's name (default: the file's ``name``, its file name, or ``"space"``).
        **variables: values of the text's variables (as in :func:`kblocks.build`).

    Raises:
        ConfigError: a file or ``blocks`` that is missing or malformed, a block defined twice.
        ArchitectureError: text that does not parse, or placeholders used inconsistently.

    Example:

    >>> space = SearchSpace("[CONV({f#: 8|16})-RELU]*{n#: 1..2}-FC(10)", input_shape=(8, 8, 1))
    >>> space.names
    ['n', 'f_1', 'f_2']
    """

    def __init__(self, source, *, blocks=None, classes=None, input_shape=None, name=None,
                 variables=None, **legacy):
        from kblocks.lang.spec import parse_architecture

        variables = _space_variables(variables, legacy)

        data, origin = _read_source(source)
        extra = _read_blocks(blocks)
        own = data.get("blocks") or {}
        if not isinstance(own, dict):
            raise ConfigError(f"{origin or 'space'}: 'blocks' must be a mapping name: body")
        twice = sorted(set(own) & set(extra))
        if twice:
            raise ConfigError(f"block {twice[0]!r} is defined both in {origin or 'the space'} and "
                              f"in the blocks file", what="blocks",
                              hint="rename one of them")
        if extra:
            data["blocks"] = {**own, **extra}
        if classes is not None:
            data["classes"] = int(classes)
        if input_shape is not None:
            data["input"] = [int(d) for d in input_shape]
        if variables:
            data["vars"] = {**(data.get("vars") or {}), **variables}
        if name is not None:
            data["name"] = str(name)
        data.setdefault("name", Path(origin).stem if origin else "space")
        parse_architecture(data, {}, origin or "<space>")  # every key checked, even unused ones
        self._data = {k: data[k] for k in _DATA_KEYS if data.get(k) not in (None, {}, [])}
        self.origin = origin
        self.arch = parse_architecture(self._data, {}, origin or "<space>")
        self._discover()

    # -- construction -----------------------------------------------------------------------------
    def _discover(self):
        from kblocks.lang import parser
        from kblocks.lang.expand import Expander

        arch = self.arch
        env = dict(arch.variables)
        if arch.classes is not None:
            env["classes"] = arch.classes
        tree = parser.parse(arch.network, source=arch.source)
        found = DiscoveryResolver()
        Expander(variables=env, blocks=arch.blocks, resolver=found,
                 defaults=arch.defaults).expand(tree, text=arch.network, source=arch.source)
        self.specs = {name: use.spec for name, use in found.uses.items()}
        self._uses = {name: [use_conditions(scope, conds, self.specs)
                             for scope, conds in zip(use.scopes, use.conds)]
                      for name, use in found.uses.items()}
        self.conditions = {name: conditions_of(use, self.specs) for name, use in found.uses.items()}
        if not self.specs:
            import warnings

            from kblocks.lang.lint import KBlocksWarning

            warnings.warn(f"{self.origin or 'the search space'}: the space has no placeholders "
                          f"({{f: 16|32}}, {{n: 1..3}}): it is one architecture, so a search "
                          f"trains it once however many trials are asked for", KBlocksWarning,
                          stacklevel=3)

    def to_dict(self) -> dict:
        """The space as plain data, the form a search folder stores.

        Returns:
            A JSON- and YAML-safe mapping (``network``, ``input``, ``classes``, ``vars``,
            ``blocks``, ...) that :meth:`from_dict` turns back into the same space.
        """
        return copy.deepcopy(self._data)

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        """The space :meth:`to_dict` described.

        Args:
            data: a mapping from :meth:`to_dict` (or with the keys of an architecture file).

        Returns:
            A new :class:`SearchSpace`.
        """
        return cls(dict(data))

    # -- what it holds ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The space's name."""
        return self.arch.name

    @property
    def input_shape(self):
        """``(height, width, channels)`` of the input, or None when the text leaves it open."""
        return self.arch.input_shape

    @property
    def classes(self):
        """The number of classes, or None."""
        return self.arch.classes

    @property
    def text(self) -> str:
        """The architecture text with its placeholders."""
        return self.arch.network

    @property
    def names(self) -> list:
        """Hyperparameter names in the order the text first uses them."""
        return list(self.specs)

    def __len__(self):
        return len(self.specs)

    def __repr__(self):
        return f"SearchSpace({self.text!r}, {len(self)} hyperparameters)"

    def is_active(self, name: str, values: dict) -> bool:
        """Whether hyperparameter ``name`` exists under ``values`` of the others.

        ``{n#: 1..3}`` repeats an item: the width of the third copy exists only when ``n`` >= 3.

        Args:
            name: one of :attr:`names`.
            values: values of (at least) the hyperparameters ``name`` depends on.

        Returns:
            True when every condition of ``name`` holds.
        """
        return all(values.get(parent) in allowed for parent, allowed in self.conditions[name])

    def defaults(self) -> dict:
        """The active hyperparameters at their defaults.

        Returns:
            ``{name: value}``: first choice, lower bound, optional items present.
        """
        return self.complete({})

    def complete(self, values) -> dict:
        """``values`` restricted to the active hyperparameters, missing ones at their defaults.

        Args:
            values: a mapping, a ``keras_tuner.HyperParameters``, a Keras Tuner ``Trial`` or None.

        Returns:
            ``{name: value}`` for every active hyperparameter, in the order of :attr:`names`.
        """
        given = _values_of(values)
        out = {}
        for name, spec in self.specs.items():
            if self.is_active(name, out):
                out[name] = given[name] if name in given else spec.default
        return out

    def hyperparameters(self):
        """The space as Keras Tuner hyperparameters (imports ``keras_tuner``).

        Returns:
            A ``keras_tuner.HyperParameters`` with every hyperparameter, its range and its
            conditions, values at :meth:`defaults`.
        """
        import keras_tuner

        config = {"space": [spec.tuner_config(self.conditions[name])
                            for name, spec in self.specs.items()],
                  "values": self.defaults()}
        return keras_tuner.HyperParameters.from_config(config)

    def describe(self) -> list:
        """The hyperparameters as rows.

        Returns:
            One dict per hyperparameter with ``name``, ``kind`` (``choice``, ``int``, ``float``,
            ``optional`` or ``operation`` for an operation choice), ``values``, ``default`` and
            ``condition`` (``"always"`` or when it is active: ``n >= 2``, ``op_1 == SKIP``,
            ``op in (A | B)``, ``pool_opt_1 present``, joined by ``and``).
        """
        rows = []
        for name, spec in self.specs.items():
            cond = " and ".join(self._condition_text(p, v) for p, v in self.conditions[name])
            kind = "optional" if spec.kind == BOOLEAN else "operation" if spec.op else spec.kind
            rows.append({"name": name, "kind": kind, "values": spec.describe(),
                         "default": spec.default, "condition": cond or "always"})
        return rows

    def _condition_text(self, parent: str, allowed) -> str:
        """``n >= 2``, ``op_1 == SKIP``, ``op_1 in (SKIP | ZERO)``, ``pool_opt_1 present``."""
        spec = self.specs[parent]
        if spec.kind == BOOLEAN:
            return f"{parent} present" if list(allowed) == [True] else f"{parent} absent"
        counts = spec.possible_counts()
        if counts and not spec.op and list(allowed) == [c for c in counts if c >= min(allowed)]:
            return f"{parent} >= {min(allowed)}"
        if len(allowed) == 1:
            return f"{parent} == {allowed[0]}"
        return f"{parent} in ({' | '.join(map(str, allowed))})"

    def size(self):
        """How many architectures the space holds: distinct assignments of the hyperparameters
        that are used (active), each one fixed text.

        A name is used when any of its places is reached: under a repetition index the count
        reaches, in the chosen alternative of an operation choice, in a present optional item.
        Two assignments are counted apart even when they spell the same layers (``{op: CONV(16)
        | CONV(16, 3)}`` counts 2); write each alternative and value once.

        Returns:
            An ``int`` for a finite space (NAS-Bench-201's cell space: 15,625), ``math.inf``
            when a float range is used (``{lr: 1e-4..1e-2 log}``).

        Raises:
            KBlocksError: a space whose counts and choices nest into more than a million
                combinations to walk through (the product of independent parts is not walked).
        """
        from kblocks.search.counting import count_space

        return count_space(self.specs, self._uses)

    def table(self) -> str:
        """:meth:`describe` as an aligned plain-text table.

        Returns:
            The table, one line per hyperparameter under a header.
        """
        rows = [{"name": "name", "kind": "kind", "values": "values", "default": "default",
                 "condition": "active when"}] + self.describe()
        keys = list(rows[0])
        widths = {k: max(len(str(r[k])) for r in rows) for k in keys}
        lines = ["  ".join(str(r[k]).ljust(widths[k]) for k in keys).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * widths[k] for k in keys))
        return "\n".join(lines)

    # -- one architecture -------------------------------------------------------------------------
    def _checked(self, values) -> dict:
        """The space's values in ``values``, each checked against its range.

        A ``HyperParameters`` or a ``Trial`` may hold hyperparameters of the caller's own (a
        learning rate tuned beside the architecture): those are not the space's and are left
        out. A plain mapping is the caller's own writing, so a name the space does not have is
        an error (a misspelt ``n_l`` would otherwise build the default silently)."""
        from_tuner = values is not None and not isinstance(values, dict)
        given = {k: v for k, v in _values_of(values).items() if not str(k).startswith("tuner/")}
        out = {}
        for name, value in given.items():
            spec = self.specs.get(name)
            if spec is None:
                if from_tuner:
                    continue
                from kblocks.common.suggest import did_you_mean

                raise KBlocksError(f"the space has no hyperparameter {name!r}", what=name,
                                   hint=did_you_mean(name, self.specs) or
                                   "its hyperparameters are " + (", ".join(self.specs) or "none")
                                   + "; pass a keras_tuner.HyperParameters to leave your own "
                                     "hyperparameters out")
            why = spec.check(value)
            if why is not None:
                raise KBlocksError(f"got {value!r}, but {name} {why}", what=name)
            out[name] = value
        return out

    def compile(self, values=None):
        """The layer graph of one architecture of the space (makes no Keras objects).

        Args:
            values: hyperparameter values (mapping, ``HyperParameters`` or ``Trial``); missing
                ones take their defaults. None: every default. Names that are not the space's
                are ignored in a ``HyperParameters`` or ``Trial`` (the caller's own, such as a
                learning rate) and refused in a mapping.

        Returns:
            The :class:`kblocks.lang.graph.Graph` of that architecture.

        Raises:
            KBlocksError: a name of a mapping that the space does not have, or a value outside
                its range.
            ArchitectureError: an architecture whose shapes do not fit (e.g. pooled below 1x1).
        """
        from kblocks.lang import api

        resolver = ValuesResolver(self.specs, self._checked(values))
        return api.compile(self.arch, resolver=resolver)

    def build(self, values=None, *, name=None):
        """The Keras model of one architecture (float pixels in, no preprocessing).

        Args:
            values: hyperparameter values, as for :meth:`compile`.
            name: the model's name (default: the space's).

        Returns:
            A ``keras.Model``.

        Raises:
            KBlocksError: as :meth:`compile`, or Keras refusing a layer argument.
        """
        from kblocks.lang.emit import emit

        graph = self.compile(values)
        model = emit(graph, name=name or _model_name(self.name))
        model._kblocks_graph = graph
        return model

    def fixed(self, values=None) -> str:
        """Canonical text of one architecture.

        Args:
            values: hyperparameter values, as for :meth:`compile`.

        Returns:
            Architecture text with no placeholders left; it rebuilds the same model.
        """
        return self.compile(values).canonical_text()

    def architecture(self, values=None, *, name=None, doc=None) -> dict:
        """One architecture as a complete architecture file (what ``best.yaml`` holds).

        Args:
            values: hyperparameter values, as for :meth:`compile`.
            name: the file's ``name`` (default: ``<space>-fixed``).
            doc: an optional ``doc`` text.

        Returns:
            A mapping with ``name``, ``input``, ``classes``, ``blocks`` and ``network``.
        """
        graph = self.compile(values)
        out = {"name": name or f"{self.name}-fixed"}
        if doc:
            out["doc"] = doc
        out["input"] = list(graph.input_shape)
        if self.classes is not None:
            out["classes"] = self.classes
        if self._data.get("blocks"):
            out["blocks"] = copy.deepcopy(self._data["blocks"])
        out["network"] = graph.canonical_text()
        return out

    # -- searching --------------------------------------------------------------------------------
    def hypermodel(self, *, compile=None, name=None):
        """A ``keras_tuner.HyperModel`` over this space, for any Keras Tuner tuner.

        ``build(hp)`` registers the space's hyperparameters on ``hp`` (with their conditions) and
        returns the compiled kblocks model of the architecture they pick; your own
        hyperparameters (``hp.Float("lr", ...)`` in ``compile=`` or in a subclass's
        ``compile``/``fit``) sit beside them in every trial.

        Args:
            compile: ``compile(model, hp)``, called on every built model; None compiles with the
                model's defaults (Adam, the loss that fits its head, accuracy).
            name: the hypermodel's name (default: the space's).

        Returns:
            A :class:`kblocks.search.hypermodel.HyperModel` (subclass it to override
            ``compile(model, hp)`` or ``fit(hp, model, *args, **kwargs)``).

        Example:

            tuner = keras_tuner.RandomSearch(space.hypermodel(), objective="val_accuracy",
                                             max_trials=10, directory="runs")
            tuner.search(x, y, validation_split=0.2, epochs=5)
        """
        from kblocks.search.hypermodel import HyperModel

        return HyperModel(self, compile=compile, name=name)

    def tuner(self, kind: str = "random", **kwargs):
        """A Keras Tuner tuner over this space.

        Args:
            kind: ``random``, ``grid``, ``bayesian``, ``hyperband`` or ``evolution``.
            **kwargs: passed to :func:`kblocks.search.tuner.make_tuner` (``objective``,
                ``max_trials``, ``directory``, ``project_name``, ``data``, ``budget``, ...).

        Returns:
            A ``keras_tuner.Tuner`` whose trials build architectures of this space.

        Raises:
            ConfigError: an unknown ``kind`` or options it does not take.
        """
        from kblocks.search.tuner import make_tuner

        return make_tuner(self, kind, **kwargs)


def _model_name(name: str) -> str:
    out = "".join(c if c.isalnum() or c in "_-" else "_" for c in (name or "kblocks"))
    return out or "kblocks"

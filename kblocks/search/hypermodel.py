"""A search space as a plain ``keras_tuner.HyperModel``, for any Keras Tuner tuner.

    hypermodel = space.hypermodel()                     # or HyperModel(space, compile=...)
    tuner = keras_tuner.Hyperband(hypermodel, objective="val_accuracy", max_epochs=4,
                                  directory="runs", project_name="cnn")
    tuner.search(x, y, validation_split=0.2)
    best = space.fixed(tuner.get_best_hyperparameters()[0])   # the text of the best architecture

:meth:`HyperModel.build` registers the space's hyperparameters on the trial's ``hp`` (one
``hp.Choice`` / ``hp.Int`` / ``hp.Float`` / ``hp.Boolean`` per name, under the nested
``hp.conditional_scope`` s of the repetition counts, operation choices and optional items it
depends on, so an inactive width is never sampled), builds the kblocks model they pick and compiles it through :meth:`HyperModel.compile`.
Hyperparameters of the user's own (a learning rate in a ``compile`` hook, a batch size in
``fit``) are registered on the same ``hp`` and the space leaves them alone.

This is the seam for a user's own tuner. ``kblocks search`` and :meth:`SearchSpace.tuner` use
:class:`kblocks.search.tuner.SpaceHyperModel` instead, which trains each trial with the
trainer's recipe (normalisation inside, schedules, the trainer's checkpoints).
"""
from __future__ import annotations

from contextlib import ExitStack

import keras_tuner

from kblocks.common.errors import ConfigError
from kblocks.search.resolver import BOOLEAN


class HyperModel(keras_tuner.HyperModel):
    """The architectures of a :class:`~kblocks.search.space.SearchSpace` as a Keras Tuner
    hypermodel.

    Override :meth:`compile` (``compile(model, hp)``) to compile with hyperparameters of your
    own, and :meth:`fit` (``fit(hp, model, *args, **kwargs)``, Keras Tuner's own hook) to train
    with them; or pass ``compile=`` a function of the same signature.

    Args:
        space: the search space.
        compile: ``compile(model, hp)``, called on each built model instead of :meth:`compile`'s
            default; it compiles ``model`` in place (it may also return a model to use instead).
        name: the hypermodel's name (default: the space's).
        tunable: as for ``keras_tuner.HyperModel``.

    Raises:
        ConfigError: ``compile=`` that is not callable.

    The space's hyperparameter names (:attr:`SearchSpace.names`) are its own: give yours other
    names (a name already registered on ``hp`` as a different hyperparameter is an error).
    Models take float values as given (no normalisation inside, as :func:`kblocks.build`).
    """

    def __init__(self, space, *, compile=None, name=None, tunable=True):
        if compile is not None and not callable(compile):
            raise ConfigError(f"compile= takes a function compile(model, hp), got "
                              f"{type(compile).__name__}", what="compile")
        super().__init__(name=name or space.name, tunable=tunable)
        self.space = space
        self._compile_hook = compile

    def register(self, hp) -> dict:
        """Register the space's hyperparameters on ``hp``; their values.

        Args:
            hp: a ``keras_tuner.HyperParameters`` (a trial's, or a fresh one: every
                hyperparameter then takes its default).

        Returns:
            ``{name: value}`` of the space's active hyperparameters.

        Raises:
            ConfigError: ``hp`` already holds a different hyperparameter under one of the
                space's names.
        """
        space = self.space
        values = {}
        for name in _parents_first(space):
            spec = space.specs[name]
            conditions = space.conditions[name]
            _check_not_taken(hp, spec)
            with ExitStack() as stack:
                for parent, allowed in conditions:
                    stack.enter_context(hp.conditional_scope(parent, list(allowed)))
                value = _declare(hp, spec)
            if value is not None:
                values[name] = value
        return values

    def build(self, hp):
        """The compiled model of the architecture ``hp`` picks (its hyperparameters registered).

        Args:
            hp: the trial's ``keras_tuner.HyperParameters``.

        Returns:
            A compiled ``keras.Model`` (a :class:`kblocks.Network`).
        """
        model = self.space.build(self.register(hp))
        compiled = self.compile(model, hp)
        return model if compiled is None else compiled

    def compile(self, model, hp):
        """Compile ``model``; override to use hyperparameters of your own.

        The default calls ``compile=`` if given, else ``model.compile()`` with the model's
        defaults (Adam, the cross-entropy that fits its head, accuracy).

        Args:
            model: the built model.
            hp: the trial's hyperparameters (register yours on it: ``hp.Float("lr", ...)``).

        Returns:
            None (``model`` is compiled in place), or the model to use instead.
        """
        if self._compile_hook is not None:
            return self._compile_hook(model, hp)
        model.compile()
        return None


def _parents_first(space) -> list:
    """The space's names, each after the counts its conditions read (Keras Tuner needs a parent
    registered before a conditional scope names it)."""
    done, order, pending = set(), [], list(space.names)
    while pending:
        ready = [n for n in pending
                 if all(p in done or p not in space.specs for p, _ in space.conditions[n])]
        if not ready:  # a condition cycle cannot come out of the expander; keep the text's order
            ready = pending[:1]
        for name in ready:
            done.add(name)
            order.append(name)
            pending.remove(name)
    return order


def _declare(hp, spec):
    """``hp.Choice`` / ``hp.Int`` / ``hp.Float`` / ``hp.Boolean`` for one of the space's names."""
    if spec.kind == "choice":
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in spec.tuner_values)
        return hp.Choice(spec.name, list(spec.tuner_values), ordered=numeric,
                         default=spec.default)
    if spec.kind == BOOLEAN:
        return hp.Boolean(spec.name, default=True)
    sampling = "log" if spec.log else "linear"
    if spec.kind == "int":
        return hp.Int(spec.name, spec.low, spec.high, step=spec.step, sampling=sampling,
                      default=spec.default)
    return hp.Float(spec.name, spec.low, spec.high, step=spec.step, sampling=sampling,
                    default=spec.default)


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("conditions", "default")}


def _check_not_taken(hp, spec):
    """A hyperparameter of the user's under one of the space's names would be read back as the
    space's (Keras Tuner returns the registered one): refuse it, naming both."""
    wanted = keras_tuner.HyperParameters.from_config(
        {"space": [spec.tuner_config([])], "values": {}}).space[0]
    for other in hp.space:
        if other.name != spec.name:
            continue
        if isinstance(other, keras_tuner.engine.hyperparameters.Fixed):  # pinned: hp.Fixed(...)
            why = spec.check(other.value)
            if why is not None:
                raise ConfigError(f"hp.Fixed({spec.name!r}, {other.value!r}) pins a value the "
                                  f"space does not allow: {spec.name} {why}", what=spec.name)
            continue
        if type(other) is not type(wanted) or \
                _comparable(other.get_config()) != _comparable(wanted.get_config()):
            raise ConfigError(
                f"hp already holds a {type(other).__name__} named {spec.name!r}, but that name is "
                f"the search space's {spec.kind} hyperparameter ({spec.describe()})",
                what=spec.name, hint="give your own hyperparameter another name (the space's "
                                     "are listed by space.names)")

"""``Network``: the functional ``keras.Model`` every kblocks model is, with compile defaults that
match its head.

A kblocks network ends as its text says: an ``FC`` at the end emits **logits**; a ``SOFTMAX`` at
the end (or ``classifier_activation="softmax"``) emits **probabilities**. ``Network`` knows which:

* ``fit`` / ``evaluate`` with no ``compile`` call compile with the defaults of :meth:`compile`
  (Adam, ``SparseCategoricalCrossentropy(from_logits=<head emits logits>)``, accuracy; mean
  squared error for an output that is not ``(batch, classes)``), as KerasHub task models do;
* a ``compile`` whose cross-entropy contradicts the head (a probability loss such as the string
  ``"sparse_categorical_crossentropy"`` on logits, or ``from_logits=True`` on a softmax head) is
  made right, with one warning that names the fix.

Files: a ``Network`` is saved as Keras' own ``Functional`` (module and class name) with
``registered_name="kblocks>Network"``. After ``import kblocks`` the file loads (``safe_mode=True``)
as a ``Network``; without kblocks Keras falls back to the module and class name and loads it as a
plain functional model. The config also keeps, under :data:`CONFIG_KEY`, the canonical
architecture text, input shape and classes of a model :func:`kblocks.build` made; a loaded
``Network`` has them as :attr:`Network.kblocks_text` (``kblocks.summary`` then shows the kblocks
summary, with the text of each layer), and plain Keras ignores the key. (Why a subclass rather than a check at fit time: only a model can default
its own ``compile`` and catch ``fit`` without one; the masquerade keeps files plain-Keras.)
"""
from __future__ import annotations

import warnings

import keras

from kblocks.lang.conventions import main_output, output_is_probability

CONFIG_KEY = "kblocks"  #: key of the architecture text, input shape and classes in the config
_CROSSENTROPY = {"sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                 "categorical_crossentropy": "CategoricalCrossentropy"}


@keras.saving.register_keras_serializable(package="kblocks", name="Network")
class Network(keras.Model):
    """A functional model whose ``compile`` defaults match its head (see the module docstring)."""

    @property
    def outputs_probabilities(self) -> bool:
        """True when the main output comes out of a softmax; False for logits."""
        return output_is_probability(self)

    def _heads(self):
        """``{output key or index: emits probabilities}`` for each output."""
        out = self.output
        if isinstance(out, dict):
            return {k: output_is_probability(self, t) for k, t in out.items()}
        if isinstance(out, (list, tuple)):
            return {k: output_is_probability(self, t) for k, t in enumerate(out)}
        return {None: output_is_probability(self, main_output(self))}

    def _classifier(self) -> bool:
        """True when the main output is ``(batch, classes)``; an image-shaped output (the zoo's
        autoencoder) is not a classifier head."""
        return len(getattr(main_output(self), "shape", ())) == 2

    def default_loss(self):
        """``SparseCategoricalCrossentropy(from_logits=<head emits logits>)`` (per output), or
        mean squared error for a model whose output is not ``(batch, classes)``."""
        if not self._classifier():
            return "mean_squared_error"
        heads = self._heads()
        if None in heads:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=not heads[None])
        losses = {k: keras.losses.SparseCategoricalCrossentropy(from_logits=not p)
                  for k, p in heads.items()}
        return losses if isinstance(self.output, dict) else [losses[k] for k in sorted(losses)]

    def compile(self, optimizer="adam", loss="auto", metrics="auto", **kwargs):
        """``keras.Model.compile`` with defaults for this head: ``loss`` defaults to
        :meth:`default_loss` and ``metrics`` to accuracy. A cross-entropy that contradicts the head
        is replaced by the right one, with a warning."""
        if isinstance(loss, str) and loss == "auto":
            loss = self.default_loss()
        else:
            loss = self._checked_loss(loss)
        if isinstance(metrics, str) and metrics == "auto":
            if not self._classifier():
                metrics = None
            else:
                metrics = (["accuracy"] if not isinstance(self.output, dict)
                           else {k: ["accuracy"] for k in self.output})
        return super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def _checked_loss(self, loss):
        heads = self._heads()
        if isinstance(loss, dict) and None not in heads:
            return {k: (_fix(v, heads[k], k) if k in heads else v) for k, v in loss.items()}
        if isinstance(loss, (list, tuple)) and None not in heads:
            return [(_fix(v, heads[k], k) if k in heads else v) for k, v in enumerate(loss)]
        if None not in heads:  # one loss for every output
            return _fix(loss, heads[0 if 0 in heads else "output" if "output" in heads
                                    else next(iter(heads))], None)
        return _fix(loss, heads[None], None)

    def get_compile_config(self):
        return super().get_compile_config()

    def _architecture(self):
        """``{"text", "input_shape", "classes"}`` of the graph this model was built from, or of
        the file it was loaded from; None for a model that has neither."""
        graph = getattr(self, "_kblocks_graph", None)
        if graph is None:
            return getattr(self, "_kblocks_architecture", None)
        shape = graph.shape_of(graph.outputs[0]) if graph.outputs else ()
        return {"text": graph.canonical_text(), "input_shape": list(graph.input_shape),
                "classes": int(shape[-1]) if len(shape) == 1 else None}

    @property
    def kblocks_text(self):
        """The canonical architecture text this model was built from (kept in its file), or
        None."""
        arch = self._architecture()
        return arch.get("text") if isinstance(arch, dict) else None

    def get_config(self):
        config = super().get_config()
        arch = self._architecture()
        if arch is not None:
            config[CONFIG_KEY] = dict(arch)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        arch = config.pop(CONFIG_KEY, None)
        model = super().from_config(config, custom_objects=custom_objects)
        if isinstance(arch, dict) and isinstance(arch.get("text"), str):
            model._kblocks_architecture = arch
        return model

    def compile_from_config(self, config):
        """As Keras' own (which skips models whose ``compile`` is overridden)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _compile_if_needed(self):
        if not self.compiled:
            self.compile()

    def fit(self, *args, **kwargs):
        self._compile_if_needed()
        return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        self._compile_if_needed()
        return super().evaluate(*args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._compile_if_needed()
        return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        self._compile_if_needed()
        return super().test_on_batch(*args, **kwargs)


# Saved as Keras' Functional (module and class name) with registered_name "kblocks>Network": with
# kblocks imported the registered name wins; without it the file loads as a plain functional model.
# (Keras injects its Functional class into the bases at the first functional construction, so
# only public API is used here; the module string is where Keras defines Functional.)
Network.__module__ = "keras.src.models.functional"
Network.__name__ = "Functional"


def _fix(loss, probabilities: bool, key):
    """``loss``, or the cross-entropy of the same kind with ``from_logits`` right for the head."""
    want_logits = not probabilities
    if isinstance(loss, str) or callable(loss) and not isinstance(loss, keras.losses.Loss):
        name = loss if isinstance(loss, str) else getattr(loss, "__name__", "")
        cls_name = _CROSSENTROPY.get(name)
        if cls_name is None or probabilities:  # a string or Keras function loss takes probabilities
            return loss
        fixed = getattr(keras.losses, cls_name)(from_logits=True)
        _warn(key, f"the loss {name!r} expects probabilities", fixed, cls_name)
        return fixed
    if isinstance(loss, (keras.losses.SparseCategoricalCrossentropy,
                         keras.losses.CategoricalCrossentropy,
                         keras.losses.CategoricalFocalCrossentropy)):
        config = loss.get_config()
        if bool(config.get("from_logits", False)) == want_logits:
            return loss
        config["from_logits"] = want_logits
        fixed = type(loss).from_config(config)
        said = "from_logits=True would apply a second softmax" if probabilities else \
            "from_logits=False expects probabilities"
        _warn(key, said, fixed, type(loss).__name__)
        return fixed
    return loss


def _warn(key, said, fixed, cls_name):
    head = "probabilities (it ends in a softmax)" if fixed.get_config()["from_logits"] is False \
        else "logits (no softmax at the end)"
    where = f"output {key!r} of this model emits" if key is not None else "this model emits"
    other = 'classifier_activation="softmax"' if "logits" in head else "classifier_activation=None"
    warnings.warn(
        f"kblocks: {where} {head} but {said}; compiling with keras.losses.{cls_name}("
        f"from_logits={fixed.get_config()['from_logits']}) instead. Pass that loss, or build the "
        f"model with kblocks.build(..., {other}), to silence this warning.",
        UserWarning, stacklevel=5)


def as_network(model) -> Network:
    """``model`` (a functional model) as a :class:`Network` sharing its layers and weights."""
    if isinstance(model, Network):
        return model
    return Network(model.inputs, model.outputs if not isinstance(model.output, dict)
                   else model.output, name=model.name)

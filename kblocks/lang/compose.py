"""Composition: the network of an architecture as one Keras layer, to put inside a bigger model.

:func:`layer` makes an :class:`ArchitectureLayer`; it is registered with Keras' serialization
under the package ``kblocks``, so a model holding one (functional or subclassed) saves and reloads
with ``keras.saving.load_model(path, safe_mode=True)`` after ``import kblocks``. (Its own module:
it compiles with :mod:`api` and emits with :mod:`emit`, which imports :mod:`layers`.)
"""
from __future__ import annotations

import keras

from kblocks.common.errors import KBlocksError
from kblocks.common.suggest import did_you_mean
from kblocks.lang import api
from kblocks.lang.conventions import CLASSIFIER_ACTIVATIONS
from kblocks.lang.emit import emit

#: The keyword arguments of :func:`layer` (a misspelt one is refused with the closest of these).
LAYER_PARAMETERS = ("classes", "variables", "blocks", "classifier_activation", "name")


def layer(source, *, classes=None, variables=None, blocks=None, classifier_activation=None,
          name=None, **unknown):
    """A Keras layer that is the network of an architecture, to put inside your own model.

    >>> body = layer("[CONV(32)-RELU]*2-GAP-FC", classes=10)
    >>> outputs = body(keras.Input((32, 32, 3)))    # the input shape comes from the caller

    The layer (:class:`ArchitectureLayer`) builds the network when it is first
    called, for the shape it is called on, and holds its weights. Its config is the source and
    these arguments, so a model holding it saves and reloads with
    ``keras.saving.load_model(path, safe_mode=True)`` after ``import kblocks`` (a zoo name or a
    YAML file is read again when the model is loaded).

    Args:
        source: architecture text, a zoo name or a YAML file path.
        classes: units of the last FC written without units.
        variables: values of the variables the text uses, ``variables={"N": 2}``.
        blocks: extra named blocks: a mapping ``name: body`` or a YAML file path.
        classifier_activation: ``None`` (the text's head, logits after an ``FC``) or ``"softmax"``.
        name: the layer's name (default: Keras' ``architecture_layer``, numbered).

    Returns:
        An :class:`ArchitectureLayer` (a ``keras.layers.Layer``).

    Raises:
        ParseError: the text does not follow the grammar.
        KBlocksError: an unknown keyword argument, or an argument that cannot be saved in a Keras
            config (a ``resolver``, a ``BlockLibrary``). Errors of the network for its input shape
            (as :func:`kblocks.compile` raises) come at the first call.
    """
    if unknown:
        key = next(iter(unknown))
        params = list(LAYER_PARAMETERS)
        hint = ("a layer is saved as its text: write the placeholders' values with "
                "kblocks.format_text(text, resolver=...) first" if key == "resolver" else
                did_you_mean(key, params) or f"its parameters are {', '.join(params)}")
        raise KBlocksError(f"kblocks.layer() got an unexpected keyword argument {key!r}", hint=hint)
    kwargs = {} if name is None else {"name": name}
    return ArchitectureLayer(source, classes=classes, variables=variables, blocks=blocks,
                             classifier_activation=classifier_activation, **kwargs)


@keras.saving.register_keras_serializable(package="kblocks")
class ArchitectureLayer(keras.layers.Layer):
    """The network of an architecture as one layer, to put inside a bigger Keras model
    (:func:`kblocks.layer` makes it).

    The network (a :class:`kblocks.Network`) is built in :meth:`build`, for the shape the layer
    is first called on, so the input shape comes from the caller; the layer holds its weights.
    The config is the source and the build arguments, all JSON values, so a model holding this
    layer saves and reloads with ``keras.saving.load_model(path, safe_mode=True)``.

    Args:
        architecture: architecture text, a zoo name or a YAML file path.
        classes: units of the last FC written without units.
        variables: ``{name: value}`` of the variables the text uses.
        blocks: ``None``, a mapping ``name: body`` or a YAML file path.
        classifier_activation: ``None`` (the text's head) or ``"softmax"``.

    Input: one tensor, batch first, fixed sizes otherwise. Output: what the network outputs (a
    dict ``output``, ``aux1``, ... for a text with ``AUX[...]`` heads).
    """

    def __init__(self, architecture, classes=None, variables=None, blocks=None,
                 classifier_activation=None, **kwargs):
        super().__init__(**kwargs)
        if hasattr(architecture, "__fspath__"):
            architecture = str(architecture)
        if not isinstance(architecture, str):
            raise KBlocksError(f"a layer's architecture is a text, a zoo name or a YAML path, got "
                               f"{type(architecture).__name__}")
        if blocks is not None and not isinstance(blocks, (str, dict)):
            raise KBlocksError("a layer's blocks= is a mapping name: body or a YAML path (a "
                               "BlockLibrary cannot be saved in a Keras config)")
        if classifier_activation not in CLASSIFIER_ACTIVATIONS:
            raise KBlocksError(f"classifier_activation={classifier_activation!r}: use None or "
                               f"\"softmax\"")
        self.architecture = architecture
        self.classes = classes
        self.text_variables = api._variables(layer, architecture, variables, {})
        self.blocks = blocks
        self.classifier_activation = classifier_activation
        api.parse(api._as_arch(architecture).network)  # a mistake in the text shows at once
        self.network = None

    def build(self, input_shape):
        graph = api.compile(self.architecture, input_shape=tuple(input_shape)[1:],
                            classes=self.classes, blocks=self.blocks, variables=self.text_variables)
        self.network = emit(graph, name=f"{self.name}_network",
                            classifier_activation=self.classifier_activation)
        self.network._kblocks_graph = graph  # kblocks.summary(layer.network)

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture, "classes": self.classes,
                "variables": dict(self.text_variables), "blocks": self.blocks,
                "classifier_activation": self.classifier_activation}

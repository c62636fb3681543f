"""Layer graph to Keras: one Keras layer per graph node, connected with the functional API.

Layer names follow the graph (``conv_3``, ``basic2_bn_7``) so weights can be read and matched by
name, and the summary's names are the model's names. Under a mixed-precision policy the layers that
produce the model's outputs compute in float32, as Keras' mixed-precision guide advises.
"""
from __future__ import annotations

import keras

from kblocks.common.errors import ArchitectureError, LimitError
from kblocks.lang.graph import INPUT, Graph, Node


def _kwargs(node: Node) -> dict:
    spec = node.spec
    kw = dict(spec.fixed)
    for arg in spec.args:
        if arg.keras is None:
            continue
        value = node.get(arg.name)
        if value is None:
            continue
        kw[arg.keras] = list(value) if isinstance(value, tuple) and arg.type == "shape" else value
    kw.update(dict(node.extra))
    return kw


def make_layer(node: Node, in_shape, *, name=None, dtype=None) -> keras.layers.Layer:
    """The Keras layer of one graph node, made by its kind's factory (:mod:`kblocks.lang.kinds`)."""
    spec = node.spec
    kw = _kwargs(node)
    kw["name"] = name or node.name
    if dtype is not None:
        kw["dtype"] = dtype
    try:
        return spec.kind.keras(_layers_module(spec.kind), spec, kw, in_shape)
    except KEYWORD_ERRORS as err:
        raise refused(node, err) from None


#: what Keras raises for a keyword value it does not accept, when the layer is made or first
#: called (``BN(axis=7)`` was an ``IndexError`` from ``build``)
KEYWORD_ERRORS = (TypeError, ValueError, IndexError, KeyError, AttributeError, NotImplementedError)


def refused(node: Node, err: BaseException) -> ArchitectureError:
    """Keras' refusal of a node's layer as an :class:`ArchitectureError` at the node's place."""
    first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
    return ArchitectureError(f"Keras refused {_class_name(node.spec)}: {first[:300]}",
                             span=node.span, what=node.token,
                             hint="check the extra keyword arguments")


def _call(layer, node: Node, args):
    """``layer(args)``: building the layer's weights is where Keras checks many keyword values;
    running out of memory there is a :class:`LimitError` naming the layer."""
    try:
        return layer(args)
    except ArchitectureError:
        raise
    except KEYWORD_ERRORS as err:
        raise refused(node, err) from None
    except Exception as err:  # only memory exhaustion is put in words
        if isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError":
            raise LimitError(f"out of memory making the weights of {_class_name(node.spec)}",
                             span=node.span, what=node.token,
                             hint="use fewer filters/units or a machine with more memory") from None
        raise


def _layers_module(kind):
    """Where a kind's Keras class lives: ``keras.layers``, or kblocks' own layers."""
    if kind.custom:
        from kblocks.lang import layers

        return layers
    return keras.layers


def _class_name(spec) -> str:
    """The layer class as Keras registers it: ``kblocks>LRN`` for kblocks' own layers."""
    if spec.kind.custom:
        return f"kblocks>{spec.keras_class}"
    return spec.keras_class or spec.token


def emit(graph: Graph, *, name: str | None = None, classifier_activation=None,
         preprocess=None, input_tensor=None) -> keras.Model:
    """Make the :class:`kblocks.lang.models.Network` of a graph.

    The network ends as the graph says (an ``FC`` emits logits); ``classifier_activation="softmax"``
    appends a ``Softmax`` to each output that does not already end in one, as
    ``keras.applications`` does. ``preprocess`` (a layer, e.g.
    :func:`kblocks.lang.conventions.normalization_layer`) is put between the input and the first layer;
    without it the input is taken as given. ``input_tensor`` (a Keras tensor) is where the
    network starts instead of a new ``keras.Input``; the model's inputs are then the inputs that
    tensor comes from, as in ``keras.applications``."""
    from kblocks.lang.models import Network

    policy = keras.config.dtype_policy()
    mixed = policy.compute_dtype != policy.variable_dtype
    out_nodes = set(graph.outputs)
    if input_tensor is None:
        inputs = keras.Input(shape=graph.input_shape, name="input")
        sources = inputs
    elif isinstance(input_tensor, keras.KerasTensor):
        inputs = input_tensor
        sources = keras.utils.get_source_inputs(input_tensor)
        sources = sources[0] if len(sources) == 1 else sources
    else:
        raise ArchitectureError(f"input_tensor must be a Keras tensor (keras.Input(...) or a "
                                f"layer's output), got {type(input_tensor).__name__}")
    tensors = {INPUT: preprocess(inputs) if preprocess is not None else inputs}
    last = {}
    for node in graph.nodes:
        args = [tensors[i] for i in node.inputs]
        dtype = "float32" if (mixed and node.index in out_nodes) else None
        layer = make_layer(node, graph.shape_of(node.inputs[0]), dtype=dtype)
        tensors[node.index] = _call(layer, node, args if node.spec.kind.merge else args[0])
        last[node.index] = layer
    if classifier_activation == "softmax":
        for k, i in enumerate(graph.outputs):
            layer = last.get(i)
            if isinstance(layer, keras.layers.Softmax) or getattr(
                    getattr(layer, "activation", None), "__name__", "") == "softmax":
                continue
            tensors[i] = keras.layers.Softmax(name="classifier_softmax" if k == 0 else
                                              f"aux{k}_softmax", dtype="float32")(tensors[i])
    elif classifier_activation is not None:
        raise ArchitectureError(f"classifier_activation={classifier_activation!r}: use None "
                                f"(logits, the default) or \"softmax\" (probabilities)")
    outputs = [tensors[i] for i in graph.outputs]
    if len(outputs) > 1:  # named outputs: "output" first, then "aux1", "aux2", ...
        outputs = {("output" if k == 0 else f"aux{k}"): t for k, t in enumerate(outputs)}
    else:
        outputs = outputs[0]
    return Network(sources, outputs, name=name or "kblocks")

"""Finding layers of a trained model, and small models that expose what is inside it.

A model saved by ``kblocks train`` is ``input -> normalisation -> augmentation -> network``, where
``network`` is a nested Keras model holding every layer of the architecture. To reach those
layers, :class:`ModelView` re-runs the model's graph on a fresh input with every nested
Functional/Sequential model opened up (the layers themselves, and their weights, are shared, not
copied), and remembers each layer's input and output tensor in that flat graph. Sub-models such
as ``input -> conv_3`` are then ordinary ``keras.Model(view.input, view.output_of(layer))``.

``--layer`` is read in three ways, tried in this order:

1. an int (or a string of digits, negative allowed): an index into the layers of the network, not
   counting ``InputLayer``. For a model of ``kblocks train`` (one nested network) these are the
   network's layers, so the indices match ``kblocks summary`` and the ``_index`` that kblocks puts
   in layer names (``conv_3`` is index 3); for any other model they are the model's own layers
   (nested models opened up);
2. an exact Keras layer name (``conv_3``; inside a named block ``stem1_conv_3``);
3. a prefix: the *last* layer whose name starts with it (``conv`` -> the last convolution,
   ``stem1`` -> the last layer of the block ``stem1``).

Reference: intermediate outputs as in the Keras guide "The Functional API" (feature extraction with
``keras.Model(model.inputs, layer.output)``) and ``keras.models.clone_model(..., call_function=...)``,
used here with ``clone_function=lambda layer: layer`` to re-run a graph without copying it.
"""
from __future__ import annotations

import weakref

import numpy as np

import keras

from kblocks.common.errors import KBlocksError

__all__ = [
    "ModelView", "as_view", "model_layers", "resolve_layer", "layer_index", "describe_layers",
    "output_shape", "default_spatial_layer", "conv_layers", "conv_kernel", "feature_model",
    "logits_model", "to_probabilities", "input_shape", "num_classes", "predict",
]

_POOL_OR_FLATTEN = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten")


def _has_graph(model) -> bool:
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError, TypeError):
        return False


def _is_graph_model(layer) -> bool:
    return isinstance(layer, keras.Model) and (isinstance(layer, keras.Sequential) or _has_graph(layer))


def _first(tensors):
    """The main output: the first of a list, the ``"output"`` entry of a dict (else the first)."""
    if isinstance(tensors, dict):
        return tensors.get("output", next(iter(tensors.values())))
    return tensors[0] if isinstance(tensors, (list, tuple)) else tensors


class ModelView:
    """A trained model seen as one flat graph: its leaf layers in call order, and for each the
    tensors that go in and come out, all connected to ``view.input``.

    ``view.model`` computes the same as the original model (inference mode); ``view.layers`` are
    the layers ``--layer`` indexes (see the module docstring); ``view.all_layers`` every leaf layer,
    including the normalisation and augmentation around a trained network.
    """

    def __init__(self, model: keras.Model):
        # weak: views are cached per model, and a strong reference would keep every model alive
        self._source = weakref.ref(model)
        self._records: list = []  # (layer, inputs, output, owner) in call order
        self._out: dict = {}
        self._in: dict = {}
        self._owner = None
        if not _has_graph(model):
            # a subclassed model: no graph to open; only whole-model methods work
            self.model = model
            self.input = None
            self.all_layers = []
            self.layers = []
            return
        first = model.inputs[0]
        if len(model.inputs) != 1:
            raise KBlocksError(f"the model takes {len(model.inputs)} inputs; inspection needs a model "
                               "with one image input")
        self.input = keras.Input(batch_shape=tuple(first.shape), dtype=first.dtype, name="image")
        top = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        nested = [layer for layer in top if _is_graph_model(layer)]
        self._network = nested[0] if len(nested) == 1 else None
        output = self._run(model, (self.input,), {})
        self.model = keras.Model(self.input, _first(output), name=model.name)
        self.all_layers = []
        for layer, *_ in self._records:
            if not any(layer is seen for seen in self.all_layers):
                self.all_layers.append(layer)
        if self._network is not None:
            self.layers = [layer for layer in self.all_layers
                           if self._owner_of(layer) is self._network]
        else:
            self.layers = list(self.all_layers)

    @property
    def source(self):
        """The model this view was made from (``None`` once it is garbage)."""
        return self._source()

    # -- graph walking ------------------------------------------------------------------------

    def _owner_of(self, layer):
        for rec_layer, _, _, owner in self._records:
            if rec_layer is layer:
                return owner
        return None

    def _call(self, layer, *args, **kwargs):
        if _is_graph_model(layer):
            if self._owner is None and layer is self._network:
                self._owner = layer
                try:
                    return self._run(layer, args, kwargs)
                finally:
                    self._owner = None
            return self._run(layer, args, kwargs)
        out = layer(*args, **kwargs)
        self._records.append((layer, args[0] if len(args) == 1 else list(args), out, self._owner))
        self._out.setdefault(id(layer), out)
        self._in.setdefault(id(layer), args[0] if len(args) == 1 else list(args))
        return out

    def _run(self, model, args, kwargs):
        if isinstance(model, keras.Sequential):
            x = args[0]
            for layer in model.layers:
                if not isinstance(layer, keras.layers.InputLayer):
                    x = self._call(layer, x)
            return x
        produced = {}

        def call(layer, *a, **k):
            out = self._call(layer, *a, **k)
            produced.setdefault(id(layer), []).append(out)
            return out

        keras.models.clone_model(model, input_tensors=args[0] if len(args) == 1 else list(args),
                                 clone_function=lambda layer: layer, call_function=call)

        # map the model's outputs to the tensors of this run, by the (public) config entries
        # ``output_layers: [layer name, node index, tensor index]``
        def pick(entry):
            name, _, tensor_index = entry
            layer = model.get_layer(name)
            if id(layer) not in produced:
                raise KBlocksError(f"cannot follow the graph of the nested model {model.name!r}")
            out = produced[id(layer)][-1]
            return out[tensor_index] if isinstance(out, (list, tuple)) else out

        try:
            spec = model.get_config().get("output_layers")
        except Exception:  # noqa: BLE001 - a custom get_config; fall back to the last call
            spec = None
        if not spec:
            last = next(iter(reversed(list(produced.values()))))
            return last[-1]
        if isinstance(spec, dict):
            return {key: pick(entry) for key, entry in spec.items()}
        if spec and isinstance(spec[0], str):
            return pick(spec)
        outputs = [pick(entry) for entry in spec]
        return outputs[0] if len(outputs) == 1 else outputs

    # -- lookups --------------------------------------------------------------------------------

    def _check_graph(self):
        if self.input is None:
            raise KBlocksError("this model has no layer graph (a subclassed keras.Model), so its layers "
                               "cannot be inspected", hint="save the model as a Functional or "
                               "Sequential model; saliency, occlusion and fgsm still work")

    def output_of(self, layer):
        """The layer's output tensor in the flat graph (its first call)."""
        self._check_graph()
        try:
            return self._out[id(layer)]
        except KeyError:
            raise KBlocksError(f"layer {layer.name!r} is not part of this model") from None

    def input_of(self, layer):
        """The layer's input tensor in the flat graph (its first call)."""
        self._check_graph()
        try:
            return self._in[id(layer)]
        except KeyError:
            raise KBlocksError(f"layer {layer.name!r} is not part of this model") from None

    def sub_model(self, tensors) -> keras.Model:
        """``keras.Model(view.input, tensors)``."""
        self._check_graph()
        return keras.Model(self.input, tensors)


_VIEWS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def as_view(model) -> ModelView:
    """The (cached) :class:`ModelView` of a model; a view is returned as is."""
    if isinstance(model, ModelView):
        return model
    try:
        view = _VIEWS.get(model)
    except TypeError:
        view = None
    if view is None:
        view = ModelView(model)
        try:
            _VIEWS[model] = view
        except TypeError:
            pass
    return view


# --- layers ----------------------------------------------------------------------------------


def model_layers(model) -> list:
    """The layers ``--layer`` indexes (see the module docstring)."""
    return as_view(model).layers


def output_shape(layer, model=None) -> tuple:
    """The layer's (first) output shape, batch dimension included (``None``)."""
    out = as_view(model).output_of(layer) if model is not None else layer.output
    return tuple(_first(out).shape)


def layer_index(model, layer) -> int | None:
    for i, candidate in enumerate(model_layers(model)):
        if candidate is layer:
            return i
    return None


def describe_layers(model, only=None, limit: int = 40) -> str:
    """``0 conv_0 (None, 32, 32, 16), 1 relu_1 ...`` for error messages."""
    view = as_view(model)
    items = []
    for i, layer in enumerate(view.layers):
        if only is not None and not only(layer):
            continue
        items.append(f"{i} {layer.name} {output_shape(layer, view)}")
    if len(items) > limit:
        items = items[: limit // 2] + ["..."] + items[-limit // 2:]
    return ", ".join(items) if items else "(none)"


def resolve_layer(model, spec, *, option: str = "--layer"):
    """The layer that ``spec`` (int index, exact name or name prefix) points to.

    Raises ``KBlocksError`` naming ``option`` and listing the layers when nothing matches.
    """
    view = as_view(model)
    view._check_graph()
    layers, everything = view.layers, view.all_layers
    if isinstance(spec, keras.layers.Layer):
        if any(layer is spec for layer in everything):
            return spec
        raise KBlocksError(f"{option}: layer {spec.name!r} is not a layer of this model")
    if not layers:
        raise KBlocksError("the model has no layers to inspect")
    text = str(spec).strip()
    index = None
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        index = int(spec)
    elif text.lstrip("-").isdigit():
        index = int(text)
    if index is not None:
        if -len(layers) <= index < len(layers):
            return layers[index]
        raise KBlocksError(
            f"{option} {index} is out of range: the network has {len(layers)} layers "
            f"(0..{len(layers) - 1}, InputLayer not counted)",
            hint=f"pick one of: {describe_layers(view)}")
    for layer in everything:
        if layer.name == text:
            return layer
    matches = [layer for layer in everything if text and layer.name.startswith(text)]
    if matches:
        return matches[-1]
    raise KBlocksError(
        f"{option} {text!r} is neither a layer index, a layer name, nor the start of one",
        hint=f"layers are: {describe_layers(view)}")


def _is_spatial(layer, view) -> bool:
    return len(output_shape(layer, view)) == 4


def default_spatial_layer(model):
    """The last layer with a 4-D (batch, height, width, channels) output: where Grad-CAM looks.

    In a CNN that ends ``... -> conv -> relu -> global pooling / flatten -> dense``, that is the
    last activation before the pooling: the most semantic layer that still has a spatial layout.
    """
    view = as_view(model)
    view._check_graph()
    layers = view.layers
    stop = len(layers)
    for i, layer in enumerate(layers):  # the last pooling/flatten that makes a vector
        if type(layer).__name__ in _POOL_OR_FLATTEN:
            stop = i
    candidates = [layer for layer in layers[:stop] if _is_spatial(layer, view)]
    if not candidates:
        candidates = [layer for layer in view.all_layers if _is_spatial(layer, view)]
    if not candidates:
        raise KBlocksError("the model has no layer with a spatial (height x width x channels) output",
                           hint="Grad-CAM, CAM and feature maps need a convolutional model")
    return candidates[-1]


def _kernel(layer):
    for attr in ("kernel", "depthwise_kernel"):
        kernel = getattr(layer, attr, None)
        if kernel is not None and len(kernel.shape) == 4:
            return kernel
    return None


def conv_layers(model) -> list:
    """Layers with a 2-D convolution kernel ``(kh, kw, in, out)``, in order."""
    return [layer for layer in model_layers(model) if _kernel(layer) is not None]


def conv_kernel(layer) -> np.ndarray | None:
    """The layer's 2-D convolution kernel as numpy ``(kh, kw, in, out)``, or ``None``."""
    kernel = _kernel(layer)
    return None if kernel is None else keras.ops.convert_to_numpy(kernel)


def feature_model(model, layers) -> keras.Model:
    """A model from the input to the outputs of ``layers`` (one layer or a list)."""
    view = as_view(model)
    if isinstance(layers, (list, tuple)):
        return view.sub_model([_first(view.output_of(layer)) for layer in layers])
    return view.sub_model(_first(view.output_of(layers)))


def input_shape(model) -> tuple:
    """``(height, width, channels)`` of the model's (first) input."""
    model = model.model if isinstance(model, ModelView) else model
    return tuple(model.inputs[0].shape[1:])


def num_classes(model) -> int:
    model = model.model if isinstance(model, ModelView) else model
    return int(model.outputs[0].shape[-1])


# --- scores before softmax ---------------------------------------------------------------------


def _is_softmax_activation(fn) -> bool:
    return fn is not None and getattr(fn, "__name__", "") == "softmax"


def _is_identity(layer) -> bool:
    activation = getattr(layer, "activation", None)
    return (isinstance(layer, keras.layers.Activation) and getattr(activation, "__name__", "") == "linear") \
        or type(layer).__name__ == "Identity"


def _final_softmax(view: ModelView):
    """How the model's last step applies softmax: ``("layer"|"dense"|None, layer)``.

    Trailing identity layers (a ``float32`` cast ``Activation("linear")``) are looked through.
    """
    chain = [rec for rec in view._records]
    if not chain:
        return None, None
    output = _first(view.model.outputs)
    k = len(chain) - 1
    while k >= 0 and chain[k][2] is not output and _first(chain[k][2]) is not output:
        k -= 1
    while k > 0 and _is_identity(chain[k][0]):
        tensor = chain[k][1]
        k -= 1
        while k >= 0 and _first(chain[k][2]) is not tensor:
            k -= 1
    if k < 0:
        return None, None
    last = chain[k][0]
    if isinstance(last, keras.layers.Softmax):
        return "layer", last
    if isinstance(last, keras.layers.Activation) and _is_softmax_activation(last.activation):
        return "layer", last
    if isinstance(last, keras.layers.Dense) and _is_softmax_activation(last.activation):
        return "dense", last
    return None, last


_LOGITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def logits_model(model):
    """``(scores_model, applies_softmax)``: a model whose output is the class scores before softmax.

    Saliency and Grad-CAM take the gradient of the *unnormalised* class score (Simonyan et al.
    2014; Selvaraju et al. 2017), because the softmax couples all classes. When the model ends in a
    ``Softmax``/``Activation("softmax")`` layer the scores are that layer's input; when it ends in
    ``Dense(..., activation="softmax")`` a linear twin of the dense layer sharing its weights is
    added. Otherwise the model's output is taken as the scores (``applies_softmax=False``).
    The scores model is built on the flat view, so ``view.output_of(layer)`` tensors belong to it.
    """
    view = as_view(model)
    cached = _LOGITS.get(view)
    if cached is not None:
        return cached
    if view.input is None:
        return view.model, False
    kind, last = _final_softmax(view)
    if kind == "layer":
        result = view.sub_model(_first(view.input_of(last))), True
    elif kind == "dense":
        config = dict(last.get_config())
        config["activation"] = "linear"
        config["name"] = last.name + "_logits"
        twin = type(last).from_config(config)
        logits = twin(_first(view.input_of(last)))
        twin.set_weights(last.get_weights())
        result = view.sub_model(logits), True
    else:
        result = view.model, False
    _LOGITS[view] = result
    return result


def to_probabilities(outputs: np.ndarray, applies_softmax: bool) -> np.ndarray:
    """Class probabilities from scores: softmax when the model applies one (or when the outputs
    do not already look like probabilities)."""
    outputs = np.asarray(outputs, dtype="float64")
    looks_like_probs = (outputs.min() >= 0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))
    if applies_softmax or not looks_like_probs:
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)
    return outputs


def predict(model, x, batch_size: int = 128) -> np.ndarray:
    """``model(x)`` in inference mode as numpy, in batches (no progress bar)."""
    x = np.asarray(x, dtype="float32")
    outs = []
    for start in range(0, len(x), batch_size):
        out = model(x[start:start + batch_size], training=False)
        if isinstance(out, (list, tuple)):
            out = [keras.ops.convert_to_numpy(o) for o in out]
        else:
            out = keras.ops.convert_to_numpy(out)
        outs.append(out)
    if outs and isinstance(outs[0], list):
        return [np.concatenate(parts) for parts in zip(*outs)]
    return np.concatenate(outs)

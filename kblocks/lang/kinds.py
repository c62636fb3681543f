"""What each kind of layer means: one :class:`LayerKind` record per kind, the way a Keras layer keeps
``build``, ``call`` and ``compute_output_shape`` together.

A record holds everything the later stages ask of a layer: its output shape (the graph builder), its
parameters, multiply-adds and receptive-field window (the analysis), whether its output is computed
in place or is a view (activation memory), how its Keras layer is made (the emitter) and its colour
in a plot. Tokens of the vocabulary (:mod:`kblocks.lang.vocab`) point at their record; a new kind of
layer is one record here and one :class:`~kblocks.lang.vocab.LayerSpec` there.

This module does not import Keras: a factory is handed the module its layer class lives in
(``keras.layers``, or :mod:`kblocks.lang.layers` for kblocks' own) by the emitter, the one module
of the language that imports Keras, so compiling and analysing a text never imports it.

Shapes exclude the batch axis; ``p`` is the dict of a layer's resolved DSL arguments.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from kblocks.lang import shapes as sh
from kblocks.lang.shapes import _tuple


class Site(NamedTuple):
    """Where a shape is computed, for error messages: the token, its spatial rank (0 if none) and
    how many layers of that token the graph has so far (``... after 4 pools``)."""

    token: str
    rank: int
    count: int = 1


class Window(NamedTuple):
    """The receptive-field step of a layer on each spatial axis (see :mod:`kblocks.lang.analysis`).

    ``kernel`` is the effective kernel ``d*(k-1)+1`` (None: the field does not grow), ``stride`` the
    stride; a ``transposed`` layer (CONVT, UPSAMPLE) divides the jump by its stride instead of
    multiplying it.
    """

    kernel: tuple | None
    stride: tuple
    transposed: bool = False


@dataclass(frozen=True)
class LayerKind:
    """The meaning of one kind of layer, shared by the tokens of that kind (CONV, CONV1D and CONV3D
    are all ``conv``).

    Args:
        name: short name of the kind (``"conv"``), for messages and tests.
        out_shape: ``out_shape(p, in_shape, site) -> shape``; raises
            :class:`kblocks.lang.shapes.ShapeError` when the layer cannot take its input. Merges
            compute theirs from all branches in the graph builder; their record passes one through.
        params: ``params(p, in_shape) -> (trainable, non_trainable)``, as Keras counts them.
        macs: ``macs(p, in_shape, out_shape) -> int``: multiply-adds per image.
        window: ``window(p, rank) -> Window | None``: its receptive-field step; None leaves field and
            jump as they are.
        keras: ``keras(layers, spec, kwargs, in_shape) -> Layer``: makes the Keras layer from the
            keyword arguments the emitter collected (name and dtype included); ``layers`` is the
            module of its class (``keras.layers``, or :mod:`kblocks.lang.layers` when ``custom``).
        colour: fill colour of its boxes in :func:`kblocks.lang.plot.plot_graph`.
        in_place: an elementwise layer computed in place (adds no activation memory unless it heads
            a branch).
        view: its output is a view of its input or the identity at inference (adds no memory).
        flattens_input: a feature map is flattened (an implicit FLATTEN) before it (FC).
        zero_pads: an integer ``padding=`` becomes an implicit ZEROPAD before it and ``valid``.
        merge: it takes the list of its branches' tensors (CONCAT, ADD, MULTIPLY).
        custom: its Keras layer is one of kblocks' own (:mod:`kblocks.lang.layers`), not one of
            ``keras.layers``.
        fits_merge: written without arguments as the last item of a merge's branch, it is given
            the merge's smallest height and width (CROP: the valid-padding skips of U-Net).
        binary: ``binary(p, in_shape) -> (weights, scales)`` for a layer whose weights are stored
            at 1 bit (BWCONV, XNORCONV): how many of its parameters are binary, and how many
            float32 scaling factors (not parameters: computed from the weights) it stores beside
            them; None for a real-valued layer. The summary's weight memory reads it.
    """

    name: str
    out_shape: Callable
    params: Callable
    macs: Callable
    window: Callable
    keras: Callable
    colour: str
    in_place: bool = False
    view: bool = False
    flattens_input: bool = False
    zero_pads: bool = False
    merge: bool = False
    custom: bool = False
    fits_merge: bool = False
    binary: Callable | None = None


# --- shared pieces ----------------------------------------------------------------------------------
def _same_shape(p, shape, site):
    return shape


def _map_shape(p, shape, site):
    sh.expect_map(site.token, shape, site.rank)
    return shape


def _no_params(p, shape):
    return 0, 0


def _no_macs(p, shape, out):
    return 0


def _no_window(p, rank):
    return None


def _bias(p, n):
    return n if p.get("use_bias", True) else 0


def _kernel_size(p, rank):
    return math.prod(_tuple(p["kernel"], rank))


def _conv_window(p, rank):
    d = _tuple(p.get("dilation", 1), rank)
    k = _tuple(p["kernel"], rank)
    return Window(tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d)), _tuple(p["stride"], rank))


def keras_layer(layers, spec, kw, in_shape):
    """The layer ``<spec.keras_class>(**kw)`` of ``layers``: the factory of most kinds."""
    return getattr(layers, spec.keras_class)(**kw)


def _norm_params(p, shape):
    return shape[-1] * (int(p["center"]) + int(p["scale"])), 0


# --- convolutions ------------------------------------------------------------------------------------
def _conv_shape(p, shape, site):
    sh.expect_map(site.token, shape, site.rank)
    if shape[-1] % p["groups"] or p["filters"] % p["groups"]:
        raise sh.ShapeError(f"groups={p['groups']} must divide both the input channels "
                            f"({shape[-1]}) and filters ({p['filters']})")
    space = sh.window(site.token, shape, p["kernel"], p["stride"], p["padding"], p["dilation"],
                      count=site.count)
    return space + (p["filters"],)


def _conv_params(p, shape):
    k = _kernel_size(p, len(shape) - 1)
    return k * (shape[-1] // p["groups"]) * p["filters"] + _bias(p, p["filters"]), 0


def _conv_macs(p, shape, out):
    return math.prod(out) * _kernel_size(p, len(shape) - 1) * (shape[-1] // p["groups"])


def _dwconv_shape(p, shape, site):
    sh.expect_map(site.token, shape, 2)
    return sh.window(site.token, shape, p["kernel"], p["stride"], p["padding"],
                     count=site.count) + (shape[-1] * p["multiplier"],)


def _dwconv_params(p, shape):
    out = shape[-1] * p["multiplier"]
    return _kernel_size(p, 2) * out + _bias(p, out), 0


def _dwconv_macs(p, shape, out):
    return math.prod(out) * _kernel_size(p, 2)


def _sepconv_shape(p, shape, site):
    sh.expect_map(site.token, shape, 2)
    return sh.window(site.token, shape, p["kernel"], p["stride"], p["padding"],
                     count=site.count) + (p["filters"],)


def _sepconv_params(p, shape):
    cin = shape[-1]
    return _kernel_size(p, 2) * cin + cin * p["filters"] + _bias(p, p["filters"]), 0


def _sepconv_macs(p, shape, out):
    spatial, cin = math.prod(out[:-1]), shape[-1]
    return spatial * cin * _kernel_size(p, 2) + spatial * cin * p["filters"]


def _convt_shape(p, shape, site):
    sh.expect_map(site.token, shape, 2)
    if isinstance(p["padding"], int):
        raise sh.ShapeError("CONVT takes padding=same or valid (crop the output instead)")
    return sh.conv_transpose(shape, p["kernel"], p["stride"], p["padding"]) + (p["filters"],)


def _convt_params(p, shape):
    return _kernel_size(p, 2) * shape[-1] * p["filters"] + _bias(p, p["filters"]), 0


def _convt_macs(p, shape, out):
    return math.prod(shape) * _kernel_size(p, 2) * p["filters"]


def _convt_window(p, rank):
    return Window(_tuple(p["kernel"], rank), _tuple(p["stride"], rank), transposed=True)


CONV = LayerKind("conv", _conv_shape, _conv_params, _conv_macs, _conv_window, keras_layer, "#9ecae1",
                 zero_pads=True)
DWCONV = LayerKind("dwconv", _dwconv_shape, _dwconv_params, _dwconv_macs, _conv_window, keras_layer,
                   "#9ecae1", zero_pads=True)
SEPCONV = LayerKind("sepconv", _sepconv_shape, _sepconv_params, _sepconv_macs, _conv_window,
                    keras_layer, "#9ecae1", zero_pads=True)
CONVT = LayerKind("convt", _convt_shape, _convt_params, _convt_macs, _convt_window, keras_layer,
                  "#9ecae1")


# --- pooling -----------------------------------------------------------------------------------------
def _pool_shape(p, shape, site):
    sh.expect_map(site.token, shape, 2)
    return sh.window(site.token, shape, p["size"], p["stride"], p["padding"], what="window",
                     count=site.count) + (shape[-1],)


def _pool_window(p, rank):
    return Window(_tuple(p["size"], rank), _tuple(p["stride"], rank))


def _gpool_shape(p, shape, site):
    sh.expect_map(site.token, shape, 2)
    return (shape[-1],)


POOL = LayerKind("pool", _pool_shape, _no_params, _no_macs, _pool_window, keras_layer, "#fdae6b",
                 zero_pads=True)
GPOOL = LayerKind("gpool", _gpool_shape, _no_params, _no_macs, _no_window, keras_layer, "#fdae6b")


# --- fully connected and reshaping -------------------------------------------------------------------
def _dense_params(p, shape):
    return shape[-1] * p["units"] + _bias(p, p["units"]), 0


def _flatten_shape(p, shape, site):
    return (math.prod(shape),)


def _reshape_shape(p, shape, site):
    target = p["shape"]
    if math.prod(target) != math.prod(shape):
        raise sh.ShapeError(f"cannot reshape {sh.dims(shape)} to {sh.dims(target)}")
    return tuple(target)


def _zeropad_shape(p, shape, site):
    if len(shape) < 2:
        raise sh.ShapeError("ZEROPAD needs a feature map")
    return sh.zero_pad(shape, p["pad"])


def _zeropad_layer(layers, spec, kw, in_shape):
    cls = {1: layers.ZeroPadding1D, 2: layers.ZeroPadding2D, 3: layers.ZeroPadding3D}[len(in_shape) - 1]
    return cls(**kw)


def _upsample_shape(p, shape, site):
    sh.expect_map(site.token, shape, 2)
    return sh.upsample(shape, p["size"])


def _upsample_window(p, rank):
    return Window(None, _tuple(p["size"], rank), transposed=True)


DENSE = LayerKind("dense", lambda p, shape, site: (p["units"],), _dense_params,
                  lambda p, shape, out: shape[-1] * p["units"], _no_window, keras_layer, "#a1d99b",
                  flattens_input=True)
FLATTEN = LayerKind("flatten", _flatten_shape, _no_params, _no_macs, _no_window, keras_layer,
                    "#ffffff", view=True)
RESHAPE = LayerKind("reshape", _reshape_shape, _no_params, _no_macs, _no_window, keras_layer,
                    "#ffffff", view=True)
ZEROPAD = LayerKind("zeropad", _zeropad_shape, _no_params, _no_macs, _no_window, _zeropad_layer,
                    "#ffffff")
UPSAMPLE = LayerKind("upsample", _upsample_shape, _no_params, _no_macs, _upsample_window, keras_layer,
                     "#ffffff")


# --- regularisation and normalisation ----------------------------------------------------------------
def _gn_shape(p, shape, site):
    if shape[-1] % p["groups"]:
        raise sh.ShapeError(f"groups={p['groups']} must divide the {shape[-1]} channels; "
                            f"write GN(groups=...) with a divisor")
    return shape


DROPOUT = LayerKind("dropout", _same_shape, _no_params, _no_macs, _no_window, keras_layer, "#f7f7f7",
                    view=True)
SDROPOUT = LayerKind("sdropout", _map_shape, _no_params, _no_macs, _no_window, keras_layer,
                     "#f7f7f7", view=True)
BN = LayerKind("bn", _same_shape, lambda p, shape: (_norm_params(p, shape)[0], 2 * shape[-1]),
               _no_macs, _no_window, keras_layer, "#dadaeb")
LN = LayerKind("ln", _same_shape, _norm_params, _no_macs, _no_window, keras_layer, "#dadaeb")
GN = LayerKind("gn", _gn_shape, _norm_params, _no_macs, _no_window, keras_layer, "#dadaeb")
LRN = LayerKind("lrn", _same_shape, _no_params, _no_macs, _no_window, keras_layer, "#dadaeb",
                custom=True)


# --- activations -------------------------------------------------------------------------------------
def _prelu_layer(layers, spec, kw, in_shape):
    kw.setdefault("shared_axes", list(range(1, len(in_shape))) or None)  # one slope per channel
    return layers.PReLU(**kw)


ACT = LayerKind("act", _same_shape, _no_params, _no_macs, _no_window, keras_layer, "#eeeeee",
                in_place=True)
PRELU = LayerKind("prelu", _same_shape, lambda p, shape: (shape[-1], 0), _no_macs, _no_window,
                  _prelu_layer, "#eeeeee", in_place=True)


# --- structure ---------------------------------------------------------------------------------------
def _no_layer(layers, spec, kw, in_shape):
    raise TypeError(f"{spec.token} makes no Keras layer (the expander removes it)")


SKIP = LayerKind("skip", _same_shape, _no_params, _no_macs, _no_window, _no_layer, "#ffffff")
MERGE = LayerKind("merge", _same_shape, _no_params, _no_macs, _no_window, keras_layer, "#fc9272",
                  merge=True)


# --- v2: ZERO, CROP, HIGHWAY (DSL section 3b) --------------------------------------------------------
def _zero_shape(p, shape, site):
    s = p["stride"]
    if len(shape) == 1:
        if s != 1:
            raise sh.ShapeError(f"ZERO({s}) strides a feature map, but gets a vector of {shape[0]}")
        return shape
    return tuple(-(-i // s) for i in shape[:-1]) + (shape[-1],)  # as a same-padded op of stride s


def _zero_window(p, rank):
    return Window(None, (p["stride"],) * rank)


def _crop_shape(p, shape, site):
    sh.expect_map(site.token, shape, 2)
    if p["h"] is None:
        raise sh.ShapeError("CROP without a size crops the last item of a merge's branch to the "
                            "merge's smallest height and width; anywhere else write CROP(h, w)")
    if p["h"] > shape[0] or p["w"] > shape[1]:
        raise sh.ShapeError(f"cannot crop {sh.dims(shape)} to {p['h']}x{p['w']}: the input is smaller")
    return (p["h"], p["w"], shape[-1])


def _crop_layer(layers, spec, kw, in_shape):
    if "cropping" in kw:
        raise TypeError("CROP sets cropping= itself: write CROP(h, w), the size to crop to")
    h, w = kw.pop("h"), kw.pop("w")
    top, left = (in_shape[0] - h) // 2, (in_shape[1] - w) // 2  # centred; an odd pixel goes below
    kw["cropping"] = ((top, in_shape[0] - h - top), (left, in_shape[1] - w - left))
    return layers.Cropping2D(**kw)


def _highway_units(p, shape):
    return shape[-1] if p["units"] is None else p["units"]


def _highway_shape(p, shape, site):
    if p["kernel"] is None and len(shape) != 1:
        raise sh.ShapeError(f"HIGHWAY gets the feature map {sh.dims(shape)}: write the convolutional "
                            f"form HIGHWAY({shape[-1]}, kernel=3), or FLATTEN first")
    if p["kernel"] is not None:
        sh.expect_map(site.token, shape, 2)
    if _highway_units(p, shape) != shape[-1]:
        raise sh.ShapeError(f"units={p['units']} of HIGHWAY must equal the input's size "
                            f"{shape[-1]} (y = H(x)*T(x) + x*(1 - T(x)) adds x back)")
    return shape


def _highway_params(p, shape):
    units = _highway_units(p, shape)
    k = 1 if p["kernel"] is None else _kernel_size(p, 2)
    return 2 * (k * shape[-1] * units + units), 0


def _highway_macs(p, shape, out):
    units = _highway_units(p, shape)
    if p["kernel"] is None:
        return 2 * shape[-1] * units
    return 2 * math.prod(out[:-1]) * _kernel_size(p, 2) * shape[-1] * units


def _highway_window(p, rank):
    if p["kernel"] is None:
        return None
    return Window(_tuple(p["kernel"], rank), (1,) * rank)


ZERO = LayerKind("zero", _zero_shape, _no_params, _no_macs, _zero_window, keras_layer, "#ffffff",
                 custom=True)
CROP = LayerKind("crop", _crop_shape, _no_params, _no_macs, _no_window, _crop_layer, "#ffffff",
                 fits_merge=True)
HIGHWAY = LayerKind("highway", _highway_shape, _highway_params, _highway_macs, _highway_window,
                    keras_layer, "#a1d99b", custom=True)


# --- RandWire's weighted-sum aggregation (Xie et al. 2019; DSL section 3b allows the token) ----------
def _weight_params(p, shape):
    return (1, 0) if p["value"] is None else (0, 0)


def _weight_shape(p, shape, site):
    if p["value"] is not None and p["value"] <= 0:
        raise sh.ShapeError(f"WEIGHT({p['value']}) needs a positive factor (the aggregation weights "
                            "of RandWire are positive)")
    return shape


WEIGHT = LayerKind("weight", _weight_shape, _weight_params, _no_macs, _no_window, keras_layer,
                   "#eeeeee", in_place=True, custom=True)


# --- binary networks (Rastegari et al. 2016, "XNOR-Net"; CENG501 "Binary-Weight-Networks and -----
# XNOR-Networks"): a convolution's shape, parameters, cost and field, its kernel stored at 1 bit
def _binary_conv(p, shape):
    """The kernel at 1 bit and one float32 ``alpha`` per output filter; the bias stays float32."""
    k = _kernel_size(p, len(shape) - 1)
    return k * (shape[-1] // p["groups"]) * p["filters"], p["filters"]


BWCONV = LayerKind("bwconv", _conv_shape, _conv_params, _conv_macs, _conv_window, keras_layer,
                   "#c6dbef", zero_pads=True, custom=True, binary=_binary_conv)
XNORCONV = LayerKind("xnorconv", _conv_shape, _conv_params, _conv_macs, _conv_window, keras_layer,
                     "#c6dbef", zero_pads=True, custom=True, binary=_binary_conv)


def _binary_dense(p, shape):
    """The kernel at 1 bit and one float32 ``alpha`` per unit; the bias stays float32."""
    return shape[-1] * p["units"], p["units"]


BWFC = LayerKind("bwfc", DENSE.out_shape, _dense_params, DENSE.macs, _no_window, keras_layer,
                 "#c7e9c0", flattens_input=True, custom=True, binary=_binary_dense)
XNORFC = LayerKind("xnorfc", DENSE.out_shape, _dense_params, DENSE.macs, _no_window, keras_layer,
                   "#c7e9c0", flattens_input=True, custom=True, binary=_binary_dense)
# --- input preprocessing inside the model (keras.applications.EfficientNet's first layers) ----------
def _normalize_params(p, shape):
    return 0, 2 * shape[-1] + 1  # per-channel mean and variance, and Keras' adapt sample count


RESCALE = LayerKind("rescale", _same_shape, _no_params, _no_macs, _no_window, keras_layer, "#ffffff",
                    in_place=True)
NORMALIZE = LayerKind("normalize", _same_shape, _normalize_params, _no_macs, _no_window, keras_layer,
                      "#dadaeb")
# --- ShuffleNet v2 (Ma et al. 2018): channel shuffle and channel split --------------------------------
def _shuffle_shape(p, shape, site):
    if len(shape) < 2:
        raise sh.ShapeError(f"CHANNEL_SHUFFLE needs a feature map, but gets a vector of {shape[0]}")
    if shape[-1] % p["groups"]:
        raise sh.ShapeError(f"groups={p['groups']} must divide the {shape[-1]} channels "
                            f"(the channels are read as a groups x {shape[-1]}/groups grid)")
    return shape


def _split_shape(p, shape, site):
    part, parts = p["part"], p["parts"]
    if part > parts:
        raise sh.ShapeError(f"SPLIT({part}, {parts}): the part counts from 1 to parts={parts}")
    if shape[-1] % parts:
        raise sh.ShapeError(f"parts={parts} must divide the {shape[-1]} channels "
                            f"(SPLIT takes one of {parts} equal groups of channels)")
    return shape[:-1] + (shape[-1] // parts,)


CHANNEL_SHUFFLE = LayerKind("channel_shuffle", _shuffle_shape, _no_params, _no_macs, _no_window,
                            keras_layer, "#ffffff", custom=True)
SPLIT = LayerKind("split", _split_shape, _no_params, _no_macs, _no_window, keras_layer, "#ffffff",
                  custom=True)

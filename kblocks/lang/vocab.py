"""The layer vocabulary (DSL section 3): one explicit registry of tokens, their arguments and defaults.

A :class:`LayerSpec` says how a token is written — its arguments in positional order with defaults
and types, its aliases, its Keras class — and points at the :class:`~kblocks.lang.kinds.LayerKind`
record that says what it means (output shape, parameters, cost, Keras factory). Each user token
carries an ``example`` that tests/test_vocabulary.py builds and checks against Keras, so a new token
is one registration here (and, for a new kind of layer, one record in :mod:`kblocks.lang.kinds`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from kblocks.lang import kinds as K
from kblocks.lang.kinds import LayerKind

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Arg:
    """One argument of a token: DSL name, default, type, Keras keyword and accepted other names."""

    name: str
    default: Any
    type: str  # int | float | ints (int or list) | padding | bool | str | shape
    keras: str | None = None
    aliases: tuple = ()
    same_as: str | None = None  # a default of None means "the value of this other argument"
    minimum: int = 1  # the smallest whole number an int/ints argument takes


@dataclass(frozen=True)
class LayerSpec:
    """One token of the language.

    Args:
        token: canonical spelling (``"CONV"``).
        kind: the record of what the layer means (:mod:`kblocks.lang.kinds`).
        keras_class: the Keras layer class (in ``keras.layers``, or in :mod:`kblocks.lang.layers`
            when ``kind.custom``); ``""`` for SKIP.
        args: the DSL arguments in positional order.
        aliases: other accepted spellings (case does not matter).
        rank: spatial rank for convolutions and pooling.
        fixed: ``((keras keyword, value), ...)`` always passed to the Keras layer.
        doc: one line for the layer table.
        user: False for nodes only the graph builder makes (merges).
        example: ``(text, input shape)``: a small use of the token that builds; tests check its
            shapes and parameter counts against Keras.
    """

    token: str
    kind: LayerKind
    keras_class: str
    args: tuple = ()
    aliases: tuple = ()
    rank: int = 0
    fixed: tuple = ()
    doc: str = ""
    user: bool = True
    example: tuple = ()

    def arg(self, name: str) -> Arg | None:
        for a in self.args:
            if a.name == name or name in a.aliases:
                return a
        return None

    @property
    def arg_names(self) -> list:
        return [a.name for a in self.args]

    def default(self, arg: Arg, params: dict):
        """The default of ``arg`` given the other arguments (POOL's stride is its window size)."""
        return params.get(arg.same_as) if arg.same_as else arg.default


class Vocabulary:
    """Case-insensitive token registry that refuses duplicates, naming both entries."""

    def __init__(self):
        self._specs: dict = {}
        self._by_name: dict = {}

    def register(self, spec: LayerSpec) -> LayerSpec:
        for name in (spec.token, *spec.aliases):
            key = name.upper()
            if key in self._by_name:
                raise ValueError(f"token {name!r} of {spec.token} is already registered by "
                                 f"{self._by_name[key].token}")
        self._specs[spec.token] = spec
        for name in (spec.token, *spec.aliases):
            self._by_name[name.upper()] = spec
        return spec

    def get(self, name: str) -> LayerSpec | None:
        return self._by_name.get(name.upper())

    def __getitem__(self, token: str) -> LayerSpec:
        return self._specs[token]

    def __iter__(self):
        return iter(self._specs.values())

    def suggest(self, name: str) -> list:
        names = [n for n, s in self._by_name.items() if s.user]
        return difflib.get_close_matches(name.upper(), names, n=3, cutoff=0.5)


VOCAB = Vocabulary()
_conv_args = lambda: (  # noqa: E731
    Arg("filters", 32, "int", "filters"),
    Arg("kernel", 3, "ints", "kernel_size", ("kernel_size", "k")),
    Arg("stride", 1, "ints", "strides", ("strides", "s")),
    Arg("padding", "same", "padding", "padding", ("pad",)),
    Arg("dilation", 1, "ints", "dilation_rate", ("dilation_rate",)),
    Arg("groups", 1, "int", "groups"),
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
)
for _tok, _cls, _rank, _al, _ex in (
        ("CONV", "Conv2D", 2, ("CONV2D",), ("CONV(8, 3, stride=2, padding=valid, use_bias=false)",
                                           (16, 16, 3))),
        ("CONV1D", "Conv1D", 1, (), ("CONV1D(8, 5, stride=2)", (32, 4))),
        ("CONV3D", "Conv3D", 3, (), ("CONV3D(4, 3, padding=1)", (6, 6, 6, 2)))):
    VOCAB.register(LayerSpec(_tok, K.CONV, _cls, _conv_args(), _al, rank=_rank,
                             doc=f"{_cls}: filters, kernel, stride, padding, dilation, groups",
                             example=_ex))
VOCAB.register(LayerSpec("DWCONV", K.DWCONV, "DepthwiseConv2D", (
    Arg("kernel", 3, "ints", "kernel_size", ("kernel_size", "k")),
    Arg("stride", 1, "ints", "strides", ("strides", "s")),
    Arg("padding", "same", "padding", "padding", ("pad",)),
    Arg("multiplier", 1, "int", "depth_multiplier", ("depth_multiplier",)),
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), rank=2, doc="DepthwiseConv2D", example=("DWCONV(5, 2, multiplier=2)", (16, 16, 3))))
VOCAB.register(LayerSpec("SEPCONV", K.SEPCONV, "SeparableConv2D", (
    Arg("filters", 32, "int", "filters"),
    Arg("kernel", 3, "ints", "kernel_size", ("kernel_size", "k")),
    Arg("stride", 1, "ints", "strides", ("strides", "s")),
    Arg("padding", "same", "padding", "padding", ("pad",)),
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), rank=2, doc="SeparableConv2D", example=("SEPCONV(16, 3)", (16, 16, 3))))
VOCAB.register(LayerSpec("CONVT", K.CONVT, "Conv2DTranspose", (
    Arg("filters", 32, "int", "filters"),
    Arg("kernel", 3, "ints", "kernel_size", ("kernel_size", "k")),
    Arg("stride", 1, "ints", "strides", ("strides", "s")),
    Arg("padding", "same", "padding", "padding", ("pad",)),
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), ("DECONV",), rank=2, doc="Conv2DTranspose",
    example=("CONVT(8, 3, stride=2, padding=valid)", (7, 7, 4))))
for _tok, _cls, _al, _ex in (("POOL", "MaxPooling2D", ("MAXPOOL",), ("POOL(3, 2, padding=same)", (15, 15, 3))),
                             ("AVGPOOL", "AveragePooling2D", (), ("AVGPOOL(2)", (16, 16, 3)))):
    VOCAB.register(LayerSpec(_tok, K.POOL, _cls, (
        Arg("size", 2, "ints", "pool_size", ("pool_size",)),
        Arg("stride", None, "ints", "strides", ("strides", "s"), same_as="size"),
        Arg("padding", "valid", "padding", "padding", ("pad",)),
    ), _al, rank=2, doc=_cls, example=_ex))
VOCAB.register(LayerSpec("GAP", K.GPOOL, "GlobalAveragePooling2D", rank=2, example=("GAP", (8, 8, 5))))
VOCAB.register(LayerSpec("GMP", K.GPOOL, "GlobalMaxPooling2D", rank=2, example=("GMP", (8, 8, 5))))
VOCAB.register(LayerSpec("FC", K.DENSE, "Dense", (
    Arg("units", None, "int", "units"),  # None: classes for the last FC, else 128
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), ("DENSE",), example=("FC(7)", (6,))))
VOCAB.register(LayerSpec("FLATTEN", K.FLATTEN, "Flatten", example=("FLATTEN", (4, 4, 2))))
VOCAB.register(LayerSpec("DROPOUT", K.DROPOUT, "Dropout", (Arg("rate", 0.5, "float", "rate"),),
                         example=("DROPOUT(0.3)", (8, 8, 3))))
VOCAB.register(LayerSpec("SDROPOUT", K.SDROPOUT, "SpatialDropout2D", (Arg("rate", 0.5, "float", "rate"),),
                         ("DROPOUT2D",), rank=2, example=("SDROPOUT(0.2)", (8, 8, 3))))
VOCAB.register(LayerSpec("BN", K.BN, "BatchNormalization", (
    Arg("center", True, "bool", "center"), Arg("scale", True, "bool", "scale"),
), ("BATCHNORM",), example=("BN", (8, 8, 6))))
VOCAB.register(LayerSpec("LN", K.LN, "LayerNormalization", (
    Arg("center", True, "bool", "center"), Arg("scale", True, "bool", "scale"),
), ("LAYERNORM",), example=("LN", (8, 8, 6))))
VOCAB.register(LayerSpec("GN", K.GN, "GroupNormalization", (
    Arg("groups", 32, "int", "groups"),
    Arg("center", True, "bool", "center"), Arg("scale", True, "bool", "scale"),
), ("GROUPNORM",), example=("GN(groups=2)", (8, 8, 6))))
VOCAB.register(LayerSpec("LRN", K.LRN, "LRN", (
    Arg("size", 5, "int", "size", ("depth_radius", "n")),
    Arg("alpha", 1e-4, "float", "alpha"), Arg("beta", 0.75, "float", "beta"),
    Arg("k", 2.0, "float", "k", ("bias",)),
), doc="local response normalisation across channels (Krizhevsky et al. 2012)",
    example=("LRN", (8, 8, 6))))
for _tok, _act, _shape in (("RELU", "relu", (8, 8, 3)), ("RELU6", "relu6", (8, 8, 3)),
                           ("SELU", "selu", (8, 8, 3)), ("GELU", "gelu", (8, 8, 3)),
                           ("SWISH", "silu", (8, 8, 3)), ("SIGMOID", "sigmoid", (8, 8, 3)),
                           ("TANH", "tanh", (8, 8, 3)), ("SOFTMAX", "softmax", (10,)),
                           ("LINEAR", "linear", (8, 8, 3))):
    VOCAB.register(LayerSpec(_tok, K.ACT, "Activation", fixed=(("activation", _act),),
                             aliases=("SILU",) if _tok == "SWISH" else (), example=(_tok, _shape)))
VOCAB.register(LayerSpec("LRELU", K.ACT, "LeakyReLU", (Arg("alpha", 0.3, "float", "negative_slope",
                                                           ("negative_slope",)),), ("LEAKYRELU",),
                         example=("LRELU(0.1)", (8, 8, 3))))
VOCAB.register(LayerSpec("ELU", K.ACT, "ELU", (Arg("alpha", 1.0, "float", "alpha"),),
                         example=("ELU", (8, 8, 3))))
VOCAB.register(LayerSpec("PRELU", K.PRELU, "PReLU", doc="PReLU with one slope per channel (He et al. 2015)",
                         example=("PRELU", (8, 8, 3))))
VOCAB.register(LayerSpec("ZEROPAD", K.ZEROPAD, "ZeroPadding2D", (Arg("pad", 1, "ints", "padding",
                                                                     ("padding",), minimum=0),), rank=2,
                         example=("ZEROPAD([1, 2])", (8, 8, 3))))
VOCAB.register(LayerSpec("UPSAMPLE", K.UPSAMPLE, "UpSampling2D", (Arg("size", 2, "ints", "size"),),
                         rank=2, example=("UPSAMPLE(2)", (8, 8, 3))))
VOCAB.register(LayerSpec("SKIP", K.SKIP, "", (Arg("proj", True, "bool"),), ("IDENTITY",),
                         doc="identity branch; projected by a 1x1 conv when an add/multiply needs it",
                         example=("SKIP-CONV(4)", (8, 8, 3))))
VOCAB.register(LayerSpec("RESHAPE", K.RESHAPE, "Reshape", (Arg("shape", (), "shape", "target_shape"),),
                         example=("RESHAPE([4, 48])", (8, 8, 3))))
VOCAB.register(LayerSpec("ZERO", K.ZERO, "Zero", (Arg("stride", 1, "int", "stride", ("s", "strides")),),
                         rank=2, doc="zeros of the input's shape, strided as a same-padded op (the "
                                     "'none' operation of cell search spaces)",
                         example=("ZERO(2)", (7, 7, 3))))
VOCAB.register(LayerSpec("CROP", K.CROP, "Cropping2D", (
    Arg("h", None, "int", "h", ("height",)), Arg("w", None, "int", "w", ("width",), same_as="h"),
), rank=2, doc="centre crop to h x w; bare, as the last item of a merge branch, to the merge's "
               "smallest size", example=("CROP(5, 4)", (8, 7, 3))))
VOCAB.register(LayerSpec("HIGHWAY", K.HIGHWAY, "Highway", (
    Arg("units", None, "int", "units"),  # None: the input's size, the only size it may have
    Arg("gate_bias", -1.0, "float", "gate_bias"),
    Arg("kernel", None, "ints", "kernel_size", ("kernel_size", "k")),
), doc="highway layer (Srivastava et al. 2015), dense or, with kernel=, convolutional",
    example=("HIGHWAY(6, gate_bias=-2)", (6,))))
VOCAB.register(LayerSpec("WEIGHT", K.WEIGHT, "Weight", (
    Arg("value", None, "float", "value"),  # None: the learnable sigmoid(w)
    Arg("init", 0.0, "float", "init"),
), doc="x times a learnable positive weight sigmoid(w) (w starts at init), or times a fixed "
       "value: in each branch of an add, the weighted-sum aggregation of RandWire (Xie et al. 2019)",
    example=("WEIGHT(init=1.0)", (8, 8, 3))))
VOCAB.register(LayerSpec("BWCONV", K.BWCONV, "BinaryWeightConv2D", _conv_args(), rank=2,
                         doc="binary-weight convolution (Rastegari et al. 2016): alpha * sign(W), "
                             "alpha = mean |W| per filter; arguments as CONV",
                         example=("BWCONV(8, 3, stride=2)", (9, 9, 3))))
VOCAB.register(LayerSpec("XNORCONV", K.XNORCONV, "XNORConv2D", _conv_args(), rank=2,
                         doc="XNOR convolution (Rastegari et al. 2016): sign(I) * sign(W) scaled by "
                             "K and alpha; arguments as CONV",
                         example=("XNORCONV(8, 3, padding=1)", (9, 9, 3))))
for _tok, _kind, _cls, _what in (("BWFC", K.BWFC, "BinaryWeightDense", "binary-weight"),
                                 ("XNORFC", K.XNORFC, "XNORDense", "XNOR")):
    VOCAB.register(LayerSpec(_tok, _kind, _cls, (
        Arg("units", 128, "int", "units"),
        Arg("use_bias", True, "bool", "use_bias", ("bias",)),
    ), doc=f"{_what} fully connected layer (Rastegari et al. 2016); arguments as FC",
        example=(f"{_tok}(7)", (6,))))
VOCAB.register(LayerSpec("RESCALE", K.RESCALE, "Rescaling", (
    Arg("scale", 1.0, "float", "scale"), Arg("offset", 0.0, "float", "offset"),
), ("RESCALING",), doc="x * scale + offset (Keras' EfficientNet starts with RESCALE(1/255))",
    example=("RESCALE(0.5, 1.0)", (8, 8, 3))))
VOCAB.register(LayerSpec("NORMALIZE", K.NORMALIZE, "Normalization", aliases=("NORMALIZATION",),
                         fixed=(("axis", -1),),
                         doc="per-channel (x - mean) / sqrt(variance), mean 0 and variance 1 until "
                             "set (layer.adapt or set_weights); 2C + 1 non-trainable weights",
                         example=("NORMALIZE", (8, 8, 3))))
# Internal nodes made by the graph builder, never written by users.
for _tok, _cls, _fixed in (("CONCAT", "Concatenate", (("axis", -1),)), ("ADD", "Add", ()),
                           ("MULTIPLY", "Multiply", ())):
    VOCAB.register(LayerSpec(_tok, K.MERGE, _cls, fixed=_fixed, user=False))

MERGE_TOKEN = {"|": "CONCAT", "+": "ADD", "&": "MULTIPLY"}


#: PyTorch's ``nn`` layer names, as students write them, and the kblocks text they mean
#: (``Linear(10)`` is FC(10): in kblocks LINEAR is the identity activation). Only the exact
#: PyTorch spelling is recognised; the token itself in any case keeps its kblocks meaning.
PYTORCH_NAMES = {
    "Linear": "FC(units)", "Conv1d": "CONV1D(filters, kernel)", "Conv2d": "CONV(filters, kernel)",
    "Conv3d": "CONV3D(filters, kernel)", "ConvTranspose2d": "CONVT(filters, kernel, stride)",
    "MaxPool2d": "POOL(size)", "AvgPool2d": "AVGPOOL(size)",
    "AdaptiveAvgPool2d": "GAP", "BatchNorm2d": "BN", "BatchNorm1d": "BN", "Dropout": "DROPOUT(rate)",
    "Dropout2d": "SDROPOUT(rate)", "Flatten": "FLATTEN", "ReLU": "RELU", "Softmax": "SOFTMAX",
    "LayerNorm": "LN", "Upsample": "UPSAMPLE(size)", "Identity": "SKIP",
}


def pytorch_hint(name: str, token: str | None = None) -> str | None:
    """``"Linear is PyTorch's name; in kblocks write FC(units)"`` for a PyTorch layer name whose
    kblocks meaning differs (``token``: the kblocks token the name resolved to, if any), else None."""
    meant = PYTORCH_NAMES.get(name)
    if meant is None or (token is not None and meant.split("(")[0] == token):
        return None
    return f"{name} is PyTorch's nn.{name}; in kblocks write {meant}"
# ShuffleNet v2 (Ma et al. 2018, Fig. 3(c, d)): the channel shuffle and the channel split of its units.
VOCAB.register(LayerSpec("CHANNEL_SHUFFLE", K.CHANNEL_SHUFFLE, "ChannelShuffle", (
    Arg("groups", 2, "int", "groups", ("g",)),
), ("SHUFFLE",), doc="channel shuffle (Zhang et al. 2018; Ma et al. 2018): the channels read as a "
                     "groups x C/groups grid, transposed",
    example=("CHANNEL_SHUFFLE(3)", (4, 4, 6))))
VOCAB.register(LayerSpec("SPLIT", K.SPLIT, "ChannelSplit", (
    Arg("part", 1, "int", "part"), Arg("parts", 2, "int", "parts"),
), doc="channel split: part `part` (from 1) of `parts` equal groups of the channels, in order",
    example=("(SPLIT(1, 2) | SPLIT(2, 2) - CONV(4, 1))", (4, 4, 8))))

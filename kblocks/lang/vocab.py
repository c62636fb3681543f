"""The layer vocabulary (DSL section 3): one explicit registry of tokens, their arguments and defaults.

A :class:`LayerSpec` says what a token means — its Keras layer, its arguments in positional order with
defaults and types, its aliases — and nothing about how shapes or parameters are computed (that is
:mod:`kblocks.lang.shapes` and :mod:`kblocks.lang.analysis`) or how Keras layers are made (:mod:`kblocks.lang.emit`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Arg:
    """One argument of a token: DSL name, default, type, Keras keyword and accepted other names."""

    name: str
    default: Any
    type: str  # int | float | ints (int or list) | padding | bool | str | shape
    keras: str | None = None
    aliases: tuple = ()


@dataclass(frozen=True)
class LayerSpec:
    token: str
    kind: str
    keras_class: str
    args: tuple = ()
    aliases: tuple = ()
    rank: int = 0  # spatial rank for convolutions and pooling
    fixed: tuple = ()  # ((keras kwarg, value), ...) always passed
    doc: str = ""
    user: bool = True  # False for internal nodes (RESHAPE, merges)

    def arg(self, name: str) -> Arg | None:
        for a in self.args:
            if a.name == name or name in a.aliases:
                return a
        return None

    @property
    def arg_names(self) -> list:
        return [a.name for a in self.args]


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
for _tok, _cls, _rank, _al in (("CONV", "Conv2D", 2, ("CONV2D",)), ("CONV1D", "Conv1D", 1, ()),
                               ("CONV3D", "Conv3D", 3, ())):
    VOCAB.register(LayerSpec(_tok, "conv", _cls, _conv_args(), _al, rank=_rank,
                             doc=f"{_cls}: filters, kernel, stride, padding, dilation, groups"))
VOCAB.register(LayerSpec("DWCONV", "dwconv", "DepthwiseConv2D", (
    Arg("kernel", 3, "ints", "kernel_size", ("kernel_size", "k")),
    Arg("stride", 1, "ints", "strides", ("strides", "s")),
    Arg("padding", "same", "padding", "padding", ("pad",)),
    Arg("multiplier", 1, "int", "depth_multiplier", ("depth_multiplier",)),
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), rank=2, doc="DepthwiseConv2D"))
VOCAB.register(LayerSpec("SEPCONV", "sepconv", "SeparableConv2D", (
    Arg("filters", 32, "int", "filters"),
    Arg("kernel", 3, "ints", "kernel_size", ("kernel_size", "k")),
    Arg("stride", 1, "ints", "strides", ("strides", "s")),
    Arg("padding", "same", "padding", "padding", ("pad",)),
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), rank=2, doc="SeparableConv2D"))
VOCAB.register(LayerSpec("CONVT", "convt", "Conv2DTranspose", (
    Arg("filters", 32, "int", "filters"),
    Arg("kernel", 3, "ints", "kernel_size", ("kernel_size", "k")),
    Arg("stride", 1, "ints", "strides", ("strides", "s")),
    Arg("padding", "same", "padding", "padding", ("pad",)),
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), ("DECONV",), rank=2, doc="Conv2DTranspose"))
for _tok, _cls, _al in (("POOL", "MaxPooling2D", ("MAXPOOL",)), ("AVGPOOL", "AveragePooling2D", ())):
    VOCAB.register(LayerSpec(_tok, "pool", _cls, (
        Arg("size", 2, "ints", "pool_size", ("pool_size",)),
        Arg("stride", None, "ints", "strides", ("strides", "s")),  # None: the window size
        Arg("padding", "valid", "padding", "padding", ("pad",)),
    ), _al, rank=2, doc=_cls))
VOCAB.register(LayerSpec("GAP", "gpool", "GlobalAveragePooling2D", rank=2))
VOCAB.register(LayerSpec("GMP", "gpool", "GlobalMaxPooling2D", rank=2))
VOCAB.register(LayerSpec("FC", "dense", "Dense", (
    Arg("units", None, "int", "units"),  # None: classes for the last FC, else 128
    Arg("use_bias", True, "bool", "use_bias", ("bias",)),
), ("DENSE",)))
VOCAB.register(LayerSpec("FLATTEN", "flatten", "Flatten"))
VOCAB.register(LayerSpec("DROPOUT", "dropout", "Dropout", (Arg("rate", 0.5, "float", "rate"),)))
VOCAB.register(LayerSpec("SDROPOUT", "sdropout", "SpatialDropout2D", (Arg("rate", 0.5, "float", "rate"),),
                         ("DROPOUT2D",), rank=2))
VOCAB.register(LayerSpec("BN", "bn", "BatchNormalization", (
    Arg("center", True, "bool", "center"), Arg("scale", True, "bool", "scale"),
), ("BATCHNORM",)))
VOCAB.register(LayerSpec("LN", "ln", "LayerNormalization", (
    Arg("center", True, "bool", "center"), Arg("scale", True, "bool", "scale"),
), ("LAYERNORM",)))
VOCAB.register(LayerSpec("GN", "gn", "GroupNormalization", (
    Arg("groups", 32, "int", "groups"),
    Arg("center", True, "bool", "center"), Arg("scale", True, "bool", "scale"),
), ("GROUPNORM",)))
VOCAB.register(LayerSpec("LRN", "lrn", "kblocks>LRN", (
    Arg("size", 5, "int", "size", ("depth_radius", "n")),
    Arg("alpha", 1e-4, "float", "alpha"), Arg("beta", 0.75, "float", "beta"),
    Arg("k", 2.0, "float", "k", ("bias",)),
), doc="local response normalisation across channels (Krizhevsky et al. 2012)"))
for _tok, _act in (("RELU", "relu"), ("RELU6", "relu6"), ("SELU", "selu"), ("GELU", "gelu"), ("SWISH", "silu"),
                   ("SIGMOID", "sigmoid"), ("TANH", "tanh"), ("SOFTMAX", "softmax"), ("LINEAR", "linear")):
    VOCAB.register(LayerSpec(_tok, "act", "Activation", fixed=(("activation", _act),),
                             aliases=("SILU",) if _tok == "SWISH" else ()))
VOCAB.register(LayerSpec("LRELU", "act", "LeakyReLU", (Arg("alpha", 0.3, "float", "negative_slope",
                                                           ("negative_slope",)),), ("LEAKYRELU",)))
VOCAB.register(LayerSpec("ELU", "act", "ELU", (Arg("alpha", 1.0, "float", "alpha"),)))
VOCAB.register(LayerSpec("PRELU", "prelu", "PReLU", doc="PReLU with one slope per channel (He et al. 2015)"))
VOCAB.register(LayerSpec("ZEROPAD", "zeropad", "ZeroPadding2D", (Arg("pad", 1, "ints", "padding",
                                                                     ("padding",)),), rank=2))
VOCAB.register(LayerSpec("UPSAMPLE", "upsample", "UpSampling2D", (Arg("size", 2, "ints", "size"),),
                         rank=2))
VOCAB.register(LayerSpec("SKIP", "skip", "", (Arg("proj", True, "bool"),), ("IDENTITY",),
                         doc="identity branch; projected by a 1x1 conv when an add/multiply needs it"))
VOCAB.register(LayerSpec("RESHAPE", "reshape", "Reshape", (Arg("shape", (), "shape", "target_shape"),)))
# Internal nodes made by the graph builder, never written by users.
for _tok, _cls in (("CONCAT", "Concatenate"), ("ADD", "Add"), ("MULTIPLY", "Multiply")):
    VOCAB.register(LayerSpec(_tok, "merge", _cls, user=False))

MERGE_TOKEN = {"|": "CONCAT", "+": "ADD", "&": "MULTIPLY"}

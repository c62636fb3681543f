"""Keyword arguments of the Keras layers kblocks emits, read from Keras 3.15 constructors.

Checking a pass-through keyword against this table needs no Keras import (which would import the
backend: seconds for ``kblocks summary``). A keyword not listed here is looked up in the installed
Keras before it is refused, so a newer Keras with more keywords still works. tests/test_vocabulary.py
checks every name here against the installed Keras.
"""

KERAS_KEYWORDS = {
    "Activation": frozenset({
        "activation", "activity_regularizer", "autocast", "dtype", "name", "trainable",
    }),
    "Add": frozenset({
        "activity_regularizer", "autocast", "dtype", "name", "trainable",
    }),
    "AveragePooling2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "name", "padding",
        "pool_dimensions", "pool_mode", "pool_size", "strides", "trainable",
    }),
    "BatchNormalization": frozenset({
        "activity_regularizer", "autocast", "axis", "beta_constraint", "beta_initializer",
        "beta_regularizer", "center", "dtype", "epsilon", "gamma_constraint", "gamma_initializer",
        "gamma_regularizer", "momentum", "moving_mean_initializer", "moving_variance_initializer",
        "name", "renorm", "renorm_clipping", "renorm_momentum", "scale", "synchronized",
        "trainable",
    }),
    "Concatenate": frozenset({
        "activity_regularizer", "autocast", "axis", "dtype", "name", "trainable",
    }),
    "Conv1D": frozenset({
        "activation", "activity_regularizer", "autocast", "bias_constraint", "bias_initializer",
        "bias_regularizer", "data_format", "dilation_rate", "dtype", "filters", "groups",
        "kernel_constraint", "kernel_initializer", "kernel_regularizer", "kernel_size",
        "lora_alpha", "lora_rank", "name", "padding", "rank", "strides", "trainable", "use_bias",
    }),
    "Conv2D": frozenset({
        "activation", "activity_regularizer", "autocast", "bias_constraint", "bias_initializer",
        "bias_regularizer", "data_format", "dilation_rate", "dtype", "filters", "groups",
        "kernel_constraint", "kernel_initializer", "kernel_regularizer", "kernel_size",
        "lora_alpha", "lora_rank", "name", "padding", "rank", "strides", "trainable", "use_bias",
    }),
    "Conv2DTranspose": frozenset({
        "activation", "activity_regularizer", "autocast", "bias_constraint", "bias_initializer",
        "bias_regularizer", "data_format", "dilation_rate", "dtype", "filters",
        "kernel_constraint", "kernel_initializer", "kernel_regularizer", "kernel_size", "name",
        "output_padding", "padding", "rank", "strides", "trainable", "use_bias",
    }),
    "Conv3D": frozenset({
        "activation", "activity_regularizer", "autocast", "bias_constraint", "bias_initializer",
        "bias_regularizer", "data_format", "dilation_rate", "dtype", "filters", "groups",
        "kernel_constraint", "kernel_initializer", "kernel_regularizer", "kernel_size",
        "lora_alpha", "lora_rank", "name", "padding", "rank", "strides", "trainable", "use_bias",
    }),
    "Dense": frozenset({
        "activation", "activity_regularizer", "autocast", "bias_constraint", "bias_initializer",
        "bias_regularizer", "dtype", "kernel_constraint", "kernel_initializer",
        "kernel_regularizer", "lora_alpha", "lora_rank", "name", "quantization_config",
        "trainable", "units", "use_bias",
    }),
    "DepthwiseConv2D": frozenset({
        "activation", "activity_regularizer", "autocast", "bias_constraint", "bias_initializer",
        "bias_regularizer", "data_format", "depth_multiplier", "depthwise_constraint",
        "depthwise_initializer", "depthwise_regularizer", "dilation_rate", "dtype", "kernel_size",
        "name", "padding", "rank", "strides", "trainable", "use_bias",
    }),
    "Dropout": frozenset({
        "activity_regularizer", "autocast", "dtype", "name", "noise_shape", "rate", "seed",
        "trainable",
    }),
    "ELU": frozenset({
        "activity_regularizer", "alpha", "autocast", "dtype", "name", "trainable",
    }),
    "Flatten": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "name", "trainable",
    }),
    "GlobalAveragePooling2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "keepdims", "name",
        "pool_dimensions", "trainable",
    }),
    "GlobalMaxPooling2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "keepdims", "name",
        "pool_dimensions", "trainable",
    }),
    "GroupNormalization": frozenset({
        "activity_regularizer", "autocast", "axis", "beta_constraint", "beta_initializer",
        "beta_regularizer", "center", "dtype", "epsilon", "gamma_constraint", "gamma_initializer",
        "gamma_regularizer", "groups", "name", "scale", "trainable",
    }),
    "LayerNormalization": frozenset({
        "activity_regularizer", "autocast", "axis", "beta_constraint", "beta_initializer",
        "beta_regularizer", "center", "dtype", "epsilon", "gamma_constraint", "gamma_initializer",
        "gamma_regularizer", "name", "scale", "trainable",
    }),
    "LeakyReLU": frozenset({
        "activity_regularizer", "autocast", "dtype", "name", "negative_slope", "trainable",
    }),
    "MaxPooling2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "name", "padding",
        "pool_dimensions", "pool_mode", "pool_size", "strides", "trainable",
    }),
    "Multiply": frozenset({
        "activity_regularizer", "autocast", "dtype", "name", "trainable",
    }),
    "Normalization": frozenset({  # axis is fixed (-1); mean, variance and invert are refused
        "activity_regularizer", "autocast", "dtype", "name", "trainable",
    }),
    "PReLU": frozenset({
        "activity_regularizer", "alpha_constraint", "alpha_initializer", "alpha_regularizer",
        "autocast", "dtype", "name", "shared_axes", "trainable",
    }),
    "Rescaling": frozenset({
        "activity_regularizer", "autocast", "dtype", "name", "offset", "scale", "trainable",
    }),
    "Reshape": frozenset({
        "activity_regularizer", "autocast", "dtype", "name", "target_shape", "trainable",
    }),
    "SeparableConv2D": frozenset({
        "activation", "activity_regularizer", "autocast", "bias_constraint", "bias_initializer",
        "bias_regularizer", "data_format", "depth_multiplier", "depthwise_constraint",
        "depthwise_initializer", "depthwise_regularizer", "dilation_rate", "dtype", "filters",
        "kernel_size", "name", "padding", "pointwise_constraint", "pointwise_initializer",
        "pointwise_regularizer", "rank", "strides", "trainable", "use_bias",
    }),
    "SpatialDropout2D": frozenset({  # its __init__ takes no **kwargs: nothing of Dropout or Layer
        "data_format", "dtype", "name", "rate", "seed",
    }),
    "UpSampling2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "interpolation", "name",
        "size", "trainable",
    }),
    "ZeroPadding2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "name", "padding", "trainable",
    }),
}
# kblocks' binary layers (kblocks.lang.layers) subclass Conv2D and Dense: they take their keywords.
KERAS_KEYWORDS["BinaryWeightConv2D"] = KERAS_KEYWORDS["XNORConv2D"] = KERAS_KEYWORDS["Conv2D"]
KERAS_KEYWORDS["BinaryWeightDense"] = KERAS_KEYWORDS["XNORDense"] = KERAS_KEYWORDS["Dense"]

# Pass-through keywords that change output shapes or weight counts in a way the shape and parameter
# analysis (kblocks/lang/graph.py, kblocks/lang/analysis.py) does not model. A keyword listed here is refused
# with a positioned ArchitectureError unless its value is one of ``allowed`` (values that change
# nothing); without this the summary, --max-params and the search budgets would count a different
# model from the one Keras builds (issue 21: CONV(8, data_format=channels_first) was summarised as
# 5,210 parameters and built with 1,234). tests/test_keyword_records.py builds every keyword of the
# table above and checks that it is either refused or counted exactly as Keras counts it.
_CHANNELS_LAST = ("kblocks lays feature maps out channels-last (batch, ..., channels) and computes "
                  "shapes that way", "leave data_format out (channels_last is the only layout)")
_LORA = ("LoRA adds weights the analysis does not count",
         "build the model, then call layer.enable_lora(rank) on the layers to adapt")
REFUSED_KEYWORDS = {
    # keyword: (classes it applies to or None for all, allowed values, why, what to write instead)
    "data_format": (None, ("channels_last",)) + _CHANNELS_LAST,
    "lora_rank": (None, ()) + _LORA,
    "lora_alpha": (None, ()) + _LORA,
    "quantization_config": (None, (), "quantisation changes the weights the analysis counts",
                            "quantise the built model: model.quantize(mode)"),
    "rank": (None, (), "the spatial rank is fixed by the token",
             "write CONV1D, CONV or CONV3D"),
    "pool_dimensions": (None, (), "the pooling rank is fixed by the token",
                        "write POOL, AVGPOOL, GAP or GMP (all 2-D)"),
    "pool_mode": (None, (), "the pooling mode is fixed by the token", "write POOL (max) or AVGPOOL"),
    "output_padding": (None, (), "output_padding changes the CONVT output shape, which the analysis "
                       "does not model", "follow CONVT with ZEROPAD(...)"),
    "dilation_rate": (("Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D"), (1, (1, 1)),
                      "dilation is modelled only for CONV, CONV1D and CONV3D",
                      "use CONV(filters, kernel, dilation=d)"),
    "depth_multiplier": (("SeparableConv2D",), (1,),
                         "the depthwise multiplier of SEPCONV changes its weights and is not modelled",
                         "write DWCONV(kernel, multiplier=m) followed by CONV(filters, 1)"),
    "axis": (("BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization"),
             (-1, (-1,)),
             "kblocks normalises the channel (last) axis and counts weights per channel",
             "leave axis out"),
    "keepdims": (None, (False,), "keepdims changes the output shape, which the analysis does not "
                 "model", "follow GAP/GMP with RESHAPE([1, 1, channels])"),
    "shared_axes": (None, (), "PRELU has one slope per channel and counts its weights that way",
                    "leave shared_axes out"),
    "renorm": (None, (False,), "batch renormalisation adds weights the analysis does not count",
               "leave renorm out"),
    # NORMALIZE holds mean and variance as 2C + 1 weights; given as constants Keras makes none.
    **{key: (("Normalization",), (), "NORMALIZE keeps its mean and variance as weights (2C + 1, "
             "counted as such), which constants given here would not be",
             "build the model, then set them: layer.set_weights([mean, variance, count]) or "
             "layer.adapt(data)") for key in ("mean", "variance", "invert")},
}


def refusal(keras_class: str, keyword: str, value):
    """``(why, hint)`` when ``keyword=value`` on ``keras_class`` must be refused, else None."""
    rule = REFUSED_KEYWORDS.get(keyword)
    if rule is None:
        return None
    classes, allowed, why, hint = rule
    if classes is not None and keras_class not in classes:
        return None
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, bool) or not isinstance(value, (int, tuple)):
        ok = any(value is a or (isinstance(a, str) and isinstance(value, str) and value.lower() == a)
                 for a in allowed)
    else:
        ok = any(not isinstance(a, (bool, str)) and value == a for a in allowed)
    return None if ok else (why, hint)

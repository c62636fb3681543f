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
    "PReLU": frozenset({
        "activity_regularizer", "alpha_constraint", "alpha_initializer", "alpha_regularizer",
        "autocast", "dtype", "name", "shared_axes", "trainable",
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
    "SpatialDropout2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "name", "noise_shape", "rate",
        "seed", "trainable",
    }),
    "UpSampling2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "interpolation", "name",
        "size", "trainable",
    }),
    "ZeroPadding2D": frozenset({
        "activity_regularizer", "autocast", "data_format", "dtype", "name", "padding", "trainable",
    }),
}

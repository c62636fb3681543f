"""Custom Keras layers that kblocks emits. Each is registered serialisable under the package
``kblocks`` so saved models load with ``safe_mode=True`` and no Lambda layers."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kblocks")
class LRN(keras.layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3).

    ``b_c = a_c / (k + alpha * sum_{c' in window(c)} a_{c'}^2) ** beta`` where the window holds the
    ``size`` channels centred on ``c`` (clipped at the ends), exactly as in the AlexNet paper
    (``alpha`` is not divided by ``size``, unlike PyTorch's ``LocalResponseNorm``).

    Args:
        size: number of adjacent channels summed over (odd; 5 in AlexNet).
        alpha: scale of the sum (1e-4).
        beta: exponent (0.75).
        k: additive constant (2).

    Input shape: any tensor with channels last. Output shape: the same.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, **kwargs):
        super().__init__(**kwargs)
        if int(size) < 1:
            raise ValueError(f"LRN size must be a positive integer, received size={size}")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def call(self, inputs):
        squared = ops.square(inputs)
        half = self.size // 2
        rank = len(inputs.shape)
        pad = [[0, 0]] * (rank - 1) + [[half, self.size - 1 - half]]
        padded = ops.pad(squared, pad)
        channels = inputs.shape[-1]
        total = padded[..., 0:channels]
        for shift in range(1, self.size):
            total = total + padded[..., shift:shift + channels]
        return inputs / ops.power(self.k + self.alpha * total, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta,
                "k": self.k}


@keras.saving.register_keras_serializable(package="kblocks")
class Highway(keras.layers.Layer):
    """A highway layer (Srivastava, Greff and Schmidhuber 2015, "Highway Networks", eq. 3):
    ``y = H(x) * T(x) + x * (1 - T(x))`` with ``H(x) = relu(x W_H + b_H)`` and the transform gate
    ``T(x) = sigmoid(x W_T + b_T)``, whose bias starts at ``gate_bias`` (negative, so that the layer
    first carries its input: the paper suggests -1 to -3).

    Args:
        units: output size; must equal the input's last axis (``x`` is added back). None: that size.
        gate_bias: initial value of ``b_T``.
        kernel_size: None for the dense form; an int or pair for the convolutional form, where
            ``H`` and ``T`` are same-padded convolutions of that kernel over a feature map.

    Input shape: ``(batch, units)``, or ``(batch, H, W, units)`` for the convolutional form.
    Output shape: the same.
    """

    def __init__(self, units=None, gate_bias=-1.0, kernel_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = None if units is None else int(units)
        self.gate_bias = float(gate_bias)
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.kernel_size = None if kernel_size is None else tuple(int(k) for k in kernel_size)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        units = self.units or channels
        if units != channels:
            raise ValueError(f"Highway units={units} must equal the input's last axis ({channels})")
        shape = (channels, units) if self.kernel_size is None else (*self.kernel_size, channels, units)
        self.kernel_h = self.add_weight(name="kernel_h", shape=shape, initializer="glorot_uniform")
        self.bias_h = self.add_weight(name="bias_h", shape=(units,), initializer="zeros")
        self.kernel_t = self.add_weight(name="kernel_t", shape=shape, initializer="glorot_uniform")
        self.bias_t = self.add_weight(name="bias_t", shape=(units,),
                                      initializer=keras.initializers.Constant(self.gate_bias))

    def _affine(self, inputs, kernel, bias):
        if self.kernel_size is None:
            return ops.matmul(inputs, kernel) + bias
        return ops.conv(inputs, kernel, strides=1, padding="same") + bias

    def call(self, inputs):
        h = ops.relu(self._affine(inputs, self.kernel_h, self.bias_h))
        t = ops.sigmoid(self._affine(inputs, self.kernel_t, self.bias_t))
        return h * t + inputs * (1.0 - t)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "units": self.units, "gate_bias": self.gate_bias,
                "kernel_size": None if self.kernel_size is None else list(self.kernel_size)}


@keras.saving.register_keras_serializable(package="kblocks")
class Zero(keras.layers.Layer):
    """The "none" operation of cell search spaces (NAS-Bench-201, DARTS): zeros with the input's
    shape, the spatial axes strided as a same-padded op of ``stride`` would (``ceil(n / stride)``).
    Like DARTS' ``Zero`` it multiplies the (strided) input by 0, so it reads its input.

    Args:
        stride: spatial stride (1 keeps the shape).
    """

    def __init__(self, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, inputs):
        if self.stride > 1 and len(inputs.shape) > 2:
            index = (slice(None),) + (slice(None, None, self.stride),) * (len(inputs.shape) - 2) + \
                (slice(None),)
            inputs = inputs[index]
        return inputs * 0.0

    def compute_output_shape(self, input_shape):
        if self.stride == 1 or len(input_shape) <= 2:
            return input_shape
        return (input_shape[0], *[None if n is None else -(-n // self.stride)
                                  for n in input_shape[1:-1]], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="kblocks")
class Weight(keras.layers.Layer):
    """One input of a weighted-sum aggregation (Xie, Kirillov, Girshick and He 2019, "Exploring
    Randomly Wired Neural Networks for Image Recognition", section 3.2): ``y = sigmoid(w) * x``
    with one learnable scalar ``w`` starting at ``init``, so the weight stays positive; an add merge
    of such branches is the paper's ``sum_i sigmoid(w_i) x_i``. With ``value`` the factor is that
    fixed number and the layer has no weights (the output node's unweighted mean: ``value = 1/n``).

    Args:
        value: a fixed positive factor, or None for the learnable ``sigmoid(w)``.
        init: the initial ``w`` of the learnable form (0: a factor of 0.5).

    Input shape: any. Output shape: the same.
    """

    def __init__(self, value=None, init=0.0, **kwargs):
        super().__init__(**kwargs)
        self.value = None if value is None else float(value)
        self.init = float(init)
        if self.value is not None and self.value <= 0:
            raise ValueError(f"Weight value must be positive, received value={value}")

    def build(self, input_shape):
        if self.value is None:
            self.w = self.add_weight(name="w", shape=(),
                                     initializer=keras.initializers.Constant(self.init))

    def call(self, inputs):
        if self.value is None:
            return inputs * ops.sigmoid(self.w)
        return inputs * self.value

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value": self.value, "init": self.init}


def ste_sign(x):
    """``sign(x)`` forward, the straight-through estimator backward (Rastegari et al. 2016,
    section 3.2, after Hubara et al.): the gradient is 1 where ``|x| <= 1`` and 0 elsewhere, the
    gradient of ``clip(x, -1, 1)``. ``sign(0) = 0``, so zero padding stays zero after binarising."""
    clipped = ops.clip(x, -1.0, 1.0)
    return clipped + ops.stop_gradient(ops.sign(x) - clipped)


def binary_kernel(kernel):
    """``alpha * sign(W)`` with ``alpha = mean |W|`` per output filter (Rastegari et al. 2016,
    eq. 4: the least-squares scale of a binary filter): the weights a Binary-Weight-Network
    convolves with. The gradient reaches ``W`` through ``alpha`` and through the straight-through
    ``sign``, as in the paper's Algorithm 1."""
    alpha = ops.mean(ops.abs(kernel), axis=tuple(range(len(kernel.shape) - 1)), keepdims=True)
    return alpha * ste_sign(kernel)


@keras.saving.register_keras_serializable(package="kblocks")
class BinaryWeightConv2D(keras.layers.Conv2D):
    """A Binary-Weight-Network convolution (Rastegari, Ordonez, Redmon and Farhadi 2016,
    "XNOR-Net: ImageNet Classification Using Binary Convolutional Neural Networks", section 3.1):
    ``I * W ~ (I (+) sign(W)) alpha`` with ``alpha = mean |W|`` per output filter. The layer keeps
    the real-valued ``W`` for training (the paper updates it, Algorithm 1) and convolves with
    ``alpha * sign(W)``; stored for inference it needs 1 bit per weight and one float per filter.

    Takes every argument of ``keras.layers.Conv2D``. Input and output shapes: as Conv2D's.
    """

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, binary_kernel(kernel))


@keras.saving.register_keras_serializable(package="kblocks")
class XNORConv2D(keras.layers.Conv2D):
    """An XNOR-Network convolution (Rastegari et al. 2016, section 3.2, eq. 11): weights and inputs
    binary, ``I * W ~ (sign(I) (*) sign(W)) (.) K alpha``. ``alpha = mean |W|`` per output filter;
    ``K = A * k`` with ``A = mean over channels of |I|`` (per group of input channels when
    ``groups > 1``) and ``k`` the ``kh x kw`` box filter ``1 / (kh kw)``, convolved with the
    layer's own stride, padding and dilation, so ``K`` holds one scale per output position. The
    gradient of ``sign(I)`` is the straight-through estimator (:func:`ste_sign`); ``K`` is
    differentiated as computed.

    The binary activation is part of the layer: the paper's block ``BN -> BinActiv -> BinConv ->
    Pool`` is written ``BN - XNORCONV - POOL``. Zero padding (``padding=same``) pads the binary
    input with 0, as the real-valued convolution pads its input.

    Takes every argument of ``keras.layers.Conv2D``. Input and output shapes: as Conv2D's.
    """

    def convolution_op(self, inputs, kernel):
        out = super().convolution_op(ste_sign(inputs), binary_kernel(kernel))
        return out * self._input_scale(inputs)

    def _input_scale(self, inputs):
        """``K``: the mean ``|I|`` over the channels of each group and over each window, one
        convolution of ``|I|`` with a constant kernel ``1 / (kh kw c)`` (``c`` channels per group),
        repeated over the group's output filters."""
        kh, kw = self.kernel_size
        per_group = inputs.shape[-1] // self.groups
        box = ops.full((kh, kw, per_group, self.groups), 1.0 / (kh * kw * per_group),
                       dtype=inputs.dtype)
        k = super().convolution_op(ops.abs(inputs), box)
        return k if self.groups == 1 else ops.repeat(k, self.filters // self.groups, axis=-1)


class _BinaryDense(keras.layers.Dense):
    """A fully connected layer whose kernel is ``alpha * sign(W)`` (``alpha = mean |W|`` per
    unit) and, when ``binary_inputs``, whose input is ``sign(x)`` scaled by ``K = mean |x|``: the
    convolutions above with the window the whole input, as the paper's AlexNet binarises fc6 and
    fc7 (written there as 6x6 and 1x1 convolutions)."""

    binary_inputs = False

    def call(self, inputs, training=None):
        kernel = binary_kernel(self.kernel)
        if self.binary_inputs:
            x = ops.matmul(ste_sign(inputs), kernel) * ops.mean(ops.abs(inputs), axis=-1,
                                                                keepdims=True)
        else:
            x = ops.matmul(inputs, kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x


@keras.saving.register_keras_serializable(package="kblocks")
class BinaryWeightDense(_BinaryDense):
    """A Binary-Weight-Network fully connected layer (Rastegari et al. 2016, section 3.1):
    ``x W ~ (x sign(W)) alpha``, ``alpha = mean |W|`` per unit. Takes every argument of
    ``keras.layers.Dense``; input ``(batch, features)``, output ``(batch, units)``."""


@keras.saving.register_keras_serializable(package="kblocks")
class XNORDense(_BinaryDense):
    """An XNOR-Network fully connected layer (Rastegari et al. 2016, section 3.2):
    ``x W ~ (sign(x) sign(W)) K alpha`` with ``K = mean |x|`` per example and ``alpha = mean |W|``
    per unit; the straight-through gradient for ``sign(x)``. Equal to :class:`XNORConv2D` with a
    ``valid`` kernel the size of its (flattened) input. Takes every argument of
    ``keras.layers.Dense``; input ``(batch, features)``, output ``(batch, units)``."""

    binary_inputs = True
@keras.saving.register_keras_serializable(package="kblocks")
class ChannelShuffle(keras.layers.Layer):
    """Channel shuffle (Zhang et al. 2018, "ShuffleNet", section 3.1, Fig. 1(c); Ma et al. 2018,
    "ShuffleNet V2", Fig. 3(c, d)): the C channels, read as a ``groups x C/groups`` grid, are
    transposed and flattened again, so channel ``g * C/groups + i`` moves to ``i * groups + g``
    and the next unit's groups each see channels of every group. torchvision's ``channel_shuffle``
    does the same on NCHW (``view(b, groups, C/groups, h, w).transpose(1, 2)``).

    Args:
        groups: number of groups; must divide the channels.

    Input shape: any tensor with channels last. Output shape: the same.
    """

    def __init__(self, groups=2, **kwargs):
        super().__init__(**kwargs)
        if int(groups) < 1:
            raise ValueError(f"ChannelShuffle groups must be a positive integer, received {groups}")
        self.groups = int(groups)

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        grid = ops.reshape(inputs, (*shape[:-1], self.groups, channels // self.groups))
        rank = len(inputs.shape)
        axes = list(range(rank - 1)) + [rank, rank - 1]
        return ops.reshape(ops.transpose(grid, axes), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable(package="kblocks")
class ChannelSplit(keras.layers.Layer):
    """One part of an equal split of the channels (Ma et al. 2018, "ShuffleNet V2", section 4,
    "Channel Split", Fig. 3(c)): part ``part`` (counted from 1) of ``parts`` groups, in order, so
    ``(SPLIT(1, 2) | SPLIT(2, 2) - ...)`` is torchvision's ``x1, x2 = x.chunk(2, dim=1)``.

    Args:
        part: which group, 1 to ``parts``.
        parts: number of equal groups; must divide the channels.

    Input shape: any tensor with channels last. Output shape: the same with C/parts channels.
    """

    def __init__(self, part=1, parts=2, **kwargs):
        super().__init__(**kwargs)
        self.part, self.parts = int(part), int(parts)
        if not 1 <= self.part <= self.parts:
            raise ValueError(f"ChannelSplit part must be 1 to parts={self.parts}, received {part}")

    def call(self, inputs):
        width = inputs.shape[-1] // self.parts
        return inputs[..., (self.part - 1) * width:self.part * width]

    def compute_output_shape(self, input_shape):
        width = None if input_shape[-1] is None else input_shape[-1] // self.parts
        return (*input_shape[:-1], width)

    def get_config(self):
        return {**super().get_config(), "part": self.part, "parts": self.parts}

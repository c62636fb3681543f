"""Binary networks (Rastegari, Ordonez, Redmon and Farhadi 2016, "XNOR-Net"; CENG501
"Binary-Weight-Networks and XNOR-Networks"): BWCONV, XNORCONV, BWFC and XNORFC compute their
definitions (written out here in numpy, independently of Keras), the sign's straight-through
gradient is 1 inside [-1, 1] and 0 outside, the layers load with ``safe_mode=True``, the summary's
weight memory counts binary weights at 1 bit (hand-derived bytes), and the XNOR AlexNet of the zoo
has the hand-derived parameter count and trains."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import kblocks
from kblocks.lang.vocab import VOCAB

RNG = np.random.default_rng(14)


# --- the definitions in numpy -----------------------------------------------------------------
def binarised(kernel):
    """``alpha * sign(W)``, ``alpha = mean |W|`` over all axes but the last (one per filter/unit)."""
    alpha = np.abs(kernel).mean(axis=tuple(range(kernel.ndim - 1)), keepdims=True)
    return alpha * np.sign(kernel)


def conv(x, kernel, stride, pad, groups=1):
    """A zero-padded, strided, grouped 2-D convolution (``kernel``: kh, kw, cin/groups, filters)."""
    kh, kw, per_group, filters = kernel.shape
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # n,h,w,c,kh,kw
    per_out = filters // groups
    out = [np.einsum("nhwcab,abcf->nhwf", windows[..., g * per_group:(g + 1) * per_group, :, :],
                     kernel[..., g * per_out:(g + 1) * per_out]) for g in range(groups)]
    return np.concatenate(out, axis=-1)


def xnor_conv(x, kernel, stride, pad, groups=1):
    """Eq. 11: ``(sign(I) * sign(W)) . K alpha``, ``K`` the mean |I| over each window and the
    channels of each group (``A`` box-filtered), repeated over that group's filters."""
    kh, kw, per_group, filters = kernel.shape
    box = np.zeros((kh, kw, per_group * groups, groups), "float32")
    for g in range(groups):
        box[:, :, g * per_group:(g + 1) * per_group, g] = 1.0 / (kh * kw * per_group)
    k = conv(np.abs(x), box, stride, pad)  # one scale per position and group
    k = np.repeat(k, filters // groups, axis=-1)
    return conv(np.sign(x), binarised(kernel), stride, pad, groups) * k


def _layer(cls, x, **kw):
    """The kblocks layer ``cls(**kw)`` built on ``x``, its kernel and bias random."""
    layer = cls(**kw)
    layer.build(x.shape)
    layer.kernel.assign(RNG.normal(size=layer.kernel.shape).astype("float32"))
    if layer.use_bias:
        layer.bias.assign(RNG.normal(size=layer.bias.shape).astype("float32"))
    return layer


def _bias(layer):
    return np.asarray(layer.bias) if layer.use_bias else 0.0


# --- forward passes ----------------------------------------------------------------------------
@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, "same")])
def test_a_binary_weight_convolution_is_alpha_times_sign_w(stride, padding):
    from kblocks.lang.layers import BinaryWeightConv2D

    x = RNG.normal(size=(2, 5, 5, 3)).astype("float32")
    layer = _layer(BinaryWeightConv2D, x, filters=4, kernel_size=3, strides=stride, padding=padding)
    kernel = np.asarray(layer.kernel)
    expect = conv(x, binarised(kernel), stride, 1 if padding == "same" else 0) + _bias(layer)
    np.testing.assert_allclose(np.asarray(layer(x)), expect, rtol=1e-5, atol=1e-5)
    assert len(np.unique(np.abs(binarised(kernel)[..., 0]))) == 1  # one magnitude per filter


@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 1), (1, 2)])
def test_an_xnor_convolution_is_its_definition(stride, groups):
    from kblocks.lang.layers import XNORConv2D

    x = RNG.normal(size=(2, 5, 5, 4)).astype("float32")
    layer = _layer(XNORConv2D, x, filters=6, kernel_size=3, strides=stride, padding="same",
                   groups=groups, use_bias=False)
    expect = xnor_conv(x, np.asarray(layer.kernel), stride, 1, groups)
    np.testing.assert_allclose(np.asarray(layer(x)), expect, rtol=1e-5, atol=1e-5)


def test_the_fully_connected_forms_are_their_definitions_and_xnorfc_is_a_whole_input_xnorconv():
    from kblocks.lang.layers import BinaryWeightDense, XNORConv2D, XNORDense

    x = RNG.normal(size=(3, 2, 2, 5)).astype("float32")
    flat = x.reshape(3, -1)
    bw = _layer(BinaryWeightDense, flat, units=4)
    np.testing.assert_allclose(np.asarray(bw(flat)),
                               flat @ binarised(np.asarray(bw.kernel)) + _bias(bw), rtol=1e-5,
                               atol=1e-5)
    xn = _layer(XNORDense, flat, units=4)
    k = np.abs(flat).mean(axis=-1, keepdims=True)
    expect = np.sign(flat) @ binarised(np.asarray(xn.kernel)) * k + _bias(xn)
    np.testing.assert_allclose(np.asarray(xn(flat)), expect, rtol=1e-5, atol=1e-5)
    # the paper's AlexNet writes fc6 as a binary convolution whose kernel covers the whole map
    as_conv = _layer(XNORConv2D, x, filters=4, kernel_size=2, padding="valid")
    as_conv.kernel.assign(np.asarray(xn.kernel).reshape(2, 2, 5, 4))
    as_conv.bias.assign(np.asarray(xn.bias))
    np.testing.assert_allclose(np.asarray(as_conv(x)).reshape(3, 4), np.asarray(xn(flat)),
                               rtol=1e-5, atol=1e-5)


def _grad(f, x):
    """d sum(f(x)) / dx on the running backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: f(v).sum())(x))
    import tensorflow as tf

    v = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(f(v))
    return tape.gradient(y, v).numpy()


def test_the_sign_has_the_straight_through_gradient():
    from kblocks.lang.layers import ste_sign

    x = np.array([-3.0, -1.2, -0.99, -0.5, 0.25, 0.7, 0.99, 1.01, 2.5], "float32")
    np.testing.assert_array_equal(np.asarray(ste_sign(x)), np.sign(x))
    np.testing.assert_array_equal(_grad(ste_sign, x), (np.abs(x) <= 1).astype("float32"))


# --- saving, the summary -------------------------------------------------------------------------
SMALL = "CONV(8, 3) - BN - XNORCONV(16, 3, stride=2) - BWCONV(8, 3, use_bias=false) - GAP - XNORFC(12) - BWFC(10)"


@pytest.fixture(scope="module")
def small_model():
    return kblocks.build(SMALL, input_shape=(8, 8, 3))


def test_binary_layers_round_trip_with_safe_mode(small_model, tmp_path):
    import keras

    x = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    path = tmp_path / "binary.keras"
    small_model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [type(layer).__name__ for layer in loaded.layers[3:]] == \
        ["XNORConv2D", "BinaryWeightConv2D", "GlobalAveragePooling2D", "XNORDense",
         "BinaryWeightDense"]
    assert loaded.layers[3].strides == (2, 2) and loaded.layers[4].use_bias is False
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(small_model(x)), atol=1e-6)


def test_binary_tokens_take_conv_and_fc_keywords():
    model = kblocks.build("XNORCONV(4, kernel_initializer=he_normal) - BWFC(3, "
                          "kernel_initializer=zeros)", input_shape=(6, 6, 2))
    assert type(model.layers[1].kernel_initializer).__name__ == "HeNormal"
    assert not np.any(np.asarray(model.layers[-1].kernel))


def test_the_summary_counts_binary_weights_at_one_bit(small_model):
    s = kblocks.summary(small_model)
    real = (3 * 3 * 3 * 8 + 8) + 4 * 8  # CONV and BN (2 x 8 trainable, 2 x 8 statistics), float32
    xnor, bw = 3 * 3 * 8 * 16, 3 * 3 * 16 * 8  # binary kernels
    fc_x, fc_b = 8 * 12, 12 * 10
    binary_bytes = (xnor // 8 + 4 * 16 + 4 * 16) + (bw // 8 + 4 * 8) + \
        (fc_x // 8 + 4 * 12 + 4 * 12) + (fc_b // 8 + 4 * 10 + 4 * 10)  # bits, alphas, biases
    binary_fp32 = 4 * (xnor + 16 + bw + fc_x + 12 + fc_b + 10)
    assert s.params == real + binary_fp32 // 4 == small_model.count_params()
    assert (binary_bytes, binary_fp32) == (651, 10232)
    total = 4 * real + binary_bytes
    assert s.to_dict()["weight_bytes"] == total == 1675
    assert s.to_dict()["float32_weight_bytes"] == 4 * s.params == 11256
    lines = str(s).splitlines()
    assert "Weight memory: 1,675 bytes (0.0 MiB) with binary weights at 1 bit; 11,256 bytes " \
           "(0.0 MiB) as float32: 6.7x smaller" in lines
    assert "Binary layers: 4, 2,520 weights at 1 bit, 46 float32 scales and their biases: 651 " \
           "bytes; 10,232 bytes as float32: 15.7x smaller" in lines


def test_a_real_valued_summary_has_no_weight_memory_lines():
    s = kblocks.summary("CONV(8, 3) - GAP - FC(10)", input_shape=(8, 8, 3))
    assert not any(line.startswith(("Weight memory", "Binary layers")) for line in str(s).splitlines())
    assert s.to_dict()["weight_bytes"] == s.to_dict()["float32_weight_bytes"] == 4 * s.params


def test_the_binary_tokens_are_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs/language.md").read_text()
    for token in ("BWCONV", "XNORCONV", "BWFC", "XNORFC"):
        assert VOCAB.get(token) is not None and f"`{token}" in text, token


# --- the XNOR AlexNet of the zoo -------------------------------------------------------------------
def test_xnor_alexnet_has_the_hand_counted_parameters_and_the_paper_memory():
    a = kblocks.analyse("xnor_alexnet")
    convs = [(11, 3, 96), (5, 96, 256), (3, 256, 384), (3, 384, 384), (3, 384, 256)]
    fcs = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    weights = sum(k * k * c * f for k, c, f in convs) + sum(i * o for i, o in fcs)
    biases = sum(f for *_, f in convs) + sum(o for _, o in fcs)
    statistics = 2 * (96 + 96 + 256 + 384 + 384 + 256 + 4096 + 4096)  # BN without scale and offset
    assert (a.trainable, a.non_trainable) == (weights + biases, statistics) == (62378344, 19328)
    # Fig. 4(b) of the paper: AlexNet's weights 475 MB at 64 bits, 7.4 MB at 1 bit
    assert int((weights + biases) * 8 / 2**20) == 475
    assert round((weights + biases) / 8 / 2**20, 1) == 7.4
    binary = weights - 11 * 11 * 3 * 96 - 4096 * 1000  # conv2-conv5, fc6, fc7
    assert a.binary_weights == binary
    scales = 256 + 384 + 384 + 256 + 4096 + 4096
    assert a.weight_bytes == 4 * (a.params - binary) + binary // 8 + 4 * scales == 23960480
    binary_bytes = binary // 8 + 4 * (scales + scales)  # the binary layers: bits, alphas, biases
    ratio = 4 * (binary + scales) / binary_bytes  # against float32: about 32x
    assert 31.5 < ratio < 32


def test_xnor_alexnet_trains_one_step_at_a_small_input():
    model = kblocks.build("xnor_alexnet", input_shape=(64, 64, 3), classes=10)
    layer = model.get_layer("xnorconv_6")
    before = np.asarray(layer.kernel).copy()
    x = RNG.uniform(0, 1, (4, 64, 64, 3)).astype("float32")
    history = model.fit(x, np.arange(4), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(np.asarray(layer.kernel), before)  # the gradient reaches W through sign

"""Structural identity of zoo networks with ``keras.applications``.

For VGG16, VGG19, ResNet50/101/152, DenseNet121 and MobileNet (alpha 1.0) two things are checked:

1. The parameter count equals Keras' published one (138,357,544; 143,667,240; 25,636,712;
   44,707,176; 60,419,944; 8,062,504; 4,253,864) at 224x224 and 1000 classes. It is read from
   ``kblocks.summary`` (the layer graph, no Keras model), so the big ones cost nothing.
2. The stronger check: the Keras model is built with random weights (``weights=None``) and random
   batch-norm statistics, its weights are copied into the kblocks model layer by layer
   (:func:`copy_weights` pairs the weighted layers of both models in order and insists that every
   pair is the same kind of layer with weights of the same shapes), and both models predict the
   same class probabilities and the same pooled features on random input (max abs diff < 1e-5;
   the features are checked to be far from zero, so the comparison means something).

To keep the tests fast the weight identity runs at 32x32 input with 10 classes (every model
accepts 32x32; the convolutional weights do not depend on the input size and the head only on the
classes). For the GAP-headed networks the Keras count at 10 classes is also tied to the published
count at 1000: the classifier is the only layer that changes, by 990 x (features + 1). VGG's FC
sizes depend on the input, so VGG is compared at 32x32 with ``include_top=False`` plus Keras' own
top (Flatten - Dense 4096 relu - Dense 4096 relu - Dense softmax) built on it; kblocks' VGG has
dropout after the two hidden FC layers, as in the paper, which is the identity at inference.
"""
from __future__ import annotations

import numpy as np
import pytest

import kblocks

SIZE = (32, 32, 3)
CLASSES = 10
TOL = 1e-5

# zoo name -> (keras.applications function, parameters at 224x224x3 / 1000 classes, features)
GAP_HEADED = {
    "resnet50": ("ResNet50", 25_636_712, 2048),
    "resnet101": ("ResNet101", 44_707_176, 2048),
    "resnet152": ("ResNet152", 60_419_944, 2048),
    "densenet121": ("DenseNet121", 8_062_504, 1024),
    "mobilenet": ("MobileNet", 4_253_864, 1024),
}
VGG = {"vgg16": ("VGG16", 138_357_544), "vgg19": ("VGG19", 143_667_240)}


def weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def _kind(layer) -> str:
    name = type(layer).__name__
    return "Dense" if name in ("Dense", "Conv2D") and _is_1x1_head(layer) else name


def _is_1x1_head(layer) -> bool:
    """Keras' MobileNet classifier and EfficientNet's squeeze-and-excitation layers are 1x1
    Conv2Ds on a pooled 1x1 map: the same as a Dense."""
    if type(layer).__name__ == "Dense":
        return True
    return tuple(layer.kernel_size) == (1, 1) and tuple(layer.input.shape[1:3]) == (1, 1)


def copy_weights(src, dst) -> int:
    """Copy ``src``'s weights into ``dst``, pairing their weighted layers in order.

    Every pair must be the same kind of layer with weights of the same shapes (a 1x1 Conv2D
    classifier may pair with a Dense of the same number of weights). Returns the number of pairs.
    """
    a, b = weighted_layers(src), weighted_layers(dst)
    assert len(a) == len(b), f"{len(a)} weighted layers in {src.name}, {len(b)} in {dst.name}"
    for la, lb in zip(a, b):
        assert _kind(la) == _kind(lb), f"{la.name} ({type(la).__name__}) pairs with {lb.name} " \
                                       f"({type(lb).__name__})"
        values = la.get_weights()
        shapes = [w.shape for w in lb.get_weights()]
        assert len(values) == len(shapes), f"{la.name} and {lb.name} hold different weights"
        for v, s in zip(values, shapes):
            assert v.shape == s or (_kind(la) == "Dense" and v.size == int(np.prod(s))), \
                f"{la.name} {v.shape} does not fit {lb.name} {s}"
        lb.set_weights([v.reshape(s) for v, s in zip(values, shapes)])
    return len(a)


def randomise_batchnorm(model, rng) -> None:
    """Give every BatchNormalization non-trivial gamma, beta, moving mean and variance (those of
    them it has: Inception's BN has no gamma), so that a wrong pairing or a wrong epsilon shows in
    the predictions."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[-1].shape
            values = [rng.uniform(0.5, 1.5, c)] * layer.scale + [rng.normal(0, 0.1, c)] * layer.center
            layer.set_weights(values + [rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)])


def _pooled(model):
    """Sub-model ending at the global average pooling (or the flatten) before the classifier."""
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.Flatten)):
            return keras.Model(model.input, layer.output)
    raise AssertionError(f"{model.name} has no pooling before its classifier")


def assert_same_predictions(reference, model, rng, low=0.0, high=1.0):
    x = rng.uniform(low, high, (2, *SIZE)).astype("float32")
    want = np.asarray(reference(x, training=False))
    got = np.asarray(model(x, training=False))
    assert got.shape == want.shape
    assert np.abs(got - want).max() < TOL
    feats_want = np.asarray(_pooled(reference)(x, training=False))
    feats_got = np.asarray(_pooled(model)(x, training=False))
    assert np.abs(feats_got - feats_want).max() < TOL
    assert np.abs(feats_want).max() > 1e-2  # the comparison is not between two vectors of zeros


@pytest.mark.parametrize("name", list(GAP_HEADED) + list(VGG))
def test_parameter_count_equals_keras_applications(name):
    """At 224x224x3 and 1000 classes, from the layer graph alone."""
    expected = GAP_HEADED[name][1] if name in GAP_HEADED else VGG[name][1]
    assert kblocks.summary(name, input_shape=(224, 224, 3), classes=1000).params == expected


def _slow_if(name, heavy):
    return pytest.param(name, marks=pytest.mark.slow) if name in heavy else name


@pytest.mark.parametrize("name", [_slow_if(n, {"resnet101", "resnet152"}) for n in GAP_HEADED])
def test_weights_copy_over_and_predictions_match(name):
    """ResNet50/101/152, DenseNet121, MobileNet at 32x32x3 with 10 classes (see the module doc)."""
    import keras

    fn, published, features = GAP_HEADED[name]
    reference = getattr(keras.applications, fn)(weights=None, input_shape=SIZE, classes=CLASSES)
    model = kblocks.build(name, input_shape=SIZE, classes=CLASSES)
    assert model.count_params() == reference.count_params()
    # The published count (1000 classes) differs from this one only in the classifier.
    assert reference.count_params() + (1000 - CLASSES) * (features + 1) == published
    rng = np.random.default_rng(0)
    randomise_batchnorm(reference, rng)
    pairs = copy_weights(reference, model)
    assert pairs == len(weighted_layers(model)) > 20
    assert_same_predictions(reference, model, rng)


@pytest.mark.parametrize("name", list(VGG))
def test_vgg_weights_copy_over_and_predictions_match(name):
    """VGG at 32x32x3: Keras' convolutional base (include_top=False) plus Keras' own top."""
    import keras

    fn, _ = VGG[name]
    base = getattr(keras.applications, fn)(weights=None, include_top=False, input_shape=SIZE)
    x = keras.layers.Flatten(name="flatten")(base.output)
    x = keras.layers.Dense(4096, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(4096, activation="relu", name="fc2")(x)
    out = keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    reference = keras.Model(base.input, out, name=name)
    model = kblocks.build(name, input_shape=SIZE, classes=CLASSES)
    assert model.count_params() == reference.count_params()
    rng = np.random.default_rng(1)
    assert copy_weights(reference, model) == (16 if name == "vgg16" else 19)
    # Without batch normalisation Glorot-initialised VGG shrinks a [0, 1] input to features of
    # about 1e-3; inputs in the mean-subtracted pixel range VGG was trained on keep them near 1.
    assert_same_predictions(reference, model, rng, -128.0, 128.0)


def test_copy_weights_refuses_a_different_structure():
    """The helper is strict: a model with one more layer, or another layer order, is refused."""
    a = kblocks.build("CONV(8)-BN-RELU-GAP-FC(10)", input_shape=(8, 8, 3))
    b = kblocks.build("CONV(8)-RELU-BN-GAP-FC(10)", input_shape=(8, 8, 3))  # same layers, same order
    copy_weights(a, b)
    c = kblocks.build("BN-CONV(8)-RELU-GAP-FC(10)", input_shape=(8, 8, 3))
    with pytest.raises(AssertionError, match="pairs with"):
        copy_weights(a, c)
    d = kblocks.build("CONV(8)-BN-CONV(8)-GAP-FC(10)", input_shape=(8, 8, 3))
    with pytest.raises(AssertionError, match="weighted layers"):
        copy_weights(a, d)

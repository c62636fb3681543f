"""Structural identity of zoo networks with ``keras.applications``.

For VGG16, VGG19, ResNet50/101/152, DenseNet121, MobileNet (alpha 1.0) and, since issue 14,
InceptionV3, InceptionResNetV2, Xception, MobileNetV2 (alpha 1.0) and EfficientNetB0 two things
are checked:

1. The parameter count equals Keras' published one (138,357,544; 143,667,240; 25,636,712;
   44,707,176; 60,419,944; 8,062,504; 4,253,864; 23,851,784; 55,873,736; 22,910,480; 3,538,984;
   5,330,571) at the default input (224x224, 299x299 for the Inceptions and Xception) and 1000
   classes. It is read from ``kblocks.summary`` (the layer graph, no Keras model), so the big ones
   cost nothing.
2. The stronger check: the Keras model is built with random weights (``weights=None``) and random
   batch-norm statistics, its weights are copied into the kblocks model layer by layer
   (:func:`copy_weights` pairs the weighted layers of both models in order and insists that every
   pair is the same kind of layer with weights of the same shapes), and both models predict the
   same class probabilities and the same pooled features on random input (max abs diff < 1e-5;
   the features are checked to be far from zero, so the comparison means something).

To keep the tests fast the weight identity runs at the smallest input Keras accepts (32x32; 75x75
for InceptionV3 and InceptionResNetV2, 71x71 for Xception) with 10 classes (the convolutional
weights do not depend on the input size and the head only on the classes). EfficientNetB0 gets
pixels in [0, 255]: Keras' model (and the zoo file) rescale them by 1/255 first. For the GAP-headed networks the Keras count at 10 classes is also tied to the published
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
    "inception_v3": ("InceptionV3", 23_851_784, 2048),
    "inception_resnet_v2": ("InceptionResNetV2", 55_873_736, 1536),
    "xception": ("Xception", 22_910_480, 2048),
    "mobilenet_v2": ("MobileNetV2", 3_538_984, 1280),
    "efficientnet_b0": ("EfficientNetB0", 5_330_571, 1280),
}
# the smallest side Keras accepts, where it is not 32 (keras.applications' min_size)
SIDE = {"inception_v3": 75, "inception_resnet_v2": 75, "xception": 71}
PIXELS = {"efficientnet_b0": 255.0}  # the upper end of the random input, where it is not 1
DEFAULT_SIDE = {"inception_v3": 299, "inception_resnet_v2": 299, "xception": 299}
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


def assert_same_predictions(reference, model, rng, low=0.0, high=1.0, size=SIZE):
    x = rng.uniform(low, high, (2, *size)).astype("float32")
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
    """At the default input (224x224x3, or 299x299x3) and 1000 classes, from the layer graph alone."""
    expected = GAP_HEADED[name][1] if name in GAP_HEADED else VGG[name][1]
    side = DEFAULT_SIDE.get(name, 224)
    assert kblocks.summary(name, input_shape=(side, side, 3), classes=1000).params == expected


def check_twin(name, twin, size, *, seed, min_pairs, high=1.0):
    """Build zoo ``name`` and its ``keras.applications`` twin ``(function, published count,
    features)`` at ``size``: equal counts, the published 1000-class count, every weighted layer
    copied over (more than ``min_pairs``) and the same predictions. Returns the kblocks model and
    the random generator."""
    import keras

    fn, published, features = twin
    reference = getattr(keras.applications, fn)(weights=None, input_shape=size, classes=CLASSES)
    model = kblocks.build(name, input_shape=size, classes=CLASSES)
    assert model.count_params() == reference.count_params()
    # The published count (1000 classes) differs from this one only in the classifier.
    assert reference.count_params() + (1000 - CLASSES) * (features + 1) == published
    rng = np.random.default_rng(seed)
    randomise_batchnorm(reference, rng)
    pairs = copy_weights(reference, model)
    assert pairs == len(weighted_layers(model)) > min_pairs
    assert_same_predictions(reference, model, rng, high=high, size=size)
    return model, rng


def _slow_if(name, heavy):
    return pytest.param(name, marks=pytest.mark.slow) if name in heavy else name


@pytest.mark.parametrize("name", [_slow_if(n, {"resnet101", "resnet152", "inception_resnet_v2"})
                                  for n in GAP_HEADED])
def test_weights_copy_over_and_predictions_match(name):
    """At the smallest input Keras accepts with 10 classes (see the module doc)."""

    size = (SIDE.get(name, 32),) * 2 + (3,)
    model, rng = check_twin(name, GAP_HEADED[name], size, seed=0, min_pairs=20,
                            high=PIXELS.get(name, 1.0))
    if name in PAPER_TABLES:  # issue 14's families also train (one SGD step changes the stem)
        assert_trains_one_step(model, rng, size, PIXELS.get(name, 1.0))


def assert_trains_one_step(model, rng, size, high):
    x = rng.uniform(0, high, (2, *size)).astype("float32")
    y = np.array([0, 1])
    stem = next(layer for layer in model.layers if layer.trainable_weights)  # not NORMALIZE
    before = np.array(stem.get_weights()[0])
    # eagerly: tracing the train step of a 300-layer graph costs ~8x the step itself
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", run_eagerly=True)
    loss = model.train_on_batch(x, y)
    assert np.all(np.isfinite(loss))
    assert np.abs(np.array(stem.get_weights()[0]) - before).max() > 0


# Issue 14's families against their papers' tables, from the layer graph at the default input:
# (shapes the table lists, number of depthwise/separable convolutions, number of add merges).
PAPER_TABLES = {
    # Szegedy et al. 2016, "Rethinking the Inception Architecture", Table 1: the 35x35x288 grid of
    # the Fig. 5 modules, 17x17x768 of the Fig. 6 modules, 8x8x1280 into the Fig. 7 modules, 2048 out
    "inception_v3": ({"35x35x288", "17x17x768", "8x8x1280", "8x8x2048"}, 0, 0),
    # Szegedy et al. 2017, "Inception-v4, Inception-ResNet", Fig. 15 grids 35x35, 17x17, 8x8; the
    # widths 320 / 1088 / 2080 and the 10 + 20 + 10 residual blocks are TF-slim's (and Keras'),
    # where the figure has 5 + 10 + 5 (the file's doc says so)
    "inception_resnet_v2": ({"35x35x320", "17x17x1088", "8x8x2080", "8x8x1536"}, 0, 40),
    # Chollet 2017, Fig. 5: entry flow to 19x19x728, eight middle blocks, exit flow 1024 then
    # separable 1536 and 2048; 3 + 8 + 1 residual adds, 2 + 2 + 2 + 24 + 2 + 2 separable convolutions
    "xception": ({"19x19x728", "10x10x1024", "10x10x1536", "10x10x2048"}, 34, 12),
    # Sandler et al. 2018, Table 2 (t, c, n, s): 112x112x32 stem, stages of 16, 24, 32, 64, 96, 160,
    # 320 channels, n = 1, 2, 3, 4, 3, 3, 1 blocks (17 depthwise convolutions; a shortcut on all but
    # each stage's first: 10), 7x7x1280 last
    "mobilenet_v2": ({"112x112x32", "112x112x16", "56x56x24", "28x28x32", "14x14x64", "14x14x96",
                      "7x7x160", "7x7x320", "7x7x1280"}, 17, 10),
    # Tan and Le 2019, Table 1 (stages 1-9: resolution, channels, layers 1, 1, 2, 2, 3, 3, 4, 1, 1):
    # 16 MBConv blocks, 9 with a shortcut
    "efficientnet_b0": ({"112x112x32", "112x112x16", "56x56x24", "28x28x40", "14x14x80",
                         "14x14x112", "7x7x192", "7x7x320", "7x7x1280"}, 16, 9),
}
PAPER_COUNTS = {  # the papers' parameter and multiply-add counts, where they give ones these are
    "xception": {"trainable": 22_855_952},  # Chollet 2017, Table 3
    "mobilenet_v2": {"mmacs_tens": 300},  # Sandler et al. 2018, Table 4: 300 M multiply-adds
    "efficientnet_b0": {"millions": 5.3, "gmacs": 0.39},  # Tan and Le 2019, Table 2: 5.3 M, 0.39 B
}


@pytest.mark.parametrize("name", list(PAPER_TABLES))
def test_new_families_follow_their_papers_tables(name):
    """Shapes, block counts and parameter counts of the tables cited above (no Keras model)."""
    shapes, separable, adds = PAPER_TABLES[name]
    side = DEFAULT_SIDE.get(name, 224)
    summary = kblocks.summary(name, input_shape=(side, side, 3), classes=1000)
    rows = summary.rows()
    assert shapes <= {r.shape for r in rows}
    kinds = [r.keras.split(": ")[1].split(" ")[0] for r in rows if ": " in r.keras]
    assert sum(k in ("DepthwiseConv2D", "SeparableConv2D") for k in kinds) == separable
    assert kinds.count("Add") == adds
    got = {"trainable": summary.trainable_params, "millions": round(summary.params / 1e6, 1),
           "mmacs_tens": round(summary.macs / 1e7) * 10, "gmacs": round(summary.macs / 1e9, 2)}
    for what, number in PAPER_COUNTS.get(name, {}).items():
        assert got[what] == number, what


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

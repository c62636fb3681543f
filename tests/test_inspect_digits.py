"""Inspection of a small conv net trained for a few seconds on scikit-learn's 8x8 digits.

Checks numbers: FGSM lowers the true-class probability and stays within eps; t-SNE gives one point
per sample (and separates the classes better than chance); filters and feature maps have the
layer's channel count; Grad-CAM of a pooled layer is upsampled to the input size.
"""
from __future__ import annotations

import numpy as np
import pytest

import keras

from kblocks.inspect import (class_probabilities, feature_maps, fgsm, filter_tiles, grad_cam,
                             saliency_map, tsne_embedding)
from kblocks.inspect.embedding import codes
from kblocks.inspect.inputs import load_samples


@pytest.fixture(scope="module")
def digits():
    return load_samples("digits")


@pytest.fixture(scope="module")
def trained(digits):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale_0")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_2")(x)
    x = keras.layers.MaxPooling2D(name="pool_3")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_4")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap_5")(x)
    out = keras.layers.Dense(10, activation="softmax", name="fc_6")(x)  # softmax inside the dense
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.x[:1500].astype("float32"), digits.y[:1500], epochs=8, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def held_out(trained, digits):
    """Held-out digits the model gets right (the images FGSM attacks)."""
    x, y = digits.x[1500:].astype("float32"), digits.y[1500:]
    probs = class_probabilities(trained, x)
    accuracy = float(np.mean(probs.argmax(-1) == y))
    assert accuracy > 0.75, f"the fixture model did not learn ({accuracy:.2f})"
    right = np.flatnonzero(probs.argmax(-1) == y)[:40]
    return x[right], y[right]


def test_fgsm_lowers_the_true_class_probability(trained, held_out):
    x, y = held_out
    eps = 0.05
    adv = fgsm(trained, x, y, eps=eps)
    assert adv.shape == x.shape
    assert adv.min() >= 0 and adv.max() <= 255
    assert np.abs(adv - x).max() <= eps * 255 + 1e-3
    before = class_probabilities(trained, x)[np.arange(len(y)), y]
    after = class_probabilities(trained, adv)[np.arange(len(y)), y]
    assert after.mean() < before.mean() - 0.05
    assert np.mean(after < before) > 0.9
    # more eps, more damage; eps = 0 changes nothing
    worse = class_probabilities(trained, fgsm(trained, x, y, eps=0.2))[np.arange(len(y)), y]
    assert worse.mean() < after.mean()
    np.testing.assert_array_equal(fgsm(trained, x[0], int(y[0]), eps=0.0), x[0])


def test_tsne_has_one_point_per_sample(trained, digits):
    x, y = digits.x[1500:1600], digits.y[1500:1600]
    feats = codes(trained, x)
    assert feats.shape == (100, 32)  # the input of the last dense layer
    points = tsne_embedding(trained, x, seed=0)
    assert points.shape == (100, 2) and np.all(np.isfinite(points))
    # nearest neighbour in the embedding shares the class far more often than chance (0.1)
    d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.mean(y[d.argmin(1)] == y) > 0.5


def test_filters_and_feature_maps_have_the_layer_channel_count(trained, digits):
    assert filter_tiles(trained).shape == (8, 3, 3, 1)  # first conv layer, grey tiles
    assert filter_tiles(trained, "conv_4").shape == (32, 3, 3, 16)
    assert filter_tiles(trained, 4).shape == (32, 3, 3, 16)  # index 4 = conv_4 (no InputLayer)
    maps = feature_maps(trained, digits.x[0], "pool_3")
    assert maps.shape == (4, 4, 16)
    assert maps.min() >= 0  # after ReLU and max pooling


def test_gradcam_and_saliency_on_the_trained_model(trained, digits):
    image = digits.x[1600]
    heat = grad_cam(trained, image)  # default layer: conv_4 (4x4), upsampled to 8x8
    assert heat.shape == (8, 8) and heat.min() >= 0
    sal = saliency_map(trained, image)
    assert sal.shape == (8, 8) and sal.max() > 0

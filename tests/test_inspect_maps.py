"""Saliency, Grad-CAM, CAM and occlusion on a hand-built model that only looks at one quadrant.

The model: conv (positive kernels, no bias, ReLU) -> keep the top-left 8x8 quadrant (crop + zero
pad back to 16x16) -> global average pooling -> dense (class 0: +w, class 1: -w) -> softmax.
Nothing outside the quadrant can change its output, so every explanation must concentrate there.
Also: the backend-neutral gradient against finite differences, layer resolution, filters.
"""
from __future__ import annotations

import numpy as np
import pytest

import keras

from kblocks.common.errors import KBlocksError
from kblocks.inspect import (class_activation_map, class_probabilities, feature_maps, filter_tiles,
                             grad_cam, gradient, occlusion_map, resolve_layer, saliency_map)
from kblocks.inspect.layers import as_view, default_spatial_layer, logits_model

SIZE, HALF = 16, 8


def quadrant_model(scale=1e-3, bias=0.0):
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_0")(inp)
    x = keras.layers.Cropping2D(((0, HALF), (0, HALF)), name="crop_1")(x)
    x = keras.layers.ZeroPadding2D(((0, HALF), (0, HALF)), name="pad_2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap_3")(x)
    x = keras.layers.Dense(2, name="fc_4")(x)
    out = keras.layers.Activation("softmax", name="softmax_5")(x)
    model = keras.Model(inp, out)
    kernel = np.abs(np.random.default_rng(0).normal(size=(3, 3, 1, 4))).astype("float32") + 0.1
    model.get_layer("conv_0").set_weights([kernel, np.zeros(4, "float32")])
    dense = np.array([[scale, -scale]] * 4, "float32")
    model.get_layer("fc_4").set_weights([dense, np.array([-bias, bias], "float32")])
    return model


@pytest.fixture(scope="module")
def model():
    return quadrant_model()


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(1).uniform(0, 255, (SIZE, SIZE, 1)).astype("float32")


def _mass_in_quadrant(heat):
    heat = np.abs(np.asarray(heat, dtype="float64"))
    return heat[:HALF, :HALF].sum() / heat.sum()


def test_saliency_is_zero_outside_the_quadrant(model, noise):
    sal = saliency_map(model, noise, class_index=0)
    assert sal.shape == (SIZE, SIZE)
    assert sal.sum() > 0
    # a 3x3 conv before the crop sees one pixel beyond the quadrant, nothing further
    outside = sal.copy()
    outside[:HALF + 1, :HALF + 1] = 0
    assert np.all(outside == 0)
    assert _mass_in_quadrant(sal) > 0.85


def test_grad_cam_concentrates_in_the_quadrant(model, noise):
    assert default_spatial_layer(model).name == "pad_2"  # last 4-D output before the pooling
    heat = grad_cam(model, noise, class_index=0)
    assert heat.shape == (SIZE, SIZE)
    assert heat.min() >= 0 and heat.sum() > 0
    assert _mass_in_quadrant(heat) > 0.99
    # class 1 has negative weights: the ReLU leaves nothing
    assert grad_cam(model, noise, class_index=1).max() == pytest.approx(0.0, abs=1e-6)


def test_cam_concentrates_in_the_quadrant_and_matches_grad_cam(model, noise):
    heat = class_activation_map(model, noise, class_index=0)
    assert heat.shape == (SIZE, SIZE)
    assert _mass_in_quadrant(heat) > 0.99
    # for GAP + dense, Grad-CAM at the pooled maps is CAM up to a constant (1 / positions)
    gc = grad_cam(model, noise, class_index=0)
    np.testing.assert_allclose(gc * SIZE * SIZE, np.maximum(heat, 0), rtol=1e-3, atol=1e-3)


def test_cam_refuses_models_without_gap(noise):
    inp = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(2, 3, name="conv_0")(inp)
    out = keras.layers.Dense(2, name="fc_2")(keras.layers.Flatten(name="flatten_1")(x))
    with pytest.raises(KBlocksError, match="gradcam"):
        class_activation_map(keras.Model(inp, out), noise)


def test_occlusion_drops_the_score_on_the_object():
    model = quadrant_model(scale=2e-3, bias=1.55)
    image = np.full((SIZE, SIZE, 1), 127.5, "float32")  # grey, like the occluder
    image[2:6, 2:6] = 255.0  # the "object", inside the quadrant the model sees
    base = float(class_probabilities(model, image)[0, 0])
    assert 0.55 < base < 0.9  # not saturated, so a change is visible
    occ = occlusion_map(model, image, class_index=0, window=4, stride=2)
    assert occ.shape == (SIZE, SIZE)
    assert occ[4, 4] < base - 0.08  # covering the object lowers p(class 0)
    assert occ.max() == pytest.approx(base, abs=1e-5)  # covering grey with grey changes nothing
    np.testing.assert_allclose(occ[HALF + 2:, HALF + 2:], base, atol=1e-5)  # ignored region
    lowest = np.argwhere(occ <= occ.min() + 1e-6)  # the darkest pixels are the object's
    assert lowest.min() >= 2 and lowest.max() <= 5
    # batching does not change the numbers
    np.testing.assert_allclose(occlusion_map(model, image, 0, window=4, stride=2, batch_size=5), occ,
                               atol=1e-6)


def test_gradient_matches_finite_differences():
    inp = keras.Input((3, 3, 2))
    x = keras.layers.Conv2D(3, 2, activation="tanh", name="conv_0")(inp)
    out = keras.layers.Dense(2, name="fc_2")(keras.layers.Flatten(name="flatten_1")(x))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 2)).astype("float32")
    result = gradient(model, x, lambda o: o[:, 1])
    assert result.grad.shape == x.shape and result.scores.shape == (2,)
    eps = 1e-2
    steps = np.eye(x[0].size, dtype="float32").reshape((-1,) + x.shape[1:]) * eps
    numeric = np.stack([
        (np.asarray(model(x[b] + steps))[:, 1] - np.asarray(model(x[b] - steps))[:, 1]).reshape(x.shape[1:])
        / (2 * eps) for b in range(len(x))])
    np.testing.assert_allclose(result.grad, numeric, atol=2e-3)
    # with respect to an inner tensor: d out / d (flatten output) is the dense kernel column
    view = as_view(model)
    inner = gradient(view.model, x, lambda o: o[:, 1], target=view.output_of(model.get_layer("flatten_1")))
    kernel = np.asarray(model.get_layer("fc_2").kernel)[:, 1]
    np.testing.assert_allclose(inner.grad, np.broadcast_to(kernel, inner.grad.shape), atol=1e-6)
    assert inner.activation.shape == (2, 12)


def test_unsupported_backend_is_a_clear_error(monkeypatch, noise, model):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(KBlocksError, match="TensorFlow and JAX"):
        saliency_map(model, noise, 0)


def test_layer_resolution(model):
    assert resolve_layer(model, 0).name == "conv_0"
    assert resolve_layer(model, "2").name == "pad_2"
    assert resolve_layer(model, -1).name == "softmax_5"
    assert resolve_layer(model, "gap_3").name == "gap_3"
    assert resolve_layer(model, "c").name == "crop_1"  # last layer whose name starts with "c"
    for bad in ("99", "nosuch", -7):
        with pytest.raises(KBlocksError, match="--layer"):
            resolve_layer(model, bad)


def test_nested_network_is_opened_up(noise):
    """A trained kblocks model is input -> normalisation -> augmentation -> network (nested)."""
    network = quadrant_model()
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Rescaling(1.0, name="normalize")(inp)
    x = keras.layers.RandomFlip(name="flip")(x)
    wrapped = keras.Model(inp, keras.layers.Activation("linear", name="float32_output")(network(x)))
    view = as_view(wrapped)
    # indices count the network's layers, as kblocks summary does
    assert [layer.name for layer in view.layers] == [layer.name for layer in network.layers[1:]]
    assert resolve_layer(wrapped, 2).name == "pad_2"
    assert resolve_layer(wrapped, "normalize").name == "normalize"
    batch = noise[None]
    np.testing.assert_allclose(np.asarray(view.model(batch, training=False)),
                               np.asarray(wrapped(batch, training=False)), atol=1e-6)
    # the softmax inside the network is found through the trailing linear layer
    scores_model, applies_softmax = logits_model(wrapped)
    assert applies_softmax
    assert np.asarray(scores_model(batch)).sum() != pytest.approx(1.0)
    np.testing.assert_allclose(grad_cam(wrapped, noise, 0), grad_cam(network, noise, 0), atol=1e-5)
    assert feature_maps(wrapped, noise, "conv_0").shape == (SIZE, SIZE, 4)


def test_saved_wrapper_ending_in_the_network(tmp_path, noise):
    """As ``kblocks train`` saves it in fp32: the nested network is the model's last layer."""
    network = quadrant_model()
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Normalization(mean=100.0, variance=2500.0, name="kblocks_normalize")(inp)
    keras.Model(inp, network(x)).save(tmp_path / "best.keras")
    loaded = keras.saving.load_model(tmp_path / "best.keras", compile=False, safe_mode=True)
    view = as_view(loaded)
    assert [layer.name for layer in view.layers][:3] == ["conv_0", "crop_1", "pad_2"]
    batch = noise[None]
    np.testing.assert_allclose(np.asarray(view.model(batch)), np.asarray(loaded(batch)), atol=1e-6)
    heat = grad_cam(loaded, noise, 0)
    assert _mass_in_quadrant(heat) > 0.99
    assert logits_model(loaded)[1]  # the Activation("softmax") inside the network is found


def test_filters_of_the_first_and_a_deeper_layer():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, name="conv_0")(inp)
    x = keras.layers.Conv2D(5, 2, name="conv_1")(x)
    model = keras.Model(inp, keras.layers.Dense(2, name="fc_3")(keras.layers.Flatten(name="flat_2")(x)))
    first = filter_tiles(model)
    assert first.shape == (6, 3, 3, 3)
    assert first.min() == pytest.approx(0.0) and first.max() == pytest.approx(1.0)
    # each filter is scaled on its own: every tile spans 0..1
    np.testing.assert_allclose(first.reshape(6, -1).max(axis=1), 1.0)
    deeper = filter_tiles(model, "conv_1")
    assert deeper.shape == (5, 2, 2, 6)
    kernel = np.asarray(model.get_layer("conv_1").kernel)[..., 3]
    expected = (kernel - kernel.min()) / (kernel.max() - kernel.min())
    np.testing.assert_allclose(deeper[3], expected, atol=1e-6)
    with pytest.raises(KBlocksError, match="no convolution filters"):
        filter_tiles(model, "flat_2")

"""``kblocks.build(name, weights=path)``: a ``keras.applications`` weight file loads into the zoo's
twin layer for layer (kblocks.lang.weights), and a file that does not fit is refused naming the
first layer that differs.

The files are written here from ``keras.applications`` models with random weights
(``weights=None``) and random batch-norm statistics, at 32x32 input with 10 classes (the weights of
the convolutions do not depend on the input size; see tests/test_keras_identity.py), as a legacy
``.h5`` file (``model.save``: the layout of the files ``keras.applications`` downloads) and as a
Keras 3 ``.weights.h5`` file (``model.save_weights``).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import kblocks
from kblocks.common.errors import KBlocksError
from kblocks.lang.weights import WeightsError

from test_keras_identity import CLASSES, SIZE, TOL, randomise_batchnorm

pytest.importorskip("tensorflow")


def _reference(fn, **kw):
    import keras

    model = getattr(keras.applications, fn)(weights=None, input_shape=SIZE, classes=CLASSES, **kw)
    randomise_batchnorm(model, np.random.default_rng(0))
    return model


def _save(model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is a legacy format"
        if str(path).endswith(".weights.h5"):
            model.save_weights(path)
        else:
            model.save(path)
    return path


@pytest.fixture(scope="module")
def resnet50(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet50")
    model = _reference("ResNet50")
    return model, _save(model, folder / "resnet50.h5"), _save(model, folder / "resnet50.weights.h5")


def _assert_same(reference, model, high=1.0):
    x = np.random.default_rng(1).uniform(0, high, (2, *SIZE)).astype("float32")
    want = np.asarray(reference(x, training=False))
    got = np.asarray(model(x, training=False))
    assert np.abs(got - want).max() < TOL
    assert want.std() > 1e-4  # the predictions differ between classes: the weights mean something


@pytest.mark.parametrize("kind", ["h5", "weights.h5"])
def test_resnet50_file_loads_into_the_twin(resnet50, kind):
    """The twin built with weights= predicts what the Keras model predicts (a fresh twin, with
    Keras' initialisation and unit batch-norm statistics, would not) and holds its very weights."""
    reference, legacy, keras3 = resnet50
    model = kblocks.build("resnet50", input_shape=SIZE, classes=CLASSES,
                          weights=legacy if kind == "h5" else keras3)
    _assert_same(reference, model)
    mine = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in reference.layers if layer.weights]
    for a, b in zip(mine[-1].get_weights() + mine[1].get_weights(),
                    theirs[-1].get_weights() + theirs[1].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_mobilenet_classifier_conv_loads_into_a_dense(tmp_path):
    """Keras' MobileNet ends in a 1x1 Conv2D ('conv_preds'), the twin in a Dense of the same
    weights: the legacy file pairs them by order and the kernel is reshaped."""
    reference = _reference("MobileNet")
    path = _save(reference, tmp_path / "mobilenet.h5")
    model = kblocks.build("mobilenet", input_shape=SIZE, classes=CLASSES, weights=path)
    _assert_same(reference, model)


def test_a_file_of_another_network_is_refused_naming_the_layer(resnet50):
    _, legacy, keras3 = resnet50
    with pytest.raises(WeightsError, match=r"'conv1_conv' \(7x7x3x64, 64\) meets the model's "
                                           r"weighted layer 1, 'conv_1'") as info:
        kblocks.build("resnet18", input_shape=SIZE, classes=CLASSES, weights=legacy)
    assert "resnet50.h5" in str(info.value)
    with pytest.raises(WeightsError, match="does not fit the model"):
        kblocks.build("resnet18", input_shape=SIZE, classes=CLASSES, weights=keras3)


def _tiny_keras(top=True, classes=10):
    """Keras' layers for the kblocks text TINY."""
    import keras

    x = inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    if top:
        x = keras.layers.Dense(classes, name="predictions")(x)
    return keras.Model(inputs, x)


TINY = "CONV(8)-BN-RELU-GAP-FC"


def test_tiny_twin_loads_from_both_kinds_of_file(tmp_path):
    reference = _tiny_keras()
    randomise_batchnorm(reference, np.random.default_rng(5))
    x = np.random.default_rng(6).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    for name in ("t.h5", "t.weights.h5"):
        path = _save(reference, tmp_path / name)
        model = kblocks.build(TINY, input_shape=(8, 8, 3), classes=10, weights=path)
        np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), atol=1e-5)


def test_other_classes_are_refused_at_the_classifier(tmp_path):
    reference = _tiny_keras()
    for name in ("t.h5", "t.weights.h5"):
        path = _save(reference, tmp_path / name)
        with pytest.raises(WeightsError, match=r"'(predictions|dense)' \(8x10, 10\) meets the model's "
                                               r"weighted layer 3, 'fc_4' \(Dense: 8x7, 7\)"):
            kblocks.build(TINY, input_shape=(8, 8, 3), classes=7, weights=path)


def test_a_file_without_the_classifier_is_refused(tmp_path):
    path = _save(_tiny_keras(top=False), tmp_path / "notop.h5")
    with pytest.raises(WeightsError, match="has 2 layers with weights, the model 3: the first "
                                           "left over is 'fc_4'") as info:
        kblocks.build(TINY, input_shape=(8, 8, 3), classes=10, weights=path)
    assert "include_top=False" in str(info.value)
    path = _save(_tiny_keras(top=False), tmp_path / "notop.weights.h5")
    with pytest.raises(WeightsError, match="it has 0 dense layers with weights"):
        kblocks.build(TINY, input_shape=(8, 8, 3), classes=10, weights=path)


def test_the_file_is_checked_before_the_model_is_made(tmp_path, monkeypatch):
    import kblocks.lang.emit as emit

    monkeypatch.setattr(emit, "emit", lambda *a, **k: pytest.fail("the model was made"))
    with pytest.raises(KBlocksError, match="does not exist"):
        kblocks.build("resnet50", weights=tmp_path / "missing.h5")
    with pytest.raises(KBlocksError, match="is a folder, not a regular file"):
        kblocks.build("resnet50", weights=tmp_path)
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(WeightsError, match="ends in .weights.h5 or .h5"):
        kblocks.build("resnet50", weights=tmp_path / "w.npz")
    with pytest.raises(WeightsError, match="takes the path"):
        kblocks.build("resnet50", weights=3)


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    (tmp_path / "w.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(WeightsError, match="not a readable HDF5 weight file"):
        kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 3), weights=tmp_path / "w.h5")


def test_a_kblocks_file_round_trips_with_normalize(tmp_path):
    """A kblocks model's own .weights.h5 loads into the same text; the normalisation layer is not
    paired (its statistics come from normalize_stats=)."""
    text = "CONV(8)-BN-RELU-GAP-FC(3)"
    a = kblocks.build(text, input_shape=(8, 8, 3))
    randomise_batchnorm(a, np.random.default_rng(3))
    path = _save(a, tmp_path / "a.weights.h5")
    b = kblocks.build(text, input_shape=(8, 8, 3), normalize="scale", weights=path)
    x = np.random.default_rng(4).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(b(x)), np.asarray(a(x / 255.0)), atol=1e-5)

"""Augmentation layers: identity at inference, real changes in training, exact semantics, saving."""
import keras
import numpy as np
import pytest

from kblocks.training.augment import Cutout, RandomCrop, RandomFlip, parse_augment
from kblocks.common.errors import ConfigError


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(1, 2, size=(32, 10, 12, 3)).astype("float32")


@pytest.mark.parametrize("layer", [RandomFlip(seed=1), RandomCrop(3, seed=1),
                                   RandomCrop(2, mode="constant", seed=1), Cutout(4, seed=1)])
def test_identity_at_inference_changes_in_training(layer, images):
    np.testing.assert_array_equal(np.asarray(layer(images)), images)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    out = np.asarray(layer(images, training=True))
    assert out.shape == images.shape
    assert not np.array_equal(out, images)


def test_flip_mirrors_whole_images(images):
    out = np.asarray(RandomFlip(seed=3)(images, training=True))
    flipped = images[:, :, ::-1]
    same = [np.array_equal(o, i) for o, i in zip(out, images)]
    mirrored = [np.array_equal(o, f) for o, f in zip(out, flipped)]
    assert all(a or b for a, b in zip(same, mirrored))
    assert 4 < sum(mirrored) < 28


def test_translate_is_a_shift_with_zero_fill(images):
    p = 2
    out = np.asarray(RandomCrop(p, mode="constant", seed=5)(images, training=True))
    padded = np.pad(images, [(0, 0), (p, p), (p, p), (0, 0)])
    shifts = set()
    for o, pad in zip(out, padded):
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if np.array_equal(o, pad[dy:dy + 10, dx:dx + 12])]
        assert found, "each output must be one crop of the padded image"
        shifts.add(found[0])
    assert len(shifts) > 5  # offsets are drawn per image


def test_crop_reflects(images):
    p = 3
    out = np.asarray(RandomCrop(p, seed=2)(images, training=True))
    padded = np.pad(images, [(0, 0), (p, p), (p, p), (0, 0)], mode="reflect")
    for o, pad in zip(out, padded):
        assert any(np.array_equal(o, pad[dy:dy + 10, dx:dx + 12])
                   for dy in range(2 * p + 1) for dx in range(2 * p + 1))
    assert (out > 0).all()  # reflection never brings in zeros


def test_cutout_zeros_at_most_one_square(images):
    out = np.asarray(Cutout(4, seed=7)(images, training=True))
    for o, i in zip(out, images):
        zero = np.all(o == 0, axis=-1)
        assert zero.sum() <= 16
        np.testing.assert_array_equal(o[~zero], i[~zero])
        rows, cols = np.nonzero(zero)
        if len(rows):
            assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4


def test_same_seed_same_draws(images):
    a = np.asarray(RandomCrop(2, seed=11)(images, training=True))
    b = np.asarray(RandomCrop(2, seed=11)(images, training=True))
    np.testing.assert_array_equal(a, b)


def test_config_round_trip():
    for layer in parse_augment("flip,crop4,translate2,cutout8", seed=1):
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_saved_model_with_augmentation_loads_safely(tmp_path, images):
    inp = keras.Input((10, 12, 3))
    x = inp
    for layer in parse_augment("flip,crop2,cutout4", seed=0):
        x = layer(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2)(x))
    model.compile("sgd", "mse")
    model.fit(images, np.zeros((32, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert [type(layer).__name__ for layer in loaded.layers[1:4]] == \
        ["RandomFlip", "RandomCrop", "Cutout"]
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-6)


@pytest.mark.parametrize("spec, message", [("rotate", "unknown augmentation"),
                                           ("crop", "needs a size"), ("flip2", "takes no number")])
def test_parse_mistakes(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_augment(spec)


def test_parse_empty():
    assert parse_augment("") == [] and parse_augment("none") == [] and parse_augment(None) == []

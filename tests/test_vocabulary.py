"""Every token of the vocabulary builds, and kblocks' shapes and parameter counts equal Keras' own."""
import numpy as np
import pytest

import kblocks
from kblocks.lang.vocab import VOCAB

# One small text per user token, on an input it accepts.
CASES = {
    "CONV": ("CONV(8, 3, stride=2, padding=valid, use_bias=false)", (16, 16, 3)),
    "CONV1D": ("CONV1D(8, 5, stride=2)", (32, 4)),
    "CONV3D": ("CONV3D(4, 3, padding=1)", (6, 6, 6, 2)),
    "DWCONV": ("DWCONV(5, 2, multiplier=2)", (16, 16, 3)),
    "SEPCONV": ("SEPCONV(16, 3)", (16, 16, 3)),
    "CONVT": ("CONVT(8, 3, stride=2, padding=valid)", (7, 7, 4)),
    "POOL": ("POOL(3, 2, padding=same)", (15, 15, 3)),
    "AVGPOOL": ("AVGPOOL(2)", (16, 16, 3)),
    "GAP": ("GAP", (8, 8, 5)),
    "GMP": ("GMP", (8, 8, 5)),
    "FC": ("FC(7)", (6,)),
    "FLATTEN": ("FLATTEN", (4, 4, 2)),
    "DROPOUT": ("DROPOUT(0.3)", (8, 8, 3)),
    "SDROPOUT": ("SDROPOUT(0.2)", (8, 8, 3)),
    "BN": ("BN", (8, 8, 6)),
    "LN": ("LN", (8, 8, 6)),
    "GN": ("GN(groups=2)", (8, 8, 6)),
    "LRN": ("LRN", (8, 8, 6)),
    "RELU": ("RELU", (8, 8, 3)),
    "RELU6": ("RELU6", (8, 8, 3)),
    "LRELU": ("LRELU(0.1)", (8, 8, 3)),
    "PRELU": ("PRELU", (8, 8, 3)),
    "ELU": ("ELU", (8, 8, 3)),
    "SELU": ("SELU", (8, 8, 3)),
    "GELU": ("GELU", (8, 8, 3)),
    "SWISH": ("SWISH", (8, 8, 3)),
    "SIGMOID": ("SIGMOID", (8, 8, 3)),
    "TANH": ("TANH", (8, 8, 3)),
    "SOFTMAX": ("SOFTMAX", (10,)),
    "LINEAR": ("LINEAR", (8, 8, 3)),
    "ZEROPAD": ("ZEROPAD([1, 2])", (8, 8, 3)),
    "UPSAMPLE": ("UPSAMPLE(2)", (8, 8, 3)),
    "SKIP": ("SKIP-CONV(4)", (8, 8, 3)),
    "RESHAPE": ("RESHAPE([4, 48])", (8, 8, 3)),
}


def test_every_user_token_has_a_case():
    tokens = {spec.token for spec in VOCAB if spec.user}
    assert tokens == set(CASES)


@pytest.mark.parametrize("token", sorted(CASES))
def test_token_matches_keras(token):
    text, shape = CASES[token]
    model = kblocks.build(text, input_shape=shape)
    s = kblocks.summary(model)
    assert s.params == model.count_params()
    assert s.trainable_params == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert tuple(model.output.shape[1:]) == s.graph.nodes[s.graph.outputs[0]].shape
    x = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype("float32")
    y = np.asarray(model(x))
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("alias,token", [("conv2d", "CONV"), ("Maxpool", "POOL"), ("dense", "FC"),
                                         ("deconv", "CONVT"), ("LeakyReLU", "LRELU"),
                                         ("dropout2d", "SDROPOUT")])
def test_aliases_and_case(alias, token):
    assert VOCAB.get(alias) is VOCAB[token]


def test_registry_refuses_duplicates():
    from kblocks.lang.vocab import LayerSpec, Vocabulary

    v = Vocabulary()
    v.register(LayerSpec("A", "act", "Activation", aliases=("B",)))
    with pytest.raises(ValueError, match="'B' of C is already registered by A"):
        v.register(LayerSpec("C", "act", "Activation", aliases=("B",)))


def test_keyword_arguments_pass_through_to_keras():
    model = kblocks.build("CONV(64, kernel_initializer=he_normal, use_bias=false)", input_shape=(8, 8, 3))
    conv = model.layers[1]
    assert conv.use_bias is False
    assert conv.kernel_initializer.__class__.__name__ == "HeNormal"
    assert kblocks.summary(model).params == model.count_params() == 3 * 3 * 3 * 64


def test_lrn_matches_the_paper_formula():
    from kblocks.lang.layers import LRN

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 3, 7)).astype("float32")
    y = np.asarray(LRN(size=5, alpha=1e-2, beta=0.75, k=2.0)(x))
    expect = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - 2), min(7, c + 3)
        expect[..., c] = x[..., c] / (2.0 + 1e-2 * np.sum(x[..., lo:hi] ** 2, axis=-1)) ** 0.75
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-6)


def test_lrn_model_round_trips_with_safe_mode(tmp_path):
    import keras

    model = kblocks.build("CONV(8)-LRN(5, alpha=1e-4, beta=0.75, k=2)-GAP-FC(3)", input_shape=(8, 8, 3))
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_static_keyword_table_matches_installed_keras():
    """The pass-through keyword table (no Keras import at compile time) only lists real keywords."""
    from kblocks.lang.expand import _installed_keras_keywords, _keras_keywords

    for spec in VOCAB:
        if spec.keras_class and not spec.keras_class.startswith("kblocks>"):
            assert _keras_keywords(spec) - {"name", "dtype", "trainable", "autocast"} <= \
                _installed_keras_keywords(spec), spec.token


def test_compiling_a_text_with_keras_keywords_does_not_import_keras():
    import subprocess
    import sys

    code = ("import sys, kblocks; kblocks.analyse('CONV(8, use_bias=false, kernel_initializer=he_normal)"
            "-BN(epsilon=1.001e-5)-GAP-FC(2)', input_shape=(8, 8, 3)); print('keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr

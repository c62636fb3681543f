"""Every token of the vocabulary builds, and kblocks' shapes and parameter counts equal Keras' own."""
import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

import kblocks
from kblocks.lang import kinds
from kblocks.lang.kinds import LayerKind
from kblocks.lang.vocab import VOCAB

USER_TOKENS = sorted(spec.token for spec in VOCAB if spec.user)


def registration_problems(spec) -> list:
    """What is missing from a token's registration: a kind record with every field, and for a user
    token an example (text, input shape) that uses the token and compiles (no Keras needed)."""
    kind = spec.kind
    if not isinstance(kind, LayerKind):
        return [f"kind is {kind!r}, not a LayerKind record"]
    problems = [f"kind field {f.name} is {getattr(kind, f.name)!r}"
                for f in dataclasses.fields(LayerKind)
                if (f.type in ("Callable", Callable) and not callable(getattr(kind, f.name)))
                or (f.type == "str" and not getattr(kind, f.name))]
    if not (kind.colour.startswith("#") and len(kind.colour) == 7):
        problems.append(f"colour {kind.colour!r} is not #rrggbb")
    if not spec.keras_class and kind is not kinds.SKIP:
        problems.append("no Keras class")
    if not spec.user:
        return problems
    if len(spec.example) != 2 or not isinstance(spec.example[0], str) or not spec.example[1]:
        return [*problems, f"example is {spec.example!r}, not (text, input shape)"]
    text, shape = spec.example
    nodes = kblocks.compile(text, input_shape=shape).nodes
    if kind is not kinds.SKIP and not any(n.token == spec.token for n in nodes):
        problems.append(f"example {text!r} makes no {spec.token}")
    return problems


@pytest.mark.parametrize("token", sorted(spec.token for spec in VOCAB))
def test_every_token_is_fully_registered(token):
    assert registration_problems(VOCAB[token]) == [], token


def test_a_half_registered_token_is_caught():
    dc = dataclasses
    conv = VOCAB["CONV"]
    assert registration_problems(dc.replace(conv, example=())) == \
        ["example is (), not (text, input shape)"]
    assert registration_problems(dc.replace(conv, example=("FC(3)", (4,)))) == \
        ["example 'FC(3)' makes no CONV"]
    assert registration_problems(dc.replace(conv, kind=dc.replace(kinds.CONV, colour=""))) == \
        ["kind field colour is ''", "colour '' is not #rrggbb"]
    assert registration_problems(dc.replace(conv, kind=dc.replace(kinds.CONV, macs=None))) == \
        ["kind field macs is None"]
    assert registration_problems(dc.replace(conv, kind="conv")) == \
        ["kind is 'conv', not a LayerKind record"]


@pytest.mark.parametrize("token", USER_TOKENS)
def test_token_matches_keras(token):
    text, shape = VOCAB[token].example
    model = kblocks.build(text, input_shape=shape)
    s = kblocks.summary(model)
    assert s.params == model.count_params()
    assert s.trainable_params == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert tuple(model.output.shape[1:]) == s.graph.nodes[s.graph.outputs[0]].shape
    x = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype("float32")
    y = np.asarray(model(x))
    assert np.all(np.isfinite(y))


def test_pool_stride_defaults_to_the_window_in_one_place():
    """POOL(3) strides 3 and prints back as POOL(3); POOL(3, 2) keeps its stride."""
    spec = VOCAB["POOL"]
    stride = spec.arg("stride")
    assert stride.same_as == "size" and spec.default(stride, {"size": 3}) == 3
    assert kblocks.compile("POOL(3)", input_shape=(9, 9, 1)).nodes[0].shape == (3, 3, 1)
    assert kblocks.format_text("POOL(3)-POOL(3, 2)", input_shape=(20, 20, 1)) == \
        "INPUT(20, 20, 1) - POOL(3) - POOL(3, stride=2)"


@pytest.mark.parametrize("alias,token", [("conv2d", "CONV"), ("Maxpool", "POOL"), ("dense", "FC"),
                                         ("deconv", "CONVT"), ("LeakyReLU", "LRELU"),
                                         ("dropout2d", "SDROPOUT")])
def test_aliases_and_case(alias, token):
    assert VOCAB.get(alias) is VOCAB[token]


def test_registry_refuses_duplicates():
    from kblocks.lang.vocab import LayerSpec, Vocabulary

    v = Vocabulary()
    v.register(LayerSpec("A", kinds.ACT, "Activation", aliases=("B",)))
    with pytest.raises(ValueError, match="'B' of C is already registered by A"):
        v.register(LayerSpec("C", kinds.ACT, "Activation", aliases=("B",)))


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
        if spec.keras_class and not spec.kind.custom:
            assert _keras_keywords(spec) - {"name", "dtype", "trainable", "autocast"} <= \
                _installed_keras_keywords(spec), spec.token


def test_compiling_a_text_with_keras_keywords_does_not_import_keras():
    import subprocess
    import sys

    code = ("import sys, kblocks; kblocks.analyse('CONV(8, use_bias=false, kernel_initializer=he_normal)"
            "-BN(epsilon=1.001e-5)-GAP-FC(2)', input_shape=(8, 8, 3)); print('keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr

"""The summary of any Keras model (kblocks/inspect/model_summary.py).

The oracle: the seven keras.applications networks the zoo has twins of (tests/test_keras_identity.py
checks their weights and predictions agree) are read layer by layer from Keras, and their totals
must equal the kblocks analysis of the twin's text: parameters (and ``count_params()``),
multiply-adds, activation elements and the largest receptive field. At 32x32 input with 10
classes, as the identity test; VGG as there (Keras' convolutional base plus Keras' own top).

One known difference, asserted exactly: Keras' MobileNet pads before each strided depthwise
convolution with an explicit ``ZeroPadding2D`` layer, whose outputs are tensors the twin (which
writes ``padding=same``) does not have; its activation elements exceed the twin's by exactly those
tensors' elements. Parameters and multiply-adds agree.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import kblocks
from kblocks.inspect.model_summary import ModelSummary, ModelSummaryError, model_summary

SIZE = (32, 32, 3)
CLASSES = 10
TWINS = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152",
         "densenet121": "DenseNet121", "mobilenet": "MobileNet", "vgg16": "VGG16", "vgg19": "VGG19"}
SLOW = {"resnet101", "resnet152"}


def _reference(name):
    import keras

    fn = getattr(keras.applications, TWINS[name])
    if not name.startswith("vgg"):
        return fn(weights=None, input_shape=SIZE, classes=CLASSES)
    base = fn(weights=None, include_top=False, input_shape=SIZE)
    x = keras.layers.Flatten(name="flatten")(base.output)
    x = keras.layers.Dense(4096, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(4096, activation="relu", name="fc2")(x)
    return keras.Model(base.input, keras.layers.Dense(CLASSES, activation="softmax")(x), name=name)


def _largest_rf(summary) -> int:
    return max(int(r.rf.split("x")[0]) for r in summary.rows() if r.rf not in ("-", ""))


def _padding_elements(model) -> int:
    import keras

    return sum(math.prod(layer.output.shape[1:]) for layer in model.layers
               if isinstance(layer, keras.layers.ZeroPadding2D))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in TWINS])
def test_keras_applications_figures_equal_the_zoo_twins(name):
    reference = _reference(name)
    got = kblocks.summary(reference)
    twin = kblocks.summary(name, input_shape=SIZE, classes=CLASSES)
    assert isinstance(got, ModelSummary) and got.unknown == []
    assert got.params == reference.count_params() == twin.params
    assert (got.trainable_params, got.non_trainable_params) == (twin.trainable_params,
                                                                twin.non_trainable_params)
    assert got.macs == twin.macs > 10_000_000
    extra = _padding_elements(reference) if name == "mobilenet" else 0
    assert got.activation_elements == twin.activation_elements + extra
    assert extra == (0 if name != "mobilenet" else 17 * 17 * 64 + 9 * 9 * 128 + 5 * 5 * 256
                     + 3 * 3 * 512)
    assert _largest_rf(got) == _largest_rf(twin)


def _branchy():
    import keras

    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    a = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2, name="wide")(x)
    b = keras.layers.Conv2D(8, 1, name="narrow")(x)
    y = keras.layers.Add(name="add")([a, b])
    y = keras.layers.MaxPooling2D(2)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(y), name="branchy")


def test_a_functional_model_with_a_branch():
    model = _branchy()
    s = kblocks.summary(model)
    assert s.params == model.count_params() == 216 + 32 + 584 + 72 + 90
    assert s.non_trainable_params == 16  # batch norm's moving mean and variance
    assert s.macs == 16 * 16 * 8 * 27 + 16 * 16 * 8 * 72 + 16 * 16 * 8 * 8 + 80
    rows = {r.keras.split(":")[0]: r for r in s.rows()}
    assert rows["wide"].rf == "7" and rows["narrow"].rf == "3"  # 3x3, then a dilated 3x3 (5)
    assert rows["add"].rf == "7" and "<- 3,4" in rows["add"].keras  # the largest over its paths
    assert rows["re_lu"].activations == "0"  # in place: its input feeds only it
    text = str(s)
    assert "outputs: probabilities (10 classes)" in text and "layer (as written)" not in text
    assert s.to_dict()["macs"] == s.macs


def test_a_sequential_model_equals_its_kblocks_text():
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.ReLU(), keras.layers.MaxPooling2D(2),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    s, t = kblocks.summary(model), kblocks.summary("CONV(4, padding=valid)-RELU-POOL-FC(3)",
                                                   input_shape=(8, 8, 1))
    assert (s.params, s.macs, s.activation_elements) == (t.params, t.macs, t.activation_elements)
    assert s.params == model.count_params()
    assert [r.rf for r in s.rows()] == [r.rf for r in t.rows()]


def test_unknown_layers_and_nested_models():
    """A Lambda has unknown cost (footnote); a nested model is one row with its own totals."""
    import keras

    inner = _branchy()
    outer = keras.Sequential([keras.Input((16, 16, 3)), inner, keras.layers.Dense(2)])
    s = kblocks.summary(outer)
    assert s.params == outer.count_params()
    inside = kblocks.summary(inner)
    assert s.macs == inside.macs + 20
    assert s.activation_elements == inside.activation_elements + 2
    inp = keras.Input((4, 4, 2))
    y = keras.layers.Lambda(lambda t: t * 2, name="twice")(inp)
    odd = kblocks.summary(keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(y))))
    assert odd.unknown == ["twice (Lambda)"]
    assert "1 layer of unknown cost: twice (Lambda)" in str(odd)


def test_an_open_input_size_is_refused():
    import keras

    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3)(inp))
    with pytest.raises(ModelSummaryError, match="left open"):
        model_summary(model)


def test_a_reloaded_kblocks_file_shows_the_text_column(tmp_path):
    import keras

    from kblocks.common.saving import load_model, save_model

    model = kblocks.build("CONV(8)-BN-RELU-POOL-FC(10)", input_shape=(8, 8, 3))
    save_model(model, tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.kblocks_text == "INPUT(8, 8, 3) - CONV(8) - BN - RELU - POOL(2) - FC(10)"
    s = kblocks.summary(loaded)
    assert not isinstance(s, ModelSummary) and "layer (as written)" in str(s)
    assert "CONV(8)" in str(s) and s.params == loaded.count_params()
    # Plain Keras loads it too (the architecture key is ignored), as a functional model.
    plain = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert plain.count_params() == model.count_params()


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kblocks", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_cli_summary_and_plot_take_keras_files(tmp_path):
    from kblocks.common.saving import save_model

    save_model(_branchy(), tmp_path / "plain.keras")
    r = _cli("summary", "plain.keras", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "add: Add <- 3,4" in r.stdout and "Total params: 994" in r.stdout
    r = _cli("summary", "plain.keras", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["params"] == 994
    r = _cli("plot", "plain.keras", "-o", "p.png", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "p.png").stat().st_size > 1000, r.stderr
    r = _cli("build", "CONV(8)-RELU-GAP-FC(3)", "--input-shape", "8,8,3", "-o", "kb.keras",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("summary", "kb.keras", "--text", cwd=tmp_path)
    assert r.returncode == 0 and "INPUT(8, 8, 3) - CONV(8) - RELU - GAP - FC(3)" in r.stdout
    assert "layer (as written)" in r.stdout


def test_cli_refuses_h5_and_text_options(tmp_path):
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n")
    r = _cli("summary", "old.h5", cwd=tmp_path)
    assert r.returncode == 2 and "not supported" in r.stderr and ".save('model.keras')" in r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("summary", "missing.keras", cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr

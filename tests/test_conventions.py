"""Issue 23: a kblocks model trained with the plain Keras idiom trains right or says why.

The digits checks train the issue's network with the same optimizer (Adam, constant 1e-3), batch
size (128), epochs (15) and split (``kblocks train``'s seeded 10% validation split) four ways:
``kblocks train``; ``compile`` with the default string loss; ``compile`` with
``from_logits=True``; no ``compile`` at all. Each plain ``fit`` must reach within 2 points of the
trainer's validation accuracy (best epoch on both sides: the trainer's ``best.keras`` is its best
epoch). The plain-Keras models take the documented input (pixels 0..255) with the same
normalisation the trainer puts inside (``build(normalize="standardize")``).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import kblocks

NET = "[CONV(32)-RELU]*2-POOL-[CONV(64)-RELU]*2-GAP-FC(10)"
EPOCHS = 15
SMALL = "CONV(4)-RELU-GAP-FC(10)"


@pytest.fixture(scope="module")
def digits():
    from kblocks.training.data import load_data, split_data

    train, val = split_data(load_data("digits"), 0.1, seed=0)
    return train, val


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from kblocks.training import train

    out = tmp_path_factory.mktemp("conv") / "run"
    result = train(NET, data="digits", epochs=EPOCHS, optimizer="adam", schedule="constant",
                   seed=0, out=out, verbose=0, tensorboard=False)
    return result, out


def _plain_fit(digits, compile_with):
    import keras

    train, val = digits
    keras.utils.set_random_seed(0)
    model = kblocks.build(NET, input_shape=(8, 8, 1), normalize="standardize",
                          normalize_stats=train.x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if compile_with is not None:
            model.compile("adam", compile_with, metrics=["accuracy"])
    said = [str(w.message) for w in caught if "kblocks:" in str(w.message)]
    history = model.fit(train.x.astype("float32"), train.y, epochs=EPOCHS, batch_size=128,
                        validation_data=(val.x.astype("float32"), val.y), verbose=0)
    return max(history.history["val_accuracy"]), said


@pytest.mark.parametrize("how", ["string", "from_logits", "no_compile"])
def test_plain_keras_fit_matches_kblocks_train(digits, trained, how):
    import keras

    loss = {"string": "sparse_categorical_crossentropy",
            "from_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "no_compile": None}[how]
    reference = trained[0].final["val_accuracy"]
    accuracy, said = _plain_fit(digits, loss)
    assert accuracy >= reference - 0.02, (how, accuracy, reference)
    if how == "string":  # corrected, and said so before training, naming the fix
        assert len(said) == 1 and "from_logits=True" in said[0]
    else:
        assert said == []


def test_reloaded_best_keras_gives_evaluate_accuracy(digits, trained):
    import keras

    from kblocks.training import evaluate

    result, out = trained
    scores = evaluate(out / "best.keras", "digits", val_split=0.1, seed=result.seed)
    assert scores["conventions"]["input"] == "pixels 0..255, normalised inside (standardize)"
    assert scores["conventions"]["output"] == "logits" and scores["conventions"]["assumed"] == []
    _, val = digits
    model = keras.saving.load_model(out / "best.keras", safe_mode=True)
    assert isinstance(model, kblocks.Network)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = model.evaluate(val.x.astype("float32"), val.y, verbose=0)  # pixels 0..255
    assert abs(accuracy - scores["accuracy"]) < 1e-6
    assert abs(accuracy - result.final["val_accuracy"]) < 1e-6


def test_summary_states_the_conventions():
    s = kblocks.summary(kblocks.build(SMALL, input_shape=(8, 8, 1)))
    assert str(s).splitlines()[-1] == "outputs: logits (10 classes)"
    assert "input: float values as given (no normalisation inside)" in str(s)
    p = kblocks.build(SMALL, input_shape=(8, 8, 1), classifier_activation="softmax",
                      normalize="scale")
    assert str(kblocks.summary(p)).splitlines()[-2:] == [
        "input: pixels 0..255, normalised inside (scale)", "outputs: probabilities (10 classes)"]
    assert kblocks.summary(SMALL + "-SOFTMAX", input_shape=(8, 8, 1)).to_dict()["outputs"] == \
        "probabilities (10 classes)"


def test_classifier_activation():
    from kblocks.lang.conventions import output_is_probability

    assert not output_is_probability(kblocks.build(SMALL, input_shape=(8, 8, 1)))
    soft = kblocks.build(SMALL, input_shape=(8, 8, 1), classifier_activation="softmax")
    assert output_is_probability(soft) and soft.layers[-1].name == "classifier_softmax"
    twice = kblocks.build(SMALL + "-SOFTMAX", input_shape=(8, 8, 1),
                          classifier_activation="softmax")
    assert sum(1 for layer in twice.layers if "softmax" in layer.name) == 1  # not a second one
    zoo = kblocks.build("lenet5", classes=10, classifier_activation="softmax")
    assert output_is_probability(zoo)
    with pytest.raises(kblocks.KBlocksError, match="classifier_activation"):
        kblocks.build(SMALL, input_shape=(8, 8, 1), classifier_activation="sigmoid")


def test_compile_contradictions_are_fixed_with_one_warning():
    import keras

    logits = kblocks.build(SMALL, input_shape=(8, 8, 1))
    probs = kblocks.build(SMALL, input_shape=(8, 8, 1), classifier_activation="softmax")
    cases = [(logits, "sparse_categorical_crossentropy", True),
             (logits, keras.losses.SparseCategoricalCrossentropy(), True),
             (logits, keras.losses.CategoricalCrossentropy(label_smoothing=0.1), True),
             (probs, keras.losses.SparseCategoricalCrossentropy(from_logits=True), False),
             (probs, "sparse_categorical_crossentropy", False)]
    for model, loss, want_logits in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.compile("adam", loss)
        said = [str(w.message) for w in caught if "kblocks:" in str(w.message)]
        right_already = isinstance(loss, str) and not want_logits
        if right_already:
            assert model.loss == loss  # kept as the user wrote it
        else:
            config = model.loss.get_config()
            assert config["from_logits"] is want_logits, (loss, config)
        assert len(said) == (0 if right_already else 1), said
    logits.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    smoothing = kblocks.build(SMALL, input_shape=(8, 8, 1))
    smoothing.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                label_smoothing=0.1))
    assert smoothing.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


def test_fit_without_compile_uses_head_defaults():
    model = kblocks.build(SMALL + "-SOFTMAX", input_shape=(8, 8, 1))
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 1)).astype("float32")
    model.fit(x, np.arange(16) % 10, epochs=1, verbose=0)
    assert model.loss.get_config()["from_logits"] is False
    assert "accuracy" in model.get_metrics_result()


def test_normalize_matches_the_trainer():
    from kblocks.lang.conventions import NORMALIZE_NAME, normalization
    from kblocks.training import channel_stats

    x = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3)).astype(np.uint8)
    model = kblocks.build(SMALL, input_shape=(8, 8, 3), normalize="standardize", normalize_stats=x)
    layer = model.get_layer(NORMALIZE_NAME)
    mean, var = channel_stats(x)
    out = np.asarray(layer(x.astype("float32")))
    want = (x - mean) / np.sqrt(var)
    assert np.allclose(out, want, atol=1e-3)
    assert normalization(model) == "standardize"
    assert normalization(kblocks.build(SMALL, input_shape=(8, 8, 3))) is None
    with pytest.raises(kblocks.KBlocksError, match="mean"):
        kblocks.build(SMALL, input_shape=(8, 8, 3), normalize="standardize")


def test_old_plain_file_says_what_was_assumed(tmp_path):
    import keras

    from kblocks.lang.conventions import assumed_note, conventions

    inputs = keras.Input((8, 8, 1))
    old = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    conv = conventions(old)
    assert conv["output"] == "logits" and conv["normalization"] is None
    assert "assumed" in assumed_note(conv) and "no normalisation inside" in assumed_note(conv)
    assert conventions(kblocks.build(SMALL, input_shape=(8, 8, 1)))["assumed"] == []
    from kblocks.lang.conventions import output_is_probability
    from kblocks.training import wrap

    for activation in (None, "softmax"):  # a Sequential, alone and wrapped as the trainer does
        seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(10, activation=activation)])
        want = activation == "softmax"
        assert output_is_probability(seq) is want
        assert output_is_probability(wrap(seq, (8, 8, 1), normalize="scale")) is want


def test_files_reload_with_and_without_kblocks(tmp_path):
    logits = kblocks.build(SMALL, input_shape=(8, 8, 1), normalize="scale")
    logits.compile()
    logits.save(tmp_path / "logits.keras")
    kblocks.build(SMALL, input_shape=(8, 8, 1), classifier_activation="softmax").save(
        tmp_path / "probs.keras")
    code = textwrap.dedent(f"""
        import sys
        import keras
        for name in ("logits", "probs"):
            plain = keras.saving.load_model(r"{tmp_path}/" + name + ".keras", safe_mode=True)
            print(name, "plain", type(plain).__qualname__)
        import kblocks
        assert "kblocks.lang.models" in sys.modules
        m = keras.saving.load_model(r"{tmp_path}/logits.keras", safe_mode=True)
        print("logits kblocks", type(m).__qualname__, m.loss.get_config()["from_logits"])
        p = keras.saving.load_model(r"{tmp_path}/probs.keras", safe_mode=True)
        p.compile()
        print("probs kblocks", type(p).__qualname__, p.loss.get_config()["from_logits"])
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "was not called as part of model loading" not in run.stderr  # compile_from_config ran
    lines = [line for line in run.stdout.splitlines() if line.startswith(("logits", "probs"))]
    assert lines == ["logits plain Functional", "probs plain Functional",
                     "logits kblocks Network True", "probs kblocks Network False"]


def test_import_kblocks_then_keras_registers_network(tmp_path):
    code = ("import sys, kblocks; assert 'keras' not in sys.modules; import keras; "
            "from keras.saving import get_registered_object as g; "
            "print(g('kblocks>Network') is kblocks.Network)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "True"


def test_evaluate_cli_reads_or_says_what_it_assumed(tmp_path):
    import keras
    from click.testing import CliRunner

    from kblocks.cli import main

    inputs = keras.Input((8, 8, 1))
    old = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))))
    old.save(tmp_path / "old.keras")
    kblocks.build(SMALL, input_shape=(8, 8, 1), normalize="scale").save(tmp_path / "new.keras")
    said = {}
    for name in ("old", "new"):
        result = CliRunner().invoke(main, ["evaluate", str(tmp_path / f"{name}.keras"), "--data",
                                           "digits", "--subset", "100"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        said[name] = result.stdout, result.stderr
    assert "assumed output: probabilities" in said["old"][1]
    assert "input: float values as given (no normalisation inside)" in said["old"][1]
    assert "model: input pixels 0..255, normalised inside (scale); outputs logits" in said["new"][0]
    assert "assumed" not in said["new"][1]


def test_autoencoder_defaults_are_not_a_classifier_loss():
    model = kblocks.build("CONV(4)-RELU-CONV(1)", input_shape=(8, 8, 1))
    model.compile()
    assert model.loss == "mean_squared_error"

"""Composition and explicit variables (issue 13): ``kblocks.layer(text)`` inside users' functional
and subclassed models, trained, saved and reloaded with ``safe_mode=True`` in a fresh process after
only ``import kblocks``; ``build(..., input_tensor=)``; ``variables={...}``, misspelt keywords
refused with a did-you-mean, the old keyword form deprecated."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

import kblocks
from conftest import ROOT
from kblocks.lang.compose import ArchitectureLayer

TEXT = "[CONV(W)-BN-RELU]*N-LRN-POOL-GAP-FC"

USER_MODEL = textwrap.dedent('''
    import keras
    import kblocks


    @keras.saving.register_keras_serializable(package="user")
    class Classifier(keras.Model):
        """A subclassed model of a user: a scaling, then a kblocks network as one layer."""

        def __init__(self, text, classes, **kwargs):
            super().__init__(**kwargs)
            self.text, self.classes = text, classes
            self.scale = keras.layers.Rescaling(0.5)
            self.body = kblocks.layer(text, classes=classes, variables={"N": 1, "W": 4})

        def call(self, x, training=None):
            return self.body(self.scale(x), training=training)

        def get_config(self):
            return {**super().get_config(), "text": self.text, "classes": self.classes}
''')

# Loads each file with plain Keras after `import kblocks` (nothing else of kblocks imported) and
# prints {file: predictions}; the names of the classes Keras made are printed too.
RELOAD = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import kblocks, keras
    import numpy as np
    x = np.load(sys.argv[2])
    out = {}
    for path in sys.argv[3:]:
        if path.endswith("subclassed.keras"):
            import usermodel  # the user's own class, as their program would import it
        model = keras.saving.load_model(path, safe_mode=True)
        kinds = sorted({type(l).__name__ for l in model._flatten_layers()})
        out[path] = {"kinds": kinds, "y": model.predict(x, verbose=0).tolist()}
    print("RESULT" + json.dumps(out))
''')


def _data(n=16, shape=(8, 8, 1), classes=3):
    rng = np.random.default_rng(0)
    return rng.random((n, *shape), dtype="float32"), rng.integers(0, classes, n)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Three files, trained a step and saved, and their predictions reloaded in a fresh process."""
    from kblocks.training.augment import Cutout, RandomCrop, RandomFlip

    folder = tmp_path_factory.mktemp("compose")
    (folder / "usermodel.py").write_text(USER_MODEL)
    sys.path.insert(0, str(folder))
    try:
        import usermodel
    finally:
        sys.path.remove(str(folder))
    x, y = _data()
    np.save(folder / "x.npy", x)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    models = {}

    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(2, 1, name="user_conv")(inputs)
    body = kblocks.layer(TEXT, classes=3, variables={"N": 2, "W": 4}, name="body")
    models["functional"] = keras.Model(inputs, keras.layers.Activation("linear")(body(hidden)))

    models["subclassed"] = usermodel.Classifier("CONV(W)-RELU-GAP-FC", 3)
    models["subclassed"](x[:1])

    # every custom layer kblocks writes, in one kblocks Network: LRN, the augmentation layers, an
    # ArchitectureLayer (the root is kblocks>Network)
    inputs = keras.Input((8, 8, 1))
    aug = Cutout(2, seed=1)(RandomCrop(1, seed=1)(RandomFlip(seed=1)(inputs)))
    inner = kblocks.layer("CONV(4)-LRN-GAP-FC", classes=3)(aug)
    net = kblocks.build("CONV(4)-LRN-GAP-FC(3)", input_tensor=aug)
    from kblocks.lang.models import Network
    models["every"] = Network(inputs, keras.layers.Add()([inner, net(aug)]))

    expected, paths = {}, []
    for name, model in models.items():
        model.compile("adam", loss)
        model.train_on_batch(x, y)
        path = str(folder / f"{name}.keras")
        model.save(path)
        expected[path] = model.predict(x, verbose=0)
        paths.append(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", RELOAD, str(folder), str(folder / "x.npy"), *paths],
                         capture_output=True, text=True, timeout=600, env=env, check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    line = next(s for s in run.stdout.splitlines() if s.startswith("RESULT"))
    return {"models": models, "expected": expected, "reloaded": json.loads(line[6:]),
            "folder": folder}


def test_functional_model_with_a_layer_reloads_with_the_same_predictions(saved):
    path = str(saved["folder"] / "functional.keras")
    got = saved["reloaded"][path]
    assert np.allclose(got["y"], saved["expected"][path], atol=1e-5)
    assert {"ArchitectureLayer", "LRN", "Conv2D"} <= set(got["kinds"])
    body = saved["models"]["functional"].get_layer("body")
    assert isinstance(body, ArchitectureLayer)
    assert body.get_config()["architecture"] == TEXT
    assert body.get_config()["variables"] == {"N": 2, "W": 4}
    assert len(body.network.get_layer("conv_3").get_weights()) == 2  # N=2 expanded: conv_1, conv_3


def test_subclassed_model_with_a_layer_reloads_with_the_same_predictions(saved):
    path = str(saved["folder"] / "subclassed.keras")
    got = saved["reloaded"][path]
    assert np.allclose(got["y"], saved["expected"][path], atol=1e-5)
    assert "ArchitectureLayer" in got["kinds"]
    assert saved["models"]["subclassed"].body.trainable_weights  # the layer holds the weights


def test_every_custom_layer_loads_after_plain_import_kblocks(saved):
    """Only ``import kblocks, keras`` in the fresh process: no ``import kblocks.lang.layers``."""
    path = str(saved["folder"] / "every.keras")
    got = saved["reloaded"][path]
    assert np.allclose(got["y"], saved["expected"][path], atol=1e-5)
    for kind in ("ArchitectureLayer", "LRN", "RandomFlip", "RandomCrop", "Cutout", "Functional"):
        assert kind in got["kinds"], kind


def test_layer_takes_its_input_shape_from_the_caller():
    body = kblocks.layer("CONV(4)-RELU-GAP-FC", classes=5)
    assert body(np.zeros((2, 12, 10, 3), "float32")).shape == (2, 5)
    assert body.network.input_shape == (None, 12, 10, 3)
    again = ArchitectureLayer.from_config(body.get_config())
    assert again(np.zeros((1, 6, 6, 1), "float32")).shape == (1, 5)


def test_layer_refuses_what_cannot_be_saved_and_misspelt_keywords():
    with pytest.raises(kblocks.KBlocksError, match="did you mean classes"):
        kblocks.layer("FC", clases=3)
    with pytest.raises(kblocks.KBlocksError, match="format_text"):
        kblocks.layer("FC", resolver=lambda p: p.default)
    with pytest.raises(kblocks.KBlocksError, match="BlockLibrary"):
        kblocks.layer("FC", blocks=kblocks.lang.blocks.BlockLibrary())
    with pytest.raises(kblocks.KBlocksError):  # the grammar is checked at once, not at the call
        kblocks.layer("CONV(4")


def test_build_input_tensor_puts_the_network_in_a_bigger_graph():
    inputs = keras.Input((8, 8, 1), name="pixels")
    scaled = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    model = kblocks.build("CONV(4)-RELU-GAP-FC(3)", input_tensor=scaled)
    assert model.inputs[0] is inputs  # as keras.applications: the tensor's source input
    assert "scale" in [layer.name for layer in model.layers]
    x, _ = _data(4)
    manual = model.get_layer("fc_3")(model.get_layer("gap_2")(model.get_layer("relu_1")(
        model.get_layer("conv_0")(x / 255))))
    assert np.allclose(model.predict(x, verbose=0), keras.ops.convert_to_numpy(manual), atol=1e-5)
    with pytest.raises(kblocks.KBlocksError, match="input_shape"):
        kblocks.build("FC(3)", input_tensor=scaled, input_shape=(4, 4, 1))
    with pytest.raises(kblocks.KBlocksError, match="Keras tensor"):
        kblocks.build("FC(3)", input_tensor=np.zeros((1, 8, 8, 1), "float32"))


def test_variables_mapping_and_names_that_are_parameters():
    model = kblocks.build(TEXT, input_shape=(8, 8, 1), classes=3, variables={"N": 1, "W": 2})
    assert model.get_layer("conv_0").filters == 2
    text = "FC(classes)-FC(blocks)-FC(name)-FC(resolver)-FC(input_tensor)"
    graph = kblocks.compile(text, input_shape=(4,),
                            variables={"classes": 5, "blocks": 6, "name": 7, "resolver": 8,
                                       "input_tensor": 9})
    assert graph.canonical_text() == "INPUT(4) - FC(5) - FC(6) - FC(7) - FC(8) - FC(9)"
    with pytest.raises(kblocks.KBlocksError, match="mapping"):
        kblocks.compile("FC(2)", input_shape=(4,), variables=[("N", 2)])


@pytest.mark.parametrize("func", ["compile", "build", "summary", "analyse", "format_text"])
def test_a_misspelt_keyword_is_refused_with_did_you_mean(func):
    with pytest.raises(kblocks.KBlocksError) as info:
        getattr(kblocks, func)("CONV(4)-GAP-FC", input_shape=(8, 8, 1), clases=3)
    assert f"kblocks.{func}() got an unexpected keyword argument 'clases'" in str(info.value)
    assert "did you mean classes?" in str(info.value)


def test_unknown_keyword_is_refused_with_the_parameters():
    with pytest.raises(kblocks.KBlocksError, match="'input_tensor'") as info:
        kblocks.compile("FC(3)", input_shape=(4,), input_tensor=keras.Input((4,)))
    assert "did you mean input_shape" in str(info.value)  # compile has no input_tensor
    with pytest.raises(kblocks.KBlocksError, match="variables=") as info:
        kblocks.build("FC(3)", input_shape=(4,), zzz=1)
    assert "classifier_activation" in str(info.value)


def test_the_old_keyword_form_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"pass variables=\{'N': 1, 'W': 2\}"):
        old = kblocks.format_text(TEXT, input_shape=(8, 8, 1), classes=3, N=1, W=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = kblocks.format_text(TEXT, input_shape=(8, 8, 1), classes=3, variables={"N": 1, "W": 2})
    assert old == new and "CONV(2)" in new
    with pytest.warns(DeprecationWarning) as caught:
        kblocks.summary(TEXT, input_shape=(8, 8, 1), classes=3, N=1, W=2)
    assert caught[0].filename == __file__  # points at the caller's line
    with pytest.raises(kblocks.KBlocksError, match="given twice"):
        kblocks.compile(TEXT, input_shape=(8, 8, 1), N=1, variables={"N": 2, "W": 2})


def test_cli_set_passes_variables():
    from click.testing import CliRunner

    from kblocks.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        run = CliRunner().invoke(main, ["summary", TEXT, "--input-shape", "8,8,1", "--classes", "3",
                                        "--set", "N=1", "W=2", "--text"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "CONV(2)" in run.output

"""Export for serving: ``kblocks export`` writes a TensorFlow SavedModel with ``model.export`` into a
temporary folder next to the target and renames it into place; ``tf.saved_model.load(path).serve(x)``
must give what the model gives.

Exporting traces the whole graph, which takes 20-40 s of CPU for the 200-400-layer networks, so
not every zoo network is exported: a few chosen for the layers they bring (EXPORTED), the network
with the fewest layers of any family not known here (so a new family is exported automatically),
and every built-in block through its documented example, which covers the layers of the deep
families (grouped convolutions, squeeze-and-excitation, dense layers, bottlenecks) at a fraction
of the cost. Every zoo network round-trips through .keras in tests/test_zoo.py. Set
KBLOCKS_EXPORT_ALL=1 to export every zoo network here too.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import kblocks
from kblocks import zoo
from kblocks.lang.blocks import builtin_library
from kblocks.common.errors import KBlocksError

tf = pytest.importorskip("tensorflow")

# Zoo networks exported here, chosen for the layers they bring: LRN (alexnet), transposed
# convolutions and RESHAPE (conv_autoencoder), depthwise convolutions and ReLU6 (mobilenet), the
# plain stack (lenet5). The CLI tests export resnet18 and the three-output googlenet.
EXPORTED = ("lenet5", "alexnet", "conv_autoencoder", "mobilenet")
KNOWN_FAMILIES = {"lenet", "alexnet", "vgg", "nin", "inception", "resnet", "resnext", "wide-resnet",
                  "densenet", "all-conv", "mobilenet", "squeezenet", "senet", "autoencoder",
                  "pattern",
                  "shufflenet"}  # its CHANNEL_SHUFFLE and SPLIT export in @shuffle_unit/@shuffle_down


def _small_input(arch):
    h, _, c = arch.input_shape
    classes = 10 if arch.classes else None
    for side in [s for s in (32, 64, 96, 128) if s < h] + [h]:
        try:
            graph = kblocks.compile(arch, input_shape=(side, side, c), classes=classes)
        except KBlocksError:
            continue
        return (side, side, c), classes, len(graph.nodes)
    raise AssertionError(f"{arch.name} compiles at no small input")


def _representatives():
    """EXPORTED, and for a family not known here its network with the fewest layers."""
    if os.environ.get("KBLOCKS_EXPORT_ALL"):
        return zoo.names()
    best = {}
    for name in zoo.names():
        arch = zoo.load(name)
        family = arch.meta.get("family", name)
        if family in KNOWN_FAMILIES:
            continue
        size = _small_input(arch)[2]
        if family not in best or size < best[family][1]:
            best[family] = (name, size)
    return list(EXPORTED) + sorted(name for name, _ in best.values())


def _as_arrays(out):
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    return {"output": np.asarray(out)}


def assert_serves_like(path, model, shape):
    x = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype("float32")
    loaded = tf.saved_model.load(str(path))  # keep a reference: it owns the variables
    served = _as_arrays(loaded.serve(tf.constant(x)))
    want = _as_arrays(model(x, training=False))
    assert set(served) == set(want)
    for key in want:
        np.testing.assert_allclose(served[key], want[key], atol=1e-6)


def _export(model, path, **kw):
    from kblocks.cli.zoo import export_saved_model

    return export_saved_model(model, path, **kw)


def _cli(*args):
    from kblocks.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", _representatives())
def test_exported_zoo_network_serves_the_same_predictions(name, tmp_path):
    shape, classes, _ = _small_input(zoo.load(name))
    model = kblocks.build(name, input_shape=shape, classes=classes)
    target = _export(model, tmp_path / "serving" / name)
    assert (target / "saved_model.pb").is_file()
    assert_serves_like(target, model, shape)
    assert os.listdir(tmp_path / "serving") == [name]  # no temporary folder left behind


def _example(block):
    return re.search(r"Example:\s*(INPUT\(.*)$", builtin_library().get(block).doc.strip()).group(1)


@pytest.mark.parametrize("block", builtin_library().names())
def test_every_builtin_block_exports(block, tmp_path):
    text = _example(block)
    model = kblocks.build(text)
    target = _export(model, tmp_path / block)
    assert_serves_like(target, model, model.input.shape[1:])


def test_cli_export_of_a_zoo_name(tmp_path):
    """The command of the feature request, run as written."""
    out = tmp_path / "serving" / "resnet18"
    result = _cli("export", "resnet18", "--classes", 10, "--input-shape", "32,32,3", "-o", out)
    assert result.exit_code == 0, result.output
    assert "exported" in result.output and "11," in result.output
    loaded = tf.saved_model.load(str(out))
    probs = loaded.serve(tf.zeros((2, 32, 32, 3))).numpy()
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_cli_build_googlenet_yaml_then_export_the_keras_file(tmp_path):
    """kblocks build kblocks/zoo/architectures/googlenet.yaml ... -o g.keras, then kblocks export g.keras."""
    import keras

    yaml_path = zoo.path("googlenet")
    keras_file = tmp_path / "g.keras"
    result = _cli("build", yaml_path, "--classes", 10, "--input-shape", "96,96,3", "-o", keras_file)
    assert result.exit_code == 0, result.output
    result = _cli("export", keras_file, "-o", tmp_path / "serving" / "g")
    assert result.exit_code == 0, result.output
    model = keras.saving.load_model(keras_file, safe_mode=True)
    assert_serves_like(tmp_path / "serving" / "g", model, (96, 96, 3))


def test_cli_export_refuses_an_existing_folder_unless_overwrite(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    result = _cli("export", "CONV(4)-GAP-FC(2)", "--input-shape", "8,8,3", "-o", out)
    assert result.exit_code == 2
    assert "already exists" in result.output and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "old"
    # --overwrite replaces a SavedModel, never a folder holding the user's files (issue 21)
    result = _cli("export", "CONV(4)-GAP-FC(2)", "--input-shape", "8,8,3", "-o", out, "--overwrite")
    assert result.exit_code == 2 and "not a SavedModel" in result.output
    assert (out / "keep.txt").read_text() == "old"
    (out / "keep.txt").unlink()
    for _ in range(2):  # into the empty folder, then over the SavedModel written there
        result = _cli("export", "CONV(4)-GAP-FC(2)", "--input-shape", "8,8,3", "-o", out,
                      "--overwrite")
        assert result.exit_code == 0, result.output
        assert (out / "saved_model.pb").is_file()
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_cli_export_of_a_keras_file_takes_no_architecture_options(tmp_path):
    model = kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 3))
    model.save(tmp_path / "m.keras")
    result = _cli("export", tmp_path / "m.keras", "--classes", 3, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "do not apply" in result.output
    result = _cli("export", tmp_path / "missing.keras", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_a_failed_export_leaves_nothing_behind(tmp_path):
    model = kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 3))

    def broken(path, **kwargs):
        with open(os.path.join(path, "half_written.pb"), "w") as fh:
            fh.write("x")
        raise RuntimeError("disk full")

    model.export = broken
    with pytest.raises(RuntimeError, match="disk full"):
        _export(model, tmp_path / "new")
    assert os.listdir(tmp_path) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "saved_model.pb").write_text("previous model")
    with pytest.raises(RuntimeError, match="disk full"):
        _export(model, old, overwrite=True)
    assert os.listdir(tmp_path) == ["old"]
    assert (old / "saved_model.pb").read_text() == "previous model"


def test_export_target_that_is_a_file_is_refused(tmp_path):
    model = kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 3))
    (tmp_path / "f").write_text("not a folder")
    with pytest.raises(KBlocksError, match="not a folder"):
        _export(model, tmp_path / "f", overwrite=True)

"""``kblocks export --format savedmodel|tflite|onnx`` and ``kblocks.training.export.export_model``:
each format is written with Keras' ``model.export``, run beside the Keras model on the same batch
(the parity check), and its serving signature is read back and printed (issue 13).

tests/test_export.py covers the SavedModel folder rules (atomic, --overwrite, a Lambda layer
refused) on the zoo; this file the formats, the parity check and the file targets.
"""
from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import kblocks
from kblocks.common.errors import KBlocksError
from kblocks.training import export as ex

tf = pytest.importorskip("tensorflow")

TEXT = "CONV(8)-BN-RELU-POOL-CONV(16)-RELU-GAP-FC(10)"
SHAPE = (16, 16, 3)
TARGET = {"savedmodel": "serving", "tflite": "m.tflite", "onnx": "m.onnx"}
PARITY = re.compile(r"parity: max \|diff\| = (\d\.\de[-+]\d\d) over 4x10 outputs "
                    r"\(within the tolerance 1e-04\)")


def _cli(*args):
    from kblocks.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def model():
    return kblocks.build(TEXT, input_shape=SHAPE)


@pytest.mark.parametrize("fmt", ex.FORMATS)
def test_each_format_computes_what_the_keras_model_computes(model, fmt, tmp_path):
    report = ex.export_model(model, tmp_path / TARGET[fmt], format=fmt)
    assert report.passed and report.max_diff <= 1e-5 and report.compared == "4x10"
    assert PARITY.fullmatch(report.parity_line()), report.parity_line()
    sig = report.signature
    assert sig["input"] == {"name": "input", "dtype": "float32", "shape": (None, *SHAPE),
                            "range": "float values as given (no normalisation inside)"}
    assert sig["output"] == "logits" and sig["classes"] == 10
    assert [o["shape"] for o in sig["outputs"]] == [(None, 10)]
    assert os.listdir(tmp_path) == [TARGET[fmt]]  # no temporary left behind
    # the artifact, run independently of the report, gives the Keras outputs
    x = np.random.default_rng(7).uniform(0, 1, (3, *SHAPE)).astype("float32")
    got = ex._Runner(report.path, fmt).run(x)
    np.testing.assert_allclose(got[0], np.asarray(model(x)), atol=1e-5)


def test_the_signature_states_pixels_and_probabilities(tmp_path):
    """A model that normalises inside takes pixels 0..255 (the parity batch is pixels too); a
    softmax head gives probabilities."""
    model = kblocks.build("CONV(4)-RELU-GAP-FC(3)", input_shape=(8, 8, 1), normalize="scale",
                          classifier_activation="softmax")
    assert ex.parity_batch(model).max() > 100
    assert ex.parity_batch(kblocks.build("CONV(4)-GAP-FC(3)", input_shape=(8, 8, 1))).max() <= 1
    report = ex.export_model(model, tmp_path / "p.tflite", format="tflite")
    lines = report.lines()
    assert lines[1] == "input: 'input' float32 (None, 8, 8, 1): pixels 0..255, normalised inside " \
                       "(scale)"
    assert lines[2].endswith(": probabilities (3 classes)")
    assert lines[3].startswith("run it: ") and "get_signature_runner()(input=x)" in lines[3]


def test_a_standardizing_model_exports_with_one_input(tmp_path):
    """The statistics of a kblocks_normalize Normalization (every kblocks train model) are
    constants of the exported graph, not extra ONNX inputs; the layer keeps its own after."""
    pixels = np.random.default_rng(8).uniform(0, 255, (16, 8, 8, 1)).astype("float32")
    model = kblocks.build("CONV(4)-RELU-GAP-FC(3)", input_shape=(8, 8, 1), normalize="standardize",
                          normalize_stats=pixels)
    layer = model.get_layer("kblocks_normalize")
    mean = layer.mean
    for fmt in ("onnx", "tflite"):
        report = ex.export_model(model, tmp_path / TARGET[fmt], format=fmt)
        assert report.passed and report.signature["input"]["name"] == "input"
        assert report.signature["input"]["range"].startswith("pixels 0..255")
    import onnxruntime

    assert len(onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).get_inputs()) == 1
    assert layer.mean is mean


def test_multi_output_models_compare_every_output(tmp_path):
    model = kblocks.build("CONV(8)-RELU-AUX[GAP-FC(3)]-CONV(8)-GAP-FC(10)", input_shape=(8, 8, 3))
    for fmt in ("tflite", "onnx"):
        report = ex.export_model(model, tmp_path / TARGET[fmt], format=fmt)
        assert report.compared == "4x3 + 4x10" and report.passed
        assert report.signature["classes"] == 10  # of the main output, not of aux1


def test_a_parity_failure_fails_and_keeps_the_artifact(model, tmp_path, monkeypatch):
    load = ex._Runner._load_tflite

    def off_by_a_little(self):
        load(self)
        run = self.run
        self.run = lambda x: [y + 1e-3 for y in run(x)]

    monkeypatch.setattr(ex._Runner, "_load_tflite", off_by_a_little)
    with pytest.raises(ex.ExportParityError, match=r"max \|diff\| = 1\.0e-03 over 4x10 outputs "
                                                   r"\(OVER the tolerance") as info:
        ex.export_model(model, tmp_path / "m.tflite", format="tflite")
    assert f"kept at {tmp_path / 'm.tflite'}" in str(info.value)
    assert (tmp_path / "m.tflite").is_file() and info.value.report.max_diff > 1e-4
    assert ex.export_model(model, tmp_path / "m.tflite", format="tflite", overwrite=True,
                           tolerance=1e-2).passed
    result = _cli("export", TEXT, "--input-shape", "16,16,3", "--format", "tflite",
                  "-o", tmp_path / "c.tflite")
    assert result.exit_code == 2 and "kept at" in result.output
    assert "Traceback" not in result.output and (tmp_path / "c.tflite").is_file()


def test_check_false_skips_the_comparison(model, tmp_path):
    report = ex.export_model(model, tmp_path / "m.onnx", format="onnx", check=False)
    assert report.max_diff is None and not report.passed
    assert report.parity_line() == "parity: not checked"
    assert report.signature["input"]["name"] == "input"


def test_file_targets_are_checked_before_any_work(model, tmp_path):
    with pytest.raises(KBlocksError, match=r"one file named \*\.tflite"):
        ex.export_model(model, tmp_path / "m.onnx", format="tflite")
    with pytest.raises(KBlocksError, match="--format onnx"):
        ex.export_model(model, tmp_path / "m.onnx")  # savedmodel, the default, is a folder
    with pytest.raises(KBlocksError, match="format='pb'"):
        ex.export_model(model, tmp_path / "m.pb", format="pb")
    (tmp_path / "m.tflite").write_bytes(b"old")
    with pytest.raises(KBlocksError, match="already exists; pass --overwrite"):
        ex.export_model(model, tmp_path / "m.tflite", format="tflite")
    assert (tmp_path / "m.tflite").read_bytes() == b"old"
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises(KBlocksError, match="not a regular file"):
        ex.export_model(model, tmp_path / "d.onnx", format="onnx", overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(KBlocksError, match="is a file, not a folder"):
        ex.export_model(model, tmp_path / "file" / "m.onnx", format="onnx")
    assert sorted(os.listdir(tmp_path)) == ["d.onnx", "file", "m.tflite"]


def test_a_failed_file_export_leaves_the_old_file(tmp_path):
    model = kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 3))

    def broken(path, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("disk full")

    model.export = broken
    (tmp_path / "m.tflite").write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="disk full"):
        ex.export_model(model, tmp_path / "m.tflite", format="tflite", overwrite=True)
    assert os.listdir(tmp_path) == ["m.tflite"]
    assert (tmp_path / "m.tflite").read_bytes() == b"previous"


def test_onnx_without_its_packages_says_what_to_install(model, tmp_path, monkeypatch):
    find = importlib.util.find_spec

    def without(*names):
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name in names else find(name, *a))

    without("tf2onnx")
    with pytest.raises(KBlocksError, match=r"(?s)needs tf2onnx .*pip install 'kblocks\[onnx\]'"):
        ex.export_model(model, tmp_path / "m.onnx", format="onnx")
    without("onnxruntime")
    with pytest.raises(KBlocksError, match="(?s)needs onnxruntime.*--no-check"):
        ex.export_model(model, tmp_path / "m.onnx", format="onnx")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_cli_export_format_prints_the_signature_and_the_parity(fmt, tmp_path):
    out = tmp_path / TARGET[fmt]
    result = _cli("export", TEXT, "--input-shape", "16,16,3", "--format", fmt, "-o", out)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"exported {out} (1,594 params) as {fmt}"
    assert lines[1] == "input: 'input' float32 (None, 16, 16, 3): float values as given " \
                       "(no normalisation inside)"
    assert lines[2].endswith(": logits (10 classes)")
    assert PARITY.fullmatch(lines[4]), lines[4]
    result = _cli("export", TEXT, "--input-shape", "16,16,3", "--format", fmt, "-o", out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = _cli("export", TEXT, "--input-shape", "16,16,3", "--format", fmt, "-o", out,
                  "--overwrite", "--no-check")
    assert result.exit_code == 0 and "parity: not checked" in result.output


def test_cli_never_exports_onto_the_keras_file_it_reads(tmp_path):
    src = tmp_path / "m.keras"
    kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 3)).save(src)
    before = src.read_bytes()
    result = _cli("export", src, "--format", "onnx", "-o", src, "--overwrite")
    assert result.exit_code == 2 and ".onnx" in result.output
    assert src.read_bytes() == before

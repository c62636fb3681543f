"""What the zoo files claim about the function they compute, checked on CPU without PyTorch (issue 14).

The PyTorch twins themselves are compared by ``bench/peer_identity.py`` (weights copied, logits
compared, recorded in docs/BENCHMARKS.md); here each property that once made a file a shifted
network is tested against a numpy oracle of the PyTorch/Caffe operation on one layer, and read off
the compiled graph of every file that claims it:

* a strided 3x3 convolution written ``padding=1`` pads 1 on every side, as PyTorch's ``padding=1``
  (Keras' ``same`` pads 0 before and 1 after): resnet18, resnet34, resnext50_32x4d, wrn28_10;
* batch normalisation epsilon 1e-5 (PyTorch's) in those four files;
* se_resnet50's stem pool ``POOL(3, 2, padding=same)`` is Caffe's ceil-mode 3x3/2 max pool;
* googlenet's 7x7/2 stem pads 3 on every side (Caffe);
* the inference network (main output) of a file with AUX heads is counted apart from the heads,
  in ``kblocks.summary`` and ``kblocks zoo``, and equals ``count_params`` of the Keras sub-model
  that ends at the main output;
* allcnn_c's doc states its count; every file naming a PyTorch twin is in the benchmark and its
  table.
"""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import kblocks
from kblocks import zoo
from kblocks.cli.app import main
from kblocks.lang.analysis import main_nodes, main_totals

ROOT = Path(__file__).resolve().parents[1]
TORCHVISION_PAD = ("resnet18", "resnet34", "resnext50_32x4d", "wrn28_10")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _conv_oracle(x, kernel, stride, pad):
    """PyTorch's Conv2d(padding=pad, bias=False) in numpy, NHWC: zeros on every side, then a valid
    strided correlation."""
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = kernel.shape[0]
    n = (xp.shape[1] - k) // stride + 1
    m = (xp.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], n, m, kernel.shape[3]), "float64")
    for i in range(n):
        for j in range(m):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return out


def _ceil_pool_oracle(x, size=3, stride=2):
    """Caffe's (PyTorch's ceil_mode=True, no padding) max pool in numpy, NHWC: windows start at the
    first pixel, the last may run over the edge and takes the maximum of what it covers."""
    def count(n):
        out = math.ceil((n - size) / stride) + 1
        return out - 1 if (out - 1) * stride >= n else out
    n, m = count(x.shape[1]), count(x.shape[2])
    out = np.zeros((x.shape[0], n, m, x.shape[3]), x.dtype)
    for i in range(n):
        for j in range(m):
            out[:, i, j, :] = x[:, i * stride:i * stride + size, j * stride:j * stride + size].max(
                axis=(1, 2))
    return out


def _one_layer(text, shape, seed=0):
    """A one-layer kblocks model with random weights, an input and the layer's weights."""
    rng = np.random.default_rng(seed)
    model = kblocks.build(text, input_shape=shape)
    weights = [rng.normal(0, 1, w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.normal(0, 1, (2, *shape)).astype("float32")
    return model, x, weights


@pytest.mark.parametrize("size", [8, 9, 56])
def test_strided_3x3_conv_with_padding_1_pads_one_on_every_side(size):
    model, x, (kernel,) = _one_layer("CONV(4, 3, stride=2, padding=1, use_bias=false)",
                                     (size, size, 3))
    got = np.asarray(model(x))
    want = _conv_oracle(x, kernel, 2, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)
    # The Keras default pads 0 before and 1 after on an even map: another function.
    same, _, _ = _one_layer("CONV(4, 3, stride=2, use_bias=false)", (size, size, 3))
    same.set_weights([kernel])
    if size % 2 == 0:
        assert np.abs(np.asarray(same(x)) - want).max() > 1e-2


def _nodes(name):
    return kblocks.compile(name).nodes


@pytest.mark.parametrize("name", TORCHVISION_PAD)
def test_every_strided_3x3_conv_pads_one_on_every_side(name):
    nodes = _nodes(name)
    strided = [n for n in nodes if n.token == "CONV" and _pair(n.get("kernel")) == (3, 3)
               and _pair(n.get("stride")) == (2, 2)]
    assert len(strided) == (2 if name == "wrn28_10" else 3)
    for n in strided:
        assert n.get("padding") == "valid", n.dsl
        (src,) = n.inputs
        assert nodes[src].token == "ZEROPAD" and _pair(nodes[src].get("pad")) == (1, 1), n.dsl
    # No convolution larger than 1x1 is strided with Keras' asymmetric "same" padding.
    assert not [n.dsl for n in nodes if n.token == "CONV" and _pair(n.get("stride")) != (1, 1)
                and _pair(n.get("kernel")) != (1, 1) and n.get("padding") == "same"]


@pytest.mark.parametrize("name", TORCHVISION_PAD)
def test_batch_norm_epsilon_is_pytorchs(name):
    eps = [dict(n.extra).get("epsilon") for n in _nodes(name) if n.token == "BN"]
    assert len(eps) > 10 and set(eps) == {1e-5}


def test_wrn_batch_norm_layers_get_epsilon_1e5_in_keras():
    """The Keras layers built from the file, not only the graph."""
    model = kblocks.build("wrn28_10")
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(bns) == 25 and {layer.epsilon for layer in bns} == {1e-5}


@pytest.mark.parametrize("size", [112, 56, 14])
def test_same_max_pool_is_ceil_mode_pooling_on_even_maps(size):
    model, x, _ = _one_layer("POOL(3, 2, padding=same)", (size, size, 4))
    got = np.asarray(model(x))
    want = _ceil_pool_oracle(x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # torchvision's padding=1 pooling is another function (windows start one pixel earlier).
    pad1, _, _ = _one_layer("POOL(3, 2, padding=1)", (size, size, 4))
    assert np.asarray(pad1(np.abs(x))).shape == want.shape
    assert not np.array_equal(np.asarray(pad1(np.abs(x))), _ceil_pool_oracle(np.abs(x)))


def test_se_resnet50_stem_pool_is_the_ports_ceil_mode_pool():
    nodes = _nodes("se_resnet50")
    pool = next(n for n in nodes if n.token == "POOL")
    assert (pool.get("size"), pool.get("stride"), pool.get("padding")) == (3, 2, "same")
    before = nodes[pool.inputs[0]].shape
    assert before[:2] == (112, 112)
    ceil = math.ceil((112 - 3) / 2) + 1
    assert pool.shape[:2] == (ceil, ceil) == (56, 56)


def test_googlenet_stem_pads_three_on_every_side():
    nodes = _nodes("googlenet")
    stem = next(n for n in nodes if n.token == "CONV")
    assert _pair(stem.get("kernel")) == (7, 7) and _pair(stem.get("stride")) == (2, 2)
    assert stem.get("padding") == "valid"
    pad = nodes[stem.inputs[0]]
    assert pad.token == "ZEROPAD" and _pair(pad.get("pad")) == (3, 3)
    assert stem.shape[:2] == (112, 112)
    model, x, (kernel,) = _one_layer("CONV(2, 7, stride=2, padding=3, use_bias=false)",
                                     (16, 16, 3))
    np.testing.assert_allclose(np.asarray(model(x)), _conv_oracle(x, kernel, 2, 3), atol=1e-4)


# -- AUX heads: the inference network apart --------------------------------------------------------

def _main_count(model):
    import keras

    out = model.output
    main_out = out["output"] if isinstance(out, dict) else out
    return keras.Model(model.input, main_out).count_params()


def test_googlenet_inference_count_is_the_sub_model_to_the_main_output():
    model = kblocks.build("googlenet")
    assert model.count_params() == 13_378_280
    assert _main_count(model) == 6_998_552
    e = zoo.entry("googlenet")
    assert (e.inference_params, e.params) == (6_998_552, 13_378_280)
    assert e.reference["inference"] == e.inference_params
    assert e.inference_macs < e.macs
    assert "6,998,552" in e.doc and "13,378,280" in e.doc


def test_main_totals_leave_out_only_aux_layers():
    text = "CONV(8) - RELU - AUX[GAP - FC(3)] - CONV(8) - GAP - FC(10)"
    model = kblocks.build(text, input_shape=(8, 8, 3))
    a = kblocks.summary(text, input_shape=(8, 8, 3)).analysis
    m = main_totals(a)
    assert m.params == _main_count(model) == model.count_params() - (8 * 3 + 3)
    assert m.macs == a.macs - 8 * 3
    assert len(main_nodes(a.graph)) == len(a.graph.nodes) - 2
    plain = kblocks.summary("CONV(8) - GAP - FC(10)", input_shape=(8, 8, 3))
    assert main_totals(plain.analysis).params == plain.params
    assert not [line for line in plain.totals() if "AUX" in line]


def test_summary_shows_the_inference_network_beside_the_aux_heads():
    lines = kblocks.summary("googlenet").totals()
    line = next(li for li in lines if li.startswith("Inference (main output)"))
    assert "6,998,552 params (13,378,280 with AUX heads)" in line


def test_cli_zoo_shows_the_inference_network_beside_the_aux_heads():
    runner = CliRunner()
    table = runner.invoke(main, ["zoo"])
    assert table.exit_code == 0, table.output
    row = next(li for li in table.output.splitlines() if li.startswith("googlenet"))
    assert "6,998,552 (13,378,280 with AUX heads)" in row
    resnet = next(li for li in table.output.splitlines() if li.startswith("resnet18 "))
    assert "AUX" not in resnet
    one = runner.invoke(main, ["zoo", "googlenet"])
    assert "inference (main output): 6,998,552 params (13,378,280 with AUX heads)" in one.output
    js = runner.invoke(main, ["zoo", "googlenet", "--json"])
    assert '"inference_params": 6998552' in js.output


def test_docs_zoo_md_shows_the_split():
    text = (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")
    assert "| 6,998,552 (13,378,280 with AUX heads) |" in text


# -- what the files say ------------------------------------------------------------------------------

def test_allcnn_c_doc_agrees_with_its_count():
    e = zoo.entry("allcnn_c")
    assert f"{e.params:,}" in e.doc
    for figure in re.findall(r"(\d+(?:\.\d+)?) M\b", e.doc + " " + e.reference.get("by", "")):
        assert 0 <= e.params / 1e6 - float(figure) < 0.1, figure  # the paper's 1.3 M rounds down
    if "millions" in e.reference:
        assert round(e.params / 1e6, 1) == e.reference["millions"]


def _bench_twins() -> set:
    tree = ast.parse((ROOT / "bench" / "peer_identity.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TWINS":
            return {k.value for k in node.value.keys}
    raise AssertionError("bench/peer_identity.py has no TWINS")


def test_every_file_naming_a_pytorch_model_has_a_twin_in_the_benchmark():
    """A file saying "as in torchvision/timm/the authors' code" names its twin, the benchmark
    compares it, and docs/BENCHMARKS.md records the comparison."""
    claims = {}
    for name in zoo.names():
        e = zoo.entry(name)
        if re.search(r"torchvision's \w+|timm|authors' (PyTorch )?code", e.doc):
            claims[name] = e.reference.get("twin")
    twins = {n for n in zoo.names() if zoo.entry(n).reference.get("twin")}
    assert {"resnet18", "resnet34", "resnext50_32x4d", "wrn28_10", "se_resnet50",
            "squeezenet1_1"} <= twins
    assert set(claims) - {"googlenet", "resnet50", "resnet101", "resnet152", "mobilenet"} <= twins
    assert twins == _bench_twins()
    bench = (ROOT / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    section = bench.split("## Zoo networks against their PyTorch twins", 1)[1]
    for name in twins:
        assert re.search(rf"^\| {name} \|", section, re.M), f"{name} is not in the recorded table"


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152", "mobilenet"])
def test_keras_following_files_name_the_pytorch_difference(name):
    doc = zoo.entry(name).doc
    assert "It follows Keras, not PyTorch" in doc and "epsilon 1e-5" in doc

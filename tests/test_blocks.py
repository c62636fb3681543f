"""Built-in named blocks (kblocks/lang/builtin_blocks.yaml).

Parametrised over the block library, so a new block is tested without writing a test: it must
have a doc citing a paper (year) and its figure or table, and end with an example that compiles,
uses the block and builds in Keras. Then the blocks are checked against what their papers say,
with parameter counts derived by hand in the tests.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import kblocks
from kblocks.lang.blocks import REQUIRED, builtin_library
from kblocks.common.errors import ArchitectureError, KBlocksError

LIB = builtin_library()
NAMES = LIB.names()
EXAMPLE = re.compile(r"Example:\s*(INPUT\(.*)$")


def example(name):
    match = EXAMPLE.search(" ".join(LIB.get(name).doc.split()))
    assert match, f"the doc of @{name} must end with 'Example: INPUT(...) - @{name}(...)'"
    return match.group(1)


def conv(cin, cout, k, bias=True, groups=1):
    return k * k * (cin // groups) * cout + (cout if bias else 0)


def bn(c):
    return 4 * c  # gamma, beta, moving mean, moving variance


def graph(text, **kw):
    return kblocks.compile(text, **kw)


# --- every block ------------------------------------------------------------------------------

def test_the_blocks_the_contract_promises_are_built_in():
    assert {"basic", "bottleneck", "inception", "dense_block", "dense_layer", "transition", "nin",
            "se", "mbconv", "fire", "resnext", "vgg", "dwsep"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_block_doc_cites_its_source_and_gives_an_example(name):
    doc = " ".join(LIB.get(name).doc.split())
    assert re.search(r"\b(19|20)\d\d\b", doc), f"@{name}: the doc should name the paper and year"
    assert re.search(r"Fig\.|Table|section", doc), f"@{name}: the doc should cite a figure or table"
    assert f"@{name}(" in example(name)


@pytest.mark.parametrize("name", NAMES)
def test_block_example_compiles_builds_and_runs(name):
    text = example(name)
    g = graph(text)
    assert any(node.scope.startswith(name) for node in g.nodes), "the example must use the block"
    model = kblocks.build(text)
    assert model.count_params() == kblocks.summary(text).params
    x = np.random.default_rng(0).uniform(0, 1, (1, *model.input.shape[1:])).astype("float32")
    assert np.isfinite(np.asarray(model(x))).all()


@pytest.mark.parametrize("name", [n for n in NAMES
                                  if any(d is REQUIRED for _, d in LIB.get(n).params)])
def test_required_parameters_are_named_when_missing(name):
    required = [p for p, default in LIB.get(name).params if default is REQUIRED]
    with pytest.raises(ArchitectureError, match=f"needs its parameter '{required[0]}'"):
        graph(f"@{name}", input_shape=(8, 8, 16))


# --- ResNet ------------------------------------------------------------------------------------

def test_the_feature_request_example_and_its_hand_count():
    """@basic(64)*2-@basic(128,stride=2)-GAP-FC(classes) on 32x32x3 with 10 classes."""
    text = "@basic(64)*2-@basic(128,stride=2)-GAP-FC(classes)"
    model = kblocks.build(text, input_shape=(32, 32, 3), classes=10)
    # block 1: 3 -> 64 channels, so SKIP becomes the projection W_s (1x1 conv with bias, no BN)
    block1 = conv(3, 64, 1) + conv(3, 64, 3) + bn(64) + conv(64, 64, 3) + bn(64)
    block2 = 2 * (conv(64, 64, 3) + bn(64))  # identity shortcut
    block3 = conv(64, 128, 1) + conv(64, 128, 3) + bn(128) + conv(128, 128, 3) + bn(128)
    head = 128 * 10 + 10
    assert model.count_params() == block1 + block2 + block3 + head == 345_930
    assert model.output.shape[1:] == (10,)
    notes = [n.note for n in graph(text, input_shape=(32, 32, 3), classes=10).nodes if n.note]
    assert sum("projection shortcut" in n for n in notes) == 2


def test_basic_block_projection_with_bn_on_request():
    g = graph("INPUT(16,16,64) - @basic(128, stride=2, proj=1)")
    tokens = [n.token for n in g.nodes]
    assert tokens[:2] == ["CONV", "BN"]  # the written-out shortcut comes first
    assert not any(n.note for n in g.nodes)  # nothing inserted
    assert g.nodes[0].get("kernel") == 1 and g.nodes[0].get("stride") == 2
    assert g.nodes[-1].token == "RELU" and g.nodes[-2].token == "ADD"


def test_bottleneck_is_keras_resnet_v1():
    """Stride on the first 1x1 (as keras.applications.ResNet50), BN epsilon 1.001e-5, bias kept."""
    g = graph("INPUT(16,16,256) - @bottleneck(128, 512, stride=2, proj=1)")
    convs = [n for n in g.nodes if n.token == "CONV"]
    shortcut, first, middle, last = convs
    assert (shortcut.get("kernel"), shortcut.get("stride"), shortcut.get("filters")) == (1, 2, 512)
    assert (first.get("kernel"), first.get("stride"), first.get("filters")) == (1, 2, 128)
    assert (middle.get("kernel"), middle.get("stride")) == (3, 1)
    assert (last.get("kernel"), last.get("filters")) == (1, 512)
    assert all(c.get("use_bias") for c in convs)
    assert all(dict(n.extra)["epsilon"] == 1.001e-5 for n in g.nodes if n.token == "BN")
    assert g.nodes[-1].shape == (8, 8, 512)
    expected = (conv(256, 512, 1) + bn(512) + conv(256, 128, 1) + bn(128) + conv(128, 128, 3)
                + bn(128) + conv(128, 512, 1) + bn(512))
    assert kblocks.summary("INPUT(16,16,256) - @bottleneck(128, 512, stride=2, proj=1)").params \
        == expected


def test_resnext_block_groups_the_3x3_convolution():
    text = "INPUT(8,8,256) - @resnext(128, 256, groups=32)"
    expected = (conv(256, 128, 1) + bn(128) + conv(128, 128, 3, groups=32) + bn(128)
                + conv(128, 256, 1) + bn(256))
    assert kblocks.summary(text).params == expected
    assert [n.get("groups") for n in graph(text).nodes if n.token == "CONV"] == [1, 32, 1]


# --- Inception, DenseNet, fire: concatenations -------------------------------------------------

def test_inception_3a_of_table_1():
    """inception (3a): 28x28x192 in, 64 + 128 + 32 + 32 = 256 channels out."""
    text = "INPUT(28,28,192) - @inception(64, 96, 128, 16, 32, 32)"
    assert graph(text).nodes[-1].shape == (28, 28, 256)
    expected = (conv(192, 64, 1) + conv(192, 96, 1) + conv(96, 128, 3) + conv(192, 16, 1)
                + conv(16, 32, 5) + conv(192, 32, 1))
    assert kblocks.summary(text).params == expected == 163_696


def test_dense_block_grows_by_k_and_transition_compresses():
    g = graph("INPUT(16,16,64) - @dense_block(6, 32) - @transition(128)")
    concat = [n for n in g.nodes if n.token == "CONCAT"]
    assert [n.shape[-1] for n in concat] == [64 + 32 * i for i in range(1, 7)]
    assert g.nodes[-1].shape == (8, 8, 128)
    assert all(not n.get("use_bias") for n in g.nodes if n.token == "CONV")


def test_dense_layer_matches_keras_densenet_conv_block():
    """BN - ReLU - 1x1 conv (4k) - BN - ReLU - 3x3 conv (k), no conv bias (keras DenseNet121)."""
    text = "INPUT(8,8,64) - @dense_layer(32, 128)"
    tokens = [n.token for n in graph(text).nodes]
    assert tokens == ["BN", "RELU", "CONV", "BN", "RELU", "CONV", "CONCAT"]
    assert kblocks.summary(text).params == bn(64) + 64 * 128 + bn(128) + 9 * 128 * 32


def test_fire_module_concatenates_its_expand_branches():
    text = "INPUT(16,16,128) - @fire(32, 128, 128)"
    assert graph(text).nodes[-1].shape == (16, 16, 256)
    assert kblocks.summary(text).params == conv(128, 32, 1) + conv(32, 128, 1) + conv(32, 128, 3)


# --- gates and mobile blocks -------------------------------------------------------------------

def test_se_scales_the_channels_by_the_gate():
    text = "INPUT(4,4,8) - @se(8, 2)"
    model = kblocks.build(text)
    assert model.count_params() == (8 * 2 + 2) + (2 * 8 + 8)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 8)).astype("float32")
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    (w1, b1), (w2, b2) = [d.get_weights() for d in dense]
    squeeze = x.mean(axis=(1, 2))
    gate = 1 / (1 + np.exp(-(np.maximum(squeeze @ w1 + b1, 0) @ w2 + b2)))
    np.testing.assert_allclose(np.asarray(model(x)), x * gate[:, None, None, :], rtol=1e-5,
                               atol=1e-6)


def test_se_bottleneck_adds_the_gate_to_the_bottleneck():
    plain = kblocks.summary("INPUT(8,8,256) - @bottleneck(64, 256)").params
    gated = kblocks.summary("INPUT(8,8,256) - @se_bottleneck(64, 256, 16)").params
    assert gated - plain == (256 * 16 + 16) + (16 * 256 + 256)


def test_dwsep_is_relu6_and_bias_free():
    model = kblocks.build("INPUT(8,8,16) - @dwsep(32)")
    assert model.count_params() == 9 * 16 + bn(16) + 16 * 32 + bn(32)
    x = np.full((1, 8, 8, 16), 100.0, dtype="float32")
    assert float(np.asarray(model(x)).max()) <= 6.0


def test_mbconv_expansion_is_optional_and_the_residual_needs_matching_shapes():
    with_expansion = kblocks.summary("INPUT(8,8,32) - @mbconv(32, 16, 8)").params
    without = kblocks.summary("INPUT(8,8,32) - @mbconv(32, 16, 8, expand=0)").params
    assert with_expansion - without == 32 * 32 + bn(32)
    assert graph("INPUT(8,8,24) - @mbconv_res(144, 24, 6)").nodes[-1].token == "ADD"
    with pytest.raises(ArchitectureError, match="proj=false"):
        graph("INPUT(8,8,16) - @mbconv_res(96, 24, 4)")


def test_nin_block_and_vgg_stage():
    assert graph("INPUT(32,32,3) - @nin(96, 11, 96, 96, stride=4, padding=valid)").nodes[-1].shape \
        == (6, 6, 96)
    g = graph("INPUT(32,32,3) - @vgg(64, 3)")
    assert [n.token for n in g.nodes].count("CONV") == 3 and g.nodes[-1].shape == (16, 16, 64)


# --- user blocks next to the built-ins ---------------------------------------------------------

def test_a_user_block_shadows_a_builtin_of_the_same_name():
    g = graph("@basic(8)", input_shape=(8, 8, 3), blocks={"basic": {"params": {"f": None},
                                                                     "body": "CONV($f)-RELU"}})
    assert [n.token for n in g.nodes] == ["CONV", "RELU"]
    assert builtin_library().get("basic").body != "CONV($f)-RELU"  # the built-in is unchanged


def test_user_blocks_can_call_builtins_and_unknown_names_get_suggestions():
    blocks = {"stage": {"params": {"f": None, "n": 2}, "body": "[@basic($f)]*$n - POOL"}}
    g = graph("@stage(16, 3)", input_shape=(16, 16, 16), blocks=blocks)
    assert [n.token for n in g.nodes].count("ADD") == 3
    with pytest.raises(KBlocksError, match="did you mean @bottleneck"):
        graph("@botleneck(64, 256)", input_shape=(8, 8, 64))

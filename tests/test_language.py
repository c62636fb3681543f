"""The language contract (../shared/DSL.md sections 1-4), checked against the seeds' figures and Keras."""
import numpy as np
import pytest

import kblocks

VGG16 = ("[[CONV(64)-RELU]*2-POOL]-[[CONV(128)-RELU]*2-POOL]-[[CONV(256)-RELU]*3-POOL]"
         "-[[CONV(512)-RELU]*3-POOL]*2-[FC(4096)-RELU]*2-FC(1000)-SOFTMAX")


def test_vgg16_figures_from_the_seeds():
    """Seed slide 'VGG16 memory': its per-layer figures sum to 15,237,608 (the slide rounds to 24M with
    backward overhead); params 138,357,544; RF 196 (jump 16) at the last conv, 212 (jump 32) after the pool."""
    s = kblocks.summary(VGG16, input_shape=(224, 224, 3))
    assert s.params == 138_357_544
    assert s.activation_elements == 15_237_608
    assert s.activation_bytes == 4 * 15_237_608
    nodes = s.graph.nodes
    last_conv = max(n.index for n in nodes if n.token == "CONV")
    last_pool = max(n.index for n in nodes if n.token == "POOL")
    assert (s.analysis.layers[last_conv].rf, s.analysis.layers[last_conv].jump) == ((196, 196), (16, 16))
    assert (s.analysis.layers[last_pool].rf, s.analysis.layers[last_pool].jump) == ((212, 212), (32, 32))


@pytest.mark.slow
def test_vgg16_params_equal_keras_applications():
    import keras

    ref = keras.applications.VGG16(weights=None)
    assert ref.count_params() == 138_357_544 == kblocks.summary(VGG16, input_shape=(224, 224, 3)).params


def test_alexnet_first_layer():
    s = kblocks.summary("INPUT(227,227,3)-CONV(96,11,stride=4,padding=valid)")
    node = s.graph.nodes[0]
    assert node.shape == (55, 55, 96)
    assert s.params == 34_944


def test_three_stacked_3x3_convs_see_7x7():
    s = kblocks.summary("[CONV(8,3)]*3", input_shape=(32, 32, 3))
    assert [st.rf for st in s.analysis.layers] == [(3, 3), (5, 5), (7, 7)]


def test_explicit_integer_padding_formula():
    # floor((i + 2P - k)/s) + 1 = floor((227 + 4 - 11)/4) + 1 = 56
    model = kblocks.build("CONV(96, 11, stride=4, padding=2)", input_shape=(227, 227, 3))
    assert tuple(model.output.shape[1:]) == (56, 56, 96)
    s = kblocks.summary(model)
    assert s.graph.nodes[0].token == "ZEROPAD" and "padding=2" in s.graph.nodes[0].note
    assert s.params == model.count_params()


def test_separators_case_and_whitespace_are_equivalent():
    a = kblocks.format_text("INPUT(32,32,3) -> [[CONV(32) -> RELU]*2 -> POOL]*3 -> [FC(256) -> RELU]*2 "
                            "-> FC(10) -> SOFTMAX")
    b = kblocks.format_text("[[conv(32)-Relu]*2-pool]*3-\n[FC(256)-RELU]*2-fc(10)-softmax",
                            input_shape=(32, 32, 3))
    assert a == b


def test_cs231n_pattern_with_variables():
    text = "[[CONV-RELU]*N-POOL?]*M-[FC-RELU]*K-FC"
    model = kblocks.build(text, input_shape=(32, 32, 3), classes=10, N=2, M=3, K=1)
    s = kblocks.summary(model)
    tokens = [n.token for n in s.graph.nodes]
    assert tokens.count("CONV") == 6 and tokens.count("POOL") == 3
    assert tokens.count("FC") == 2 and tokens[-1] == "FC"
    assert model.output.shape[-1] == 10
    assert s.graph.nodes[-3].get("units") == 128  # a bare FC that is not last takes the default
    assert s.params == model.count_params()


def test_star_zero_removes_and_flatten_is_inserted_and_shown():
    s = kblocks.summary("[CONV(8)-POOL]*0-FC(4)", input_shape=(4, 4, 2))
    assert [n.token for n in s.graph.nodes] == ["FLATTEN", "FC"]
    assert "inserted before FC" in str(s)


def test_residual_block_projection_shortcut():
    text = "(SKIP + CONV(128,3,stride=2)-BN-RELU-CONV(128,3)-BN)-RELU"
    model = kblocks.build(text, input_shape=(32, 32, 64))
    s = kblocks.summary(model)
    proj = [n for n in s.graph.nodes if "projection" in n.note]
    assert len(proj) == 1
    assert proj[0].get("kernel") == 1 and proj[0].get("stride") == 2 and proj[0].get("filters") == 128
    assert proj[0].get("use_bias") is True
    assert s.params == model.count_params()
    assert tuple(model.output.shape[1:]) == (16, 16, 128)


def test_identity_shortcut_needs_no_projection():
    s = kblocks.summary("(SKIP + CONV(64)-BN-RELU-CONV(64)-BN)-RELU", input_shape=(8, 8, 64))
    assert not [n for n in s.graph.nodes if "projection" in n.note]


def test_skip_proj_false_makes_mismatch_an_error():
    with pytest.raises(kblocks.KBlocksError, match="proj=false"):
        kblocks.compile("(SKIP(proj=false) + CONV(16, stride=2))", input_shape=(8, 8, 4))


def test_inception_module_concatenates_channels():
    text = ("(CONV(64,1)-RELU | CONV(96,1)-RELU-CONV(128,3)-RELU | CONV(16,1)-RELU-CONV(32,5)-RELU"
            " | POOL(3,1,padding=same)-CONV(32,1)-RELU)")
    model = kblocks.build(text, input_shape=(28, 28, 192))
    assert tuple(model.output.shape[1:]) == (28, 28, 256)
    assert kblocks.summary(model).params == model.count_params() == 163_696  # GoogLeNet table 1, 3a


def test_densenet_layer_repeats():
    model = kblocks.build("(SKIP | BN-RELU-CONV(128,1)-BN-RELU-CONV(32,3))*3", input_shape=(8, 8, 64))
    assert model.output.shape[-1] == 64 + 3 * 32
    assert kblocks.summary(model).params == model.count_params()


def test_squeeze_excitation_multiply_broadcasts():
    model = kblocks.build("CONV(32)-(SKIP & GAP-FC(8)-RELU-FC(32)-SIGMOID)", input_shape=(8, 8, 3))
    s = kblocks.summary(model)
    assert any(n.token == "RESHAPE" for n in s.graph.nodes)
    assert tuple(model.output.shape[1:]) == (8, 8, 32)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("float32")
    assert np.asarray(model(x)).shape == (1, 8, 8, 32)


def test_aux_heads_are_extra_named_outputs():
    model = kblocks.build("CONV(8)-AUX[GAP-FC(3)-SOFTMAX]-CONV(8)-GAP-FC(classes)-SOFTMAX",
                          input_shape=(8, 8, 3), classes=5)
    y = model(np.zeros((2, 8, 8, 3), "float32"))
    assert list(y) == ["output", "aux1"]
    assert y["output"].shape == (2, 5) and y["aux1"].shape == (2, 3)


def test_classes_fill_the_last_bare_fc():
    model = kblocks.build("FC-RELU-FC", input_shape=(6,), classes=7)
    assert model.output.shape[-1] == 7
    assert model.layers[1].units == 128


def test_layer_names_are_deterministic_and_match_the_summary():
    m1 = kblocks.build("CONV(8)-RELU-GAP-FC(2)", input_shape=(8, 8, 3))
    m2 = kblocks.build("CONV(8)-RELU-GAP-FC(2)", input_shape=(8, 8, 3))
    names = [layer.name for layer in m1.layers[1:]]
    assert names == [layer.name for layer in m2.layers[1:]] == ["conv_0", "relu_1", "gap_2", "fc_3"]


def test_mixed_precision_outputs_are_float32():
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = kblocks.build("CONV(8)-GAP-FC(3)-SOFTMAX", input_shape=(8, 8, 3))
        assert model.layers[1].compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_input_shape_conflict_is_an_error():
    with pytest.raises(kblocks.KBlocksError, match="INPUT"):
        kblocks.compile("INPUT(32,32,3)-CONV", input_shape=(64, 64, 3))


def test_summary_prints_the_totals():
    text = str(kblocks.summary(VGG16, input_shape=(224, 224, 3)))
    assert "138,357,544" in text and "15,237,608" in text


def test_bare_input_takes_the_callers_shape():
    """DSL.md section 1: a bare INPUT, as slides write it, takes the caller's input_shape; the
    README's slide string builds with --input-shape (issue 13)."""
    import kblocks

    slide = "INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC"
    graph = kblocks.compile(slide, input_shape=(32, 32, 3), classes=10,
                            variables={"N": 2, "M": 2, "K": 1})
    assert graph.canonical_text().startswith("INPUT(32, 32, 3)")
    assert kblocks.format_text("INPUT-CONV(8)-GAP-FC(2)", input_shape=(8, 8, 1)) == \
        kblocks.format_text("INPUT(8,8,1)-CONV(8)-GAP-FC(2)")
    with pytest.raises(kblocks.KBlocksError, match="no input shape"):
        kblocks.compile("INPUT-CONV(8)-GAP-FC(2)")
    with pytest.raises(kblocks.KBlocksError, match="write INPUT\\(height, width, channels\\)"):
        kblocks.compile("INPUT(h=3)-CONV(8)-GAP-FC(2)", input_shape=(8, 8, 1))

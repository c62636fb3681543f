"""DSL v2 named tensors (AS/FROM, section 4b) and the v2 tokens ZERO, CROP and HIGHWAY (section 3b).

The two examples of section 4b build and equal hand-written Keras models; every rule and error of
section 4b has a test; U-Net's parameter count is the hand count of Ronneberger et al. 2015.
"""
from __future__ import annotations

import numpy as np
import pytest

import kblocks
from kblocks.common.errors import ArchitectureError, KBlocksError

UNET2 = """[CONV(64)-RELU]*2 - AS(e1) - POOL - [CONV(128)-RELU]*2 - AS(e2) - POOL
- [CONV(256)-RELU]*2
- CONVT(128, 2, stride=2) - (SKIP | FROM(e2)) - [CONV(128)-RELU]*2
- CONVT(64, 2, stride=2)  - (SKIP | FROM(e1)) - [CONV(64)-RELU]*2 - CONV(classes, 1)"""
CELL = """CONV(16) - AS(n0) - CONV(16) - AS(n1)
- (FROM(n0) - POOL(3,1,padding=same) + FROM(n1) - CONV(16)) - AS(n2)
- (FROM(n0) + FROM(n1) - ZERO + FROM(n2) - CONV(16,1))"""


def _error(text, **kwargs) -> KBlocksError:
    kwargs.setdefault("input_shape", (8, 8, 3))
    with pytest.raises(KBlocksError) as info:
        kblocks.compile(text, **kwargs)
    return info.value


def _col(text, needle, nth=0):
    """1-based column of the nth occurrence of ``needle`` in a one-line ``text``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    return at + 1


def _structure(graph):
    return [(n.token, n.params, n.extra, n.inputs, n.shape) for n in graph.nodes]


def _copy_weights(src, dst):
    """Copy weights layer by layer in build order (both models make their layers in the same order)."""
    a = [layer for layer in src.layers if layer.weights]
    b = [layer for layer in dst.layers if layer.weights]
    assert [len(x.weights) for x in a] == [len(y.weights) for y in b]
    for x, y in zip(a, b):
        y.set_weights(x.get_weights())


# --- the two examples of section 4b against hand-written Keras ----------------------------------
def keras_unet2(shape, classes):
    import keras

    L = keras.layers

    def two(x, f):
        for _ in range(2):
            x = L.Conv2D(f, 3, padding="same", activation="relu")(x)
        return x

    inputs = keras.Input(shape)
    e1 = two(inputs, 64)
    e2 = two(L.MaxPooling2D()(e1), 128)
    x = two(L.MaxPooling2D()(e2), 256)
    x = two(L.Concatenate()([L.Conv2DTranspose(128, 2, strides=2)(x), e2]), 128)
    x = two(L.Concatenate()([L.Conv2DTranspose(64, 2, strides=2)(x), e1]), 64)
    return keras.Model(inputs, L.Conv2D(classes, 1)(x))


def keras_cell(shape):
    import keras

    L = keras.layers
    inputs = keras.Input(shape)
    n0 = L.Conv2D(16, 3, padding="same")(inputs)
    n1 = L.Conv2D(16, 3, padding="same")(n0)
    n2 = L.Add()([L.MaxPooling2D(3, 1, padding="same")(n0), L.Conv2D(16, 3, padding="same")(n1)])
    return keras.Model(inputs, L.Add()([n0, L.Conv2D(16, 1)(n2)]))  # ZERO adds nothing


def test_unet_example_equals_a_hand_written_keras_unet():
    model = kblocks.build(UNET2, input_shape=(16, 16, 3), classes=2)
    oracle = keras_unet2((16, 16, 3), 2)
    assert model.count_params() == oracle.count_params() == \
        kblocks.analyse(UNET2, input_shape=(16, 16, 3), classes=2).params == 1_862_914
    _copy_weights(model, oracle)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(oracle(x)), rtol=1e-4, atol=1e-4)


def test_cell_example_equals_a_hand_written_keras_cell():
    model = kblocks.build(CELL, input_shape=(8, 8, 3))
    oracle = keras_cell((8, 8, 3))
    assert model.count_params() == oracle.count_params() == 448 + 2320 + 2320 + 272
    _copy_weights(model, oracle)
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(oracle(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text,shape,classes", [(UNET2, (16, 16, 3), 2), (CELL, (8, 8, 3), None)])
def test_named_graphs_round_trip_through_keras_files_with_safe_mode(text, shape, classes, tmp_path):
    import keras

    model = kblocks.build(text, input_shape=shape, classes=classes)
    x = np.random.default_rng(2).normal(size=(2, *shape)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize("text,shape", [(UNET2, (16, 16, 3)), (CELL, (8, 8, 3)),
                                        ("[CONV(8) - AS(e#) - CONV(8) - (SKIP + FROM(e#))]*2"
                                         " - (FROM(e_1) + SKIP)", (8, 8, 3)),
                                        ("AS(x) - CONV(4) - (SKIP | FROM(x) - ZERO(1))", (8, 8, 3))])
def test_canonical_text_keeps_the_names_and_reparses_to_the_same_graph(text, shape):
    g1 = kblocks.compile(text, input_shape=shape, classes=2)
    canon = g1.canonical_text()
    assert "AS(" in canon and "FROM(" in canon
    g2 = kblocks.compile(canon, classes=2)
    assert g2.program.nodes == g1.program.nodes
    assert _structure(g2) == _structure(g1)
    assert g2.canonical_text() == canon


def test_canonical_text_of_the_unet_example():
    assert kblocks.format_text(UNET2, input_shape=(16, 16, 3), classes=2) == (
        "INPUT(16, 16, 3) - CONV(64) - RELU - CONV(64) - RELU - AS(e1) - POOL(2) - CONV(128) - RELU"
        " - CONV(128) - RELU - AS(e2) - POOL(2) - CONV(256) - RELU - CONV(256) - RELU"
        " - CONVT(128, kernel=2, stride=2) - (SKIP | FROM(e2)) - CONV(128) - RELU - CONV(128) - RELU"
        " - CONVT(64, kernel=2, stride=2) - (SKIP | FROM(e1)) - CONV(64) - RELU - CONV(64) - RELU"
        " - CONV(2, kernel=1)")


def test_summary_shows_where_each_from_reads():
    s = kblocks.summary(UNET2, input_shape=(16, 16, 3), classes=2)
    rows = [r.keras for r in s.rows()]
    assert "concat_15: Concatenate <- 14,8 (from e2)" in rows
    assert "concat_21: Concatenate <- 20,3 (from e1)" in rows
    cell = [r.keras for r in kblocks.summary(CELL, input_shape=(8, 8, 3)).rows()]
    assert "pool_2: MaxPooling2D <- 0 (from n0)" in cell
    assert "conv_3: Conv2D <- 1 (from n1)" in cell
    assert "add_7: Add <- 0 (from n0),5,6" in cell


# --- the graph and its analysis ------------------------------------------------------------------
def test_from_continues_the_path_and_as_first_names_the_input():
    g = kblocks.compile("AS(x) - CONV(4) - AS(c) - (FROM(x) + SKIP(proj=false) - CONV(3, 1))",
                        input_shape=(6, 6, 3))
    add = g.nodes[-1]
    assert add.token == "ADD" and add.inputs[0] == -1 and add.froms == ("x", "")
    g = kblocks.compile("CONV(4) - AS(a) - CONV(4) - AS(b) - FROM(a) - (SKIP | FROM(b))",
                        input_shape=(6, 6, 3))
    assert g.nodes[-1].inputs == (0, 1) and g.nodes[-1].shape == (6, 6, 8)


def test_receptive_field_of_a_merge_is_the_largest_of_its_inputs():
    a = kblocks.analyse("AS(x) - CONV(4, 7) - AS(big) - FROM(x) - CONV(4, 3) - (SKIP + FROM(big))",
                        input_shape=(16, 16, 3))
    assert [s.rf for s in a.layers] == [(7, 7), (3, 3), (7, 7)]


def test_analysis_counts_every_branch_of_the_dag():
    a = kblocks.analyse(CELL, input_shape=(8, 8, 3))
    assert a.params == 5360
    assert a.macs == 64 * (27 * 16 + 144 * 16 + 144 * 16 + 16 * 16)
    assert a.activation_elements == 8 * 8 * 3 + 8 * 8 * 16 * 8  # input + 8 outputs (ZERO too)


def test_layers_that_feed_only_a_zero_are_built_and_counted():
    text = "AS(x) - CONV(4) - (FROM(x) - CONV(4) - ZERO + SKIP)"
    a = kblocks.analyse(text, input_shape=(6, 6, 3))
    assert a.params == 2 * (27 * 4 + 4)
    model = kblocks.build(text, input_shape=(6, 6, 3))
    assert model.count_params() == a.params


# --- # under repetition, names as block parameters, block-local names ---------------------------
BLOCKS = {
    "down": {"params": {"f": None, "out": None}, "body": "[CONV($f)-RELU]*2 - AS($out) - POOL"},
    "local": {"params": {"f": None}, "body": "[CONV($f)-RELU]*2 - AS(e#) - POOL"},
    "up": {"params": {"f": None, "skip": None},
           "body": "CONVT($f, 2, stride=2) - (SKIP | FROM($skip)) - [CONV($f)-RELU]*2"},
    "cell": {"params": {"f": 8}, "body": "AS(n0) - CONV($f) - AS(n1) - (FROM(n0) - CONV($f, 1) + FROM(n1))"},
    "peek": {"params": {}, "body": "FROM(e1) - CONV(4)"},
}


def test_hash_names_under_a_repetition_and_their_full_spelling_after_it():
    g = kblocks.compile("[CONV(8) - AS(e#) - POOL]*2 - CONV(8) - UPSAMPLE - (SKIP | FROM(e_2))",
                        input_shape=(8, 8, 3))
    assert g.nodes[-1].froms == ("", "e_2") and g.nodes[-1].shape == (4, 4, 16)
    nested = kblocks.format_text("[[CONV(4) - AS(c#)]*2 - (SKIP + FROM(c#_1))]*2",
                                 input_shape=(8, 8, 3))
    assert "AS(c_1_1)" in nested and "AS(c_2_2)" in nested and "FROM(c_2_1)" in nested
    err = _error("[[CONV(4) - AS(c#)]*2 - (SKIP + FROM(c#))]*2")  # c_1 is not c_1_1
    assert "no tensor is named 'c_1'" in str(err) and "c_1_1" in err.hint


def test_hash_under_repetition_reads_the_same_index():
    g = kblocks.compile("[CONV(8) - AS(e#) - CONV(8) - (SKIP + FROM(e#))]*3", input_shape=(8, 8, 3))
    adds = [n for n in g.nodes if n.token == "ADD"]
    assert [n.froms for n in adds] == [("", "e_1"), ("", "e_2"), ("", "e_3")]


def test_names_pass_into_blocks_as_parameters():
    text = "[@down(8, out=e#)]*2 - CONV(32) - @up(16, skip=e_2) - @up(8, skip=e_1) - CONV(2, 1)"
    g = kblocks.compile(text, input_shape=(16, 16, 3), blocks=BLOCKS)
    concats = [n for n in g.nodes if n.token == "CONCAT"]
    assert [n.froms for n in concats] == [("", "e_2"), ("", "e_1")]
    assert [n.shape for n in concats] == [(8, 8, 24), (16, 16, 16)]
    canon = g.canonical_text()
    assert _structure(kblocks.compile(canon)) == _structure(g)


def test_names_made_in_a_block_call_are_local_to_it():
    g = kblocks.compile("CONV(8) - @cell - @cell(8) - AS(n0) - CONV(4)", input_shape=(8, 8, 3),
                        blocks=BLOCKS)
    canon = g.canonical_text()
    for name in ("AS(n0_cell1)", "AS(n1_cell1)", "AS(n0_cell2)", "AS(n0) - CONV(4)"):
        assert name in canon
    g2 = kblocks.compile(canon)
    assert _structure(g2) == _structure(g) and g2.program.nodes == g.program.nodes


def test_a_block_reads_its_callers_names_only_through_parameters():
    err = _error("CONV(4) - AS(e1) - @peek", blocks=BLOCKS)
    assert "FROM(e1): no tensor is named 'e1'" in str(err)
    assert "only through parameters" in str(err)
    err = _error("[@local(8)]*2 - CONV(16) - @up(8, skip=e_2)", input_shape=(16, 16, 3),
                 blocks=BLOCKS)
    assert "no tensor is named 'e_2'" in str(err) and "local to that call" in str(err)
    assert "@block(out=e_2)" in str(err)


# --- the errors of section 4b, each naming its places and the fix -------------------------------
def test_from_before_its_as_names_both_places():
    text = "CONV(8) - FROM(a) - CONV(8) - AS(a)"
    err = _error(text)
    assert isinstance(err, ArchitectureError)
    assert (err.span.line, err.span.column) == (1, _col(text, "FROM"))
    assert f"AS(a) comes later, at line 1, column {_col(text, 'AS')}" in str(err)
    assert "move AS(a) before FROM(a)" in str(err)


def test_a_name_defined_twice_names_both_places():
    text = "CONV(8) - AS(a) - CONV(8) - AS(a)"
    err = _error(text)
    assert (err.span.line, err.span.column) == (1, _col(text, "AS", 1))
    assert f"defined twice: AS(a) here and at line 1, column {_col(text, 'AS')}" in str(err)
    assert "AS(name#)" in str(err)


def test_a_name_defined_twice_under_a_repetition_without_hash():
    err = _error("[CONV(8) - AS(e)]*2")
    assert "defined twice" in str(err) and "AS(name#)" in str(err)


def test_an_unused_tensor_is_an_error_naming_the_layer_and_the_jump():
    text = "CONV(8) - AS(a) - CONV(4) - FROM(a) - CONV(2)"
    err = _error(text)
    assert (err.span.line, err.span.column) == (1, _col(text, "CONV(4)"))
    assert "the output of CONV(4) is never used" in str(err)
    assert f"FROM(a) at line 1, column {_col(text, 'FROM')}" in str(err)
    assert "AS(name)" in err.hint and "remove it" in err.hint


def test_a_branch_input_that_no_branch_reads_is_unused():
    err = _error("CONV(8) - AS(a) - CONV(8) - AS(b) - CONV(4) - (FROM(a) | FROM(b))")
    assert "the output of CONV(4) is never used" in str(err)


def test_outputs_and_aux_heads_may_be_left_unread():
    g = kblocks.compile("CONV(8) - AS(a) - AUX[GAP - FC(2)] - CONV(4) - (SKIP | FROM(a))",
                        input_shape=(8, 8, 3))
    assert len(g.outputs) == 2


def test_an_unknown_name_suggests_the_close_ones():
    err = _error("CONV(8) - AS(enc1) - CONV(8) - (SKIP | FROM(enc2))")
    assert "no tensor is named 'enc2'" in str(err) and "did you mean enc1?" in str(err)


def test_hash_outside_any_repetition_is_an_error():
    text = "CONV(8) - AS(e#)"
    err = _error(text)
    assert (err.span.line, err.span.column) == (1, _col(text, "AS"))
    assert "'#'" in str(err) and "in none" in str(err) and "e_1" in err.hint


@pytest.mark.parametrize("text", ["AS(1)", "AS", "FROM(a, b)", "AS(name=a)"])
def test_as_and_from_take_one_identifier(text):
    err = _error(text)
    assert "tensor name" in str(err)


def test_a_mismatched_concatenation_of_a_named_tensor_names_both_places_and_the_fix():
    text = "CONV(8) - AS(a) - POOL - (SKIP | FROM(a))"
    err = _error(text)
    message = str(err)
    assert "must agree except in channels" in message
    assert f"FROM(a) at line 1, column {_col(text, 'FROM')}" in message
    assert f"named by AS(a) at line 1, column {_col(text, 'AS')}" in message
    assert "CROP" in err.hint and "projection" in err.hint


def test_a_mismatched_add_of_a_named_tensor_is_not_projected():
    text = "CONV(8) - AS(a) - CONV(4) - (CONV(4) + FROM(a))"
    err = _error(text)
    assert "add" in str(err) and "8x8x4, 8x8x8 (FROM(a)" in str(err)
    assert "a FROM is not" in err.hint


def test_skip_is_still_projected_next_to_a_from():
    g = kblocks.compile("CONV(8) - AS(a) - CONV(4) - (SKIP + FROM(a))", input_shape=(8, 8, 3))
    assert any("projection shortcut" in n.note for n in g.nodes)


def test_multiply_broadcasts_a_pooled_gate_read_by_from():
    g = kblocks.compile("CONV(8) - AS(x) - GAP - FC(8) - SIGMOID - AS(gate) - (FROM(x) & FROM(gate))",
                        input_shape=(8, 8, 3))
    assert g.nodes[-1].shape == (8, 8, 8) and any(n.token == "RESHAPE" for n in g.nodes)


# --- ZERO, CROP, HIGHWAY ---------------------------------------------------------------------------
def test_zero_is_zeros_strided_like_a_same_padded_op():
    for stride, side in ((1, 7), (2, 4), (3, 3)):
        g = kblocks.compile(f"ZERO({stride})", input_shape=(7, 7, 5))
        assert g.nodes[0].shape == (side, side, 5)
    model = kblocks.build("CONV(4) - ZERO(2)", input_shape=(7, 7, 3))
    y = np.asarray(model(np.ones((2, 7, 7, 3), "float32")))
    assert y.shape == (2, 4, 4, 4) and not y.any()
    assert kblocks.analyse("ZERO(2)", input_shape=(7, 7, 3)).macs == 0
    assert "vector" in str(_error("FLATTEN - ZERO(2)"))


def test_crop_centre_crops_like_numpy():
    model = kblocks.build("CROP(3, 2)", input_shape=(6, 5, 2))
    x = np.arange(2 * 6 * 5 * 2, dtype="float32").reshape(2, 6, 5, 2)
    np.testing.assert_array_equal(np.asarray(model(x)), x[:, 1:4, 1:3, :])
    assert kblocks.compile("CROP(4)", input_shape=(6, 6, 1)).nodes[0].shape == (4, 4, 1)
    assert "input is smaller" in str(_error("CROP(9, 2)"))
    assert "write CROP(h, w)" in str(_error("CONV(4) - CROP"))


def test_a_bare_crop_ending_a_merge_branch_crops_to_the_smallest_input():
    text = "CONV(8, padding=valid) - AS(a) - CONV(8, padding=valid) - (SKIP | FROM(a) - CROP)"
    g = kblocks.compile(text, input_shape=(8, 8, 3))
    crop = next(n for n in g.nodes if n.token == "CROP")
    assert crop.shape == (4, 4, 8) and crop.get("h") == 4 and g.nodes[-1].shape == (4, 4, 16)
    assert kblocks.format_text(text, input_shape=(8, 8, 3)).endswith("(SKIP | FROM(a) - CROP)")
    model = kblocks.build(text, input_shape=(8, 8, 3))
    assert model.output.shape[1:] == (4, 4, 16)


def keras_highway(n, gate_bias, kernel=None):
    """A highway layer written by hand from Srivastava et al. 2015, eq. 3, with Keras layers."""
    import keras

    L = keras.layers
    inputs = keras.Input((n,) if kernel is None else (6, 6, n))
    layer = (lambda **kw: L.Dense(n, **kw)) if kernel is None else \
        (lambda **kw: L.Conv2D(n, kernel, padding="same", **kw))
    h = layer(activation="relu", name="h")(inputs)
    t = layer(activation="sigmoid", bias_initializer=keras.initializers.Constant(gate_bias),
              name="t")(inputs)
    return keras.Model(inputs, h * t + inputs * (1.0 - t))


@pytest.mark.parametrize("text,shape,kernel", [("HIGHWAY(6, gate_bias=-2)", (6,), None),
                                               ("HIGHWAY(4, gate_bias=-2, kernel=3)", (6, 6, 4), 3)])
def test_highway_equals_a_hand_written_keras_highway(text, shape, kernel):
    model = kblocks.build(text, input_shape=shape)
    oracle = keras_highway(shape[-1], -2.0, kernel)
    assert model.count_params() == oracle.count_params() == \
        kblocks.analyse(text, input_shape=shape).params
    layer = model.layers[-1]
    np.testing.assert_array_equal(np.asarray(layer.bias_t), np.full(shape[-1], -2.0, "float32"))
    kh, bh, kt, bt = [np.asarray(w) for w in (layer.kernel_h, layer.bias_h, layer.kernel_t,
                                              layer.bias_t)]
    oracle.get_layer("h").set_weights([kh, bh])
    oracle.get_layer("t").set_weights([kt, bt])
    x = np.random.default_rng(3).normal(size=(2, *shape)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(oracle(x)), rtol=1e-5, atol=1e-5)


def test_highway_units_must_equal_the_input_and_a_map_needs_the_conv_form():
    assert "must equal the input's size 5" in str(_error("HIGHWAY(4)", input_shape=(5,)))
    assert "HIGHWAY(3, kernel=3)" in str(_error("HIGHWAY"))
    assert kblocks.compile("HIGHWAY", input_shape=(5,)).nodes[0].shape == (5,)
    assert kblocks.analyse("HIGHWAY", input_shape=(5,)).params == 2 * (25 + 5)


def test_highway_network_round_trips_with_safe_mode(tmp_path):
    import keras

    model = kblocks.build("FC(8) - [HIGHWAY(8) ]*3 - FC(2)", input_shape=(5,))
    x = np.random.default_rng(4).normal(size=(3, 5)).astype("float32")
    model.save(tmp_path / "h.keras")
    loaded = keras.saving.load_model(tmp_path / "h.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


# --- U-Net (Ronneberger et al. 2015) ---------------------------------------------------------------
def _conv(cin, cout, k):
    return k * k * cin * cout + cout


def unet_hand_count(classes):
    """Fig. 1 of the paper, counted by hand: two 3x3 convs per level, 2x2 up-convolutions halving
    the channels, the concatenation doubling them again, a 1x1 output convolution."""
    widths = [64, 128, 256, 512, 1024]
    total, cin = 0, 1
    for f in widths:
        total += _conv(cin, f, 3) + _conv(f, f, 3)
        cin = f
    for f in reversed(widths[:-1]):
        total += _conv(cin, f, 2) + _conv(2 * f, f, 3) + _conv(f, f, 3)
        cin = f
    return total + _conv(64, classes, 1)


def test_unet_parameters_equal_the_hand_count_and_its_output_is_388():
    assert unet_hand_count(2) == 31_030_658 and unet_hand_count(1) == 31_030_593
    a = kblocks.analyse("unet")
    assert a.params == 31_030_658
    assert a.graph.input_shape == (572, 572, 1)
    assert a.graph.nodes[a.graph.outputs[0]].shape == (388, 388, 2)
    assert kblocks.analyse("unet", classes=1).params == 31_030_593
    crops = [n.shape[:2] for n in a.graph.nodes if n.token == "CROP"]
    assert crops == [(56, 56), (104, 104), (200, 200), (392, 392)]  # the crops of Fig. 1


def test_unet_at_its_smallest_input():
    assert kblocks.compile("unet", input_shape=(188, 188, 1)).nodes[-1].shape == (4, 4, 2)
    with pytest.raises(ArchitectureError, match="smaller than the 3x3 kernel"):
        kblocks.compile("unet", input_shape=(172, 172, 1))

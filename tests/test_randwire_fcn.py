"""Issue 15, part 2: FCN-32s/16s/8s (Long et al. 2015), the MNIST highway network (Srivastava et
al. 2015), DenseNet's dense layer with named tensors, the WEIGHT token and the RandWire generator
(Xie et al. 2019, ``kblocks generate randwire``).

Oracles: hand-written Keras models with the same layers (FCN-8s, highway), the paper's Table 2 for
RandWire-WS small (5.6M parameters, 583M FLOPs), keras.applications' count for DenseNet-121.
Everything built here round-trips through ``.keras`` with ``safe_mode=True`` and canonical text.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

import kblocks
from kblocks.common.errors import KBlocksError
from kblocks.zoo import randwire as rw


def _copy_weights(src, dst):
    """Copy weights from each layer of ``src`` to the first unused layer of ``dst`` whose weights
    have the same shapes, in graph order (layers of one shape come in the same order in both)."""
    free = [layer for layer in dst.layers if layer.weights]
    for layer in [layer for layer in src.layers if layer.weights]:
        shapes = [tuple(w.shape) for w in layer.weights]
        match = next(y for y in free if [tuple(w.shape) for w in y.weights] == shapes)
        free.remove(match)
        match.set_weights(layer.get_weights())
    assert not free


def _round_trips(model, shape, tmp_path, seed=0):
    import keras

    x = np.random.default_rng(seed).uniform(0, 1, (2, *shape)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)),
                                  np.asarray(model(x, training=False)))
    assert loaded.count_params() == model.count_params()


def _canonical_round_trip(source, **kwargs):
    g1 = kblocks.compile(source, **kwargs)
    canon = g1.canonical_text()
    g2 = kblocks.compile(canon)
    assert [(n.token, n.params, n.inputs, n.shape) for n in g2.nodes] == \
        [(n.token, n.params, n.inputs, n.shape) for n in g1.nodes]
    assert g2.canonical_text() == canon
    return canon


# --- FCN (Long, Shelhamer and Darrell 2015) ---------------------------------------------------------
def keras_fcn(kind, shape, classes, fc=4096):
    """FCN-32s/16s/8s on VGG16 written layer by layer with Keras (Fig. 3 of the paper), the
    same-padded variant of the zoo files."""
    import keras

    L = keras.layers
    inputs = keras.Input(shape)
    x, pools = inputs, {}
    for i, (f, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for _ in range(n):
            x = L.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = L.MaxPooling2D(2)(x)
        pools[i] = x
    x = L.Dropout(0.5)(L.Conv2D(fc, 7, padding="same", activation="relu")(x))   # fc6
    x = L.Dropout(0.5)(L.Conv2D(fc, 1, activation="relu")(x))                    # fc7
    x = L.Conv2D(classes, 1)(x)                                                  # score_fr
    if kind == "fcn32s":
        return keras.Model(inputs, L.Conv2DTranspose(classes, 64, 32, padding="same",
                                                     use_bias=False)(x))
    x = L.Conv2DTranspose(classes, 4, 2, padding="same", use_bias=False)(x)     # upscore2
    x = L.Add()([x, L.Conv2D(classes, 1)(pools[4])])                            # + score_pool4
    if kind == "fcn16s":
        return keras.Model(inputs, L.Conv2DTranspose(classes, 32, 16, padding="same",
                                                     use_bias=False)(x))
    x = L.Conv2DTranspose(classes, 4, 2, padding="same", use_bias=False)(x)     # upscore_pool4
    x = L.Add()([x, L.Conv2D(classes, 1)(pools[3])])                            # + score_pool3
    return keras.Model(inputs, L.Conv2DTranspose(classes, 16, 8, padding="same", use_bias=False)(x))


def fcn8s_hand_count(classes=21, fc=4096):
    def conv(cin, cout, k, bias=True):
        return k * k * cin * cout + (cout if bias else 0)

    vgg, cin = 0, 3
    for f, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(n):
            vgg, cin = vgg + conv(cin, f, 3), f
    head = conv(512, fc, 7) + conv(fc, fc, 1) + conv(fc, classes, 1)
    skips = conv(512, classes, 1) + conv(256, classes, 1)
    ups = 2 * conv(classes, classes, 4, bias=False) + conv(classes, classes, 16, bias=False)
    return vgg + head + skips + ups


def test_fcn8s_counts_by_hand_as_the_papers_134m_and_is_per_pixel():
    assert kblocks.analyse("fcn8s").params == fcn8s_hand_count() == 134_489_759
    assert round(fcn8s_hand_count() / 1e6) == 134  # Long et al. 2015, Table 1: FCN-VGG16, 134M
    assert kblocks.compile("fcn8s").nodes[-1].shape == (224, 224, 21)


@pytest.mark.slow  # the oracle allocates its 134M weights
def test_fcn8s_counts_equal_a_hand_written_keras_fcn8s_and_the_papers_134m():
    oracle = keras_fcn("fcn8s", (224, 224, 3), 21)
    summary = kblocks.analyse("fcn8s")
    assert summary.params == oracle.count_params() == fcn8s_hand_count() == 134_489_759
    assert round(summary.params / 1e6) == 134  # Long et al. 2015, Table 1: FCN-VGG16, 134M
    graph = kblocks.compile("fcn8s")
    assert graph.nodes[-1].shape == tuple(oracle.output_shape[1:]) == (224, 224, 21)  # per-pixel


@pytest.mark.parametrize("kind", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("side", [64, 96])
def test_fcn_is_per_pixel_and_counts_as_keras(kind, side):
    shape = (side, side, 3)
    graph = kblocks.compile(kind, input_shape=shape, variables={"fc": 16})
    assert graph.nodes[-1].shape == (side, side, 21)
    oracle = keras_fcn(kind, shape, 21, fc=16)
    assert kblocks.analyse(kind, input_shape=shape, variables={"fc": 16}).params == \
        oracle.count_params()


def test_thin_fcn8s_predicts_as_the_hand_written_keras_one_and_round_trips(tmp_path):
    shape = (64, 64, 3)
    model = kblocks.build("fcn8s", input_shape=shape, variables={"fc": 16})
    oracle = keras_fcn("fcn8s", shape, 21, fc=16)
    assert model.output_shape == oracle.output_shape == (None, 64, 64, 21)
    _copy_weights(model, oracle)
    x = np.random.default_rng(1).uniform(0, 1, (2, *shape)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x, training=False)),
                               np.asarray(oracle(x, training=False)), rtol=1e-4, atol=1e-5)
    _round_trips(model, shape, tmp_path)
    canon = _canonical_round_trip("fcn8s", input_shape=shape, variables={"fc": 16})
    assert "AS(pool3)" in canon and "FROM(pool4)" in canon


def test_fcn_fuses_the_pool_scores_with_a_crop_when_the_sides_differ():
    # 112 is no multiple of 32: pool4 is 7x7 but the x2 scores of the 3x3 pool5 map are 6x6; the
    # bare CROP at the end of the pool4 branch crops its scores to 6x6 (output 16 * 6 = 96).
    graph = kblocks.compile("fcn16s", input_shape=(112, 112, 3), variables={"fc": 16})
    crops = [n for n in graph.nodes if n.token == "CROP"]
    assert [n.shape for n in crops] == [(6, 6, 21)]
    assert graph.nodes[-1].shape == (96, 96, 21)


# --- Highway network (Srivastava, Greff and Schmidhuber 2015) --------------------------------------
def keras_highway_mlp(depth=9, units=50, gate_bias=-2.0, classes=10):
    import keras

    L = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = L.Dense(units, activation="relu", name="plain")(L.Flatten()(inputs))
    for i in range(depth):
        h = L.Dense(units, activation="relu", name=f"h{i}")(x)
        t = L.Dense(units, activation="sigmoid", name=f"t{i}",
                    bias_initializer=keras.initializers.Constant(gate_bias))(x)
        x = h * t + x * (1.0 - t)
    return keras.Model(inputs, L.Dense(classes, activation="softmax", name="out")(x))


def test_highway_mlp_equals_a_hand_written_keras_highway_network(tmp_path):
    model = kblocks.build("highway_mlp")
    oracle = keras_highway_mlp()
    assert model.count_params() == oracle.count_params() == kblocks.analyse("highway_mlp").params \
        == 784 * 50 + 50 + 9 * 2 * (50 * 50 + 50) + 50 * 10 + 10
    highways = [layer for layer in model.layers if type(layer).__name__ == "Highway"]
    assert len(highways) == 9
    for layer in highways:  # the transform gate starts closed: b_T = -2
        np.testing.assert_array_equal(np.asarray(layer.bias_t), np.full(50, -2.0, "float32"))
    fcs = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    oracle.get_layer("plain").set_weights(fcs[0].get_weights())
    for i, layer in enumerate(highways):
        kh, bh, kt, bt = layer.get_weights()
        oracle.get_layer(f"h{i}").set_weights([kh, bh])
        oracle.get_layer(f"t{i}").set_weights([kt, bt])
    oracle.get_layer("out").set_weights(fcs[-1].get_weights())
    x = np.random.default_rng(2).uniform(0, 1, (3, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(oracle(x)), rtol=1e-5, atol=1e-6)
    _round_trips(model, (28, 28, 1), tmp_path)
    assert _canonical_round_trip("highway_mlp").count("HIGHWAY(50, gate_bias=-2.0)") == 9


def test_the_50_layer_highway_network_is_the_block_with_49():
    text = "FLATTEN - FC(50) - RELU - @highway_stack(49) - FC(10) - SOFTMAX"
    from kblocks import zoo

    arch = zoo.load("highway_mlp")
    params = kblocks.analyse(text, input_shape=(28, 28, 1), blocks=arch.blocks).params
    assert params == 39_250 + 49 * 5_100 + 510


# --- DenseNet: the dense layer with named tensors ------------------------------------------------------
NAMED_DENSE_LAYER = {"dense_layer": {
    "params": {"k": 32, "width": 128, "eps": 1.001e-5},
    "body": "AS(x) - BN(epsilon=$eps) - RELU - CONV($width, 1, use_bias=false)"
            " - BN(epsilon=$eps) - RELU - CONV($k, 3, use_bias=false) - (FROM(x) | SKIP)"}}


def test_densenet121_with_a_named_tensor_dense_layer_has_the_same_counts():
    """The builtin ``(SKIP | ...)`` is already the concatenation, so the zoo keeps it; spelled with
    AS/FROM the dense layer gives DenseNet-121 the same 8,062,504 parameters and the same shapes."""
    builtin = kblocks.compile("densenet121")
    named = kblocks.compile("densenet121", blocks=NAMED_DENSE_LAYER)
    assert kblocks.analyse(named).params == kblocks.analyse(builtin).params == 8_062_504
    assert [n.shape for n in named.nodes if n.token == "CONCAT"] == \
        [n.shape for n in builtin.nodes if n.token == "CONCAT"]


# --- the WEIGHT token --------------------------------------------------------------------------------------
def test_weight_is_sigmoid_of_one_learnable_scalar_or_a_fixed_factor(tmp_path):
    x = np.random.default_rng(3).normal(size=(2, 4)).astype("float32")
    learn = kblocks.build("WEIGHT(init=1.0)", input_shape=(4,))
    assert learn.count_params() == kblocks.analyse("WEIGHT", input_shape=(4,)).params == 1
    np.testing.assert_allclose(np.asarray(learn(x)), x / (1 + math.exp(-1.0)), rtol=1e-6)
    fixed = kblocks.build("WEIGHT(0.25)", input_shape=(4,))
    assert fixed.count_params() == 0
    np.testing.assert_allclose(np.asarray(fixed(x)), 0.25 * x, rtol=1e-6)
    with pytest.raises(KBlocksError, match="positive"):
        kblocks.compile("WEIGHT(-1.0)", input_shape=(4,))
    text = "AS(a) - (FROM(a) - CONV(4) - WEIGHT + FROM(a) - CONV(4) - WEIGHT) - WEIGHT(0.5)"
    model = kblocks.build(text, input_shape=(6, 6, 3))
    assert model.count_params() == kblocks.analyse(text, input_shape=(6, 6, 3)).params == \
        2 * (27 * 4 + 4) + 2
    _round_trips(model, (6, 6, 3), tmp_path)


# --- RandWire (Xie, Kirillov, Girshick and He 2019) --------------------------------------------------------
TINY = dict(nodes=6, channels=8, stages=1, input_size=32, classes=10)


@pytest.mark.parametrize("graph", rw.GRAPHS)
def test_the_same_seed_gives_the_same_text_and_another_seed_another(graph):
    kw = dict(TINY, nodes=12, m=2)
    assert rw.network_text(graph, seed=0, **kw) == rw.network_text(graph, seed=0, **kw)
    assert rw.network_text(graph, seed=0, **kw) != rw.network_text(graph, seed=1, **kw)


def test_a_ws_graph_has_the_nodes_asked_for_and_every_node_an_input():
    import networkx as nx

    g = rw.random_graph("ws", 32, k=4, p=0.75, seed=0)
    assert g.number_of_nodes() == 32 and g.number_of_edges() == 32 * 4 // 2  # WS rewires, keeps edges
    s = rw.stage("ws", 32, k=4, p=0.75, seed=0)
    dag = rw.stage_dag(s)
    assert nx.is_directed_acyclic_graph(dag)
    assert all(i < j for i, j in s.edges)
    assert all(dag.in_degree(j) >= 1 for j in range(32))
    assert all(nx.has_path(dag, "in", j) and nx.has_path(dag, j, "out") for j in range(32))


@pytest.mark.parametrize("graph", rw.GRAPHS)
def test_generated_text_compiles_with_one_node_per_graph_node(graph):
    s = rw.stage(graph, 10, k=4, p=None, m=2, seed=rw.stage_seeds(4, 1)[0])
    text = rw.network_text(graph, nodes=10, m=2, seed=4, channels=8, stages=1, input_size=32,
                           classes=10)
    g = kblocks.compile(text)
    assert len([n for n in g.nodes if n.token == "SEPCONV"]) == 10
    weights = [n for n in g.nodes if n.token == "WEIGHT"]
    multi = [j for j in range(10) if len(s.predecessors(j)) > 1]
    assert len([n for n in weights if dict(n.params)["value"] is None]) == \
        sum(len(s.predecessors(j)) for j in multi)
    assert g.nodes[-1].shape == (10,)


def test_randwire_text_builds_counts_as_the_analysis_and_round_trips(tmp_path):
    text = rw.network_text("ws", seed=0, **TINY)
    model = kblocks.build(text)
    assert model.count_params() == kblocks.analyse(text).params
    _round_trips(model, (32, 32, 3), tmp_path)
    canon = _canonical_round_trip(text)
    assert "AS(s1n0)" in canon and "WEIGHT" in canon


def test_small_regime_randwire_ws_has_the_papers_size():
    """Xie et al. 2019, Table 2: RandWire-WS (C = 78) small regime, 583M FLOPs and 5.6M params."""
    a = kblocks.analyse(rw.network_text("ws", nodes=32, k=4, p=0.75, seed=0))
    assert round(a.params / 1e6, 1) == 5.6
    assert 560e6 < a.macs < 600e6


def test_cli_generate_randwire_prints_the_library_text_and_writes_a_yaml_file(tmp_path):
    from kblocks.cli import main

    args = ["generate", "randwire", "--graph", "ws", "--nodes", "6", "--k", "4", "--p", "0.75",
            "--seed", "0", "--channels", "8", "--stages", "1", "--input-size", "32",
            "--classes", "10"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output == rw.network_text("ws", seed=0, **TINY)
    out = tmp_path / "rw.yaml"
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert kblocks.analyse(str(out)).params == kblocks.analyse(rw.network_text("ws", seed=0, **TINY)).params
    again = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    bad = CliRunner().invoke(main, ["generate", "randwire", "--graph", "ws", "--k", "3"])
    assert bad.exit_code == 2 and "even k" in bad.output and "Traceback" not in bad.output

"""The zoo (kblocks/zoo/architectures/*.yaml): every file is checked by the parametrised tests here, so a new file
is tested without writing a test.

* metadata: name, family, source (a paper with its year and table or figure), reference;
* the parameter count at the file's default input equals ``reference.params`` (and ``trainable``,
  and the paper's rounded ``millions``, where given);
* the network builds at a small input and round-trips through ``.keras``, loaded with
  ``safe_mode=True``, with identical predictions.

Hand-derived counts (written out below from the papers' tables, independently of kblocks) pin the
networks that have no Keras counterpart; VGG A-E must give the 133/133/134/138/144 M of Table 2 of
Simonyan and Zisserman. tests/test_keras_identity.py does the weight-level checks against
keras.applications.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import kblocks
from kblocks import zoo
from kblocks.common.errors import ConfigError, KBlocksError

ROOT = Path(__file__).resolve().parents[1]
NAMES = zoo.names()
# Deep or wide enough that building, saving and loading them takes seconds: still run in CI.
HEAVY = {"resnet50", "resnet101", "resnet152", "resnext50_32x4d", "se_resnet50", "densenet121",
         "wrn28_10", "unet",  # unet: valid padding fits no side under 188: it builds at 572
         "fcn32s", "fcn16s", "fcn8s",  # fc6 is a 7x7x512x4096 conv at any input: 540 MB .keras files
         "inception_v3", "inception_v4", "inception_resnet_v2",  # hundreds of layers (issue 14)
         "efficientnet_b0",
         # issue 14 (part B): 5-25 s each; their blocks and tokens round-trip in tests/test_zoo_v2.py
         "densenet161", "densenet169", "densenet201", "resnet50v2", "resnet101v2", "resnet152v2",
         "cifar_resnet44", "cifar_resnet56", "cifar_resnet110", "cifar_resnet164", "shufflenet_v2"}
SMALL_SIDES = (32, 64, 96, 128, 160)


def _param(name):
    return pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name


def small_input(name):
    """The smallest square input (of 32, 64, 96, ... up to the file's own) the network accepts."""
    arch = zoo.load(name)
    h, _, c = arch.input_shape
    for side in [s for s in SMALL_SIDES if s < h] + [h]:
        try:
            kblocks.compile(arch, input_shape=(side, side, c), classes=_classes(arch))
        except KBlocksError:
            continue
        return side, side, c
    raise AssertionError(f"{name} compiles at no input up to {h}")


def _classes(arch):
    return 10 if arch.classes else None


# --- the registry ----------------------------------------------------------------------------

def test_the_zoo_holds_the_networks_of_the_seeds():
    wanted = {"lenet5", "alexnet", "zfnet", "vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16",
              "vgg19", "nin", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101",
              "resnet152", "resnext50_32x4d", "wrn28_10", "densenet121", "allcnn_c", "mobilenet",
              "squeezenet1_1", "se_resnet50", "conv_autoencoder", "cs231n"}
    assert wanted <= set(NAMES)
    assert NAMES.index("resnet18") < NAMES.index("resnet50") < NAMES.index("resnet101")


def test_path_and_load_are_forgiving_about_case_and_dashes_and_name_the_closest():
    assert zoo.path("ResNet50") == zoo.path("resnet50") == ROOT / "kblocks/zoo/architectures/resnet50.yaml"
    assert zoo.path("SE-ResNet50").name == "se_resnet50.yaml"
    assert zoo.path("resnet-51") is None
    with pytest.raises(ConfigError, match="did you mean resnet50"):
        zoo.load("resnet5")


def test_the_zoo_files_are_package_data_next_to_the_zoo_module():
    """Installed or on PYTHONPATH (as on the GPU machine), the files are found inside kblocks.zoo."""
    assert zoo.path("resnet50") == Path(zoo.__file__).resolve().parent / "architectures" / "resnet50.yaml"
    assert len(NAMES) == len(list((Path(zoo.__file__).parent / "architectures").glob("*.yaml")))


@pytest.mark.parametrize("name", NAMES)
def test_file_metadata(name):
    arch = zoo.load(name)
    assert arch.name == name
    meta = arch.meta
    assert meta.get("family"), f"{name}: family: is missing"
    source = " ".join(str(meta.get("source", "")).split())
    assert re.search(r"\b(19|20)\d\d\b", source) or "Seeds:" in source, \
        f"{name}: source: should name the paper and its year (or the seed it comes from)"
    assert re.search(r"Table|Fig\.|section|listing|Summary", source), \
        f"{name}: source: should say which table or figure the network is read from"
    reference = meta.get("reference")
    assert isinstance(reference, dict) and isinstance(reference.get("params"), int), \
        f"{name}: reference: needs params: <exact Keras count at the default input>"
    assert arch.input_shape and len(arch.input_shape) == 3


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_the_reference(name):
    e = zoo.entry(name)
    ref = e.reference
    assert e.params == ref["params"]
    if "trainable" in ref:
        assert e.trainable == ref["trainable"]
    if "millions" in ref:
        digits = 0 if float(ref["millions"]).is_integer() else 1
        assert round(e.params / 1e6, digits) == ref["millions"]
    assert e.macs > 0


@pytest.mark.parametrize("name", [_param(n) for n in NAMES])
def test_builds_small_and_round_trips_through_keras_file(name, tmp_path):
    import keras

    arch = zoo.load(name)
    shape = small_input(name)
    model = kblocks.build(name, input_shape=shape, classes=_classes(arch))
    assert model.name == name
    x = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype("float32")
    before = model(x, training=False)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = loaded(x, training=False)
    if isinstance(before, dict):
        assert set(before) == set(after) == {"output", "aux1", "aux2"}
        pairs = [(before[k], after[k]) for k in before]
    else:
        pairs = [(before, after)]
    for b, a in pairs:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert loaded.count_params() == model.count_params()


# --- hand-derived counts ---------------------------------------------------------------------

def conv(cin, cout, k, bias=True, groups=1):
    return k * k * (cin // groups) * cout + (cout if bias else 0)


def fc(cin, cout):
    return cin * cout + cout


def bn(c, trainable_only=False):
    return 2 * c if trainable_only else 4 * c  # gamma, beta (+ moving mean, variance)


def lenet5():
    return conv(1, 6, 5) + conv(6, 16, 5) + conv(16, 120, 5) + fc(120, 84) + fc(84, 10)


def alexnet():  # one stream; pool3 leaves 6x6x256
    return (conv(3, 96, 11) + conv(96, 256, 5) + conv(256, 384, 3) + conv(384, 384, 3)
            + conv(384, 256, 3) + fc(6 * 6 * 256, 4096) + fc(4096, 4096) + fc(4096, 1000))


def zfnet():  # conv3-5 of 512, 1024, 512 filters; pool5 leaves 6x6x512
    return (conv(3, 96, 7) + conv(96, 256, 5) + conv(256, 512, 3) + conv(512, 1024, 3)
            + conv(1024, 512, 3) + fc(6 * 6 * 512, 4096) + fc(4096, 4096) + fc(4096, 1000))


def nin():  # the seeds' CIFAR-10 code: 192-160-96, 192-192-192, 192-192-10
    return (conv(3, 192, 5) + conv(192, 160, 1) + conv(160, 96, 1)
            + conv(96, 192, 5) + conv(192, 192, 1) + conv(192, 192, 1)
            + conv(192, 192, 3) + conv(192, 192, 1) + conv(192, 10, 1))


def allcnn_c():
    return (conv(3, 96, 3) + 2 * conv(96, 96, 3) + conv(96, 192, 3) + 2 * conv(192, 192, 3)
            + conv(192, 192, 3) + conv(192, 192, 1) + conv(192, 10, 1))


GOOGLENET_TABLE_1 = [  # input channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
    (192, 64, 96, 128, 16, 32, 32),  # 3a
    (256, 128, 128, 192, 32, 96, 64),  # 3b
    (480, 192, 96, 208, 16, 48, 64),  # 4a
    (512, 160, 112, 224, 24, 64, 64),  # 4b
    (512, 128, 128, 256, 24, 64, 64),  # 4c
    (512, 112, 144, 288, 32, 64, 64),  # 4d
    (528, 256, 160, 320, 32, 128, 128),  # 4e
    (832, 256, 160, 320, 32, 128, 128),  # 5a
    (832, 384, 192, 384, 48, 128, 128),  # 5b
]


def googlenet():
    def inception(cin, c1, c3r, c3, c5r, c5, pp):
        return (conv(cin, c1, 1) + conv(cin, c3r, 1) + conv(c3r, c3, 3) + conv(cin, c5r, 1)
                + conv(c5r, c5, 5) + conv(cin, pp, 1))

    def aux(cin):  # 5x5/3 average pool of a 14x14 map leaves 4x4
        return conv(cin, 128, 1) + fc(4 * 4 * 128, 1024) + fc(1024, 1000)

    stem = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    body = sum(inception(*row) for row in GOOGLENET_TABLE_1)
    return stem + body + fc(1024, 1000) + aux(512) + aux(528)


def squeezenet1_1():
    def fire(cin, s, e1, e3):
        return conv(cin, s, 1) + conv(s, e1, 1) + conv(s, e3, 3)

    fires = [(64, 16, 64, 64), (128, 16, 64, 64), (128, 32, 128, 128), (256, 32, 128, 128),
             (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), (512, 64, 256, 256)]
    return conv(3, 64, 3) + sum(fire(*f) for f in fires) + conv(512, 1000, 1)


def wrn28_10(trainable_only=False):
    def norm(c):
        return bn(c, trainable_only)

    total = conv(3, 16, 3, bias=False)
    cin = 16
    for width in (160, 320, 640):  # k = 10; N = 4 blocks per group
        total += norm(cin) + conv(cin, width, 1, False) + conv(cin, width, 3, False) \
            + norm(width) + conv(width, width, 3, False)
        total += 3 * (2 * norm(width) + 2 * conv(width, width, 3, False))
        cin = width
    return total + norm(640) + fc(640, 10)


def conv_autoencoder():
    return (conv(1, 8, 3) + conv(8, 4, 3) + fc(14 * 14 * 4, 16) + fc(16, 784)
            + conv(1, 4, 3) + conv(4, 1, 3))  # a transposed conv has as many weights


def cs231n(N=2, M=3, K=2, f=32, units=256, side=32):
    total, cin = 0, 3
    for _ in range(M):
        for _ in range(N):
            total += conv(cin, f, 3)
            cin = f
        side //= 2
    feat = side * side * cin
    for _ in range(K):
        total += fc(feat, units)
        feat = units
    return total + fc(feat, 10)


def inception_v4(trainable_only=False):
    """Szegedy et al. 2017, Figs. 3-8: every convolution is bias-free, then BN (gamma, beta)."""
    def cbr(cin, cout, kh, kw=None):
        return kh * (kw or kh) * cin * cout + bn(cout, trainable_only)

    stem = (cbr(3, 32, 3) + cbr(32, 32, 3) + cbr(32, 64, 3) + cbr(64, 96, 3)  # Fig. 3 to 73x73x160
            + cbr(160, 64, 1) + cbr(64, 96, 3)
            + cbr(160, 64, 1) + cbr(64, 64, 1, 7) + cbr(64, 64, 7, 1) + cbr(64, 96, 3)
            + cbr(192, 192, 3))  # 35x35x384
    a = (cbr(384, 96, 1) + cbr(384, 64, 1) + cbr(64, 96, 3) + cbr(384, 64, 1) + cbr(64, 96, 3)
         + cbr(96, 96, 3) + cbr(384, 96, 1))  # Fig. 4
    red_a = cbr(384, 384, 3) + cbr(384, 192, 1) + cbr(192, 224, 3) + cbr(224, 256, 3)  # k, l, m, n
    b = (cbr(1024, 384, 1) + cbr(1024, 192, 1) + cbr(192, 224, 1, 7) + cbr(224, 256, 7, 1)
         + cbr(1024, 192, 1) + cbr(192, 192, 7, 1) + cbr(192, 224, 1, 7) + cbr(224, 224, 7, 1)
         + cbr(224, 256, 1, 7) + cbr(1024, 128, 1))  # Fig. 5
    red_b = (cbr(1024, 192, 1) + cbr(192, 192, 3) + cbr(1024, 256, 1) + cbr(256, 256, 1, 7)
             + cbr(256, 320, 7, 1) + cbr(320, 320, 3))  # Fig. 8
    c = (cbr(1536, 256, 1) + cbr(1536, 384, 1) + 2 * cbr(384, 256, 1, 3) + cbr(1536, 384, 1)
         + cbr(384, 448, 3, 1) + cbr(448, 512, 1, 3) + 2 * cbr(512, 256, 1, 3)
         + cbr(1536, 256, 1))  # Fig. 6
    return stem + 4 * a + red_a + 7 * b + red_b + 3 * c + fc(1536, 1000)


HAND = {"lenet5": lenet5, "alexnet": alexnet, "zfnet": zfnet, "nin": nin, "allcnn_c": allcnn_c,
        "googlenet": googlenet, "squeezenet1_1": squeezenet1_1, "wrn28_10": wrn28_10,
        "conv_autoencoder": conv_autoencoder, "cs231n": cs231n, "inception_v4": inception_v4}


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_derived_parameter_counts(name):
    assert kblocks.summary(name).params == HAND[name]() == zoo.entry(name).reference["params"]


def test_inception_v4_trainable_count_is_timms():
    """timm's inception_v4 (the TF-slim port): 42,679,816 parameters, all trainable in PyTorch;
    the grids of Fig. 3 (73x73x160, 71x71x192, 35x35x384) and Fig. 9 (17x17x1024, 8x8x1536)."""
    summary = kblocks.summary("inception_v4")
    assert summary.trainable_params == inception_v4(True) == 42_679_816
    merged = {r.shape for r in summary.rows() if r.dsl == "(CONCAT)"}
    assert {"73x73x160", "71x71x192", "35x35x384", "17x17x1024", "8x8x1536"} <= merged


def test_wide_resnet_trainable_count_is_the_authors():
    assert kblocks.summary("wrn28_10").trainable_params == wrn28_10(True) == 36_479_194


def test_googlenet_without_aux_heads_is_near_the_papers_7_million():
    main_path = googlenet() - (conv(512, 128, 1) + fc(2048, 1024) + fc(1024, 1000)) \
        - (conv(528, 128, 1) + fc(2048, 1024) + fc(1024, 1000))
    assert 6.9e6 < main_path < 7.1e6


@pytest.mark.parametrize("name,millions", [("vgg11", 133), ("vgg11_lrn", 133), ("vgg13", 133),
                                           ("vgg16_c", 134), ("vgg16", 138), ("vgg19", 144)])
def test_vgg_configurations_match_table_2(name, millions):
    assert round(kblocks.summary(name).params / 1e6) == millions


def test_cs231n_pattern_counts_are_variables():
    assert kblocks.summary("cs231n", N=1, M=2, K=0).params == cs231n(N=1, M=2, K=0)
    assert kblocks.summary("cs231n", N=3, M=1, K=1, f=16, units=64).params == \
        cs231n(N=3, M=1, K=1, f=16, units=64)


# --- multi-output GoogLeNet ------------------------------------------------------------------

def test_googlenet_has_named_aux_outputs_and_paper_loss_weights():
    """The compiled loss is output + 0.3 aux1 + 0.3 aux2 (computed eagerly: no fit, no tracing)."""
    import keras

    model = kblocks.build("googlenet", input_shape=(96, 96, 3), classes=10)
    assert zoo.output_names(model) == ["output", "aux1", "aux2"]
    weights = zoo.loss_weights(model)
    assert weights == {"output": 1.0, "aux1": 0.3, "aux2": 0.3}
    assert zoo.loss_weights(model, aux=0.5)["aux2"] == 0.5
    model.compile("sgd", loss={k: "sparse_categorical_crossentropy" for k in weights},
                  loss_weights=weights)
    x = np.random.default_rng(0).uniform(0, 1, (4, 96, 96, 3)).astype("float32")
    y = np.array([0, 1, 2, 3])
    pred = model(x, training=False)
    total = float(model.compute_loss(x, {k: y for k in weights}, pred, training=False))
    ce = keras.losses.SparseCategoricalCrossentropy()
    parts = {k: float(ce(y, pred[k])) for k in weights}
    assert total == pytest.approx(parts["output"] + 0.3 * (parts["aux1"] + parts["aux2"]),
                                  rel=1e-5)


def test_loss_weights_of_a_single_output_model_is_none():
    model = kblocks.build("lenet5")
    assert zoo.output_names(model) == ["output"]
    assert zoo.loss_weights(model) is None
    with pytest.raises(ValueError, match="aux"):
        zoo.loss_weights(model, aux=-1)


# --- command line and docs -------------------------------------------------------------------

def _cli(*args):
    from kblocks.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_zoo_table_lists_every_network_with_params_and_macs():
    result = _cli("zoo")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "family", "input", "params", "MACs", "source"]
    for name in NAMES:
        row = next(line for line in lines if line.startswith(name + " "))
        assert f"{zoo.entry(name).params:,}" in row
    assert "25,636,712" in next(line for line in lines if line.startswith("resnet50 "))


def test_cli_zoo_shows_one_network_and_json():
    result = _cli("zoo", "googlenet")
    assert result.exit_code == 0
    assert "3 outputs" in result.output and "@inception(64, 96, 128, 16, 32, 32)" in result.output
    data = json.loads(_cli("zoo", "resnet50", "--json").output)
    assert data[0]["params"] == 25_636_712 and data[0]["family"] == "resnet"


def test_cli_zoo_unknown_name_is_a_plain_error():
    result = CliRunner().invoke(__import__("kblocks.cli", fromlist=["main"]).main,
                                ["zoo", "resnet5"])
    assert result.exit_code == 2
    assert "did you mean resnet50" in result.output
    assert "Traceback" not in result.output


def test_cli_summary_of_a_zoo_name():
    result = _cli("summary", "resnet50")
    assert result.exit_code == 0
    assert "Total params: 25,636,712" in result.output


def test_docs_zoo_md_is_generated_from_the_files():
    spec = importlib.util.spec_from_file_location("make_zoo_table", ROOT / "docs" / "make_zoo_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8") == module.render(), \
        "docs/zoo.md is out of date: run python docs/make_zoo_table.py"

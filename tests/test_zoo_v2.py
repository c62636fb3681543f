"""Zoo families of issue 14 (part B): the CIFAR ResNets and ResNet-164, ShuffleNet v2 with its
CHANNEL_SHUFFLE and SPLIT tokens, DenseNet-161.

The counts are derived here by hand from the papers' descriptions (no kblocks code), and compared
with the layer graph (no Keras model): He et al. 2016 section 4.2 and Table 6 for the 6n+2 CIFAR
ResNets (0.27 / 0.46 / 0.66 / 0.85 / 1.7 M), "Identity Mappings" Table 3 for ResNet-164 (1.7 M),
Ma et al. 2018 Table 5 for ShuffleNet v2 1x (146 M FLOPs; torchvision's count 2,278,604) and
Huang et al. 2017 Table 1 for DenseNet-161 (torchvision's 28,681,000). The new layers are checked
against numpy definitions, the option-A shortcut against its definition (subsample by 2, pad the
channels with zeros), and the new blocks train one step together. tests/test_zoo.py round-trips
every file; tests/test_keras_identity_v2b.py compares DenseNet169/201 and ResNet V2 with Keras.
"""
from __future__ import annotations

import numpy as np
import pytest

import kblocks
from kblocks import zoo
from kblocks.common.errors import KBlocksError


def conv(cin, cout, k=3):
    return k * k * cin * cout  # every convolution of these files has no bias


def bn(c):
    return 2 * c  # gamma and beta (Keras also keeps a moving mean and variance: 2c more)


def fc(cin, cout):
    return cin * cout + cout


# --- the CIFAR ResNets (He et al. 2016, section 4.2) ---------------------------------------------

TABLE_6 = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}  # depth -> M parameters


def cifar_resnet(n):
    """Trainable parameters of the 6n+2 network with option-A (parameter-free) shortcuts: a 3x3
    conv of 16, three stages of n blocks of two 3x3 convs (16, 32, 64 filters), GAP, FC(10)."""
    total, cin = conv(3, 16) + bn(16), 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv(cin, width) + bn(width) + conv(width, width) + bn(width)
            cin = width
    return total + fc(64, 10)


@pytest.mark.parametrize("depth", list(TABLE_6))
def test_cifar_resnet_counts_are_6n_plus_2_with_option_a_and_table_6(depth):
    n = (depth - 2) // 6
    e = zoo.entry(f"cifar_resnet{depth}")
    assert e.trainable == cifar_resnet(n) == 97_216 * n - 21_926  # the closed form in the files
    assert e.params - e.trainable == 32 + 448 * n  # the BN moving means and variances
    digits = 1 if depth == 110 else 2
    assert round(e.trainable / 1e6, digits) == TABLE_6[depth]
    # 6n+2 weighted layers: the shortcuts add none (option A).
    nodes = kblocks.compile(f"cifar_resnet{depth}").nodes
    assert len([x for x in nodes if x.token in ("CONV", "FC")]) == 6 * n + 2 == depth
    assert len([x for x in nodes if x.token == "ZERO"]) == 2


def _set_identity_bn_and_zero_convs(model):
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
        elif kind == "BatchNormalization":
            c = layer.get_weights()[0].shape
            layer.set_weights([np.ones(c), np.zeros(c), np.zeros(c), np.ones(c)])


@pytest.mark.parametrize("side", [6, 7])
def test_option_a_shortcut_is_subsampling_with_zero_channels(side):
    """With the residual branch silenced, the block computes relu(shortcut): the input taken at
    every second row and column, its channels followed by as many zeros (He et al. section 4.1 (A))."""
    model = kblocks.build("@cifar_basic(8, stride=2, down=1)", input_shape=(side, side, 4))
    assert model.count_params() == conv(4, 8) + conv(8, 8) + 2 * 4 * 8
    _set_identity_bn_and_zero_convs(model)
    x = np.random.default_rng(0).normal(0, 1, (2, side, side, 4)).astype("float32")
    want = np.maximum(np.concatenate([x[:, ::2, ::2], np.zeros_like(x[:, ::2, ::2])], -1), 0)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), want, atol=1e-6)


def resnet164(n=18):
    """Pre-activation bottleneck network of "Identity Mappings" section 4: a 3x3 conv of 16, three
    stages of n units 1x1 (f) - 3x3 (f) - 1x1 (4f), f = 16, 32, 64, each conv after BN - ReLU; a
    1x1 projection shortcut in the first unit of a stage; final BN - ReLU, GAP, FC(10)."""
    total, cin = conv(3, 16), 16
    for f in (16, 32, 64):
        out = 4 * f
        for i in range(n):
            total += bn(cin) + conv(cin, f, 1) + bn(f) + conv(f, f) + bn(f) + conv(f, out, 1)
            total += conv(cin, out, 1) if i == 0 else 0
            cin = out
    return total + bn(256) + fc(256, 10)


def test_resnet164_count_is_table_3s():
    e = zoo.entry("cifar_resnet164")
    assert e.trainable == resnet164() == 1_703_258
    assert round(e.trainable / 1e6, 1) == 1.7  # Table 3 of He et al. 2016b
    nodes = kblocks.compile("cifar_resnet164").nodes
    weighted = [x for x in nodes if x.token in ("CONV", "FC")]
    assert len(weighted) == 9 * 18 + 2 + 3  # 164 layers and the three projection shortcuts
    assert [x.shape for x in nodes if x.token == "ADD"][::18] == [(32, 32, 64), (16, 16, 128),
                                                                  (8, 8, 256)]


# --- ShuffleNet v2 (Ma et al. 2018) --------------------------------------------------------------

def shuffle_oracle(x, groups):
    """Zhang et al. 2018 section 3.1: reshape the channels to (groups, n), transpose, flatten: the
    output channel i * groups + g is the input channel g * n + i."""
    c = x.shape[-1]
    n = c // groups
    out = np.empty_like(x)
    for g in range(groups):
        for i in range(n):
            out[..., i * groups + g] = x[..., g * n + i]
    return out


@pytest.mark.parametrize("groups,channels", [(2, 8), (3, 12), (4, 8)])
def test_channel_shuffle_equals_its_definition(groups, channels):
    model = kblocks.build(f"SHUFFLE({groups})", input_shape=(3, 2, channels))
    x = np.random.default_rng(groups).normal(0, 1, (2, 3, 2, channels)).astype("float32")
    got = np.asarray(model(x))
    np.testing.assert_array_equal(got, shuffle_oracle(x, groups))
    assert not np.array_equal(got, x)
    # Shuffling back with channels/groups groups is the inverse permutation.
    back = kblocks.build(f"CHANNEL_SHUFFLE({channels // groups})", input_shape=(3, 2, channels))
    np.testing.assert_array_equal(np.asarray(back(got)), x)


def test_split_takes_equal_channel_groups_in_order():
    x = np.random.default_rng(5).normal(0, 1, (2, 3, 3, 6)).astype("float32")
    for part in (1, 2, 3):
        model = kblocks.build(f"SPLIT({part}, 3)", input_shape=(3, 3, 6))
        np.testing.assert_array_equal(np.asarray(model(x)), x[..., 2 * (part - 1):2 * part])
    s = kblocks.summary("(SPLIT(1, 2) | SPLIT(2, 2) - CONV(5, 1)) - SHUFFLE", input_shape=(4, 4, 10))
    assert s.params == 5 * 5 + 5 and s.macs == 16 * 5 * 5


@pytest.mark.parametrize("text,channels,message", [
    ("SPLIT(3, 2)", 8, "counts from 1 to parts=2"),
    ("SPLIT(1, 2)", 7, "parts=2 must divide the 7 channels"),
    ("SHUFFLE(3)", 8, "groups=3 must divide the 8 channels"),
])
def test_split_and_shuffle_refuse_what_does_not_divide(text, channels, message):
    with pytest.raises(KBlocksError, match=message) as info:
        kblocks.compile(text, input_shape=(4, 4, channels))
    assert "column 1" in str(info.value)


def shufflenet_v2():
    """ShuffleNet v2 1x, Table 5 and Fig. 3(c, d) as torchvision builds it: 3x3/2 conv (24), max
    pool, stages of 4, 8, 4 units (116, 232, 464 channels, half of them per branch), 1x1 conv
    (1024), GAP, FC(1000); depthwise 3x3 convolutions (9 weights per channel), BN after each conv."""
    def dw(c):
        return 9 * c

    total, cin = conv(3, 24) + bn(24), 24
    for out, units in ((116, 4), (232, 8), (464, 4)):
        c = out // 2
        total += dw(cin) + bn(cin) + conv(cin, c, 1) + bn(c)  # down-sampling unit, left branch
        total += conv(cin, c, 1) + bn(c) + dw(c) + bn(c) + conv(c, c, 1) + bn(c)
        total += (units - 1) * (conv(c, c, 1) + bn(c) + dw(c) + bn(c) + conv(c, c, 1) + bn(c))
        cin = out
    return total + conv(464, 1024, 1) + bn(1024) + fc(1024, 1000)


def test_shufflenet_v2_count_and_cost_are_table_5s():
    e = zoo.entry("shufflenet_v2")
    assert e.trainable == shufflenet_v2() == 2_278_604  # torchvision's shufflenet_v2_x1_0
    assert abs(e.macs / 146e6 - 1) < 0.01  # Table 5: 146 M FLOPs (multiply-adds) at 224x224
    nodes = kblocks.compile("shufflenet_v2").nodes
    shuffles = [x.shape for x in nodes if x.token == "CHANNEL_SHUFFLE"]  # one per unit
    assert len(shuffles) == 16
    assert (shuffles[0], shuffles[4], shuffles[12]) == ((28, 28, 116), (14, 14, 232), (7, 7, 464))


# --- DenseNet-161 (Huang et al. 2017, Table 1) ----------------------------------------------------

def densenet_bc(init, k, blocks, classes=1000):
    """(trainable, BN statistics) of DenseNet-BC: 7x7/2 conv (init), dense blocks of BC layers
    BN-ReLU-1x1 (4k)-BN-ReLU-3x3 (k), transitions BN-ReLU-1x1 (half), final BN, FC."""
    trainable, stats, c = conv(3, init, 7) + bn(init), bn(init), init
    for i, n in enumerate(blocks):
        for _ in range(n):
            trainable += bn(c) + conv(c, 4 * k, 1) + bn(4 * k) + conv(4 * k, k)
            stats += bn(c) + bn(4 * k)
            c += k
        if i < len(blocks) - 1:
            trainable += bn(c) + conv(c, c // 2, 1)
            stats += bn(c)
            c //= 2
    return trainable + bn(c) + fc(c, classes), stats + bn(c)


@pytest.mark.parametrize("name,init,k,blocks,torchvision", [
    ("densenet121", 64, 32, (6, 12, 24, 16), 7_978_856),
    ("densenet161", 96, 48, (6, 12, 36, 24), 28_681_000),
    ("densenet169", 64, 32, (6, 12, 32, 32), 14_149_480),
    ("densenet201", 64, 32, (6, 12, 48, 32), 20_013_928),
])
def test_densenet_counts_follow_table_1(name, init, k, blocks, torchvision):
    trainable, stats = densenet_bc(init, k, blocks)
    e = zoo.entry(name)
    assert (e.trainable, e.params - e.trainable) == (trainable, stats)
    assert trainable == torchvision  # torchvision.models.<name> (BN statistics not counted)


# --- the new blocks and layers train and save -------------------------------------------------------

#: every new block and layer in one small network (the zoo files themselves are built and
#: round-tripped by tests/test_zoo.py): ShuffleNet v2 units, an option-A CIFAR block, ResNet V2 units.
TOGETHER = ("CONV(8) - @shuffle_down(4) - @shuffle_unit(4) - @cifar_basic(16, stride=2, down=1)"
            " - @preact_bottleneck_proj(4, 16) - @preact_bottleneck(4, 16, stride=2, pool=1)"
            " - SHUFFLE(4) - BN - RELU - GAP - FC(10)")


def test_new_blocks_train_one_step_and_round_trip_with_safe_mode(tmp_path):
    import keras

    model = kblocks.build(TOGETHER, input_shape=(16, 16, 3))
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"ChannelShuffle", "ChannelSplit", "Zero", "MaxPooling2D"} <= kinds
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, 8)
    before = [w.copy() for w in model.get_weights()]
    loss = float(np.ravel(model.train_on_batch(x, y))[0])
    assert np.isfinite(loss) and loss > 0
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert changed >= len(model.trainable_weights)  # every kernel, gamma and beta moved
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    assert [type(la).__name__ for la in loaded.layers] == [type(la).__name__ for la in model.layers]

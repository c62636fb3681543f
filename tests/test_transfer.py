"""Transfer learning: frozen layers keep their weights, the head is replaced and trained."""
import keras
import numpy as np
import pytest

from kblocks.training.data import load_data
from kblocks.common.errors import ConfigError, DataError
from kblocks.training import TrainConfig, train
from kblocks.training.transfer import (find_head, freeze_until, leaf_layers, resolve_freeze, unwrap_trained)

ARCH = "CONV(8)-BN-RELU-POOL-CONV(16)-BN-RELU-POOL-FC(32)-RELU-FC"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    train(ARCH, TrainConfig(data="digits", epochs=2, batch_size=64, seed=1, verbose=0,
                                     tensorboard=False), out=root / "base")
    digits = load_data("digits")
    keep = digits.y < 4  # a new task: 4 of the classes
    np.savez(root / "four.npz", x=digits.x[keep], y=digits.y[keep])
    return root


def _weights(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in leaf_layers(model)}


def test_frozen_layers_unchanged_head_replaced(base_run):
    base = keras.saving.load_model(base_run / "base" / "best.keras", safe_mode=True)
    before = _weights(unwrap_trained(base))
    result = train(None, TrainConfig(data=f"npz:{base_run / 'four.npz'}", epochs=2, batch_size=64,
                                     seed=2, verbose=0, transfer=str(base_run / "base/best.keras"),
                                     freeze_until="pool_7", tensorboard=False),
                   out=base_run / "fine")
    report = result.info["transfer"]
    assert report["head_replaced"] and report["old_classes"] == 10
    assert report["frozen_layers"] == ["conv_0", "bn_1", "relu_2", "pool_3", "conv_4", "bn_5",
                                       "relu_6", "pool_7"]
    after = _weights(result.model)
    for name in ("conv_0", "bn_1", "conv_4", "bn_5"):  # BN moving statistics included
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(before["fc_9"][0], after["fc_9"][0])  # trainable, fine-tuned
    head = find_head(unwrap_trained(result.model))[0]
    assert head.name == "fc_11" and head.units == 4
    assert result.model.output_shape == (None, 4)
    assert result.info["lr"] == pytest.approx(0.005)  # default x0.1 when fine-tuning
    assert result.final["val_accuracy"] > 0.5


def test_transfer_into_a_rebuilt_architecture_copies_by_name(base_run):
    result = train(ARCH, TrainConfig(data=f"npz:{base_run / 'four.npz'}", epochs=1, seed=3,
                                     verbose=0, transfer=str(base_run / "base/best.keras"),
                                     freeze_until="backbone", tensorboard=False))
    report = result.info["transfer"]
    assert report["copied_layers"] == 5 and report["fresh_layers"] == ["fc_11"]
    frozen = set(report["frozen_layers"])
    assert "fc_9" in frozen and "fc_11" not in frozen


def test_transfer_from_weights_file(base_run, tmp_path):
    base = unwrap_trained(keras.saving.load_model(base_run / "base/best.keras", safe_mode=True))
    base.save_weights(tmp_path / "w.weights.h5")
    result = train(ARCH, TrainConfig(data="digits", epochs=1, seed=3, verbose=0, subset=400,
                                     transfer=str(tmp_path / "w.weights.h5"), freeze_until="conv_4",
                                     tensorboard=False))
    net = unwrap_trained(result.model)
    np.testing.assert_array_equal(net.get_layer("conv_0").get_weights()[0],
                                  base.get_layer("conv_0").get_weights()[0])


def test_freeze_spec_forms():
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="stage1_fc_0"),
                            keras.layers.Dense(3, name="stage1_fc_1"),
                            keras.layers.Dense(3, name="stage2_fc_2"),
                            keras.layers.Dense(2, name="head")])
    net = keras.Model(net.inputs, net.outputs)
    assert resolve_freeze(net, "1") == 1
    assert resolve_freeze(net, "-2") == 2
    assert resolve_freeze(net, "stage1") == 1  # prefix: through the last match
    assert resolve_freeze(net, "stage2_fc_2") == 2
    assert resolve_freeze(net, "backbone") == 2
    assert freeze_until(net, "stage1") == ["stage1_fc_0", "stage1_fc_1"]
    with pytest.raises(ConfigError, match="no layer is named or starts with 'stage9'"):
        resolve_freeze(net, "stage9")
    with pytest.raises(ConfigError, match="out of range"):
        resolve_freeze(net, "12")


def test_transfer_mistakes(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        train(None, TrainConfig(data="digits", epochs=1, transfer=str(tmp_path / "none.keras")))
    (tmp_path / "w.weights.h5").write_bytes(b"")
    with pytest.raises(ConfigError, match="weights only"):
        train(None, TrainConfig(data="digits", epochs=1, transfer=str(tmp_path / "w.weights.h5")))

"""Issue 21, point 7: a transfer report counts the layers whose weights really loaded, and a file
that loads nothing is refused instead of training from scratch under a report of copied layers."""
import h5py
import numpy as np
import pytest

import kblocks
from kblocks.training import transfer
from kblocks.common.errors import DataError

SHAPE = (8, 8, 1)
A = "CONV(8)-RELU-POOL-FC(32)-FC"
B = "CONV(8)-RELU-POOL-FC(16)-FC"  # same first conv, other widths after it


def _builder(text):
    return lambda classes: kblocks.build(text, input_shape=SHAPE, classes=classes)


def test_junk_hdf5_is_refused(tmp_path):
    junk = tmp_path / "junk.weights.h5"
    with h5py.File(junk, "w") as f:
        f.create_dataset("something/else", data=np.arange(4.0))
    with pytest.raises(DataError) as info:
        transfer.prepare(junk, classes=10, input_shape=SHAPE, build=_builder(A))
    message = str(info.value)
    assert "junk.weights.h5" in message and "loads nothing" in message
    assert "same architecture" in message  # the hint


def test_weights_of_another_architecture_count_what_loaded(tmp_path):
    source = _builder(A)(10)
    path = tmp_path / "a.weights.h5"
    source.save_weights(path)
    network, report = transfer.prepare(path, classes=10, input_shape=SHAPE, build=_builder(B))
    with_weights = [layer.name for layer in transfer.leaf_layers(network) if layer.weights]
    assert report.copied == ["conv_0"]
    assert sorted(report.copied + report.skipped) == sorted(with_weights)
    assert report.as_dict()["copied_layers"] == 1
    for a, b in zip(source.get_layer("conv_0").get_weights(),
                    network.get_layer("conv_0").get_weights()):
        np.testing.assert_array_equal(a, b)
    for name in report.skipped:  # left at a fresh initialisation, not NaN, not partly loaded
        for w in network.get_layer(name).get_weights():
            assert np.isfinite(w).all()


def test_same_architecture_copies_every_layer(tmp_path):
    source = _builder(A)(10)
    path = tmp_path / "a.weights.h5"
    source.save_weights(path)
    network, report = transfer.prepare(path, classes=4, input_shape=SHAPE, build=_builder(A))
    head = transfer.find_head(network)[0]
    assert head.units == 4  # built for 4 classes: the file's 10-class head does not fit
    assert report.skipped == [head.name] and head.name not in report.copied
    assert len(report.copied) == len([layer for layer in transfer.leaf_layers(source)
                                      if layer.weights]) - 1


def test_keras_model_sharing_no_layer_is_refused(tmp_path):
    path = tmp_path / "dense.keras"
    kblocks.build("FC(8)-FC", input_shape=(5,), classes=3).save(path)
    with pytest.raises(DataError, match="no layer of the architecture matches"):
        transfer.prepare(path, classes=3, input_shape=SHAPE, build=_builder("CONV(4)-GAP-FC"))

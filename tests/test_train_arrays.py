"""kblocks.train from data given in Python: NumPy arrays (x=, y=, validation_data=), a tf.data
dataset (dataset=, validation_dataset=), the user's callbacks= and metrics=. Digits, a few
hundred images, two to four epochs per run."""
from __future__ import annotations

import csv
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import kblocks
from kblocks.common.errors import ConfigError, DataError
from kblocks.training import TrainConfig, train
from kblocks.training.data import from_arrays, split_data

NET = "CONV(16)-RELU-POOL-CONV(32)-RELU-GAP-FC"
LEARNER = "CONV(16)-RELU-POOL-FC(64)-RELU-FC"  # ~0.98 on held-out digits after 4 epochs


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # pixels 0..255
    return x, data.target


def _accuracy(model, x, y):
    """Accuracy computed here from the model's predictions: the oracle for the trainer's."""
    return float(np.mean(model.predict(x, verbose=0).argmax(-1) == y))


def _stats_of(model):
    layer = model.get_layer("kblocks_normalize")
    return np.asarray(layer.mean).reshape(-1), np.asarray(layer.variance).reshape(-1)


class EpochCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch + 1)


def test_kblocks_train_is_the_trainer():
    assert kblocks.train is train


def test_train_from_numpy_arrays(digits, tmp_path):
    x, y = digits
    xt, yt, xv, yv = x[:1000], y[:1000], x[1000:1400], y[1000:1400]
    result = kblocks.train(LEARNER, x=xt, y=yt, validation_data=(xv, yv), epochs=4,
                           optimizer="adam", lr=0.01, batch_size=64, seed=0, verbose=0,
                           out=tmp_path / "run")
    # the normalisation inside is the per-channel statistics of the training arrays
    mean, var = _stats_of(result.model)
    assert mean == pytest.approx([xt.astype(np.float64).mean()], rel=1e-5)
    assert var == pytest.approx([xt.astype(np.float64).var()], rel=1e-4)
    # the scores are those of the best model on validation_data, and it learnt
    assert result.final["val_accuracy"] == pytest.approx(_accuracy(result.model, xv, yv),
                                                         abs=1e-6)
    assert result.final["val_accuracy"] > 0.85  # chance is 0.1
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config"]["data"] == "python:arrays"
    assert record["data"]["train"]["samples"] == 1000 and record["data"]["val"]["samples"] == 400
    assert result.info["steps_per_epoch"] == math.ceil(1000 / 64)


def test_arrays_without_validation_data_are_split_like_a_source(digits):
    x, y = digits
    result = kblocks.train(NET, x=x[:500], y=y[:500], val_split=0.2, epochs=1, seed=5,
                           verbose=0)
    _, val = split_data(from_arrays(x[:500], y[:500]), 0.2, seed=5)  # the same seeded split
    assert len(val) == 100
    assert result.final["val_accuracy"] == pytest.approx(_accuracy(result.model, val.x, val.y),
                                                         abs=1e-6)


def test_train_from_a_tf_data_dataset(digits):
    x, y = digits
    xt, yt, xv, yv = x[:600], y[:600], x[600:800], y[600:800]
    elements = tf.data.Dataset.from_tensor_slices((xt, yt)).shuffle(600, seed=1)
    val = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(50)
    result = kblocks.train(NET, dataset=elements, validation_dataset=val, epochs=2,
                           batch_size=32, label_smoothing=0.1, seed=0, verbose=0)
    assert result.info["steps_per_epoch"] == math.ceil(600 / 32)  # batched here by batch_size
    assert result.info["feed"]["kind"] == "host"
    mean, var = _stats_of(result.model)  # one pass over the dataset, as NumPy would compute
    assert mean == pytest.approx([xt.astype(np.float64).mean()], rel=1e-5)
    assert var == pytest.approx([xt.astype(np.float64).var()], rel=1e-4)
    assert result.final["val_accuracy"] == pytest.approx(_accuracy(result.model, xv, yv),
                                                         abs=1e-6)
    assert len(result.history) == 2


def test_a_batched_dataset_keeps_its_batches_and_classes_sets_the_head(digits):
    x, y = digits
    batches = tf.data.Dataset.from_tensor_slices((x[:300], y[:300])).batch(50)
    result = kblocks.train(NET, dataset=batches, classes=12, epochs=1, batch_size=128,
                           normalize="scale", verbose=0)
    assert result.info["steps_per_epoch"] == 6  # the dataset's 50, not batch_size
    assert result.model.output_shape == (None, 12)
    assert result.final["epochs_run"] == 1 and "val_accuracy" not in result.final


def test_user_callbacks_and_metrics(digits, tmp_path):
    x, y = digits
    counter = EpochCounter()
    top3 = keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3")
    result = kblocks.train(NET, x=x[:400], y=y[:400], validation_data=(x[400:500], y[400:500]),
                           epochs=3, callbacks=[counter], metrics=[top3, "accuracy"], seed=0,
                           verbose=0, out=tmp_path / "run")
    assert counter.epochs == [1, 2, 3]  # the user's callback ran every epoch
    assert all("top3" in row and "val_top3" in row for row in result.history)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert 0.0 <= record["final"]["val_top3"] <= 1.0
    assert record["final"]["val_top3"] >= record["final"]["val_accuracy"]  # top-3 >= top-1
    assert "train_top3 (last epoch)" in record["final"]
    with open(tmp_path / "run" / "history.csv") as f:
        assert {"top3", "val_top3"} <= set(next(csv.reader(f)))
    # top-3 accuracy of the best model, computed here
    probs = result.model.predict(x[400:500], verbose=0)
    top = np.argsort(-probs, axis=-1)[:, :3]
    expected = float(np.mean([label in row for label, row in zip(y[400:500], top)]))
    assert record["final"]["val_top3"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kwargs,error,what,message", [
    ({"x": "X"}, DataError, "y", "images and labels go together"),
    ({"x": "X", "y": "Y", "validation_data": "X"}, ConfigError, "validation_data",
     r"\(x_val, y_val\) pair"),
    ({"x": "X5", "y": "Y"}, DataError, "x", r"images must have shape"),
    ({"x": "X", "y": "Y", "classes": 3}, DataError, "y", "label 9 is out of range for 3"),
    ({"x": "X", "y": "Y", "validation_data": ("X", "Yneg")}, DataError, "validation_data",
     "labels must be >= 0"),
    ({"x": "X3", "y": "Y3", "validation_data": ("X", "Y")}, DataError, "validation_data",
     "inferred from y="),
    ({"dataset": "X"}, DataError, "dataset", "takes a tf.data.Dataset"),
    ({"dataset": "forever"}, DataError, "dataset", "repeats forever"),
    ({"dataset": "onehot"}, DataError, "dataset", "labels must be class indices"),
    ({"dataset": "ds", "x": "X", "y": "Y"}, ConfigError, "dataset", "not both"),
    ({"validation_dataset": "ds"}, ConfigError, "validation_dataset", "goes with dataset="),
    ({"classes": 10}, ConfigError, "classes", "goes with x= or dataset="),
    ({"x": "X", "y": "Y", "data": "digits"}, ConfigError, "data", "not both"),
    ({"dataset": "ds", "val_split": 0.2}, ConfigError, "val_split", "cannot cut"),
    ({"dataset": "ds", "feed": "device"}, ConfigError, "feed", "streams"),
    ({"x": "X", "y": "Y", "callbacks": [print]}, ConfigError, "callbacks", "not a keras"),
    ({"x": "X", "y": "Y", "metrics": ["no_such_metric"]}, ConfigError, "metrics",
     "no metric 'no_such_metric'"),
])
def test_mistakes_name_the_argument_and_write_nothing(digits, tmp_path, kwargs, error, what,
                                                      message):
    x, y = digits
    ds = tf.data.Dataset.from_tensor_slices((x[:64], y[:64]))
    low = y[:64] < 3
    values = {"X": x[:64], "Y": y[:64], "X3": x[:64][low], "Y3": y[:64][low], "X5": x[:64, :, :, 0, None, None], "Yneg": -y[:64] - 1,
              "ds": ds, "forever": ds.repeat(),
              "onehot": ds.map(lambda a, b: (a, tf.one_hot(b, 10)))}
    given = {k: values.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    if isinstance(given.get("validation_data"), tuple):
        given["validation_data"] = tuple(values.get(v, v) for v in given["validation_data"])
    out = tmp_path / "run"
    with pytest.raises(error, match=message) as caught:
        train(NET, TrainConfig(epochs=1, verbose=0), out=out, **given)
    assert caught.value.what == what
    assert not out.exists()  # nothing half-written


def test_resuming_an_array_run_needs_the_arrays_again(digits, tmp_path):
    x, y = digits
    out = tmp_path / "run"
    kblocks.train(NET, x=x[:200], y=y[:200], epochs=1, verbose=0, out=out)
    with pytest.raises(ConfigError, match="pass the same x= and y= again"):
        train(None, out=out, resume=True, epochs=2)
    again = train(None, out=out, resume=True, epochs=2, x=x[:200], y=y[:200])
    assert again.final["epochs_run"] == 2


def test_resizing_to_a_declared_input_size_only_for_uint8_arrays(digits, capsys):
    x, y = digits  # 8x8; lenet5 declares 32x32x1
    result = kblocks.train("lenet5", x=x[:200], y=y[:200], epochs=1, verbose=0)
    assert result.model.input_shape == (None, 32, 32, 1)
    assert "resizing arrays images from 8x8 to 32x32" in capsys.readouterr().out
    with pytest.raises(DataError, match=r"takes inputs of shape \(32, 32, 1\) but x=") as caught:
        kblocks.train("lenet5", x=x[:200].astype("float32") / 255, y=y[:200], epochs=1)
    assert caught.value.what == "x"
    ds = tf.data.Dataset.from_tensor_slices((x[:200], y[:200]))
    with pytest.raises(DataError, match="resize the images first") as caught:
        kblocks.train("lenet5", dataset=ds, epochs=1)
    assert caught.value.what == "dataset"

"""The device-resident feed (kblocks.training.feed): batches, epochs, resume, steps per execution."""
import json

import keras
import numpy as np
import pytest

from kblocks.training import feed
from kblocks.common.errors import ConfigError
from kblocks.training import TrainConfig, train

SMALL = "CONV(4)-RELU-POOL(4)-FC"
LEARNS = "CONV(16)-RELU-FC"  # reaches ~0.9 in two epochs on either feed
FAST = dict(data="digits", subset=300, val_split=60, epochs=2, batch_size=32, verbose=0,
            tensorboard=False, seed=3)


def _images(n=103, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256  # each image knows its index
    return x, np.arange(n, dtype=np.int32)


def _epoch(batches):
    """Run one epoch the way the Keras adapter does; return the (x, y) batches as numpy."""
    batches.on_epoch_begin()
    out = [tuple(np.asarray(keras.ops.convert_to_numpy(t)) for t in batches[i])
           for i in range(len(batches))]
    batches.on_epoch_end()
    return out


def test_each_epoch_is_a_fresh_permutation_without_the_ragged_batch():
    x, y = _images()
    b = feed.DeviceBatches(x, y, 10, seed=5)
    assert len(b) == 10  # 103 // 10: the last 3 images of each permutation wait for a later epoch
    seen = []
    for _ in range(3):
        batches = _epoch(b)
        assert all(xb.shape == (10, 4, 4, 1) and xb.dtype == np.uint8 for xb, _ in batches)
        labels = np.concatenate([yb for _, yb in batches])
        assert len(set(labels.tolist())) == 100  # no image twice in an epoch
        for xb, yb in batches:  # images travel with their own labels
            np.testing.assert_array_equal(xb, x[yb])
        seen.append(labels)
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])
    again = feed.DeviceBatches(x, y, 10, seed=5)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in _epoch(again)]), seen[0])
    other = feed.DeviceBatches(x, y, 10, seed=6)
    assert not np.array_equal(np.concatenate([yb for _, yb in _epoch(other)]), seen[0])


def test_a_resumed_epoch_draws_the_batches_of_the_uninterrupted_run():
    x, y = _images()
    whole = feed.DeviceBatches(x, y, 16, seed=1)
    orders = [np.concatenate([yb for _, yb in _epoch(whole)]) for _ in range(3)]
    resumed = feed.DeviceBatches(x, y, 16, seed=1, first_epoch=2)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in _epoch(resumed)]), orders[2])
    # When fit tells the epoch (its callback), an extra on_epoch_begin (Keras peeks a batch to
    # build the model) cannot shift the order.
    told = feed.DeviceBatches(x, y, 16, seed=1)
    _epoch(told)
    told.epoch_callback().on_epoch_begin(1)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in _epoch(told)]), orders[1])


def test_evaluation_batches_serve_every_image_in_order():
    x, y = _images(23)
    b = feed.DeviceBatches(x, y, 10, shuffle=False)
    batches = _epoch(b)
    assert [len(yb) for _, yb in batches] == [10, 10, 3]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), y)
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in batches]), x)


def test_steps_per_epoch_and_even_evaluation_batch():
    assert feed.steps_per_epoch("device", 1000, 128) == 7
    assert feed.steps_per_epoch("host", 1000, 128) == 8
    assert feed.steps_per_epoch("device", 50, 128) == 1  # smaller than a batch: one batch
    assert feed.even_batch(5000, 512) == 1000  # the largest divisor of 5000 up to 2x the batch
    assert feed.even_batch(60, 32) == 60
    assert feed.even_batch(97, 64) == 97  # a prime: one batch of all of it (<= 2x the batch)


def test_auto_picks_the_host_on_this_cpu_and_says_why():
    plan = feed.choose("auto", nbytes=10, batch_size=8, train_size=80)
    assert plan.kind == "host" and plan.reason.startswith("auto:")
    assert plan.steps_per_execution == 1  # no accelerator: the host is the device
    assert feed.choose("device", nbytes=10, batch_size=8, train_size=80).kind == "device"
    assert feed.choose("host", nbytes=10, batch_size=8, train_size=80,
                       steps_per_execution="64").steps_per_execution == 10  # one epoch at most


@pytest.mark.parametrize("kwargs, option", [
    (dict(feed="gpu"), "feed"),
    (dict(feed="device", distributed=True), "feed"),
    (dict(steps_per_execution="0"), "steps_per_execution"),
    (dict(steps_per_execution="1.5"), "steps_per_execution"),
    (dict(steps_per_execution="many"), "steps_per_execution"),
])
def test_feed_mistakes_are_named(kwargs, option):
    """Named as the Python argument; the command line prints --feed / --steps-per-execution."""
    with pytest.raises(ConfigError, match=option) as err:
        feed.choose(**{"nbytes": 10, "batch_size": 8, "train_size": 80, **kwargs})
    assert err.value.what == option


def test_training_on_the_device_feed_learns_and_counts_its_steps(tmp_path):
    r = train(LEARNS, TrainConfig(**FAST, feed="device", steps_per_execution=3),
              out=tmp_path / "r")
    steps = 240 // 32  # 300 images, 60 held out; the ragged 16 are dropped each epoch
    assert r.info["feed"] == {"kind": "device", "reason": "--feed device",
                              "steps_per_execution": 3}
    assert r.info["steps_per_epoch"] == steps
    assert int(keras.ops.convert_to_numpy(r.trained.optimizer.iterations)) == 2 * steps
    assert r.trained.steps_per_execution == 3
    assert r.final["val_accuracy"] > 0.6  # 10 classes: chance is 0.1
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["feed"]["kind"] == "device"


def test_a_resumed_run_keeps_its_feed_and_step_count(tmp_path):
    out = tmp_path / "r"
    train(SMALL, TrainConfig(**{**FAST, "epochs": 1}, feed="device"), out=out)
    r = train(None, out=out, resume=True, epochs=2)
    assert r.info["feed"]["kind"] == "device"  # the stored kind, not a new "auto" choice
    assert int(keras.ops.convert_to_numpy(r.trained.optimizer.iterations)) == 2 * (240 // 32)


def test_the_host_feed_keeps_the_ragged_batch():
    r = train(SMALL, TrainConfig(**FAST, feed="host"))
    assert r.info["steps_per_epoch"] == 8
    assert int(keras.ops.convert_to_numpy(r.trained.optimizer.iterations)) == 16


def test_search_trials_train_through_the_device_feed(tmp_path):
    from click.testing import CliRunner

    from kblocks.cli import main

    out = tmp_path / "s"
    result = CliRunner().invoke(main, [
        "search", "CONV({f: 8|16})-RELU-FC(classes)", "--data", "digits", "--subset", "300",
        "--tuner", "random", "--trials", "2", "--epochs", "1", "--batch-size", "32",
        "--feed", "device", "--steps-per-execution", "4", "--out", str(out)],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("completed  val_accuracy") == 2
    record = json.loads((out / "search.json").read_text())
    assert record["train"]["feed"] == "device"


def test_cli_names_a_bad_steps_per_execution():
    from click.testing import CliRunner

    from kblocks.cli import main

    result = CliRunner().invoke(main, ["train", "CONV(4)-FC", "--data", "digits",
                                       "--steps-per-execution", "0"])
    assert result.exit_code == 2
    assert "--steps-per-execution" in result.output and "Traceback" not in result.output

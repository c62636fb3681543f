"""The training recipe: schedules, optimisers, label smoothing, precision, NaN guard, seeds."""
import json

import keras
import numpy as np
import pytest

from kblocks.common import atomic
from kblocks.training import runfolder
from kblocks.common.errors import ConfigError
from kblocks.training.schedules import make_optimizer, make_schedule
from kblocks.training import TrainConfig, TrainingDiverged, train

SMALL = "CONV(4)-RELU-POOL(4)-FC"
FAST = dict(data="digits", subset=300, val_split=60, epochs=1, batch_size=50, verbose=0,
            tensorboard=False)


def _values(schedule, steps):
    return [float(schedule(s)) if callable(schedule) else schedule for s in steps]


def test_schedules_shapes():
    one = _values(make_schedule("onecycle", 0.4, steps_per_epoch=10, epochs=10), range(101))
    assert one[0] == pytest.approx(0.04) and max(one) == pytest.approx(0.4, rel=1e-3)
    assert np.argmax(one) == 25 and one[-1] == pytest.approx(0.0, abs=1e-6)
    step = _values(make_schedule("step", 1.0, steps_per_epoch=5, epochs=9, step_every=3),
                   [0, 14, 15, 30])
    assert step == pytest.approx([1.0, 1.0, 0.1, 0.01])
    cos = _values(make_schedule("cosine", 1.0, steps_per_epoch=10, epochs=10, warmup_epochs=1),
                  [0, 5, 10, 100])
    assert cos == pytest.approx([0.0, 0.5, 1.0, 0.0], abs=1e-6)
    assert make_schedule("plateau", 0.1, steps_per_epoch=3, epochs=3) == 0.1
    with pytest.raises(ConfigError, match="schedule"):
        make_schedule("sawtooth", 0.1, steps_per_epoch=1, epochs=1)


def test_optimizers_and_decoupled_weight_decay():
    sgd = make_optimizer("sgd", 0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert sgd.nesterov and sgd.weight_decay == pytest.approx(5e-3)  # PyTorch-equivalent
    assert isinstance(make_optimizer("adamw", 1e-3, weight_decay=0.05), keras.optimizers.AdamW)
    assert isinstance(make_optimizer("adam", 1e-3, loss_scale=True),
                      keras.optimizers.LossScaleOptimizer)
    with pytest.raises(ConfigError, match="momentum"):
        make_optimizer("sgd", 0.1, momentum=1.5)
    # biases and BN parameters are not decayed
    dense = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="ones")
    dense.build((None, 3))
    zeros = [keras.ops.zeros(dense.kernel.shape), keras.ops.zeros(dense.bias.shape)]
    sgd.apply(zeros, [dense.kernel, dense.bias])
    np.testing.assert_allclose(np.asarray(dense.kernel), 1 - 0.1 * 5e-3, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(dense.bias), 1.0)


def test_label_smoothing_and_logits_vs_softmax():
    r = train(SMALL, TrainConfig(**FAST, seed=1, label_smoothing=0.1))
    assert r.info["from_logits"] is True
    assert isinstance(r.trained.loss, keras.losses.CategoricalCrossentropy)
    r = train(SMALL + "-SOFTMAX", TrainConfig(**FAST, seed=1))
    assert r.info["from_logits"] is False


def test_same_seed_same_run():
    a = train(SMALL, TrainConfig(**FAST, seed=4, augment="flip,translate1"))
    b = train(SMALL, TrainConfig(**FAST, seed=4, augment="flip,translate1"))
    assert a.history[-1]["loss"] == pytest.approx(b.history[-1]["loss"], rel=1e-5)
    np.testing.assert_allclose(a.trained.get_weights()[-1], b.trained.get_weights()[-1], rtol=1e-5)


def test_bf16_keeps_outputs_float32():
    r = train(SMALL + "-SOFTMAX", TrainConfig(**FAST, seed=1, precision="bf16"))
    assert r.info["precision"] == "bf16"
    assert r.trained.output.dtype == "float32"
    conv = r.network.get_layer("conv_0")
    assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(10)(x)
    outputs = keras.layers.Rescaling(float("inf"))(x)  # logits become inf: loss is NaN at once
    model = keras.Model(inputs, outputs)
    with pytest.raises(TrainingDiverged, match="at epoch 1, step 1") as err:
        train(model, TrainConfig(**{**FAST, "epochs": 3}, seed=0), out=tmp_path / "nan")
    assert "--lr" in str(err.value) or "learning rate" in str(err.value)
    record = json.loads((tmp_path / "nan" / "run.json").read_text())
    assert record["status"] == "diverged" and record["diverged_at"]["epoch"] == 1


def test_keras_model_seam_and_early_stopping():
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(inputs))
    r = train(keras.Model(inputs, outputs),
              TrainConfig(**{**FAST, "epochs": 30}, seed=0, lr=1e-9, schedule="constant",
                          early_stopping=2, monitor="val_loss"))
    assert r.final["epochs_run"] < 30


def test_atomic_writes_leave_no_temporaries(tmp_path):
    runfolder.write_json(tmp_path / "a.json", {"x": np.float32(1.5), "nan": float("nan")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "nan": "nan"}
    runfolder.write_history(tmp_path / "h.csv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "acc": 1}])
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "epoch,loss,acc"
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "h.csv"]


@pytest.mark.parametrize("changes", [
    dict(epochs=0), dict(optimizer="rmsprop"), dict(lr=-1.0), dict(precision="fp8"),
    dict(label_smoothing=1.5), dict(normalize="zca"), dict(batch_size=0),
])
def test_option_mistakes_name_the_python_argument(changes):
    """A library error names the argument as Python spells it (epochs, not --epochs); the command
    line prints its own flag instead (tests/test_train_cli.py)."""
    (name, _), = changes.items()
    with pytest.raises(ConfigError) as info:
        train(SMALL, TrainConfig(**{**FAST, **changes}))
    assert info.value.what == name and "--" not in str(info.value), str(info.value)


def test_zoo_entry_declaring_32x32_trains_on_resized_digits():
    r = train("lenet5", TrainConfig(**FAST, seed=0))
    assert r.trained.input_shape == (None, 32, 32, 1)
    assert r.info["from_logits"] is False  # lenet5 ends in SOFTMAX


def test_separate_validation_source_and_image_size(tmp_path):
    from kblocks.training.data import load_data

    digits = load_data("digits")
    np.savez(tmp_path / "val.npz", x=digits.x[:50], y=digits.y[:50])
    r = train(SMALL, TrainConfig(**{**FAST, "val_data": f"npz:{tmp_path / 'val.npz'}"},
                                 image_size="12", seed=0))
    assert r.trained.input_shape == (None, 12, 12, 1)
    assert r.final["val_accuracy"] is not None

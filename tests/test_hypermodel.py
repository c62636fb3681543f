"""space.hypermodel(): a plain keras_tuner.HyperModel that Keras Tuner's own tuners search, with
the user's hyperparameters (a learning rate, a batch size) beside the space's. Tiny space, 300
digits, one or two epochs, two or three trials per tuner."""
from __future__ import annotations

import keras
import keras_tuner as kt
import pytest
from sklearn.datasets import load_digits

import kblocks
from kblocks.common.errors import ConfigError, KBlocksError
from kblocks.search import HyperModel, SearchSpace

TEXT = "[CONV({f#: 4|8})-RELU]*{n#: 1..2}-GAP-FC(10)"


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    return x[:300], data.target[:300]


@pytest.fixture(scope="module")
def space():
    return SearchSpace(TEXT, input_shape=(8, 8, 1))


class LearningRate(HyperModel):
    """The user's subclass: its own learning rate, and a record of what each build made."""

    def __init__(self, space):
        super().__init__(space)
        self.built = []

    def compile(self, model, hp):
        lr = hp.Float("lr", 1e-3, 1e-2, sampling="log")
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        self.built.append((dict(hp.values), model.count_params(),
                           float(model.optimizer.learning_rate.numpy())))


def _reference_params(space, hp):
    """The parameter count of the trial's architecture built from its fixed text alone."""
    return kblocks.build(space.fixed(hp)).count_params()


def _hand_count(values):
    """Hand-derived: 3x3 convolutions with bias, GAP, FC(10) with bias."""
    widths = [values[f"f_{i}"] for i in range(1, values["n"] + 1)]
    total, channels = 0, 1
    for w in widths:
        total += 9 * channels * w + w
        channels = w
    return total + channels * 10 + 10


def test_random_search_tunes_the_users_lr_beside_the_space(space, digits, tmp_path):
    x, y = digits
    hypermodel = LearningRate(space)
    tuner = kt.RandomSearch(hypermodel, objective="val_accuracy", max_trials=3, seed=3,
                            directory=str(tmp_path), project_name="random")
    tuner.search(x, y, validation_split=0.25, epochs=1, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3
    assert all(t.status == "COMPLETED" for t in trials)
    for trial in trials:
        values = trial.hyperparameters.values
        assert 1e-3 <= values["lr"] <= 1e-2  # the user's hyperparameter is in the trial
        assert {"n", "f_1"} <= set(values)  # and the space's
        assert ("f_2" in values) == (values["n"] == 2)  # conditional: only when active
        model = hypermodel.build(trial.hyperparameters)
        assert model.count_params() == _reference_params(space, trial.hyperparameters)
        assert model.count_params() == _hand_count(values)
    # every model the tuner built was compiled with its trial's learning rate
    for values, _, lr in hypermodel.built:
        assert lr == pytest.approx(values["lr"], rel=1e-6)
    best = tuner.get_best_hyperparameters()[0]
    assert "{" not in space.fixed(best)  # the user's lr does not stop the space reading it


# Hyperband starts a continued trial from the weights of the one before, with a fresh optimizer
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_hyperband_with_a_compile_hook_and_the_users_fit(space, digits, tmp_path):
    x, y = digits
    fits = []

    def compile(model, hp):
        model.compile(optimizer=keras.optimizers.SGD(hp.Float("lr", 1e-2, 1e-1, sampling="log"),
                                                     momentum=0.9))

    class Batched(HyperModel):
        def fit(self, hp, model, *args, **kwargs):
            batch = hp.Choice("batch_size", [16, 32])
            fits.append((batch, kwargs["epochs"]))
            return model.fit(*args, batch_size=batch, **kwargs)

    hypermodel = Batched(space, compile=compile)
    tuner = kt.Hyperband(hypermodel, objective="val_accuracy", max_epochs=2, factor=2,
                         hyperband_iterations=1, seed=1, directory=str(tmp_path),
                         project_name="hyperband")
    tuner.search(x, y, validation_split=0.25, verbose=0)
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(trials) >= 2
    for trial in trials:
        values = trial.hyperparameters.values
        assert 1e-2 <= values["lr"] <= 1e-1 and values["batch_size"] in (16, 32)
        assert "tuner/epochs" in values
        assert hypermodel.build(trial.hyperparameters).count_params() == \
            _reference_params(space, trial.hyperparameters)
    assert len(fits) == len(trials)
    assert {epochs for _, epochs in fits} <= {1, 2}


def test_bayesian_optimization_accepts_it(space, digits, tmp_path):
    x, y = digits
    tuner = kt.BayesianOptimization(space.hypermodel(), objective="val_loss", max_trials=2,
                                    num_initial_points=1, seed=0, directory=str(tmp_path),
                                    project_name="bayes")
    tuner.search(x, y, validation_split=0.25, epochs=1, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    # the default compile: the model's own defaults (logits head -> from_logits=True)
    model = tuner.hypermodel.build(trials[0].hyperparameters)
    assert model.loss.get_config()["from_logits"] is True


def test_build_registers_the_spaces_hyperparameters_with_their_conditions(space):
    hp = kt.HyperParameters()
    model = space.hypermodel().build(hp)
    by_name = {h.name: h for h in hp.space}
    assert set(by_name) == {"n", "f_1", "f_2"}
    assert [(c.name, list(c.values)) for c in by_name["f_2"].conditions] == [("n", [2])]
    assert not hp.is_active(by_name["f_2"])
    assert hp.values == space.defaults()  # a fresh hp: every default
    assert model.count_params() == kblocks.build(space.fixed(None)).count_params()


def test_space_build_and_fixed_ignore_the_users_hyperparameters(space):
    hp = kt.HyperParameters()
    hp.Float("lr", 1e-4, 1e-2)
    hp.Fixed("n", 2)
    hp.Fixed("f_2", 8)
    assert space.fixed(hp) == "INPUT(8, 8, 1) - CONV(4) - RELU - CONV(8) - RELU - GAP - FC(10)"
    assert space.build(hp).count_params() == _hand_count({"n": 2, "f_1": 4, "f_2": 8})
    # a plain mapping is the caller's own writing: a misspelt name is still an error
    with pytest.raises(KBlocksError, match="no hyperparameter 'f_l'(.|\n)*did you mean f_[12]\\?"):
        space.fixed({"f_l": 8})


def test_a_users_hyperparameter_under_a_space_name_is_refused(space):
    hp = kt.HyperParameters()
    hp.Float("n", 0.1, 0.5)
    with pytest.raises(ConfigError, match="hp already holds a Float named 'n'"):
        space.hypermodel().build(hp)


def test_the_spaces_own_declaration_is_reused_not_duplicated():
    nested = SearchSpace("[[CONV({f#: 4|8})-RELU]*{n#: 1..3}-POOL?]*{stages: 1..3}-FC(10)",
                         input_shape=(16, 16, 1))
    hp = nested.hyperparameters()  # as the oracle of kblocks search declares it
    before = [(h.name, [(c.name, list(c.values)) for c in h.conditions]) for h in hp.space]
    model = nested.hypermodel().build(hp)
    after = [(h.name, [(c.name, list(c.values)) for c in h.conditions]) for h in hp.space]
    assert after == before  # same names, same conditions: nothing registered twice
    assert model.count_params() == kblocks.build(nested.fixed(None)).count_params()


def test_hp_fixed_pins_a_space_value(space):
    hp = kt.HyperParameters()
    hp.Fixed("n", 2)
    hp.Fixed("f_2", 8)
    model = space.hypermodel().build(hp)
    assert model.count_params() == _hand_count({"n": 2, "f_1": 4, "f_2": 8})
    bad = kt.HyperParameters()
    bad.Fixed("f_1", 5)
    with pytest.raises(ConfigError, match="pins a value the space does not allow: f_1 is one of 4, 8"):
        space.hypermodel().build(bad)


def test_compile_must_be_callable(space):
    with pytest.raises(ConfigError, match="compile= takes a function"):
        space.hypermodel(compile="adam")
    assert isinstance(space.hypermodel(), kt.HyperModel)

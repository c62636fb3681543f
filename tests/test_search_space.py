"""Search spaces (DSL section 6): hyperparameter names, conditions, defaults, the fixed-text round
trip, value checks and Keras Tuner (de)serialisation. No training here."""
import random
from pathlib import Path

import keras_tuner
import pytest

import kblocks
from kblocks.common.errors import ArchitectureError, KBlocksError
from kblocks.search import SearchSpace

NESTED = "[[CONV({f#: 32|64})-RELU]*{n#: 1..3}-POOL?]*{stages: 1..4}-FC(10)"
STAGES = ("[@stage(f={f#: 32|64|128}, n={n#: 1..3})]*{stages: 2..4}-GAP"
          "-[FC({u#: 64..512 step 64})-RELU]*{K: 0..2}-FC(classes)")
STAGE_BLOCK = {"stage": {"params": {"f": 32, "n": 2}, "body": "[CONV($f)-RELU]*$n-POOL?"}}


@pytest.fixture(scope="module")
def nested():
    return SearchSpace(NESTED, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def stages():
    return SearchSpace(STAGES, blocks=STAGE_BLOCK, classes=10, input_shape=(32, 32, 3))


def conditions(space, name):
    return {parent: min(values) for parent, values in space.conditions[name]}


def test_hash_names_follow_the_enclosing_repetitions(nested):
    names = nested.names
    assert names[:6] == ["stages", "n_1", "f_1_1", "f_1_2", "f_1_3", "pool_opt_1"]
    assert {"n_4", "f_4_3", "pool_opt_4"} <= set(names)
    assert len(names) == 1 + 4 * (1 + 3 + 1)


def test_conditions_say_which_repetition_index_a_name_needs(nested):
    assert conditions(nested, "f_1_1") == {}  # index 1 of counts that start at 1: always there
    assert conditions(nested, "f_1_2") == {"n_1": 2}
    assert conditions(nested, "n_2") == {"stages": 2}
    assert conditions(nested, "f_3_3") == {"stages": 3, "n_3": 3}
    assert conditions(nested, "pool_opt_4") == {"stages": 4}


def test_one_width_per_stage_through_a_block(stages):
    assert stages.names == ["stages", "n_1", "f_1", "pool_opt_1", "n_2", "f_2", "pool_opt_2",
                            "n_3", "f_3", "pool_opt_3", "n_4", "f_4", "pool_opt_4", "K", "u_1",
                            "u_2"]
    assert conditions(stages, "f_2") == {}  # stages >= 2 always holds
    assert conditions(stages, "f_3") == {"stages": 3}
    assert conditions(stages, "u_2") == {"K": 2}
    kinds = {row["name"]: row["kind"] for row in stages.describe()}
    assert kinds["u_1"] == "int" and kinds["f_1"] == "choice" and kinds["pool_opt_1"] == "optional"


def test_keras_tuner_space_holds_kinds_ranges_and_conditions(stages):
    hp = stages.hyperparameters()
    by_name = {h.name: h for h in hp.space}
    assert type(by_name["f_1"]).__name__ == "Choice" and list(by_name["f_1"].values) == [32, 64, 128]
    u = by_name["u_1"]
    assert (type(u).__name__, u.min_value, u.max_value, u.step) == ("Int", 64, 512, 64)
    assert type(by_name["pool_opt_1"]).__name__ == "Boolean"
    assert [c.name for c in by_name["u_2"].conditions] == ["K"]
    # The defaults: only active hyperparameters have values.
    assert hp.values == {"stages": 2, "n_1": 1, "f_1": 32, "pool_opt_1": True, "n_2": 1,
                         "f_2": 32, "pool_opt_2": True, "K": 0}
    assert not hp.is_active(by_name["f_3"]) and not hp.is_active(by_name["u_1"])


def test_inactive_names_are_left_out_of_a_trials_values(nested):
    values = nested.complete({"stages": 2, "n_1": 3, "n_2": 1, "f_1_3": 64, "f_3_1": 64})
    assert set(values) == {"stages", "n_1", "f_1_1", "f_1_2", "f_1_3", "pool_opt_1", "n_2",
                           "f_2_1", "pool_opt_2"}
    assert values["f_1_3"] == 64


def test_defaults_are_first_choice_lower_bound_and_optional_present(nested, stages):
    assert nested.defaults() == {"stages": 1, "n_1": 1, "f_1_1": 32, "pool_opt_1": True}
    assert nested.fixed() == "INPUT(32, 32, 3) - CONV(32) - RELU - POOL(2) - FC(10)"
    # A plain build of the text takes the same defaults.
    assert kblocks.format_text(NESTED, input_shape=(32, 32, 3)) == nested.fixed()
    assert stages.fixed() == kblocks.format_text(STAGES, blocks=STAGE_BLOCK, classes=10,
                                                 input_shape=(32, 32, 3))


def test_fixed_text_for_chosen_values(nested):
    text = nested.fixed({"stages": 2, "n_1": 2, "f_1_2": 64, "pool_opt_1": False, "f_2_1": 64})
    assert text == ("INPUT(32, 32, 3) - CONV(32) - RELU - CONV(64) - RELU - CONV(64) - RELU"
                    " - POOL(2) - FC(10)")


def _random_values(space, n, seed=0):
    rng = random.Random(seed)
    hp = space.hyperparameters()
    for _ in range(n):
        values = {}
        for h in hp.space:
            if all(c.is_active(values) for c in h.conditions):
                values[h.name] = h.prob_to_value(rng.random())
        yield values


@pytest.mark.parametrize("text,kw", [
    (NESTED, {"input_shape": (32, 32, 3)}),
    (STAGES, {"blocks": STAGE_BLOCK, "classes": 10, "input_shape": (32, 32, 3)}),
    ("CONV({f: 8..32 step 8}, {k: 3|5}, padding={p: same|valid})-BN?-RELU"
     "-DROPOUT({d: 0.1..0.5})-[FC({u: 16..256 log})-RELU]*{k2: 0..2}-FC(classes)",
     {"classes": 4, "input_shape": (12, 12, 2)}),
])
def test_fixed_text_round_trip_rebuilds_the_same_model(text, kw):
    space = SearchSpace(text, **kw)
    for values in _random_values(space, 6):
        fixed = space.fixed(values)
        assert "{" not in fixed
        assert kblocks.format_text(fixed) == fixed  # canonical: formatting it again changes nothing
        rebuilt = kblocks.analyse(fixed)
        assert rebuilt.params == kblocks.analyse(space.compile(values)).params
        assert kblocks.build(fixed).count_params() == space.build(values).count_params()


def test_word_and_mixed_choices_map_back_to_the_language():
    space = SearchSpace("CONV(8, 3, padding={p: same|valid|1})-FC(3)", input_shape=(8, 8, 1))
    hp = {h.name: h for h in space.hyperparameters().space}
    assert list(hp["p"].values) == ["same", "valid", "1"]  # mixed: Keras Tuner holds text
    assert "padding=valid" in space.fixed({"p": "valid"})
    assert "padding=1" in space.fixed({"p": "1"})


def test_values_are_checked_against_the_space(nested):
    with pytest.raises(KBlocksError, match="no hyperparameter 'width'"):
        nested.fixed({"width": 3})
    with pytest.raises(KBlocksError, match="f_1_1 is one of 32, 64"):
        nested.fixed({"f_1_1": 48})
    with pytest.raises(KBlocksError, match="n_1 is in 1..3"):
        nested.fixed({"n_1": 9})


@pytest.mark.parametrize("text,message", [
    ("CONV({f: 8|16})-CONV({f: 8|32})-FC(2)", "'f' is .* a name is one hyperparameter"),
    ("CONV({f: 32..8})-FC(2)", "empty or reversed"),
    ("DROPOUT({d: 0.0..0.5 log})-FC(2)", "log range needs a positive lower bound"),
    ("CONV({f: 8|8})-FC(2)", "lists a value twice"),
    ("CONV({f: 8..64 step 0})-FC(2)", "step .* must be a positive number"),
])
def test_bad_placeholders_are_errors_naming_them(text, message):
    with pytest.raises(ArchitectureError, match=message):
        SearchSpace(text, input_shape=(8, 8, 1))


def test_space_survives_dict_and_keras_tuner_round_trips(stages):
    again = SearchSpace.from_dict(stages.to_dict())
    assert again.names == stages.names and again.conditions == stages.conditions
    hp = stages.hyperparameters()
    for copy in (keras_tuner.HyperParameters.from_config(hp.get_config()),
                 keras_tuner.HyperParameters.from_proto(hp.to_proto())):  # gRPC, distributed
        assert sorted(h.name for h in copy.space) == sorted(stages.names)  # proto groups by kind
        by_name = {h.name: h for h in copy.space}
        assert [(c.name, list(c.values)) for c in by_name["u_2"].conditions] == [("K", [2])]
    values = next(_random_values(stages, 1, seed=3))
    assert again.fixed(values) == stages.fixed(values)


def test_architecture_file_of_a_trial_is_complete(stages, tmp_path):
    import yaml

    values = next(_random_values(stages, 1, seed=5))
    data = stages.architecture(values, name="best")
    assert data["input"] == [32, 32, 3] and data["classes"] == 10 and "stage" in data["blocks"]
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert kblocks.format_text(str(path)) == stages.fixed(values)


TUNING = sorted((Path(__file__).resolve().parents[1] / "kblocks" / "search" / "spaces").glob("*_*.yaml"))


@pytest.mark.parametrize("path", TUNING, ids=lambda p: p.stem)
def test_ready_spaces_say_what_they_search_and_compile(path):
    from kblocks.search.budget import measure

    assert path.read_text().startswith("# Searches "), "the first line says what it searches"
    space = SearchSpace(str(path))
    assert SearchSpace(path.stem).to_dict() == space.to_dict()  # also found by name
    assert len(space) >= 5 and any(space.conditions.values())
    assert measure(space, space.defaults()).ok
    compiled = [measure(space, v) for v in _random_values(space, 8, seed=1)]
    assert sum(v.ok for v in compiled) >= 4
    assert all(v.ok or v.reason.startswith("does not compile") for v in compiled)


def test_tuning_blocks_examples_build():
    import yaml

    path = Path(__file__).resolve().parents[1] / "kblocks" / "search" / "spaces" / "blocks.yaml"
    blocks = yaml.safe_load(path.read_text())["blocks"]
    for name, spec in blocks.items():
        example = spec["doc"].split("Example:")[1].strip()
        assert kblocks.analyse(example, blocks=str(path)).params > 0, name


def test_space_variables_are_passed_as_a_mapping():
    """SearchSpace takes variables={...} as kblocks.build does (issue 13); the keyword form still
    works with a DeprecationWarning, and a misspelt argument is refused with a did-you-mean."""
    import warnings

    import pytest

    import kblocks

    text = "[CONV({f#: 4|8})-RELU]*N-GAP-FC(2)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = kblocks.SearchSpace(text, input_shape=(8, 8, 1), variables={"N": 2})
    assert new.names == ["f_1", "f_2"]
    with pytest.warns(DeprecationWarning, match=r"pass variables="):
        old = kblocks.SearchSpace(text, input_shape=(8, 8, 1), N=2)
    assert old.names == new.names
    with pytest.raises(kblocks.KBlocksError, match="did you mean input_shape="):
        kblocks.SearchSpace(text, input_shap=(8, 8, 1), variables={"N": 2})

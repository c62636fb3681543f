"""Operation choices and conditions (DSL section 6b), space.size(), and the cell spaces shipped in
kblocks/search/spaces/ (nasbench201, darts).

Oracles: hand-written fixed texts put through kblocks.format_text (no placeholders involved),
hand counts of small spaces, 5**6 = 15,625 cells of NAS-Bench-201 (Dong & Yang 2020, section
2.1), its all-nor_conv_3x3 network's 1,531,546 parameters (the largest of the benchmark's CIFAR-10
networks, 1.53 MB in its table of costs), Keras Tuner's own oracle sampling, and count_params()
of the rebuilt Keras model.
"""
import math
import random
import warnings

import keras_tuner
import pytest

import kblocks
from kblocks.common.errors import ArchitectureError, ParseError
from kblocks.lang.analysis import analyse
from kblocks.search.hypermodel import HyperModel
from kblocks.search.space import SearchSpace

OPS = "CONV(16, 3) | SEPCONV(16, 5) | POOL(3, 1, padding=same) | SKIP | ZERO"
SMALL = {"N": 1, "C": 8, "C2": 16, "C4": 32}
DARTS_SMALL = {"C": 4, "C2": 8, "C4": 16}


def quiet_space(*args, **kwargs):
    """A space whose 8x8 inputs make the lint warn of 3x3 windows on 2x2 maps: expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SearchSpace(*args, **kwargs)


@pytest.fixture(scope="module")
def nb201():
    return quiet_space("nasbench201", variables=SMALL, input_shape=(8, 8, 1))


@pytest.fixture(scope="module")
def darts():
    return quiet_space("darts", variables=DARTS_SMALL, input_shape=(8, 8, 1))


def random_point(space, rng):
    """Values of the active hyperparameters only, drawn in the space's order (parents first)."""
    values = {}
    for name in space.names:
        if space.is_active(name, values):
            values[name] = rng.choice(list(space.specs[name].tuner_values))
    return values


def by_name(hp):
    return {h.name: h for h in hp.space}


# --- operation choices --------------------------------------------------------------------------

def test_op_choice_is_a_choice_of_canonical_texts_and_fixes_to_plain_text():
    space = SearchSpace(f"[{{op#: {OPS.replace(', ', ',')}}}-AS(x#)]*2-FC(10)", input_shape=(8, 8, 1))
    assert space.names == ["op_1", "op_2"]
    hp = by_name(space.hyperparameters())
    assert isinstance(hp["op_1"], keras_tuner.engine.hyperparameters.Choice)
    assert list(hp["op_1"].values) == OPS.split(" | ")  # spaces normalised: 'CONV(16, 3)'
    fixed = space.fixed({"op_1": "SEPCONV(16, 5)", "op_2": "SKIP"})
    assert "{" not in fixed
    assert fixed == kblocks.format_text("SEPCONV(16,5)-AS(x_1)-AS(x_2)-FC(10)", input_shape=(8, 8, 1))
    zero = space.fixed({"op_1": "ZERO", "op_2": "POOL(3, 1, padding=same)"})
    assert zero == kblocks.format_text("ZERO-AS(x_1)-POOL(3,1,padding=same)-AS(x_2)-FC(10)",
                                       input_shape=(8, 8, 1))


def test_alternative_texts_are_taken_before_param_and_hash_substitution():
    blocks = {"edge": {"params": {"f": 8}, "body": "{op#: CONV($f) | [CONV($f, 1) - RELU] | SKIP}"}}
    space = SearchSpace("[@edge({w#: 8|16})]*2 - [[{g#: SKIP | AS(t#)}]*2]*2 - FC(10)",
                        blocks=blocks, input_shape=(8, 8, 1))
    # w_i is first read inside the chosen alternative, after the choice op_i
    assert space.names == ["op_1", "w_1", "op_2", "w_2", "g_1_1", "g_1_2", "g_2_1", "g_2_2"]
    for name in ("op_1", "op_2"):
        assert list(space.specs[name].tuner_values) == ["CONV($f)", "[CONV($f, 1) - RELU]", "SKIP"]
    assert list(space.specs["g_2_1"].tuner_values) == ["SKIP", "AS(t#)"]
    fixed = space.fixed({"w_2": 16, "op_2": "[CONV($f, 1) - RELU]", "g_2_1": "AS(t#)"})
    assert fixed == kblocks.format_text("CONV(8)-CONV(16,1)-RELU-AS(t_2_1)-FC(10)",
                                        input_shape=(8, 8, 1))


# --- conditions ---------------------------------------------------------------------------------

COND = ("{op: [CONV({f: 8|16}) - RELU] | SEPCONV({f: 8|16}) | SKIP} - [CONV({g: 4|8}) - RELU]?{extra}"
        " - FC(10)")


def test_conditions_of_alternatives_and_optional_items():
    space = SearchSpace(COND, input_shape=(8, 8, 1))
    assert space.names == ["op", "f", "extra", "g"]
    assert space.conditions["f"] == [("op", ["[CONV({f: 8 | 16}) - RELU]", "SEPCONV({f: 8 | 16})"])]
    assert space.conditions["g"] == [("extra", [True])]
    assert space.complete({"op": "SKIP", "extra": False}) == {"op": "SKIP", "extra": False}
    hp = by_name(space.hyperparameters())
    assert [(c.name, list(c.values)) for c in hp["g"].conditions] == [("extra", [True])]
    table = space.table()
    assert "op in ([CONV({f: 8 | 16}) - RELU] | SEPCONV({f: 8 | 16}))" in table
    assert "extra present" in table


def test_a_trial_lists_only_active_values():
    """Keras Tuner's own random oracle over the registered hyperparameters (the conditional
    scopes of HyperModel.register): inactive values are absent from every trial's values."""
    space = SearchSpace(COND, input_shape=(8, 8, 1))
    hp = keras_tuner.HyperParameters()
    assert HyperModel(space).register(hp) == {"op": "[CONV({f: 8 | 16}) - RELU]", "f": 8,
                                              "extra": True, "g": 4}
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=50, seed=3)
    oracle.hyperparameters = hp
    seen = set()
    for i in range(40):
        values = oracle.populate_space(str(i))["values"]
        assert values == space.complete(values)  # exactly the active ones
        assert ("f" in values) == (values["op"] != "SKIP")
        assert ("g" in values) == values["extra"]
        seen.add((values["op"], "f" in values, "g" in values))
        kblocks.format_text(space.fixed(values), input_shape=(8, 8, 1))  # rebuilds
    assert ("SKIP", False, False) in seen and any(f and g for _, f, g in seen)


def test_automatic_optional_names_do_not_depend_on_the_choice():
    space = SearchSpace("{op: POOL? | CONV(4)} - POOL? - FC(10)", input_shape=(8, 8, 1))
    assert space.names == ["op", "pool_opt", "pool_opt2"]
    assert space.conditions["pool_opt"] == [("op", ["POOL?"])]
    fixed = space.fixed({"op": "CONV(4)", "pool_opt2": False})
    assert fixed == kblocks.format_text("CONV(4)-FC(10)", input_shape=(8, 8, 1))


def test_repetition_and_choice_conditions_combine():
    space = SearchSpace("[{op#: CONV({f#: 8|16}) | SKIP}]*{n: 1..2} - FC(10)", input_shape=(8, 8, 1))
    assert space.conditions["op_2"] == [("n", [2])]
    assert space.conditions["f_2"] == [("n", [2]), ("op_2", ["CONV({f#: 8 | 16})"])]
    assert "n >= 2 and op_2 == CONV({f#: 8 | 16})" in space.table()


# --- size ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [
    # n=1: 2 widths, n=2: 4, n=3: 8; times the optional pool
    ("[CONV({f#: 8|16}) - RELU]*{n: 1..3} - POOL? - FC(10)", (2 + 4 + 8) * 2),
    # f used in two alternatives: CONV x 2 + SEPCONV x 2 + SKIP
    ("{op: CONV({f: 8|16}) | SEPCONV({f: 8|16}) | SKIP} - FC(10)", 5),
    # f used under two different choices: (SKIP, SKIP) alone, f in the 3 other pairs
    ("{a: CONV({f: 8|16}) | SKIP} - {b: CONV({f: 8|16}) | SKIP} - FC(10)", 1 + 3 * 2),
    # the optional item with its width: absent, or present with 2 widths; step ranges
    ("[CONV({g: 4|8})]? - FC({u: 16..64 step 16})", 3 * 4),
])
def test_size_counts_small_spaces_by_hand(text, size):
    assert SearchSpace(text, input_shape=(8, 8, 1)).size() == size


def test_size_of_a_continuous_space_is_infinite():
    space = SearchSpace("CONV(8) - DROPOUT({r: 0.1..0.5}) - FC(10)", input_shape=(8, 8, 1))
    assert space.size() == math.inf
    inactive = SearchSpace("{op: [DROPOUT({r: 0.1..0.5})] | SKIP}*0 - FC(10)", input_shape=(8, 8, 1))
    assert inactive.size() == 1  # the only place of r is never reached


# --- cell spaces --------------------------------------------------------------------------------

def test_nasbench201_has_15625_cells_and_the_papers_largest_network(nb201):
    assert nb201.names == ["e01", "e02", "e12", "e03", "e13", "e23"]
    assert all(not c for c in nb201.conditions.values())  # one cell, shared by every cell
    assert nb201.size() == 5 ** 6 == 15625
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paper = quiet_space("nasbench201", input_shape=(32, 32, 3))  # N=5, C=16, 10 classes
        # every edge nor_conv_3x3 (the default): NAS-Bench-201's largest CIFAR-10 network
        assert analyse(paper.compile()).trainable == 1_531_546


def test_darts_size_is_the_product_of_its_edges(darts):
    ops, inputs = 8 ** 8, (3 * 4 * 5) ** 2  # 8 edges of 8 operations; nodes 1..3 pick 2 inputs
    assert darts.size() == (ops * inputs) ** 2  # a normal and a reduction cell
    assert sum(1 for n in darts.names if "in" in n) == 12


@pytest.mark.parametrize("which, seed", [("nb201", 0), ("nb201", 1), ("darts", 0)])
def test_random_cell_points_rebuild_with_the_reported_parameters(which, seed, request):
    space = request.getfixturevalue(which)
    values = random_point(space, random.Random(seed))
    graph = space.compile(values)
    fixed = graph.canonical_text()
    assert "{" not in fixed and "$" not in fixed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert kblocks.format_text(fixed) == fixed  # the fixed text is its own canonical text
        model = kblocks.build(fixed, classes=10)
    assert model.count_params() == analyse(graph).params


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, column, words", [
    ("CONV - {op: CONV | | SKIP}", 20, "empty alternative"),
    ("CONV - {op: CONV | SKIP |}", 26, "empty alternative"),
    ("CONV - {op: CONV + SKIP}", 18, "separates its alternatives with '|'"),
    ("CONV - {op: CONV(16) | SKIP | CONV(16)}", 31, "lists CONV(16) twice"),
    ("CONV - {op: 1..3}", 13, "alternatives are items, not values"),
])
def test_parse_errors_in_op_choices_name_the_place(text, column, words):
    with pytest.raises(ParseError) as info:
        SearchSpace(text, input_shape=(8, 8, 1))
    assert info.value.span.column == column and words in str(info.value)


def test_one_name_as_op_choice_and_value_choice_is_refused_at_its_place():
    with pytest.raises(ArchitectureError) as info:
        SearchSpace("{a: CONV | SKIP} - CONV({a: 8|16}) - FC(10)", input_shape=(8, 8, 1))
    message = str(info.value)
    assert "an operation choice {CONV | SKIP}" in message and "a value choice {8 | 16}" in message
    assert info.value.span.column == 26  # the name in CONV({a: 8|16})

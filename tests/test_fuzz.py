"""Fuzzing (issue 8): hostile architecture texts and YAML files never crash kblocks.

Generated and mutated texts (from the zoo's networks and the docs' examples) and YAML files (the
zoo's files mutated: wrong types, anchors and aliases, duplicate keys, deep nesting, huge sizes) go
through ``kblocks.compile`` and ``kblocks.analyse``. The property, checked by
``bench/fuzz.py``'s ``run_text`` / ``run_yaml``: every failure is a ``KBlocksError`` (with a line and
column inside the text when it is about the text), a success prints a canonical text that compiles
to itself, no case does more than ``CASE_WORK`` work (lines of kblocks executed and calls into other
code, counted by ``conftest.work_done``: the bound does not depend on the machine's speed or load) and the whole file does not grow the peak memory by more
than ``MEMORY_MB``. Hypothesis runs derandomized (the same cases on every run), about
2,300 cases in all; ``bench/fuzz.py`` runs 100,000 with the same generators.
"""
import importlib.util
import resource
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kblocks
from conftest import ROOT, TooMuchWork, work_done
from kblocks.common.errors import KBlocksError

_spec = importlib.util.spec_from_file_location("kblocks_bench_fuzz", ROOT / "bench" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # dataclasses look their module up
_spec.loader.exec_module(fuzz)

# A 100,000-character text, the documented maximum, is about 6 million (parse, expand, refuse): a
# case over eight times that is runaway work, stopped there.
CASE_WORK = 50_000_000
MEMORY_MB = 400
SEEDS = fuzz.seed_texts()
DOCS = [fuzz.SMALL_YAML] + fuzz.zoo_documents()


def fuzz_settings(n, **kw):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example], **kw)


@pytest.fixture(scope="module", autouse=True)
def memory_bound():
    """Warm the one-off imports, then hold the whole module to a peak-memory budget."""
    fuzz.warm_up()
    kblocks.compile("CONV-GAP-FC(2)", input_shape=(8, 8, 3))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    yield
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    assert grew < MEMORY_MB, f"the fuzz cases grew the peak memory by {grew:.0f} MB"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check(kind, case, options=None, folder=None):
    def run():
        if kind == "text":
            return fuzz.run_text(case, **(options or {}))
        return fuzz.run_yaml(case, folder)

    try:
        outcome, _ = work_done(run, budget=CASE_WORK)
    except TooMuchWork:
        raise AssertionError(f"a case did over {CASE_WORK:,} work: {case[:300]!r}") from None
    if isinstance(outcome, BaseException):
        raise outcome  # a FuzzFailure, or an exception that is not a KBlocksError
    return outcome


options = st.fixed_dictionaries({
    "input_shape": st.sampled_from(fuzz.SHAPES),
    "classes": st.sampled_from([None, 10, 1, 1000]),
}, optional={name: st.sampled_from(fuzz.VALUES) for name in ("N", "M", "K", "f", "units")})


# --- texts -------------------------------------------------------------------------------------------

@fuzz_settings(600)
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False), options)
def test_mutated_texts(seed, rng, opts):
    """The mutation engine of bench/fuzz.py: tokens, characters, deletions, duplicated slices, huge
    numbers, deep brackets, suffix chains, nested repetition products, swaps, case changes."""
    check("text", fuzz.mutate_text(rng, seed), opts)


@fuzz_settings(400)
@given(st.sampled_from(SEEDS),
       st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 12),
                          st.one_of(st.sampled_from(fuzz.TOKENS), st.text(max_size=6))),
                min_size=1, max_size=6),
       options)
def test_edited_texts(seed, edits, opts):
    """Native hypothesis edits (they shrink to a minimal failing edit): replace text[p:p+n]."""
    text = seed
    for pos, length, insert in edits:
        p = pos % (len(text) + 1)
        text = text[:p] + insert + text[p + length:]
    check("text", text, opts)


@fuzz_settings(550)
@given(st.randoms(use_true_random=False), options)
def test_generated_programs(rng, opts):
    """Random programs of the language (layers, arguments, groups, branches, blocks, AUX,
    placeholders, suffixes), then sometimes mutated."""
    text = fuzz.generate_text(rng)
    if rng.random() < 0.3:
        text = fuzz.mutate_text(rng, text, 1)
    check("text", text, opts)


@fuzz_settings(60)
@given(st.sampled_from(["[", "(", "AUX[", "*1", "?", "*2", "CONV-", "-", "@basic(8)-", "é", "\x00",
                        "9" * 50]),
       st.integers(1, 60_000), st.sampled_from(SEEDS[:4]))
def test_huge_and_deep_texts(unit, times, seed):
    """Up to and beyond the 100,000-character limit: deep brackets, long suffix chains, many layers."""
    check("text", unit * times + seed + (")" if unit == "(" else "]" if "[" in unit else "") * times)


# --- YAML ----------------------------------------------------------------------------------------------

@fuzz_settings(450)
@given(st.sampled_from(DOCS), st.randoms(use_true_random=False))
def test_mutated_yaml_files(folder, doc, rng):
    """Edits, wrong types in every key and under blocks/vars/defaults, mutated networks, duplicate
    keys, alias bombs and self-referring aliases, deep nesting, oversized files, unknown keys."""
    check("yaml", fuzz.mutate_yaml(rng, doc), folder=folder)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10 ** 12),
                         st.floats(allow_nan=True), st.text(max_size=8),
                         st.sampled_from(["CONV", "@basic(8)", "[8, 8, 3]", "same"]))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)


@fuzz_settings(200)
@given(st.dictionaries(st.sampled_from(["name", "input", "classes", "vars", "blocks", "network",
                                        "defaults", "doc", "bogus"]), yaml_values, min_size=1))
def test_yaml_documents_of_any_shape(folder, data):
    import yaml

    check("yaml", yaml.safe_dump(data, allow_unicode=True), folder=folder)


# --- a small sample through Keras --------------------------------------------------------------------

LAYERS = ["CONV(4)", "CONV(4, 3, stride=2)", "CONV(3, 1, padding=1)", "POOL", "AVGPOOL(2, 1)", "BN",
          "LN", "GN(2)", "LRN", "RELU", "PRELU", "LRELU(0.1)", "DROPOUT(0.2)", "SDROPOUT(0.1)",
          "SEPCONV(4)", "DWCONV", "UPSAMPLE", "ZEROPAD", "CONVT(4, 2, stride=2)", "(SKIP + CONV(4))",
          "(CONV(2) | CONV(3))", "(SKIP & GAP-FC(4)-SIGMOID)", "CONV(4, kernel_initializer=he_normal)",
          "CONV(4, activation=nope)", "BN(momentum=\"a\")", "CONV(4, trainable=3)",
          "CONV(4, name=\"x\")", "AUX[GAP-FC(2)]", "CONV(4, dtype=\"int8\")", "CONV(4, bias_regularizer=l9)"]


# Pass-through keywords kblocks leaves to Keras: the text compiles, the build refuses it with a
# KBlocksError naming the Keras class.
KERAS_REFUSES = {"CONV(4, activation=nope)": "Conv2D", 'BN(momentum="a")': "BatchNormalization",
                 "CONV(4, trainable=3)": "Conv2D", 'CONV(4, dtype="int8")': "Conv2D",
                 "CONV(4, bias_regularizer=l9)": "Conv2D"}


@fuzz_settings(25)
@given(st.lists(st.sampled_from(LAYERS), min_size=1, max_size=5),
       st.sampled_from(["GAP-FC(3)", "FLATTEN-FC(2)-SOFTMAX", ""]))
def test_small_sample_through_keras(layers, head):
    """Each sample ends one of three ways, and each is checked: it does not compile, and the build
    refuses it with the same message; it holds a keyword Keras refuses, and the build says so; or it
    builds, with the parameters the analysis counted."""
    text = "INPUT(8, 8, 3)-" + "-".join(layers) + (f"-{head}" if head else "")
    try:
        analysis = kblocks.analyse(text)
    except KBlocksError as err:
        assert fuzz.check_error_position(err, text) is None, (text, err)
        with pytest.raises(KBlocksError) as refused:
            kblocks.build(text)
        assert refused.value.message == err.message, text
        return
    keras_refuses = {KERAS_REFUSES[layer] for layer in layers if layer in KERAS_REFUSES}
    if keras_refuses:
        with pytest.raises(KBlocksError) as refused:
            kblocks.build(text)
        assert any(f"Keras refused {cls}" in refused.value.message for cls in keras_refuses), \
            (text, refused.value.message)
        return
    model = kblocks.build(text)
    assert model.count_params() == analysis.params, text


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if layer not in KERAS_REFUSES
                                   and layer not in ("GN(2)", "(SKIP & GAP-FC(4)-SIGMOID)")])
def test_each_sample_layer_builds_with_the_counted_parameters(layer):
    """The sample above reaches Keras: every layer of it that compiles on an 8x8x3 input builds."""
    text = f"INPUT(8, 8, 3)-{layer}-GAP-FC(3)"
    assert kblocks.build(text).count_params() == kblocks.analyse(text).params


def test_case_count():
    """At least 2,000 fuzz cases run in CI."""
    tests = [test_mutated_texts, test_edited_texts, test_generated_programs, test_huge_and_deep_texts,
             test_mutated_yaml_files, test_yaml_documents_of_any_shape, test_small_sample_through_keras]
    assert sum(t._hypothesis_internal_use_settings.max_examples for t in tests) >= 2000


def test_the_bench_runs_a_few_cases(tmp_path):
    """bench/fuzz.py itself (a tiny run): its summary is JSON with no failure."""
    import json
    import subprocess

    r = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz.py"), "--cases", "150",
                        "--seed", "5", "--time-limit", "0", "--json", str(tmp_path / "s.json")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["cases"] == 150 and summary["failures"] == 0

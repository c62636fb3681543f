"""Hostile input never crashes kblocks (issue 8): the YAML loader and the documented limits.

Each test here is a guarantee listed in docs/hardening.md; several began as a case that
tests/test_fuzz.py or bench/fuzz.py found.
"""
import re

import pytest

import kblocks
from conftest import work_done
from kblocks.lang import limits, spec
from kblocks.common.errors import ConfigError, KBlocksError, LimitError


# --- YAML: safe loading only, refusals name the file and the line ------------------------------------

def load(tmp_path, text, name="arch.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        kblocks.compile(str(path))
    msg = str(info.value)
    assert re.match(re.escape(str(path)) + r", line \d+(, column \d+)?: ", msg), msg
    return msg


def bomb(levels=9, width=9, key="classes"):
    lines = ["network: CONV(8)-GAP-FC(2)", "reference:", '  a0: &a0 ["x"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("key", ["classes", "input", "vars", "name"])
def test_alias_bomb_refused_quickly(tmp_path, key):
    msg, lines = work_done(load, tmp_path, bomb(key=key))  # 9**8 = 43 million values once expanded
    assert "aliases expand to more than" in msg
    assert lines < 100_000  # each of the ~80 YAML nodes is walked once (~11,000 in all)


def test_recursive_alias_refused(tmp_path):
    msg = load(tmp_path, "network: CONV\ninput: &x [1, *x]\n")
    assert "line 2" in msg and "refers to the list or mapping that contains it" in msg


def test_too_many_aliases_refused(tmp_path):
    text = "network: CONV\nreference:\n  a: &a 1\n  b: [" + ", ".join(["*a"] * 150) + "]\n"
    assert f"more than {spec.MAX_YAML_ALIASES} YAML aliases" in load(tmp_path, text)


def test_deep_nesting_refused_without_recursion_error(tmp_path):
    msg = load(tmp_path, "network: CONV\nvars: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert f"deeper than {spec.MAX_YAML_DEPTH} levels" in msg and "line 2" in msg


def test_huge_file_refused_before_reading_it_all(tmp_path):
    text = "network: CONV\n" + ("# padding line\n" * 80_000)
    msg = load(tmp_path, text)
    assert "bytes, over the 1,000,000-byte limit" in msg
    line = int(re.search(r"line (\d+)", msg).group(1))
    assert 60_000 < line < 80_002  # where the limit is crossed
    with pytest.raises(ConfigError, match=r"<yaml>, line \d+: the file is"):
        spec.load_yaml_text(text)


def test_control_characters_refused_with_line(tmp_path):
    msg = load(tmp_path, "network: CONV\nname: a\x00b\n")
    assert "line 2" in msg and "'\\x00' is not allowed" in msg


@pytest.mark.parametrize("text,line,words", [
    ("network: CONV\nclasses: ten\n", 2, "'classes' must be a positive whole number"),
    ("network: CONV\nclasses: 1.5\n", 2, "'classes' must be a positive whole number"),
    ("network: CONV\ninput: 32\n", 2, "'input' must be a list of positive whole numbers"),
    ("network: CONV\ninput: [32, -1, 3]\n", 2, "'input' must be a list"),
    ("network: 12\n", 1, "'network' must be the architecture text"),
    ("network: CONV\nvars: [1, 2]\n", 2, "'vars' must be a mapping"),
    ("network: CONV\nvars:\n  N: [1, 2]\n", 3, "variable 'N' must be a number"),
    ("network: CONV\nblocks: [a]\n", 2, "'blocks' must be a mapping"),
    ("network: CONV\nblocks:\n  b: 12\n", 3, "block 'b' must be a text or a mapping"),
    ("network: CONV\nblocks:\n  b: {body: CONV, extra: 1}\n", 3, "unknown key"),
    ("network: CONV\ndefaults: [1]\n", 2, "'defaults' maps a layer token"),
    ("network: CONV\ndefaults:\n  null: {a: 1}\n", 3, "'defaults' needs plain names"),
    ("network: CONV\ndefaults:\n  CONV: {1: 2}\n", 3, "'defaults' needs plain names"),
    ("- CONV\n- RELU\n", 1, "an architecture file is a mapping"),
    ("# comment\n\n42\n", 3, "an architecture file is a mapping"),
    ("network: CONV\nnetwrk: CONV\n", 2, "unknown key 'netwrk'"),
])
def test_wrong_types_refused_with_line(tmp_path, text, line, words):
    msg = load(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'arch.yaml'}, line {line}"), msg
    assert words in msg


def test_duplicate_keys_refused(tmp_path):
    msg = load(tmp_path, "network: CONV\nclasses: 3\nclasses: 4\n")
    assert "line 3" in msg and "duplicate key 'classes' (first at line 2)" in msg
    msg = load(tmp_path, "network: CONV\nblocks:\n  b: CONV\n  b: RELU\n")
    assert "line 4" in msg and "duplicate key 'b'" in msg


@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['echo owned']",
    "!!python/name:os.system",
    "!!python/object:kblocks.common.errors.Span {}",
])
def test_only_safe_yaml(tmp_path, payload):
    marker = tmp_path / "owned"
    msg = load(tmp_path, f"network: CONV\nname: {payload.replace('echo owned', f'touch {marker}')}\n")
    assert "not valid YAML" in msg and "line 2" in msg
    assert not marker.exists()


def test_merge_keys_refused_clearly(tmp_path):
    msg = load(tmp_path, "network: CONV\nvars:\n  <<: {N: 2}\n")
    assert "line 3" in msg and "merge keys (<<) are not supported" in msg


def test_unreadable_path_is_a_config_error(tmp_path):
    folder = tmp_path / "arch.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        kblocks.compile(str(folder))


# --- architecture text: numbers the parser cannot hold ---------------------------------------------

def compile_error(text, **kw):
    kw.setdefault("input_shape", (8, 8, 3))
    with pytest.raises(KBlocksError) as info:
        kblocks.compile(text, **kw)
    return info.value


@pytest.mark.parametrize("text,col", [
    ("CONV(" + "9" * 5000 + ")", 6),          # int() refuses over 4,300 digits: was a ValueError
    ("CONV*" + "9" * 5000, 6),
    ("DROPOUT(1e999)", 9),                      # float overflow: was inf, printed back as a word
    ("LRN(alpha=-1e400)", 12),
])
def test_numbers_too_large_for_python_are_parse_errors(text, col):
    err = compile_error(text)
    assert type(err).__name__ == "ParseError" and "is too large" in err.message
    assert (err.span.line, err.span.column) == (1, col)


# --- expansion: nesting through blocks, repetition products, work ----------------------------------

def chain_blocks(n, body_of_last, brackets=0):
    """Blocks b0 -> b1 -> ... -> b{n-1}, each body wrapping the next call in ``brackets`` brackets."""
    blocks = {f"b{i}": {"body": "[" * brackets + f"@b{i + 1}" + "]" * brackets} for i in range(n - 1)}
    blocks[f"b{n - 1}"] = {"body": body_of_last}
    return blocks


@pytest.mark.parametrize("text,kw", [
    ("CONV" + "*1" * 2000, {}),                 # a suffix chain nests: was RecursionError
    ("CONV" + "?" * 2000, {}),
    ("[" * 60 + "CONV" + "]*1" * 60, {}),        # 60 brackets + 60 suffixes
    ("@b0", {"blocks": chain_blocks(30, "CONV", brackets=60)}),  # 30 blocks x 60 brackets
])
def test_nesting_counted_through_suffixes_and_blocks(text, kw):
    err = compile_error(text, **kw)
    assert isinstance(err, LimitError), repr(err)
    assert f"nests deeper than {limits.MAX_NESTING} levels" in err.message and err.span.line >= 1


def test_nesting_at_the_limit_still_compiles():
    for text in ("[" * 64 + "CONV" + "]" * 64, "CONV" + "*1" * 63, "(" * 32 + "CONV" + ")" * 32):
        kblocks.compile(text, input_shape=(8, 8, 3))


@pytest.mark.parametrize("text", [
    "[[[SKIP]*100]*100]*100",                     # a million SKIPs: was minutes of work
    "[[[CONV*0]*10000]*10000]*10000",             # 10^12 empty iterations: was a hang
    "[[(SKIP+SKIP)]*1000]*1000",
    "CONV" + "*3?" * 20,
])
def test_repetition_product_is_limited(text):
    err, lines = work_done(compile_error, text)
    assert isinstance(err, LimitError) and "nested repetitions make" in err.message
    assert f"{limits.MAX_REPEAT_PRODUCT:,}" in err.message and err.span.line == 1
    assert lines < 30_000  # refused before any copy is made (compiling 1,000 SKIPs is ~100,000)


@pytest.mark.parametrize("leaf", ["SKIP", "CONV*0", "[CONV]?*0"])
def test_block_fan_out_is_limited(leaf):
    """Four calls per body, 20 blocks deep: 4^20 calls without a single repetition or layer."""
    blocks = {f"b{i}": {"body": "-".join([f"@b{i + 1}"] * 4)} for i in range(19)}
    blocks["b19"] = {"body": leaf}
    err, lines = work_done(compile_error, "@b0", blocks=blocks)
    assert isinstance(err, LimitError) and f"more than {limits.MAX_EXPANDED_ITEMS:,} items" in err.message
    assert lines < 200 * limits.MAX_EXPANDED_ITEMS  # ~60 per item expanded, not 4^20 calls


def test_wide_branches_under_repetition_are_limited():
    err = compile_error("[(" + " | ".join(["SKIP"] * 200) + ")]*1000")
    assert isinstance(err, LimitError) and "items" in err.message


# --- argument values -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,words", [
    ("CONV(-0.0)", "filters of CONV must be at least 1, got 0"),      # was accepted as 0 filters
    ("CONV(-3.0)", "filters of CONV must be at least 1, got -3"),     # was accepted as -3 filters
    ("FC(0.0)", "units of FC must be at least 1"),
    ("CONV(8, dilation=99999999999)", "must be at most 2,147,483,647"),  # Keras sizes are 32-bit
    ("CONV(8, stride=[1, 4294967296])", "must be at most 2,147,483,647"),
    ("CONV(8, padding=3000000000)", "padding of CONV must be same, valid or a number of pixels"),
    ("RESHAPE([-1, -192])", "must be a list of positive whole numbers"),  # product matched 192
    ("RESHAPE([])", "must be a list of positive whole numbers"),          # a () shape, IndexError
    ("CONV(" + "9" * 200 + ")", "characters)"),                           # messages stay short
])
def test_argument_values_checked(text, words):
    err = compile_error(text)
    assert type(err).__name__ == "ArchitectureError" and words in err.message, err.message
    assert len(err.message) < 200


def test_integral_floats_still_accepted():
    g = kblocks.compile("CONV(16.0, 3)-FC(4.0)", input_shape=(8, 8, 3))
    assert g.nodes[0].get("filters") == 16 and g.nodes[-1].get("units") == 4


def test_null_yaml_default_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("network: CONV-GAP-FC(2)\ninput: [8, 8, 3]\ndefaults:\n  CONV: {filters: 4}\n")
    kblocks.compile(str(path))
    from kblocks.lang.expand import Expander
    from kblocks.lang.parser import parse

    with pytest.raises(KBlocksError, match="filters of CONV must be a whole number, got None"):
        Expander(defaults={"CONV": {"filters": None}}).expand(parse("CONV"))  # was None % 1


def test_many_optional_items_stay_linear():
    """Naming each optional item scanned every earlier name: 9,000 'RELU?' took 11 s. Twice the
    items is twice the work (lines of kblocks executed), not four times."""
    def lines(n):
        graph, count = work_done(kblocks.compile, "-".join(["RELU?"] * n), input_shape=(8,))
        assert len(graph.nodes) == n
        return count

    assert lines(2000) < 2.2 * lines(1000)
    assert len(kblocks.compile("-".join(["RELU?"] * 9000), input_shape=(8,)).nodes) == 9000


# --- tensor sizes: inputs and weights are tensors too ----------------------------------------------

@pytest.mark.parametrize("text,shape,words", [
    ("INPUT(100000,100000,3)-CONV", None, "the input has 30,000,000,000 elements per image"),
    ("CONV", (100000, 100000, 3), "the input 100000x100000x3 has"),
    ("CONV(8, kernel=100000, padding=same)", (8, 8, 3), "its weights have 240,000,000,008 elements"),
    ("FC(1000000)-FC(1000000)", (8,), "its weights have 1,000,001,000,000"),
    ("[FC(30000)]*20", (30000,), "more than 4,000,000,000 parameters"),
    ("FC(40000)", (40000,), "its weights have 1,600,040,000 elements"),
])
def test_input_and_weight_tensors_limited(text, shape, words):
    err = compile_error(text, input_shape=shape)
    assert isinstance(err, LimitError) and words in err.message, err.message


@pytest.mark.parametrize("shape", [(), ("a", 2), (8, 8, 0), (2 ** 40, 1)])
def test_bad_input_shapes_from_the_api(shape):
    compile_error("CONV-GAP-FC(2)", input_shape=shape)


# --- sources, canonical text, error context --------------------------------------------------------

def test_unusable_yaml_path_is_a_config_error():
    with pytest.raises(ConfigError, match="File name too long"):  # was OSError from Path.exists
        kblocks.compile("x" * 5000 + ".yaml")
    with pytest.raises(ConfigError):
        kblocks.compile("a\x00b.yaml")


def test_canonical_text_quotes_strings_that_hold_a_quote():
    graph = kblocks.compile("CONV(8, name='a\"b')", input_shape=(8, 8, 3))
    text = graph.canonical_text()  # was name="a"b", which does not parse
    assert "name='a\"b'" in text and kblocks.compile(text).canonical_text() == text


def test_caret_context_counts_lines_as_the_parser_does():
    # \x0c is whitespace to the grammar but a line break to str.splitlines()
    err = compile_error("CONV\x0c-RELUU-POOL")
    assert (err.span.line, err.span.column) == (1, 7)
    snippet, caret = err.context().split("\n")  # it was the line "CONV", with no caret under RELUU
    assert snippet == "  CONV\x0c-RELUU-POOL" and caret == " " * 8 + "^" * 5


@pytest.mark.parametrize("value", ["{a: 1}", "null", ".inf", "[1, {b: 2}]", "2001-01-01", "!!binary aGk="])
def test_yaml_values_the_language_cannot_write_are_refused(tmp_path, value):
    """They reached the graph and crashed its canonical text (TypeError: cannot format)."""
    for text, line in ((f"network: CONV-GAP-FC(2)\ninput: [8, 8, 3]\ndefaults:\n  CONV: "
                        f"{{kernel_initializer: {value}}}\n", 4),
                       (f"network: '@b'\ninput: [8, 8, 3]\nblocks:\n  b:\n    params: {{f: {value}}}\n"
                        f"    body: CONV(8, kernel_initializer=$f)\n", 4),
                       (f"network: CONV\ninput: [8, 8, 3]\nvars:\n  x: {value}\n", 4)):
        if value == "null" and "params" in text:
            continue  # a null parameter default means 'required'
        msg = load(tmp_path, text)
        assert f"line {line}:" in msg


def test_positional_after_keyword_names_the_place():
    err = compile_error("CONV(8, pad=2, 3)")  # a bare number has no position: was no line at all
    assert (err.span.line, err.span.column) == (1, 5) and "positional argument follows" in err.message


def test_parameter_inside_a_list_argument_is_the_callers():
    # '$f' in a list given to a block was resolved inside the block, to the list itself: recursion
    err = compile_error("INPUT(32,32,3)-@bottleneck([4, $f], false)", input_shape=None)
    assert "$f is not a parameter of the network" in err.message and err.span.column == 32
    blocks = {"outer": {"params": {"f": 8}, "body": "@inner([$f, 2])"},
              "inner": {"params": {"k": None}, "body": "CONV(4, kernel=$k)"}}
    graph = kblocks.compile("@outer(3)", input_shape=(8, 8, 3), blocks=blocks)
    assert graph.nodes[0].get("kernel") == (3, 2)


def test_end_of_text_position_counts_lines_as_the_parser_does():
    err = compile_error("CONV(8, stride=\r2")  # '\r' ended a line for splitlines(): line 2 of 1
    assert (err.span.line, err.span.column) == (1, 18) and "never closed" in err.message


def test_yaml_input_over_the_tensor_limit_names_its_line(tmp_path):
    msg = load(tmp_path, "network: CONV\ninput: [1000000, 1000000, 3]\n")
    assert "line 2" in msg and "3,000,000,000,000 elements" in msg


def test_empty_aux_tap_round_trips():
    graph = kblocks.compile("INPUT(64, 3)-AUX[CONV3D*0]-SIGMOID")  # printed AUX[], which does not parse
    text = graph.canonical_text()
    assert "AUX[SKIP]" in text and kblocks.compile(text).canonical_text() == text
    assert len(graph.outputs) == 2


# --- every documented limit holds before any Keras object is made -----------------------------------

FAN_OUT = {f"b{i}": {"body": "-".join([f"@b{i + 1}"] * 4)} for i in range(19)}
FAN_OUT["b19"] = {"body": "SKIP"}
BLOCK_CHAIN = {f"c{i}": {"body": f"@c{i + 1}"} for i in range(40)}
BLOCK_CHAIN["c40"] = {"body": "RELU"}
LIMIT_CASES = {  # limit -> (text, compile keywords, words of the message)
    "text size": ("CONV-" * 25_000 + "CONV", {}, "the limit is 100,000"),
    "bracket nesting": ("[" * 65 + "CONV" + "]" * 65, {}, "nest deeper than 64 levels"),
    "nesting through suffixes": ("CONV" + "*1" * 65, {}, "nests deeper than 64 levels"),
    "one repetition count": ("CONV*10001", {}, "over the limit of 10,000"),
    "layers after expansion": ("[RELU-RELU]*5001", {}, "more than 10,000 layers"),
    "repetition product": ("[[[SKIP]*100]*100]*100", {}, "copies of this item"),
    "expanded items": ("@b0", {"blocks": FAN_OUT}, "more than 100,000 items"),
    "named-block depth": ("@c0", {"blocks": BLOCK_CHAIN}, "blocks nest deeper than 32"),
    "activation tensor": ("CONV(100000)-CONV(100000)", {"input_shape": (512, 512, 3)},
                          "elements per image"),
    "weight tensor": ("CONV(8, kernel=100000, padding=same)", {}, "its weights have"),
    "input tensor": ("INPUT(100000, 100000, 3)-CONV", {"input_shape": None}, "the input has"),
    "whole-number argument": ("FC(4294967296)", {}, "at most 2,147,483,647"),
}


def test_limits_hold_without_importing_keras(tmp_path):
    """In a fresh process: each limit is a LimitError (or ArchitectureError for an argument) and
    kblocks.compile never imported Keras, so no Keras object can have been made."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    script = tmp_path / "limits.py"
    script.write_text(f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import kblocks
from tests_limits import LIMIT_CASES
out = {{}}
for name, (text, kw, words) in LIMIT_CASES.items():
    kw = dict(kw)
    kw.setdefault("input_shape", (8, 8, 3))
    try:
        kblocks.compile(text, **kw)
        out[name] = "compiled"
    except kblocks.KBlocksError as err:
        out[name] = [type(err).__name__, str(err)]
out["keras imported"] = "keras" in sys.modules
print(json.dumps(out))
""")
    (tmp_path / "tests_limits.py").write_text(
        "FAN_OUT = " + repr(FAN_OUT) + "\nBLOCK_CHAIN = " + repr(BLOCK_CHAIN) +
        "\nLIMIT_CASES = " + repr(LIMIT_CASES) + "\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out.pop("keras imported") is False
    for name, (_text, _kw, words) in LIMIT_CASES.items():
        kind, msg = out[name]
        assert words in msg, (name, msg)
        assert kind == ("ArchitectureError" if name == "whole-number argument" else "LimitError"), name


@pytest.mark.parametrize("name", sorted(LIMIT_CASES))
def test_build_stops_at_each_limit_before_emitting(monkeypatch, name):
    import kblocks.lang.emit

    def no_keras(*args, **kwargs):
        raise AssertionError("a Keras model was being made")

    monkeypatch.setattr(kblocks.lang.emit, "emit", no_keras)
    text, kw, words = LIMIT_CASES[name]
    kw = dict(kw)
    kw.setdefault("input_shape", (8, 8, 3))
    with pytest.raises(KBlocksError, match=re.escape(words)):
        kblocks.build(text, **kw)

"""Errors name the place, what was expected and how to fix it (DSL section 7); the CLI exits 2."""
import subprocess
import sys

import pytest

import kblocks
from kblocks.lang import limits
from kblocks.common.errors import ArchitectureError, LimitError, ParseError


def err(text, **kw):
    with pytest.raises(kblocks.KBlocksError) as info:
        kblocks.compile(text, **kw)
    return info.value, str(info.value)


def test_unbalanced_brackets():
    e, msg = err("[[CONV(32)-RELU]*2-POOL*3", input_shape=(32, 32, 3))
    assert isinstance(e, ParseError)
    assert "'[' opened at column 1 is never closed" in msg and "add ']'" in msg
    e, msg = err("CONV(32))-RELU", input_shape=(32, 32, 3))
    assert "column 9" in msg and "nothing open to close" in msg


def test_unknown_layer_suggests():
    e, msg = err("CONV(32)-RELUU-POOL", input_shape=(32, 32, 3))
    assert isinstance(e, ArchitectureError)
    assert "unknown layer 'RELUU'" in msg and "column 10" in msg and "did you mean RELU" in msg
    assert "^^^^^" in msg  # the caret line under the word


def test_wrong_argument_name_and_type():
    _, msg = err("CONV(32, strid=2)", input_shape=(8, 8, 3))
    assert "no argument 'strid'" in msg and "did you mean stride" in msg
    _, msg = err("CONV(thirty)", input_shape=(8, 8, 3))
    assert "unbound variable 'thirty'" in msg
    _, msg = err("CONV(32, padding=sideways)", input_shape=(8, 8, 3))
    assert "padding of CONV must be same, valid or a number of pixels" in msg
    _, msg = err("DROPOUT(1.5)", input_shape=(8,))
    assert "rate of DROPOUT must be in [0, 1)" in msg


def test_unbound_variable_names_it():
    _, msg = err("[[CONV-RELU]*N-POOL?]*M-FC(10)", input_shape=(32, 32, 3), N=2)
    assert "unbound variable 'M'" in msg and "--set M=" in msg


def test_collapsing_shape_names_layer_position_and_formula():
    _, msg = err("INPUT(32,32,3)-[CONV(8)-POOL]*6")
    assert msg.startswith("POOL at line 1, column")
    assert "input 1x1 is smaller than the 2x2 window (output would be 0x0 after 6 pools)" in msg


def test_fc_without_units_or_classes():
    _, msg = err("CONV(8)-GAP-FC", input_shape=(8, 8, 3))
    assert "the last FC has no units and no classes were given" in msg and "classes" in msg


def test_absurd_sizes_refused_before_keras():
    e, msg = err("CONV*100000", input_shape=(8, 8, 3))
    assert isinstance(e, LimitError) and f"{limits.MAX_REPEAT:,}" in msg
    e, msg = err("[[[CONV]*100]*100]*100", input_shape=(8, 8, 3))
    assert isinstance(e, LimitError) and "more than" in msg
    e, msg = err("CONV(100000)-CONV(100000)", input_shape=(512, 512, 3))
    assert isinstance(e, LimitError) and "elements per image" in msg


def test_branch_shapes_must_agree():
    _, msg = err("(CONV(8, stride=2) | CONV(8))", input_shape=(8, 8, 3))
    assert "must agree except in channels" in msg


def test_mixed_merge_operators():
    e, msg = err("(CONV | CONV + CONV)", input_shape=(8, 8, 3))
    assert isinstance(e, ParseError) and "mix merge operators" in msg


def test_placeholder_default_and_block_errors():
    # placeholders take their defaults in a fixed build
    g = kblocks.compile("CONV({f: 16|32})-FC({u: 8..64 step 8})", input_shape=(8, 8, 3))
    assert g.nodes[0].get("filters") == 16 and g.nodes[-1].get("units") == 8
    _, msg = err("@nosuchblock(3)", input_shape=(8, 8, 3))
    assert "unknown block @nosuchblock" in msg


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "kblocks", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args", [
    ["summary", "[[CONV(32)-RELU]*2-POOL*3", "--input-shape", "32,32,3"],
    ["summary", "CONV-RELUU", "--input-shape", "32,32,3"],
    ["summary", "CONV-FC", "--input-shape", "32,32"],
    ["summary", "CONV*100000", "--input-shape", "8,8,3"],
    ["summary", "missing.yaml"],
    ["summary", "CONV", "--input-shape", "a,b"],
    ["build", "CONV-GAP-FC(2)", "--input-shape", "8,8,3", "-o", "model.h5"],
])
def test_cli_bad_input_exits_2_without_traceback(args, tmp_path):
    r = subprocess.run([sys.executable, "-m", "kblocks", *args], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: "), r.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written

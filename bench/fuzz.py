"""Fuzz kblocks' compiler with hostile architecture texts and YAML files (issue 8).

    python bench/fuzz.py                       # 100,000 cases, seed 0
    python bench/fuzz.py --cases 5000 --seed 7 --json fuzz.json

Each case is an architecture text or a YAML document, either *generated* (random programs of the
language, valid or nearly so) or *mutated* from a valid one (the zoo's network strings and files,
the examples of the docs) by inserting, deleting, replacing and duplicating characters and tokens,
huge numbers, unicode, NUL bytes, deep nesting, anchors/aliases, duplicate keys and wrong types.
Every case goes through ``kblocks.compile`` + ``kblocks.analyse`` (never Keras emission) and the
canonical text of a success is compiled again. The property: every failure is a
``kblocks.common.errors.KBlocksError`` (errors about text carry a line and column that lie inside the
text), no other exception, no case slower than ``--time-limit`` seconds, no case that grows the
peak memory of the process by more than ``--memory-limit`` MB.

The same generators and checks drive ``tests/test_fuzz.py`` (through hypothesis). The script
prints a progress bar, a summary of the error classes and the slowest case, and one JSON line.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import re
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import yaml  # noqa: E402

# --- the corpus: valid texts and files -------------------------------------------------------------

ARCH_DIR = ROOT / "kblocks" / "zoo" / "architectures"

DOC_TEXTS = [
    "INPUT(32,32,3) -> [[CONV(32) -> RELU]*2 -> POOL]*3 -> [FC(256) -> RELU]*2 -> FC(10) -> SOFTMAX",
    "[[CONV(32)-RELU]*2-POOL]*3-[FC(256)-RELU]*2-FC(10)-SOFTMAX",
    "[[CONV-RELU]*N-POOL?]*M-[FC-RELU]*K-FC",
    "INPUT(16,16,64)-(SKIP + CONV(128,3,stride=2)-BN-RELU-CONV(128,3)-BN)-RELU",
    "INPUT(16,16,64)-(SKIP | BN-RELU-CONV(128,1)-BN-RELU-CONV(32,3))",
    "INPUT(28,28,192)-(CONV(64,1)-RELU | CONV(96,1)-RELU-CONV(128,3)-RELU | CONV(16,1)-RELU-"
    "CONV(32,5)-RELU | POOL(3,1,padding=same)-CONV(32,1)-RELU)",
    "INPUT(32,32,3)-[[CONV({f#: 32|64})-RELU]*{n#: 1..3}-POOL?]*{stages: 1..4}-FC(10)",
    "INPUT(32,32,3)-CONV(64, kernel_initializer=he_normal, use_bias=false)-GAP-FC({u: 64..512 step 64})"
    "-DROPOUT({r: 0.1..0.5})-FC(10)",
    "INPUT(32,32,3)-CONV(16,3,padding=1)-LRELU(0.1)-SEPCONV(32)-DWCONV-CONVT(8,2,stride=2)"
    "-ZEROPAD(2)-UPSAMPLE-AVGPOOL-GN(8)-LN-LRN-PRELU-ELU-SELU-GELU-SWISH-TANH-SDROPOUT(0.1)"
    "-GMP-FC(10)-SIGMOID",
    "INPUT(16,16,3)-CONV(8)-AUX[GAP-FC(4)-SOFTMAX]-POOL-FLATTEN-FC(4)-SOFTMAX",
    "INPUT(16,16,64)-@se(64, 4)-@basic(128, stride=2)-@bottleneck(32, 128, stride=2, proj=1)",
    "INPUT(8,8,3)-(CONV(8)-GAP & SKIP)-CONV1D(4)",
    "INPUT(100, 8)-CONV1D(16, 5, stride=2)-RELU-FLATTEN-FC(2)",
    "INPUT(8,8,8,2)-CONV3D(4, [1,3,3])-GAP",
    "CONV(32, 3, 1, same, 1, 1)-POOL(2, 2, valid)-FC(10, use_bias=false)-SOFTMAX",
    "INPUT(32, 32, 3)-[CONV(64)-BN-RELU]*60-GAP-FC(10)",
    "INPUT(32,32,3)-[CONV(8)-POOL?{pool}]*2-RESHAPE([8, 64])-FC(3)",
]


def _zoo_files():
    return sorted(ARCH_DIR.glob("*.yaml"))


def zoo_networks() -> list:
    """The ``network`` strings of the zoo's files (zoo-only blocks then fail as unknown blocks)."""
    out = []
    for path in _zoo_files():
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("network"), str):
            out.append(data["network"])
    return out


def zoo_documents() -> list:
    return [p.read_text() for p in _zoo_files()]


def seed_texts() -> list:
    return DOC_TEXTS + zoo_networks()


SMALL_YAML = """\
name: small
input: [16, 16, 3]
classes: 4
vars: {N: 2, W: 8}
defaults:
  CONV: {use_bias: false}
blocks:
  pair:
    params: {f: 8, n: 2}
    body: "[CONV($f)-RELU]*$n-POOL"
network: >
  @pair($W, N) - @pair(16) - GAP - FC(classes) - SOFTMAX
"""

# --- mutation of text ------------------------------------------------------------------------------

TOKENS = [
    "CONV", "CONV(32)", "CONV(8, 3, stride=2)", "POOL", "POOL(3, 2, padding=same)", "FC", "FC(10)",
    "RELU", "SKIP", "SKIP(proj=false)", "GAP", "BN", "LN", "GN(4)", "DROPOUT(0.5)", "DWCONV",
    "CONVT(4, 2, stride=2)", "UPSAMPLE(2)", "ZEROPAD([1, 2])", "FLATTEN", "SOFTMAX", "CONV1D",
    "CONV3D", "RESHAPE([2, -2])", "RESHAPE([])", "INPUT(32,32,3)", "INPUT(1)", "INPUT(0,0)",
    "-", "->", "*", "*2", "*0", "*10000", "*N", "*$n", "?", "?{x}", "(", ")", "[", "]", "{", "}",
    "|", "+", "&", ",", "=", "@", "$", "$f", "..", ":", "AUX[", "AUX[FC(2)]", "@basic(", "@basic(64)",
    "@inception(", "@se(8, 2)", "@nope", "{f: 32|64}", "{n: 1..3}", "{n#: 0..2}",
    "{lr: 1e-4..1e-2 log}", "{u: 8..64 step 8}", "{x: a|b}", "stride=2", "padding=same", "padding=3",
    "padding=-1", "kernel=[3,5]", "kernel=[]", "dilation=2", "groups=3", "use_bias=true",
    "kernel_initializer=he_normal", "name=\"x\"", "epsilon=1e-3", "1e-4", "-1", "0", "0.0", "-0.5",
    "99999999999999999999", "1" + "0" * 40, "9" * 5000, "1e999", "1e-999", ".5", "2.", "\"", "'",
    "'a\"b'", "classes", "N", "#", "\n", " ", "\t", "\r\n", "\x00", "\x0b", "\x0c", "\x1c", "é",
    "\u00a0", "\u2028", "\ufeff", "\U0001d54f", "\ud7ff", "ＣＯＮＶ", "Ⅻ", "𝟗", "٣", "true", "false",
    "AS(a)", "FROM(a)", "AS(e#)", "FROM(e_1)", "FROM($s)", "CROP", "ZERO(2)", "HIGHWAY(8)",
]
NUMBERS = ["0", "1", "-1", "2", "3", "7", "64", "1000", "10000", "10001", "65536", "2147483647",
           "2147483648", "99999999999999999999", "1" + "0" * 30, "1" + "0" * 400, "1e308", "1e309",
           "0.0", "1e-320", "-0.0", "0.9999999999999999", "1.0"]


def mutate_text(rng: random.Random, text: str, steps: int | None = None) -> str:
    """Apply 1..4 random edits to ``text``."""
    for _ in range(steps if steps is not None else rng.randint(1, 4)):
        text = _edit(rng, text)
        if len(text) > 300_000:
            text = text[:300_000]
    return text


def _pos(rng, text):
    return rng.randint(0, len(text))


def _edit(rng: random.Random, text: str) -> str:
    kind = rng.randrange(14)
    n = len(text)
    if kind == 0:  # insert a token
        p = _pos(rng, text)
        return text[:p] + rng.choice(TOKENS) + text[p:]
    if kind == 1:  # insert a random character (any code point but surrogates)
        p = _pos(rng, text)
        ch = chr(rng.choice([rng.randrange(0, 128), rng.randrange(128, 0xD800),
                             rng.randrange(0xE000, 0x110000)]))
        return text[:p] + ch + text[p:]
    if kind == 2 and n:  # delete a range
        a = rng.randrange(n)
        b = min(n, a + rng.choice([1, 1, 2, 5, 20, n]))
        return text[:a] + text[b:]
    if kind == 3 and n:  # replace a range with a token
        a = rng.randrange(n)
        b = min(n, a + rng.randint(1, 8))
        return text[:a] + rng.choice(TOKENS) + text[b:]
    if kind == 4 and n:  # duplicate a slice
        a = rng.randrange(n)
        b = min(n, a + rng.randint(1, 40))
        times = rng.choice([1, 2, 10, 100])
        return text[:b] + text[a:b] * times + text[b:]
    if kind == 5:  # replace a number with an extreme one
        nums = list(re.finditer(r"\d+(\.\d+)?([eE][-+]?\d+)?", text))
        if nums:
            m = rng.choice(nums)
            return text[:m.start()] + rng.choice(NUMBERS) + text[m.end():]
        return text + "*" + rng.choice(NUMBERS)
    if kind == 6:  # wrap in brackets, possibly very deep
        depth = rng.choice([1, 2, 10, 63, 64, 65, 200, 5000])
        opener = rng.choice(["[", "(", "AUX["])
        closer = "]" if opener != "(" else ")"
        a = _pos(rng, text)
        b = rng.randint(a, n)
        return text[:a] + opener * depth + text[a:b] + closer * depth + text[b:]
    if kind == 7 and n:  # duplicate or drop one bracket
        idx = [i for i, c in enumerate(text) if c in "()[]{}"]
        if idx:
            i = rng.choice(idx)
            return text[:i] + (text[i] * rng.choice([0, 2, 3])) + text[i + 1:]
        return text
    if kind == 8:  # suffix chains: *2*2*2... or ????
        p = _pos(rng, text)
        unit = rng.choice(["*2", "*1", "*0", "?", "*10000", "*3?"])
        return text[:p] + unit * rng.choice([1, 5, 30, 64, 65, 1000, 20000]) + text[p:]
    if kind == 9 and n:  # truncate
        return text[:rng.randrange(n)]
    if kind == 10:  # whole-text blow-up: repeat with separators (text size limit)
        times = rng.choice([2, 10, 1000, 20000])
        return "-".join([text] * times) if n * times < 2_000_000 else text
    if kind == 11 and n:  # swap two slices
        a, b = sorted((rng.randrange(n), rng.randrange(n)))
        c = min(n, b + rng.randint(1, 20))
        return text[:a] + text[b:c] + text[a:b] + text[c:]
    if kind == 12:  # case changes and separators
        return rng.choice([text.lower(), text.upper(), text.swapcase(), text.replace("-", "->"),
                           text.replace("-", " "), text.replace(",", ""), text.replace(" ", "\n")])
    # insert a nested repetition product
    p = _pos(rng, text)
    inner = rng.choice(["SKIP", "CONV*0", "RELU", "[]", "POOL?", "(SKIP+SKIP)"])
    levels = rng.randint(2, 6)
    count = rng.choice([10, 100, 1000, 10000])
    return text[:p] + "[" * levels + inner + ("]*" + str(count)) * levels + text[p:]


# --- generated programs ----------------------------------------------------------------------------

LAYERS = ["CONV", "SEPCONV", "DWCONV", "CONVT", "POOL", "AVGPOOL", "GAP", "GMP", "FC", "FLATTEN",
          "DROPOUT", "SDROPOUT", "BN", "LN", "GN", "LRN", "RELU", "LRELU", "PRELU", "ELU", "SELU",
          "GELU", "SWISH", "SIGMOID", "TANH", "SOFTMAX", "LINEAR", "ZEROPAD", "UPSAMPLE", "SKIP",
          "CONV1D", "CONV3D", "RESHAPE", "INPUT", "IDENTITY", "MAXPOOL", "DENSE", "FOO",
          "ZERO", "CROP", "HIGHWAY", "AS", "FROM"]
KEYS = ["filters", "kernel", "stride", "padding", "dilation", "groups", "use_bias", "units", "rate",
        "size", "pad", "proj", "alpha", "multiplier", "shape", "center", "scale", "k", "beta",
        "kernel_initializer", "name", "epsilon", "momentum", "activation", "trainable", "dtype",
        "bogus", "strides", "kernel_size"]
BLOCKS = ["basic", "bottleneck", "se", "se_bottleneck", "resnext", "inception", "dense_block",
          "transition", "nin", "mbconv", "fire", "nope"]


def _number(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        return str(rng.choice([0, 1, 1, 2, 2, 3, 3, 4, 5, 7, 8, 16, 32, 64]))
    if r < 0.8:
        return rng.choice(NUMBERS)
    return repr(round(rng.uniform(-2, 2), rng.randint(0, 4)))


def _value(rng: random.Random, depth: int) -> str:
    r = rng.random()
    if r < 0.55:
        return _number(rng)
    if r < 0.7:
        return rng.choice(["same", "valid", "he_normal", "true", "false", "N", "classes", "$f", "x"])
    if r < 0.8:
        return rng.choice(['"same"', "'valid'", '"a b"', '""'])
    if r < 0.92 and depth < 3:
        return "[" + ", ".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 4))) + "]"
    return _placeholder(rng)


def _placeholder(rng: random.Random) -> str:
    name = rng.choice(["f", "n#", "u", "x#", "#"])
    if rng.random() < 0.5:
        return "{" + name + ": " + "|".join(_number(rng) for _ in range(rng.randint(1, 3))) + "}"
    lo, hi = _number(rng), _number(rng)
    tail = rng.choice(["", " step " + _number(rng), " log"])
    return "{" + name + ": " + lo + ".." + hi + tail + "}"


def _layer(rng: random.Random) -> str:
    name = rng.choice(LAYERS)
    if rng.random() < 0.15:
        name = name.lower()
    if rng.random() < 0.5:
        return name
    args = [_value(rng, 0) for _ in range(rng.randint(0, 3))]
    args += [f"{rng.choice(KEYS)}={_value(rng, 0)}" for _ in range(rng.randint(0, 2))]
    return f"{name}({', '.join(args)})"


def _item(rng: random.Random, depth: int) -> str:
    r = rng.random()
    if depth > 4 or r < 0.55:
        out = _layer(rng)
    elif r < 0.7:
        out = "[" + _seq(rng, depth + 1) + "]"
    elif r < 0.85:
        op = rng.choice(["|", "+", "&"])
        out = "(" + f" {op} ".join(_seq(rng, depth + 1) for _ in range(rng.randint(1, 3))) + ")"
    elif r < 0.92:
        block = rng.choice(BLOCKS)
        args = ", ".join(_value(rng, 0) for _ in range(rng.randint(0, 3)))
        out = f"@{block}({args})" if rng.random() < 0.8 else f"@{block}"
    else:
        out = "AUX[" + _seq(rng, depth + 1) + "]"
    while rng.random() < 0.25:
        out += rng.choice(["*" + _number(rng), "?", "*N", "*" + _placeholder(rng), "?{opt}"])
    return out


def _seq(rng: random.Random, depth: int) -> str:
    return rng.choice(["-", " - ", "->", " -> "]).join(_item(rng, depth)
                                                       for _ in range(rng.randint(1, 5)))


def generate_text(rng: random.Random) -> str:
    """A random program of the language: valid or nearly so."""
    head = rng.choice(["", "INPUT(32,32,3)-", "INPUT(8,8,3) - ", "INPUT(16)-", "INPUT(4,4,4,4)-",
                       "INPUT(64, 3)-"])
    return head + _seq(rng, 0)


# --- YAML documents --------------------------------------------------------------------------------

YAML_TOKENS = [": ", ":", "- ", "-", "&a ", "*a", "<<: *a", "!!python/object/apply:os.system ['true']",
               "!!binary aGk=", "!!float", "!!str", "!foo", "? ", "|", ">", "{", "}", "[", "]", ",",
               "'", '"', "#", "\t", "\n", "\n  ", "  ", "~", "null", ".inf", ".nan", "0x10", "1e999",
               "yes", "no", "on", "2001-01-01", "\x00", "\ufeff", "é", "%YAML 1.1\n", "---\n",
               "...\n", "network: CONV", "classes: 3", "input: [8, 8, 3]", "vars: {N: 2}"]

WRONG_VALUES = [None, 0, -1, 1, 2 ** 64, 10 ** 40, 1.5, float("inf"), True, "", "x", "CONV",
                [], [1], [0, 0, 0], [10 ** 6, 10 ** 6, 3], ["a"], {}, {"a": 1}, {"body": None},
                {"params": [], "body": "CONV"}, [[1, 2], [3]], "@basic(" * 3, "\x00"]


def mutate_yaml(rng: random.Random, doc: str) -> str:
    """A broken or hostile variant of a valid architecture file."""
    kind = rng.randrange(9)
    if kind == 0:  # character and token edits
        out = doc
        for _ in range(rng.randint(1, 4)):
            p = _pos(rng, out)
            r = rng.random()
            if r < 0.5:
                out = out[:p] + rng.choice(YAML_TOKENS) + out[p:]
            elif r < 0.8 and out:
                out = out[:p] + out[p + rng.randint(1, 10):]
            else:
                out = out[:p] + chr(rng.randrange(1, 0xD7FF)) + out[p:]
        return out
    try:
        data = yaml.safe_load(doc)
    except yaml.YAMLError:
        return doc
    if not isinstance(data, dict):
        return doc
    if kind == 1:  # a key gets a value of the wrong type
        key = rng.choice(list(data) + ["vars", "blocks", "defaults", "input", "classes", "name"])
        data[key] = rng.choice(WRONG_VALUES)
        return yaml.safe_dump(data, allow_unicode=True)
    if kind == 2:  # inside blocks / vars / defaults
        section = rng.choice(["blocks", "vars", "defaults"])
        sub = data.get(section)
        if not isinstance(sub, dict) or not sub:
            sub = {"x": "CONV"}
        key = rng.choice(list(sub) + [None, 1, "bad name", "CONV", "ok"])
        sub[key] = rng.choice(WRONG_VALUES + [{"body": "CONV($f)", "params": {"f": rng.choice(
            WRONG_VALUES)}}, {"use_bias": rng.choice(WRONG_VALUES)}])
        data[section] = sub
        return yaml.safe_dump(data, allow_unicode=True)
    if kind == 3:  # the network string mutated
        if isinstance(data.get("network"), str):
            data["network"] = mutate_text(rng, data["network"], rng.randint(1, 3))
        return yaml.safe_dump(data, allow_unicode=True, width=10 ** 6)
    if kind == 4:  # a duplicate key
        lines = doc.splitlines()
        keys = [ln for ln in lines if re.match(r"^[A-Za-z_]+:", ln)]
        if keys:
            dup = rng.choice(keys)
            at = rng.randint(0, len(lines))
            lines.insert(at, dup.split(":")[0] + ": 3")
        return "\n".join(lines) + "\n"
    if kind == 5:  # alias bombs (billion laughs), recursive aliases
        return _alias_bomb(rng)
    if kind == 6:  # deep nesting
        depth = rng.choice([10, 100, 1000, 50_000])
        key = rng.choice(["network", "vars", "input", "blocks", "name"])
        return f"{key}: " + "[" * depth + "1" + "]" * depth + "\n" + rng.choice(["", "network: CONV\n"])
    if kind == 7:  # too big
        return doc + "#" + "x" * rng.choice([10, 1_000_001]) + "\n"
    # an unknown top-level key
    data[rng.choice(["netwrk", "Network", "layers", "imports", "1"])] = 1
    return yaml.safe_dump(data, allow_unicode=True)


def _alias_bomb(rng: random.Random) -> str:
    """Billion laughs (the chain hides under the free-form 'reference' key, the bomb goes off
    under another key), self-referring aliases, and aliases into blocks and defaults."""
    r = rng.randrange(5)
    if r <= 1:
        width, levels = rng.choice([(2, 5), (9, 9), (10, 12), (3, 30)])
        lines = ["network: CONV(8)-GAP-FC(2)", "reference:", '  a0: &a0 ["CONV"]']
        for i in range(1, levels):
            lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
        key = rng.choice(["vars", "input", "classes", "name", "defaults", "network", "blocks", "doc"])
        lines.append(f"{key}: *a{levels - 1}")
        return "\n".join(lines) + "\n"
    if r == 2:
        return rng.choice(["input: &x [1, *x]\nnetwork: CONV\n", "network: &n [*n]\n",
                           "vars: &v {N: *v}\nnetwork: CONV*N\n"])
    if r == 3:
        return "network: '@x'\nblocks: &b {x: {body: CONV, params: {f: *b}}}\n"
    return "network: CONV\ndefaults: &d {CONV: {kernel_initializer: *d}}\n"


def generate_yaml(rng: random.Random) -> str:
    base = rng.choice([SMALL_YAML] + zoo_documents()[:3])
    return mutate_yaml(rng, base)


# --- the checks ------------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the alarm: a case ran past its time bound (BaseException, so no code swallows it)."""


@dataclass
class Outcome:
    kind: str          # "ok" or the KBlocksError subclass name
    seconds: float
    error: str = ""


@dataclass
class Failure:
    case: str
    problem: str
    detail: str = ""
    options: dict = field(default_factory=dict)
    kind: str = "text"


@dataclass
class Tally:
    cases: int = 0
    classes: collections.Counter = field(default_factory=collections.Counter)
    failures: list = field(default_factory=list)
    slowest: tuple = (0.0, "")
    max_rss_growth_mb: float = 0.0
    memory_case: str = ""


def _alarm(seconds):
    def handler(signum, frame):
        raise CaseTimeout(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return old


def _disarm(old):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


WHOLE_TEXT_MESSAGES = ("the architecture text is empty", "characters long; the limit is",
                       "no input shape", "input_shape=", "the input shape must be", "the input ")


def check_error_position(err, text: str | None) -> str | None:
    """An error about the text names a line and column inside it; None when all is well."""
    from kblocks.common.errors import ArchitectureError, ParseError

    if not isinstance(err, (ParseError, ArchitectureError)):
        return None
    span = err.span
    if span is None or not span.line:
        if any(m in err.message for m in WHOLE_TEXT_MESSAGES):
            return None
        return "no line/column in an error about the text"
    if err.text is not None:
        lines = err.text.split("\n")
        if not 1 <= span.line <= len(lines):
            return f"line {span.line} outside the text ({len(lines)} lines)"
        if not 1 <= span.column <= len(lines[span.line - 1]) + 1:
            return f"column {span.column} outside line {span.line}"
    return None


def run_text(text: str, *, input_shape=None, classes=None, recompile=True, **variables) -> Outcome:
    """Compile and analyse one text; raise AssertionError-like failures as exceptions."""
    import kblocks
    from kblocks.common.errors import KBlocksError

    t0 = time.perf_counter()
    try:
        graph = kblocks.compile(text, input_shape=input_shape, classes=classes, variables=variables)
        kblocks.analyse(graph)
        canonical = graph.canonical_text()
    except KBlocksError as err:
        problem = check_error_position(err, text)
        if problem:
            raise FuzzFailure(problem, err) from err
        str(err)  # renders
        return Outcome(type(err).__name__, time.perf_counter() - t0, err.message[:80])
    from kblocks.lang import limits

    if recompile and len(canonical) > limits.MAX_TEXT_CHARS:
        # a valid network of up to 10,000 layers written out can pass the text limit, which is for
        # texts people write: such a canonical text is not read back (docs/hardening.md)
        return Outcome("ok, canonical text over the text limit", time.perf_counter() - t0)
    if recompile:
        try:
            again = kblocks.compile(canonical, classes=classes)  # INPUT(...) is in the text
        except KBlocksError as err:
            raise FuzzFailure(f"the canonical text of a valid network does not compile: "
                              f"{canonical[:200]!r}", err) from err
        if again.canonical_text() != canonical:
            raise FuzzFailure("the canonical text is not a fixed point", None)
    return Outcome("ok", time.perf_counter() - t0)


def run_yaml(doc: str, folder: Path) -> Outcome:
    """Write ``doc`` to a file and compile it (as ``kblocks summary FILE.yaml`` does)."""
    import kblocks
    from kblocks.common.errors import KBlocksError

    path = folder / "fuzz.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogatepass")
    t0 = time.perf_counter()
    try:
        graph = kblocks.compile(str(path))
        kblocks.analyse(graph)
        graph.canonical_text()
    except KBlocksError as err:
        problem = check_error_position(err, None)
        if problem:
            raise FuzzFailure(problem, err) from err
        str(err)
        return Outcome(type(err).__name__, time.perf_counter() - t0, err.message[:80])
    return Outcome("ok", time.perf_counter() - t0)


class FuzzFailure(AssertionError):
    def __init__(self, problem, err):
        super().__init__(f"{problem}: {err!r}"[:2000])
        self.problem = problem
        self.err = err


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the driver ------------------------------------------------------------------------------------

def warm_up():
    """Import once what some cases import (a keyword missing from kblocks' table makes the expander
    read the installed Keras' signatures): that one-off import is not a slow case."""
    from kblocks.lang import expand
    from kblocks.lang.vocab import VOCAB

    for spec in VOCAB:
        for name in ("_keras_keywords", "_installed_keras_keywords"):
            fn = getattr(expand, name, None)
            if fn is not None:
                fn(spec)


def _dump(path: Path, kind: str, case: str, options: dict):
    path.write_text(json.dumps({"kind": kind, "case": case, "options": options}), encoding="utf-8")


def replay(path: Path) -> int:
    """Run one case (a file --dump wrote) with a traceback and a profile of where its time goes."""
    import cProfile
    import pstats

    record = json.loads(path.read_text(encoding="utf-8"))
    kind, case = record["kind"], record["case"]
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in record["options"].items()}
    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        try:
            out = run_text(case, **options) if kind == "text" else run_yaml(case, Path(tmp))
            print(out)
        finally:
            prof.disable()
            print(f"{time.perf_counter() - t0:.3f} s")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return 0


SHAPES = [None, (32, 32, 3), (8, 8, 3), (16,), (100, 8), (4, 4, 4, 2), (224, 224, 3), (1, 1, 1)]
VALUES = [0, 1, 2, 3, 10, 10000, 10001, -1, 2.0, 2.5, "x", True, 10 ** 30]


def text_options(rng: random.Random) -> dict:
    """What a caller passes with a text: input shape, classes, variables (N, M, K, f ...)."""
    kw = {"input_shape": rng.choice(SHAPES), "classes": rng.choice([None, None, 10, 1, 1000])}
    for name in ("N", "M", "K", "f", "units"):
        if rng.random() < 0.5:
            kw[name] = rng.choice(VALUES[:6]) if rng.random() < 0.8 else rng.choice(VALUES)
    return kw


def make_case(rng: random.Random, seeds: list, docs: list):
    """``(kind, case, options)``: about 80% texts (mutated or generated), 20% YAML files."""
    r = rng.random()
    if r < 0.45:
        return "text", mutate_text(rng, rng.choice(seeds)), text_options(rng)
    if r < 0.75:
        return "text", generate_text(rng), text_options(rng)
    if r < 0.8:
        return "text", mutate_text(rng, generate_text(rng)), text_options(rng)
    return "yaml", mutate_yaml(rng, rng.choice(docs)), {}


def _bar(done, total, t0, width=30):
    frac = done / total if total else 1
    rate = done / max(time.perf_counter() - t0, 1e-9)
    eta = (total - done) / rate if rate else 0
    filled = int(width * frac)
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {rate:,.0f}/s eta {eta:,.0f} s"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=10.0,
                    help="seconds per case (0: no limit; tests/test_fuzz.py counts work instead)")
    ap.add_argument("--memory-limit", type=float, default=500.0,
                    help="MB a single case may add to the process's peak memory")
    ap.add_argument("--json", default=None, help="also write the summary here")
    ap.add_argument("--show", type=int, default=10, help="failures to print")
    ap.add_argument("--dump", default=None, help="write each failing case to a file in this folder")
    ap.add_argument("--replay", default=None, help="run the one case in this file (from --dump)")
    args = ap.parse_args(argv)

    import kblocks  # noqa: F401 - import before timing
    warm_up()
    if args.replay:
        return replay(Path(args.replay))
    rng = random.Random(args.seed)
    seeds = seed_texts()
    docs = [SMALL_YAML] + zoo_documents()
    tally = Tally()
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    slowest_case = ("text", "", {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.cases):
            kind, case, options = make_case(rng, seeds, docs)
            before = peak_rss_mb()
            old = _alarm(args.time_limit)
            try:
                out = run_text(case, **options) if kind == "text" else run_yaml(case, folder)
                tally.classes[f"{kind}:{out.kind}"] += 1
                if out.seconds > tally.slowest[0]:
                    tally.slowest = (out.seconds, f"{kind}:{case[:300]!r} ({out.kind})")
                    slowest_case = (kind, case, options)
            except CaseTimeout:
                tally.failures.append(Failure(case, f"{kind}: over {args.time_limit} s", "", options,
                                              kind))
            except FuzzFailure as f:
                tally.failures.append(Failure(case, f"{kind}: {f.problem}", repr(f.err)[:300], options,
                                              kind))
            except Exception as err:  # noqa: BLE001 - exactly what the fuzzer looks for
                tally.failures.append(Failure(case, f"{kind}: {type(err).__name__}", str(err)[:300],
                                              options, kind))
            finally:
                _disarm(old)
            grew = peak_rss_mb() - before
            if grew > tally.max_rss_growth_mb:
                tally.max_rss_growth_mb = grew
                tally.memory_case = f"{kind}:{case[:200]!r}"
            if grew > args.memory_limit:
                tally.failures.append(Failure(case, f"{kind}: peak memory grew {grew:.0f} MB", "",
                                              options, kind))
            tally.cases += 1
            if (i + 1) % 200 == 0 or i + 1 == args.cases:
                line = _bar(i + 1, args.cases, t0) + f" failures {len(tally.failures)}"
                print(line, end="" if tty else "\n", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    print(file=sys.stderr)
    print(f"{tally.cases:,} cases in {seconds:.1f} s (seed {args.seed}), "
          f"{len(tally.failures)} failures")
    print("outcomes:")
    for name, count in tally.classes.most_common():
        print(f"  {name:<30} {count:>8,}")
    print(f"slowest case: {tally.slowest[0] * 1000:.1f} ms: {tally.slowest[1][:200]}")
    print(f"largest growth of the peak memory in one case: {tally.max_rss_growth_mb:.1f} MB "
          f"({tally.memory_case[:120]})")
    if args.dump:
        folder = Path(args.dump)
        folder.mkdir(parents=True, exist_ok=True)
        for n, f in enumerate(tally.failures):
            _dump(folder / f"case{n:04d}.json", f.kind, f.case, f.options)
        _dump(folder / "slowest.json", *slowest_case)
    kinds = collections.Counter(f.problem for f in tally.failures)
    for problem, count in kinds.most_common():
        print(f"  FAIL {count:>6} x {problem}")
    shown = {}
    for f in tally.failures:
        if f.problem not in shown and len(shown) < args.show:
            shown[f.problem] = f
            print(f"--- {f.problem}\n  case: {f.case[:400]!r}\n  options: {f.options}\n  {f.detail}")
    summary = {"cases": tally.cases, "seed": args.seed, "seconds": round(seconds, 1),
               "failures": len(tally.failures), "failure_kinds": dict(kinds),
               "outcomes": dict(tally.classes), "slowest_ms": round(tally.slowest[0] * 1000, 1),
               "slowest_case": tally.slowest[1][:300],
               "max_peak_rss_growth_mb": round(tally.max_rss_growth_mb, 1),
               "python": platform.python_version(), "machine": platform.machine()}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())

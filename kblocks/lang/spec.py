"""Architecture files (DSL section 5): YAML with ``name``, ``input``, ``classes``, ``vars``,
``blocks``, ``defaults`` and ``network``, read with the safe loader of :mod:`kblocks.lang.yamlfile`
(duplicate keys, alias bombs and oversized files refused; problems reported as ``file, line N: ...``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from kblocks.lang import limits
from kblocks.lang.blocks import BlockLibrary, block_from_mapping, builtin_library, is_plain_value
from kblocks.common.errors import ConfigError
from kblocks.lang.yamlfile import (MAX_YAML_ALIASES, MAX_YAML_BYTES, MAX_YAML_DEPTH,  # noqa: F401
                                   MAX_YAML_VALUES, load_yaml_text, read_yaml_file, too_big)

TOP_LEVEL_KEYS = {"name", "input", "classes", "vars", "blocks", "network", "defaults", "source",
                  "params", "doc", "family", "reference"}


@dataclass
class ArchitectureFile:
    """An architecture file after validation (all fields typed, blocks loaded)."""

    name: str
    network: str
    input_shape: tuple | None = None
    classes: int | None = None
    variables: dict = field(default_factory=dict)
    blocks: BlockLibrary = field(default_factory=BlockLibrary)
    defaults: dict = field(default_factory=dict)
    source: str = ""
    network_line: int = 0
    meta: dict = field(default_factory=dict)


def _int_list(value, key, where):
    if (not isinstance(value, (list, tuple)) or not value or
            any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)):
        raise ConfigError(f"{where}: '{key}' must be a list of positive whole numbers like [32, 32, 3], "
                          f"got {value!r}")
    if math.prod(value) > limits.MAX_ACTIVATION_ELEMENTS:
        raise ConfigError(f"{where}: '{key}' {value!r} has {math.prod(value):,} elements, over the "
                          f"limit of {limits.MAX_ACTIVATION_ELEMENTS:,} for one tensor")
    return tuple(value)


def parse_architecture(data: dict, lines: dict, source: str) -> ArchitectureFile:
    """Check and type the top-level keys of an architecture file, in the order a reader meets them.

    Args:
        data: the mapping :func:`load_yaml_text` read.
        lines: key paths to line numbers, from :func:`load_yaml_text`.
        source: the file name, for messages.

    Returns:
        The :class:`ArchitectureFile`.

    Raises:
        ConfigError: naming the file, the line and the key, for any key of the wrong form.
    """
    def where(*path):
        line = lines.get(tuple(path))
        return f"{source}, line {line}" if line else source

    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{where(unknown[0])}: unknown key {unknown[0]!r}; allowed keys are "
                          f"{', '.join(sorted(TOP_LEVEL_KEYS - {'params'}))}")
    network = data.get("network")
    if not isinstance(network, str) or not network.strip():
        raise ConfigError(f"{where('network') if 'network' in data else source}: 'network' must be the "
                          f"architecture text, e.g. network: CONV(32)-RELU-POOL-FC(classes)")
    arch = ArchitectureFile(name=str(data.get("name") or Path(source).stem), network=network,
                            source=source, network_line=lines.get(("network",), 0))
    if "input" in data and data["input"] is not None:
        arch.input_shape = _int_list(data["input"], "input", where("input"))
    if "classes" in data and data["classes"] is not None:
        arch.classes = _classes(data["classes"], where)
    arch.variables = _variables(data.get("vars") or {}, where)
    if "classes" in arch.variables and arch.classes is not None \
            and arch.variables["classes"] != arch.classes:  # which one would count? (issue 20)
        raise ConfigError(f"{where('vars', 'classes')}: the variable classes "
                          f"({arch.variables['classes']!r}) contradicts 'classes: {arch.classes}' "
                          f"at line {lines.get(('classes',), '?')}",
                          hint="give the number of classes once, as 'classes:'")
    arch.blocks = _blocks(data.get("blocks") or {}, lines, source, where)
    arch.defaults = _defaults(data.get("defaults") or {}, where)
    arch.meta = {k: data[k] for k in ("source", "doc", "family", "reference") if k in data}
    return arch


def _classes(c, where) -> int:
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise ConfigError(f"{where('classes')}: 'classes' must be a positive whole number, got {c!r}")
    return c


def _variables(variables, where) -> dict:
    if not isinstance(variables, dict):
        raise ConfigError(f"{where('vars')}: 'vars' must be a mapping name: value")
    for k, v in variables.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise ConfigError(f"{where('vars', k)}: variable name {k!r} is not a plain name")
        if not isinstance(v, (int, float, str, bool)) or not is_plain_value(v):
            raise ConfigError(f"{where('vars', k)}: variable {k!r} must be a number, word or "
                              f"true/false, got {type(v).__name__}")
    return dict(variables)


def _blocks(blocks, lines, source, where) -> BlockLibrary:
    """The file's blocks over the built-in ones (which they may not redefine by accident: a name
    given twice in one file is refused by the YAML loader, a built-in name is shadowed)."""
    if not isinstance(blocks, dict):
        raise ConfigError(f"{where('blocks')}: 'blocks' must be a mapping name: body")
    lib = builtin_library().child()
    for name, spec in blocks.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{where('blocks', name)}: block name {name!r} is not a plain name")
        lib.add(block_from_mapping(name, spec, source=source, line=lines.get(("blocks", name), 0)))
    return lib


def _defaults(defaults, where) -> dict:
    if not isinstance(defaults, dict) or any(not isinstance(v, dict) for v in defaults.values()):
        raise ConfigError(f"{where('defaults')}: 'defaults' maps a layer token to its keyword "
                          f"defaults, e.g. CONV: {{use_bias: false}}")
    for token, values in defaults.items():
        bad = token if not isinstance(token, str) else next(
            (k for k in values if not isinstance(k, str) or not k.isidentifier()), None)
        if bad is not None or not isinstance(token, str):
            raise ConfigError(f"{where('defaults', token)}: 'defaults' needs plain names: a layer token "
                              f"and its keywords, got {bad!r}")
        for key, value in values.items():
            if not is_plain_value(value):
                raise ConfigError(f"{where('defaults', token)}: the default {token}: {key} must be a "
                                  f"number, word, true/false or a list of them, got "
                                  f"{type(value).__name__}")
    return defaults


def load_architecture(path) -> ArchitectureFile:
    """Read, check and type an architecture file (:func:`read_yaml_file`: FIFOs, devices and
    files over :data:`MAX_YAML_BYTES` refused before reading)."""
    path = Path(path)
    data, lines = load_yaml_text(read_yaml_file(path), str(path))
    return parse_architecture(data, lines, str(path))

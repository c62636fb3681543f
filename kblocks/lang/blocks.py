"""Named blocks (DSL section 5): parameterised pieces of architecture text expanded by ``@name(args)``.

A :class:`BlockDef` is data — a name, ordered parameters with defaults, a body in the architecture
language — and a :class:`BlockLibrary` is the registry the expander looks names up in. Built-in blocks
live in ``builtin_blocks.yaml`` next to this file, each with the figure or table it comes from.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

from kblocks.common.errors import ConfigError
from kblocks.lang.yamlfile import load_yaml_text

REQUIRED = object()  # a parameter with no default


def is_plain_value(value, depth: int = 0) -> bool:
    """A value the architecture language can write: a number, word, quoted string or true/false,
    or a list of them. YAML also has null, dates, bytes, mappings and infinities, which a layer
    argument or the canonical text cannot hold."""
    if isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)) and depth < 8:
        return all(is_plain_value(v, depth + 1) for v in value)
    return False


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple  # ((name, default or REQUIRED), ...) in positional order
    body: str
    doc: str = ""
    source: str = ""  # file the block came from
    line: int = 0

    def param_names(self):
        return [p for p, _ in self.params]


@dataclass
class BlockLibrary:
    """Blocks by name. ``parent`` is looked up when a name is not here (user blocks shadow built-ins)."""

    blocks: dict = field(default_factory=dict)
    parent: "BlockLibrary | None" = None

    def add(self, block: BlockDef) -> None:
        if block.name in self.blocks:
            old = self.blocks[block.name]
            raise ConfigError(f"block {block.name!r} is defined twice: in {old.source or 'code'} "
                              f"line {old.line} and in {block.source or 'code'} line {block.line}")
        self.blocks[block.name] = block

    def get(self, name: str):
        if name in self.blocks:
            return self.blocks[name]
        return self.parent.get(name) if self.parent else None

    def names(self):
        own = set(self.blocks)
        return sorted(own | (set(self.parent.names()) if self.parent else set()))

    def child(self) -> "BlockLibrary":
        return BlockLibrary({}, self)


def block_from_mapping(name: str, spec, *, source: str = "", line: int = 0) -> BlockDef:
    """Make a BlockDef from YAML data: a body string, or ``{params: ..., body: ..., doc: ...}``."""
    where = f"{source or 'blocks'}" + (f", line {line}" if line else "")
    if isinstance(spec, str):
        return BlockDef(name, (), spec, "", source, line)
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: block {name!r} must be a text or a mapping with 'body', "
                          f"got {type(spec).__name__}")
    unknown = set(spec) - {"params", "body", "doc"}
    if unknown:
        raise ConfigError(f"{where}: block {name!r} has unknown key(s) {sorted(unknown)}; "
                          f"allowed: params, body, doc")
    body = spec.get("body")
    if not isinstance(body, str) or not body.strip():
        raise ConfigError(f"{where}: block {name!r} needs a 'body' with architecture text")
    params = spec.get("params") or {}
    if isinstance(params, list):
        params = {p: REQUIRED for p in params}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: 'params' of block {name!r} must be a mapping name: default")
    for p, v in params.items():
        if not isinstance(p, str) or not p.isidentifier():
            raise ConfigError(f"{where}: block {name!r} has a bad parameter name {p!r}")
        if v is not None and v is not REQUIRED and not is_plain_value(v):
            raise ConfigError(f"{where}: the default of parameter {p!r} of block {name!r} must be a "
                              f"number, word, true/false or a list of them, got {type(v).__name__}")
    ordered = tuple((p, REQUIRED if v is None else v) for p, v in params.items())
    return BlockDef(name, ordered, body, str(spec.get("doc", "")), source, line)


@functools.lru_cache(maxsize=1)
def builtin_library() -> BlockLibrary:
    """The built-in blocks (``kblocks/lang/builtin_blocks.yaml``)."""
    path = Path(__file__).with_name("builtin_blocks.yaml")
    lib = BlockLibrary()
    if not path.exists():
        return lib
    data, lines = load_yaml_text(path.read_text(), str(path))
    for name, spec in (data.get("blocks") or {}).items():
        lib.add(block_from_mapping(name, spec, source=path.name, line=lines.get(("blocks", name), 0)))
    return lib



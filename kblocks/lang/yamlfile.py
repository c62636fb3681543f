"""Safe YAML for architecture files and block libraries: a loader that records the line of each
key, refuses duplicate keys, merge keys, alias bombs, deep nesting and oversized files, and reports
problems as ``file, line N: ...``.

Both :mod:`kblocks.lang.spec` (architecture files) and :mod:`kblocks.lang.blocks` (the built-in
block library) read YAML through :func:`load_yaml_text`; neither imports the other for it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from kblocks.common import files
from kblocks.common.errors import ConfigError

MAX_YAML_BYTES = 1_000_000  #: architecture files larger than this are refused
MAX_YAML_INT_DIGITS = 100  #: digits of a whole number in YAML (Python refuses over 4,300)
MAX_YAML_ALIASES = 100  #: YAML aliases (*name) allowed in one file
MAX_YAML_DEPTH = 64  #: nesting of YAML lists and mappings
MAX_YAML_VALUES = 100_000  #: values in one file once its aliases are expanded (billion laughs)


class _Loader(yaml.SafeLoader):
    """SafeLoader that records key lines, refuses duplicate keys and limits aliases."""

    def __init__(self, stream, source):
        super().__init__(stream)
        self.source = source
        self.key_lines: dict = {}  # id(dict in the data) -> {key: line}
        self.node_lines: dict = {}
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.source}, line {mark.line + 1}: more than {MAX_YAML_ALIASES} "
                                  f"YAML aliases; anchors and aliases are limited to stop alias bombs")
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:  # PyYAML composes recursively: stop before Python does
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.source}, line {mark.line + 1}: lists and mappings nest "
                                  f"deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node, self.source)
        return node

    def construct_yaml_int(self, node):
        """A whole number, refused with its line when it has more than
        :data:`MAX_YAML_INT_DIGITS` digits (``int()`` of a 5,000-digit string raises
        ``ValueError``, and a long ``1:2:3:...`` would cost quadratic time)."""
        text = str(node.value)
        if len(text.replace("_", "")) > MAX_YAML_INT_DIGITS + 1:
            raise ConfigError(f"{self.source}, line {node.start_mark.line + 1}: a whole number of "
                              f"{len(text):,} characters, over the {MAX_YAML_INT_DIGITS}-digit "
                              f"limit", hint="kblocks sizes are 32-bit numbers")
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise ConfigError(f"{self.source}, line {node.start_mark.line + 1}: "
                              f"{text[:40]!r} is not a whole number YAML can read") from None

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(f"{self.source}, line {key_node.start_mark.line + 1}: YAML merge keys "
                                  f"(<<) are not supported; write the keys out")
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise ConfigError(f"{self.source}, line {key_node.start_mark.line + 1}: a mapping key "
                                  f"must be a plain value") from None
            if key in seen:
                raise ConfigError(f"{self.source}, line {key_node.start_mark.line + 1}: duplicate key "
                                  f"{key!r} (first at line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
        self.node_lines[id(node)] = seen
        return super().construct_mapping(node, deep=True)

    def construct_yaml_map(self, node):
        # SafeLoader's version copies the mapping into the dict it yields: record the lines of the
        # keys against that dict, the one that ends up in the data
        data = {}
        yield data
        data.update(self.construct_mapping(node))
        self.key_lines[id(data)] = self.node_lines.pop(id(node), {})


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _check_expanded_size(root, source: str) -> None:
    """Refuse a document whose aliases refer to themselves or expand to more than
    ``MAX_YAML_VALUES`` values: PyYAML shares an aliased object rather than copying it, but any code
    that walks the data (an error message's ``repr``, a JSON dump) walks every expanded copy."""
    if root is None:
        return
    size: dict = {}
    on_path: set = set()
    stack = [(root, False)]
    while stack:  # iterative post-order walk of the node graph, memoised per node
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_YAML_VALUES:
                raise ConfigError(f"{source}, line {node.start_mark.line + 1}: its aliases expand to "
                                  f"more than {MAX_YAML_VALUES:,} values; anchors and aliases are "
                                  f"limited to stop alias bombs")
            continue
        if key in size:
            continue
        if key in on_path:
            raise ConfigError(f"{source}, line {node.start_mark.line + 1}: a YAML alias refers to the "
                              f"list or mapping that contains it")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ConfigError(f"{source}, line {child.start_mark.line + 1}: a YAML alias refers "
                                  f"to the list or mapping that contains it")
            if id(child) not in size:
                stack.append((child, False))


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def too_big(source: str, size: int, head: bytes) -> ConfigError:
    line = head[:MAX_YAML_BYTES].count(b"\n") + 1  # the line on which the limit is crossed
    return ConfigError(f"{source}, line {line}: the file is {size:,} bytes, over the "
                       f"{MAX_YAML_BYTES:,}-byte limit for architecture files; is this the right file?")


def read_yaml_file(path, what: str = "architecture file") -> str:
    """The text of a YAML file given by a user, read through :mod:`kblocks.common.files`: a FIFO,
    a device (a link to ``/dev/zero``), a socket or a folder is refused before anything is read,
    and a file over :data:`MAX_YAML_BYTES` is refused having read at most that much (the message
    names the line where the limit is crossed). Every refusal is a :class:`ConfigError`."""
    path = Path(path)
    try:
        files.check_file(path, what=what, hint="give the path of a YAML file")
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise too_big(str(path), size, files.read_head(path, MAX_YAML_BYTES + 1))
        raw = files.read_bytes(path, what=what, limit=MAX_YAML_BYTES)
    except files.UserFileError as err:
        rest = err.message.removeprefix(f"{what} {path}").lstrip(": ")
        raise ConfigError(f"{path}: cannot read: " + ("it " + rest if rest.startswith("is ")
                                                      else rest), hint=err.hint) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte {err.start:,} is "
                          f"0x{raw[err.start]:02x})", hint="save the file as UTF-8 text") from None


def load_yaml_text(text: str, source: str = "<yaml>"):
    """Parse YAML safely; return (data, lines) where lines maps key paths to line numbers."""
    data = text.encode("utf-8", "replace")
    if len(data) > MAX_YAML_BYTES:
        raise too_big(source, len(data), data[:MAX_YAML_BYTES + 1])
    loader = None
    try:
        loader = _Loader(text, source)  # the reader refuses NUL and other control characters here
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}{line}: not valid YAML: {err.problem or err}") from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (NUL, ...)
        line = text.count("\n", 0, max(err.position, 0)) + 1
        raise ConfigError(f"{source}, line {line}: not valid YAML: the character {chr(err.character)!r} "
                          f"is not allowed") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        first = next((i + 1 for i, ln in enumerate(text.split("\n"))
                      if ln.strip() and not ln.lstrip().startswith(("#", "%", "---"))), 1)
        raise ConfigError(f"{source}, line {first}: an architecture file is a mapping with a 'network' "
                          f"key, got a {type(data).__name__}")
    lines = {}
    top = loader.key_lines.get(id(data), {})
    for key, line in top.items():
        lines[(key,)] = line
        value = data[key]
        if isinstance(value, dict):
            for sub, sub_line in loader.key_lines.get(id(value), {}).items():
                lines[(key, sub)] = sub_line
    return data, lines

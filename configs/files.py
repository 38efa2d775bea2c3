"""Reading the files a user hands us: text that must be UTF-8, and YAML that must mean what it says.

Every config, targets file and emulator file goes through ``load_yaml``; every CSV through
``read_text`` (or ``check_readable`` first). What they refuse, and why:

* **Unreadable files** — missing, a folder, over-long names, no permission, binary content (a NUL
  byte), not UTF-8 (with a hint when the bytes are CP949/EUC-KR, what Korean Windows Excel writes),
  or larger than a config can plausibly be. One message names the file and the problem.
* **Duplicate keys** — PyYAML silently keeps the last one, so a second ``risk:`` section drops the
  first one's stop-loss. Here it is an error naming both lines.
* **Alias bombs** — ``&a [*b, *b, ...]`` nests expand exponentially in whatever walks the result
  (pydantic's validation of a 1.5 KB file ran 150 s and reached 14 GB). Aliases are counted and the
  expanded size is bounded before anything is built.
* **Deep nesting** — ``[[[[...]]]]`` ten thousand deep is a RecursionError in the composer; the
  depth is bounded with a message instead.
* **YAML 1.1 surprises** — ``1:30:00`` is 5,400 (base 60), ``0777`` is 511 (octal), ``yes``/``on``
  are ``True``, ``0x1F`` is 31. A config value must mean what it looks like, so the scalars resolve
  as YAML 1.2's core schema does, narrowed further: only ``true``/``false`` are booleans, only plain
  decimal numbers are numbers (``1_000_000`` digit groups allowed), and anything else — including a
  number with a leading zero — stays a *string*, which a numeric field then refuses by name. (A
  leading-zero code like ``000660`` therefore stays the text it is.) Dates ``YYYY-MM-DD`` stay dates.
"""

from __future__ import annotations

import errno
import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from configs.errors import FileInputError, InputError

MAX_CONFIG_BYTES = 1 << 20          # a config or targets file is a few KB; 1 MiB is generous
MAX_YAML_DEPTH = 64                 # sections nest 3-4 deep
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 200_000            # values after expanding aliases
MAX_PATH_SHOWN = 120


class YamlInputError(InputError):
    """A YAML file that is not valid, or valid but ambiguous; the message names file and line."""


def shown(path: Path | str) -> str:
    """A path as it goes into a message: over-long names are cut, so the message stays one line."""
    text = str(path)
    return text if len(text) <= MAX_PATH_SHOWN else text[:MAX_PATH_SHOWN - 20] + "…" + text[-19:]


def check_readable(path: Path | str, what: str, max_bytes: int | None = None) -> Path:
    """``path`` as a Path when it names a readable regular file, else one ``FileInputError``."""
    path = Path(path)
    if "\x00" in str(path):
        raise FileInputError(f"{what} {shown(path)!r}: a file name cannot contain a NUL character")
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise FileInputError(f"{what} {shown(path)}: file name is too long for this system") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise FileInputError(f"{what} {shown(path)}: file not found") from None
        raise FileInputError(f"{what} {shown(path)}: cannot read it ({exc.strerror})") from None
    if path.is_dir():
        raise FileInputError(f"{what} {shown(path)}: is a folder, expected a file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileInputError(f"{what} {shown(path)}: {st.st_size:,} bytes is larger than the {max_bytes:,} "
                             "bytes allowed for such a file")
    return path


def decode_text(data: bytes, path: Path | str, what: str) -> str:
    """UTF-8 (with or without BOM) text, or a ``FileInputError`` that says where and what it is instead."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FileInputError(f"{what} {shown(path)}: is a binary file (a NUL byte at offset {nul}), expected "
                             "UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = ""
        try:
            data.decode("cp949")
            hint = "; it looks like CP949/EUC-KR (Korean Windows, e.g. saved by Excel): save it as UTF-8"
        except UnicodeDecodeError:
            pass
        raise FileInputError(f"{what} {shown(path)}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                             f"offset {exc.start}){hint}") from None


def read_text(path: Path | str, what: str, max_bytes: int | None = None) -> str:
    """The whole file as text, after ``check_readable`` and ``decode_text``."""
    path = check_readable(path, what, max_bytes)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileInputError(f"{what} {shown(path)}: cannot read it ({exc.strerror})") from None
    return decode_text(data, path, what)


# ---------------------------------------------------------------------------------------- YAML
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*(?:_[0-9]+)*)$")
_FLOAT = re.compile(r"^[-+]?(?:(?:0|[1-9][0-9]*(?:_[0-9]+)*)\.[0-9]*|\.[0-9]+|(?:0|[1-9][0-9]*(?:_[0-9]+)*)"
                    r"(?:\.[0-9]*)?[eE][-+]?[0-9]+)$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                       r"(?:[ \t]*(?:Z|[-+][0-9]{2}(?::?[0-9]{2})?))?$")
MAX_INT_DIGITS = 30
"""A longer number is no amount of money or shares anyone means: refused before Python builds it."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-like scalars, duplicate-key errors and bounded aliases/depth."""

    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self._depth = 0
        self._aliases = 0

    # -- composing: depth and aliases are bounded before anything is constructed
    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlInputError(f"{self.source}, line {mark.line + 1}: more than {MAX_YAML_ALIASES} aliases "
                                     "(*name); write the values out")
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlInputError(f"{self.source}, line {mark.line + 1}: nested more than {MAX_YAML_DEPTH} "
                                     "levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    # -- constructing: duplicate keys are errors, numbers are plain decimal only
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        seen: dict[Any, int] = {}
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlInputError(f"{self.source}, line {key_node.start_mark.line + 1}: merge keys ('<<') are "
                                     "not supported; write the keys out")
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise YamlInputError(f"{self.source}, line {key_node.start_mark.line + 1}: a key must be a plain "
                                     f"value, got a {type(key).__name__}") from None
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlInputError(f"{self.source}, line {line}: key {key!r} appears twice (first on line "
                                     f"{seen[key]}); YAML would silently keep only the second")
            seen[key] = line
            try:
                mapping[key] = self.construct_object(value_node, deep=deep)
            except YamlInputError as exc:
                if exc.args and isinstance(exc.args[0], str) and f"line {line}: " in exc.args[0]:
                    # name the key whose value could not be read: "line 11, key 'top_n': ..."
                    raise YamlInputError(exc.args[0].replace(f"line {line}: ", f"line {line}, key {key!r}: ", 1)) \
                        from None
                raise
        return mapping

    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "").lstrip("+")
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise YamlInputError(f"{self.source}, line {node.start_mark.line + 1}: a {len(text)}-digit number "
                                 "is not a plausible value")
        return int(text)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        text = str(self.construct_scalar(node)).replace("_", "")
        value = float(text)
        if not math.isfinite(value):
            raise YamlInputError(f"{self.source}, line {node.start_mark.line + 1}: {text!r} is not a finite number")
        return value

    def construct_yaml_date(self, node: ScalarNode):
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError as exc:
            raise YamlInputError(f"{self.source}, line {node.start_mark.line + 1}: "
                                 f"{self.construct_scalar(node)!r} is not a valid date ({exc})") from None


for _tag, _regexp, _first in (
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
        ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
        ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
        ("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.")),
        ("tag:yaml.org,2002:timestamp", _DATE, list("0123456789")),
        ("tag:yaml.org,2002:timestamp", _DATETIME, list("0123456789"))):
    _StrictLoader.add_implicit_resolver(_tag, _regexp, _first)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_yaml_date)
_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_yaml_map)


def _expanded_size(root: Node, source: str) -> None:
    """Refuse a document whose aliases expand to more than ``MAX_YAML_NODES`` values (billion laughs)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > MAX_YAML_NODES:
            raise YamlInputError(f"{source}, line {node.start_mark.line + 1}: aliases expand to more than "
                                 f"{MAX_YAML_NODES:,} values")
        sizes[id(node)] = total


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text under the rules above; ``source`` names it in messages."""
    loader = _StrictLoader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    except YamlInputError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "cannot be parsed"
        raise YamlInputError(f"{source}{where}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlInputError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlInputError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml(path: Path | str, what: str = "config file", max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """Read and parse a YAML file; every problem is one ``InputError`` naming the file."""
    text = read_text(path, what, max_bytes)
    return parse_yaml(text, f"{shown(path)}")

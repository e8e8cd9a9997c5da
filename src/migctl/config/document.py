"""YAML/JSON text -> plain data that knows the line of every key: the one reader of migctl's files.

Every file migctl reads (mig-parted configs, hooks files, batch jobs files) goes through
:func:`parse_document`, so they share one set of rules and guards:

* PyYAML's safe composer (no Python tags; libyaml's when installed, about 20x faster);
* the line of every mapping key and list item is recorded, so any problem found later is
  reported as ``file:line: key.path: message``;
* duplicate keys are errors (PyYAML and mig-parted silently keep the last one);
* guards: a document longer than :data:`MAX_CHARS`, one whose aliases expand to more than
  :data:`MAX_NODES` nodes (a "billion laughs" bomb) and a recursive alias are refused at once;
* JSON is read as YAML (a subset); the few JSON texts PyYAML refuses are read with :mod:`json`,
  without line numbers.

:func:`validate` then checks the data against a pydantic model and reports its first problem
(in file order) the same way. Pure: text in, data or :class:`ConfigError` out.

>>> doc = parse_document("jobs:\\n  - name: a\\n  - name: b\\n", "jobs.yaml")
>>> doc.data, doc.line_of(("jobs", 1, "name"))
({'jobs': [{'name': 'a'}, {'name': 'b'}]}, 3)
>>> str(doc.error(("jobs", 1, "name"), "taken"))
'jobs.yaml:3: jobs[1].name: taken'
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from migctl.config.errors import ConfigError, Path, format_path

if TYPE_CHECKING:
    from pydantic import BaseModel

    M = TypeVar("M", bound=BaseModel)

#: How many nodes a document may expand to through aliases ("billion laughs" guard).
MAX_NODES = 200_000
#: The longest document read at all (characters).
MAX_CHARS = 16 * 1024 * 1024

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Document:
    """A parsed document: its plain data, and the line of each key path (outermost first)."""

    data: Any
    lines: Mapping[Path, int]
    source: str

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of ``path`` (or of its nearest enclosing key); ``None`` when unknown (JSON fallback)."""
        key = tuple(path)
        for n in range(len(key), -1, -1):
            if key[:n] in self.lines:
                return self.lines[key[:n]]
        return None

    def error(self, path: Sequence[str | int], message: str) -> ConfigError:
        """``file:line: key.path: message`` for a problem at ``path``."""
        return ConfigError(message, source=self.source, line=self.line_of(path), key=format_path(path) or None)


def _pair_surrogates(text: str) -> str:
    """JSON writes characters beyond U+FFFF as escaped surrogate pairs, which PyYAML leaves
    unpaired; join them."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return text


class _Walker:
    """Turns composed YAML nodes into plain data, recording the line of every key and item."""

    def __init__(self, source: str, max_nodes: int) -> None:
        self.source = source
        self.lines: dict[Path, int] = {}
        self.max_nodes = max_nodes
        self.budget = max_nodes
        self.active: set[int] = set()
        self.ctor = SafeConstructor()

    def error(self, message: str, node: Node, path: Path) -> ConfigError:
        return ConfigError(message, source=self.source, line=node.start_mark.line + 1, key=format_path(path) or None)

    def value(self, node: Node, path: Path) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise self.error(f"document too large (aliases expand to over {self.max_nodes} nodes)", node, path)
        if isinstance(node, ScalarNode):
            value = self.ctor.construct_object(node)
            return _pair_surrogates(value) if isinstance(value, str) else value
        if id(node) in self.active:
            raise self.error("recursive alias", node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = []
                for i, item in enumerate(node.value):
                    sub: Path = (*path, i)
                    self.lines[sub] = item.start_mark.line + 1
                    items.append(self.value(item, sub))
                return items
            assert isinstance(node, MappingNode)
            self.ctor.flatten_mapping(node)  # resolves "<<" merge keys
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self.error("mapping keys must be plain strings", key_node, path)
                key = _pair_surrogates(str(key_node.value))
                sub = (*path, key)
                if key in out:
                    raise self.error(f"duplicate key (first at line {self.lines[sub]})", key_node, sub)
                self.lines[sub] = key_node.start_mark.line + 1
                out[key] = self.value(value_node, sub)
            return out
        finally:
            self.active.discard(id(node))


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _untab(text: str) -> str:
    """``text`` with the tabs that separate tokens made spaces, as Go's YAML parser (mig-parted's)
    and libyaml take them and PyYAML's own scanner refuses: inside flow collections (``{``,
    ``[``: mig-parted's test files are tab-indented JSON) and after ``:``/``-`` or before a
    comment in block context. Tabs that indent a block line, and tabs inside quoted strings,
    comments and plain words, are left as they are. Lines and columns do not move."""
    out: list[str] = []
    depth, quote, comment, line_start = 0, "", False, True
    n = len(text)
    for i, ch in enumerate(text):
        prev = out[-1] if out and not line_start else "\n"
        if ch == "\n":
            comment, line_start = False, True
            out.append(ch)
            continue
        if comment:
            out.append(ch)
            continue
        if quote:
            if ch == quote and not (quote == '"' and prev == "\\"):
                quote = ""
            out.append(ch)
            line_start = False
            continue
        at_token = prev in " \t\n:,[{" or prev == "\r"
        if ch == "\t":
            rest = text[i + 1 : (text.find("\n", i) + 1 or n + 1) - 1].lstrip("\t ")
            if depth > 0:
                separating = at_token or rest[:1] in ("", ",", "]", "}", "#", ":")
            else:
                separating = not line_start and (prev in " :-" or rest[:1] in ("", "#"))
            out.append(" " if separating else ch)
            continue
        if ch == "#" and at_token:
            comment = True
        elif ch in "'\"" and at_token:
            quote = ch
        elif ch in "[{" and at_token:
            depth += 1
        elif ch in "]}" and depth:
            depth -= 1
        out.append(ch)
        if ch not in " \r":
            line_start = False
    return "".join(out)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_document(text: str, source: str, *, max_nodes: int = MAX_NODES, empty_ok: bool = False) -> Document:
    """Parse YAML or JSON ``text`` (named ``source`` in errors). Raises :class:`ConfigError`.

    The one YAML reader of migctl: configs, hooks files and batch jobs files all use it. An
    empty document (nothing but comments and blank lines, or ``null``) is an error unless
    ``empty_ok``; then its data is ``None``.
    """
    if len(text) > MAX_CHARS:
        raise ConfigError(f"document too large ({len(text)} characters; at most {MAX_CHARS})", source=source)
    walker = _Walker(source, max_nodes)
    try:
        node = yaml.compose(_untab(text) if "\t" in text else text, Loader=_LOADER)
        if node is None or (empty_ok and _is_null(node)):
            if empty_ok:
                return Document(None, {}, source)
            raise ConfigError("the document is empty", source=source)
        walker.lines[()] = node.start_mark.line + 1
        return Document(walker.value(node, ()), walker.lines, source)
    except ConfigError:
        raise
    except Exception as exc:  # PyYAML raises assorted errors on malformed input (IndexError, ...)
        if text.lstrip()[:1] in ("{", "["):
            try:
                return Document(json.loads(text, object_pairs_hook=_no_duplicates), {}, source)
            except (ValueError, RecursionError):
                pass
        line = None
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            line = exc.problem_mark.line + 1
        if isinstance(exc, yaml.MarkedYAMLError):
            message = f"invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
        elif isinstance(exc, RecursionError):
            message = "invalid YAML: nested too deeply"
        else:
            message = f"invalid YAML: {exc}"
        raise ConfigError(message, source=source, line=line) from None


def _describe(err: Mapping[str, Any], key: object, known_keys: Sequence[str]) -> str:
    kind, got = err["type"], err.get("input")
    shown = repr(got) if isinstance(got, str | int | float | bool | type(None)) else type(got).__name__
    ctx = err.get("ctx") or {}
    if "message" in ctx:
        return str(ctx["message"])
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        near = difflib.get_close_matches(str(key), known_keys, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"unknown key{hint}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "too_short":
        return "must not be empty"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}, got {shown}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {shown}"
    simple = {"bool_type": "true or false", "int_type": "an integer", "string_type": "a string",
              "list_type": "a list"}
    if kind in simple:
        return f"expected {simple[kind]}, got {shown}"
    return f"{err['msg']}, got {shown}"


def error_path(err: Mapping[str, Any], data: Any) -> Path:
    """pydantic's ``loc`` (which holds union tags and ``[key]`` markers) -> a path in ``data``."""
    path: list[str | int] = []
    cur = data
    loc = tuple(err["loc"])
    for n, part in enumerate(loc):
        in_dict = isinstance(cur, dict) and isinstance(part, str) and part in cur
        if in_dict or (isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)):
            cur = cur[part]
        elif err["type"] == "missing" and n == len(loc) - 1:
            cur = None
        else:
            continue
        path.append(part)
    path.extend((err.get("ctx") or {}).get("at", ()))
    return tuple(path)


def validate(model: type[M], doc: Document, *, known_keys: Sequence[str] = ()) -> M:
    """``model.model_validate(doc.data)``, its first problem (in file order) as a :class:`ConfigError`.

    ``known_keys`` are the key names an "unknown key" is compared with for a "did you mean".
    A validator may raise ``PydanticCustomError("migctl", "{message}", {"message": ...,
    "at": (...)})`` to word its own message and locate it below the value it checks.
    """
    from pydantic import ValidationError

    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            path = error_path(err, doc.data)
            line = doc.line_of(path)
            found.append((line if line is not None else 0, path, _describe(err, path[-1] if path else "", known_keys)))
        found.sort(key=lambda f: f[0])
        line, path, message = found[0]
        if len(found) > 1:
            message += f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})"
        raise ConfigError(message, source=doc.source, line=line or None, key=format_path(path) or None) from None

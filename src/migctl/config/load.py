"""Reading configs: YAML or JSON text -> :class:`MigSpec`, every problem a :class:`ConfigError`.

YAML is composed into nodes (PyYAML's safe loader: no Python tags) and walked by hand so that
each key's line is known; pydantic's error locations are then mapped back to those lines.
Duplicate keys are errors (PyYAML and mig-parted silently keep the last one). JSON is read
as YAML (JSON is a YAML subset); the few JSON texts PyYAML refuses are read with :mod:`json`,
without line numbers.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from migctl.config.errors import ConfigError, Path, format_path
from migctl.config.spec import MigConfigEntry, MigSpec

#: How many nodes a document may expand to through aliases ("billion laughs" guard).
MAX_NODES = 200_000

M = TypeVar("M", bound=BaseModel)

_KNOWN_KEYS = (
    "version", "mig-configs", "device-filter", "devices", "mig-enabled", "mig-devices",
    "x-migctl", "instances", "profile", "placement", "compute",
    "hooks", "command", "args", "envs", "workdir",
)


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

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path, int] = {}
        self.budget = MAX_NODES
        self.active: set[int] = set()
        self.ctor = SafeConstructor()

    def error(self, message: str, node: Node, path: Path) -> ConfigError:
        return ConfigError(message, source=self.source, line=node.start_mark.line + 1,
                           key=format_path(path) or None)

    def value(self, node: Node, path: Path) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise self.error(f"document too large (aliases expand to over {MAX_NODES} nodes)", node, path)
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_document(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """YAML/JSON text -> (plain data, line of each key path). Raises :class:`ConfigError`."""
    walker = _Walker(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise ConfigError("the document is empty", source=source)
        walker.lines[()] = node.start_mark.line + 1
        return walker.value(node, ()), walker.lines
    except ConfigError:
        raise
    except Exception as exc:  # PyYAML raises assorted errors on malformed input (IndexError, ...)
        if text.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(text, object_pairs_hook=_no_duplicates), {}
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


def _describe(err: Mapping[str, Any], key: object) -> str:
    kind, got = err["type"], err.get("input")
    shown = repr(got) if isinstance(got, str | int | float | bool | type(None)) else type(got).__name__
    ctx = err.get("ctx") or {}
    if "message" in ctx:
        return str(ctx["message"])
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        near = difflib.get_close_matches(str(key), _KNOWN_KEYS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"unknown key{hint}"
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


def _locate(err: Mapping[str, Any], data: Any) -> Path:
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


def validate(model: type[M], data: Any, lines: Mapping[Path, int], source: str) -> M:
    """``model.model_validate(data)``, its first problem (in file order) as a :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            path = _locate(err, data)
            line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
            found.append((line if line is not None else 0, path, _describe(err, path[-1] if path else "")))
        found.sort(key=lambda f: f[0])
        line, path, message = found[0]
        if len(found) > 1:
            message += f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})"
        raise ConfigError(message, source=source, line=line or None, key=format_path(path) or None) from None


def load_text(text: str, source: str = "<config>") -> MigSpec:
    """Parse and validate a mig-parted v1 config (YAML or JSON)."""
    data, lines = parse_document(text, source)
    return validate(MigSpec, data, lines, source).located(source, lines)


def read_source(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The text of ``path`` (``-``: stdin) and the name to report it by."""
    if str(path) == "-":
        source = "<stdin>"
        try:
            return sys.stdin.read(), source
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", source=source) from None
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            return f.read(), source
    except UnicodeDecodeError:
        raise ConfigError("cannot read: not UTF-8 text", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None


def load_path(path: str | os.PathLike[str]) -> MigSpec:
    """Load a config file; ``-`` reads stdin (as ``mig-parted apply -f -`` does)."""
    text, source = read_source(path)
    return load_text(text, source)


def get_config(spec: MigSpec, name: str | None) -> list[MigConfigEntry]:
    """The entries of config ``name``. ``None`` or ``""`` picks the only config of a one-config
    file (mig-parted's rule). An unknown name lists the available ones, nearest first."""
    names = spec.names()
    line = spec.line_of(("mig-configs",))
    if not name:
        if len(names) == 1:
            return spec.mig_configs[names[0]]
        raise ConfigError(f"the file has {len(names)} configs; choose one of: {', '.join(names)}",
                          source=spec.source, line=line, key="mig-configs")
    if name in spec.mig_configs:
        return spec.mig_configs[name]
    ranked = sorted(names, key=lambda n: -difflib.SequenceMatcher(None, name.lower(), n.lower()).ratio())
    near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    shown = ", ".join(ranked[:12]) + (f", ... ({len(ranked) - 12} more)" if len(ranked) > 12 else "")
    raise ConfigError(f"no config named {name!r}{hint}; available: {shown}",
                      source=spec.source, line=line, key="mig-configs")

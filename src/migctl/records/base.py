"""The record base class and the one serialisation every front end uses."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from typing import Any, ClassVar


class Record:
    """Base of every typed record (subclasses are ``@dataclass(frozen=True)``).

    A field's docstring (a string literal right after it) is its description in the generated
    JSON Schema and in ``docs/json.md``.
    """

    __slots__ = ()
    # Read by pydantic when docs/json.md and docs/schema/ are generated; pydantic itself is
    # never imported at run time for this.
    __pydantic_config__: ClassVar[dict[str, Any]] = {"use_attribute_docstrings": True}


def to_data(value: object) -> Any:
    """A record (or anything made of records, tuples, lists, dicts and scalars) as JSON-ready data.

    >>> from migctl.core.geometry import Placement
    >>> to_data((Placement(0, 1), None))
    [{'start': 0, 'size': 1}, None]
    """
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    return value


def dumps(value: object) -> str:
    """The one JSON document ``--json`` prints for ``value`` (indented, keys in field order)."""
    return json.dumps(to_data(value), indent=2)

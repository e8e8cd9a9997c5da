"""Typed records: what every migctl operation returns, and what ``--json`` prints.

Operations (:mod:`migctl.ops`) return these frozen dataclasses; the CLI, :class:`migctl.Node`
and every other front end only render them. ``--json`` prints :func:`to_data` of the record,
so the JSON contract *is* these classes: field order is key order, a nested record is an
object, a tuple is an array, ``None`` is ``null``. The JSON Schema of each command's output is
generated from them (:mod:`migctl.records.schema`, published in ``docs/json.md`` and
``docs/schema/``), so the documentation cannot drift from the code.

Conventions (see ``docs/json.md``):

* profile names carry no ``MIG`` prefix; IDs are the numbers nvidia-smi prints;
* a placement is ``{"start": int, "size": int}``;
* memory is in MiB (``*_mib``); times are epoch seconds (``since``) or seconds (``*_s``);
* outcomes are lower-case words from a fixed set (``Literal`` fields).

This package imports only the standard library and :mod:`migctl.core`, so a command pays
nothing for it at start-up.
"""

from __future__ import annotations

from migctl.records.base import Record, dumps, to_data

__all__ = ["Record", "dumps", "to_data"]

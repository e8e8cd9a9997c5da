"""migctl's config layer: mig-parted v1 files, the inline ``--layout`` form, short request forms, export.

Pure: it parses, validates, selects and exports; it runs no process and reads no file (the
operations layer reads files, :mod:`migctl.ops.files`, and runs hooks, :mod:`migctl.ops.hooks`).
Every problem is a :class:`ConfigError` naming the file, line and key.

Modules: :mod:`.document` (the one YAML/JSON reader with line numbers and guards),
:mod:`.spec` (the v1 schema), :mod:`.load` (text -> spec, choosing a named config),
:mod:`.select` (which entry applies to each GPU, resolved to a target), :mod:`.inline`
(``--layout``), :mod:`.requests` (``1g.12gb:2``, ``GI:CI``), :mod:`.export` (a layout -> v1
text) and :mod:`.hooks` (the hooks file's schema).

The names below are imported from their modules on first use: the pydantic-based schema
(:mod:`.spec`) takes a noticeable part of a second to import, and commands that only need a
short form (``-i``, ``1g.12gb:2``, ``--on``) must not pay for it. (``select`` is not among
them: importing the submodule :mod:`.select` would shadow it; import it from there.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migctl.lazy import exports

if TYPE_CHECKING:
    from migctl.config.document import Document, parse_document, validate
    from migctl.config.errors import ConfigError
    from migctl.config.export import CurrentGpu, CurrentInstance, export_spec, export_text
    from migctl.config.inline import format_layout, parse_layout
    from migctl.config.load import get_config, load_text
    from migctl.config.requests import (
        ProfileRequest,
        as_profile_requests,
        parse_compute_instance,
        parse_profile_requests,
    )
    from migctl.config.select import GpuFacts, Selection, applies_to, resolve
    from migctl.config.spec import MigConfigEntry, MigSpec

_LAZY = {
    "ConfigError": "migctl.config.errors",
    "CurrentGpu": "migctl.config.export",
    "CurrentInstance": "migctl.config.export",
    "Document": "migctl.config.document",
    "GpuFacts": "migctl.config.select",
    "MigConfigEntry": "migctl.config.spec",
    "MigSpec": "migctl.config.spec",
    "ProfileRequest": "migctl.config.requests",
    "Selection": "migctl.config.select",
    "applies_to": "migctl.config.select",
    "as_profile_requests": "migctl.config.requests",
    "export_spec": "migctl.config.export",
    "export_text": "migctl.config.export",
    "format_layout": "migctl.config.inline",
    "get_config": "migctl.config.load",
    "load_text": "migctl.config.load",
    "parse_compute_instance": "migctl.config.requests",
    "parse_document": "migctl.config.document",
    "parse_layout": "migctl.config.inline",
    "parse_profile_requests": "migctl.config.requests",
    "resolve": "migctl.config.select",
    "validate": "migctl.config.document",
}


__getattr__ = exports(__name__, _LAZY)


__all__ = [
    "ConfigError",
    "CurrentGpu",
    "CurrentInstance",
    "Document",
    "GpuFacts",
    "MigConfigEntry",
    "MigSpec",
    "ProfileRequest",
    "Selection",
    "applies_to",
    "as_profile_requests",
    "export_spec",
    "export_text",
    "format_layout",
    "get_config",
    "load_text",
    "parse_compute_instance",
    "parse_document",
    "parse_layout",
    "parse_profile_requests",
    "resolve",
    "validate",
]

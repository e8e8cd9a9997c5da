"""migctl's config layer: mig-parted v1 files, the inline ``--layout`` form, short request forms, export.

Pure: it parses, validates, selects and exports; it runs no process and reads no file (the
operations layer reads files, :mod:`migctl.ops.files`, and runs hooks, :mod:`migctl.ops.hooks`).
Every problem is a :class:`ConfigError` naming the file, line and key.

Modules: :mod:`.document` (the one YAML/JSON reader with line numbers and guards),
:mod:`.spec` (the v1 schema), :mod:`.load` (text -> spec, choosing a named config),
:mod:`.select` (which entry applies to each GPU, resolved to a target), :mod:`.inline`
(``--layout``), :mod:`.requests` (``1g.12gb:2``, ``GI:CI``), :mod:`.export` (a layout -> v1
text) and :mod:`.hooks` (the hooks file's schema).
"""

from migctl.config.document import Document, parse_document, validate
from migctl.config.errors import ConfigError
from migctl.config.export import CurrentGpu, CurrentInstance, export_spec, export_text
from migctl.config.inline import format_layout, parse_layout
from migctl.config.load import get_config, load_text
from migctl.config.requests import ProfileRequest, as_profile_requests, parse_compute_instance, parse_profile_requests
from migctl.config.select import GpuFacts, Selection, applies_to, resolve, select
from migctl.config.spec import MigConfigEntry, MigSpec

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
    "select",
    "validate",
]

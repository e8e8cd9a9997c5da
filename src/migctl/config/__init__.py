"""migctl's config layer: mig-parted v1 files, the inline ``--layout`` form, export, hooks.

Pure except for reading a file or stdin (and running hooks, in :mod:`migctl.config.hooks`).
"""

from migctl.config.errors import ConfigError
from migctl.config.export import CurrentGpu, CurrentInstance, export_spec, export_text
from migctl.config.inline import format_layout, parse_layout
from migctl.config.load import get_config, load_path, load_text
from migctl.config.select import GpuFacts, Selection, applies_to, resolve, select
from migctl.config.spec import MigConfigEntry, MigSpec

__all__ = [
    "ConfigError",
    "CurrentGpu",
    "CurrentInstance",
    "GpuFacts",
    "MigConfigEntry",
    "MigSpec",
    "Selection",
    "applies_to",
    "export_spec",
    "export_text",
    "format_layout",
    "get_config",
    "load_path",
    "load_text",
    "parse_layout",
    "resolve",
    "select",
]

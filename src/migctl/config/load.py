"""Loading configs: mig-parted v1 text -> :class:`MigSpec`, and choosing a named config in it.

The text is parsed by the one YAML reader (:func:`migctl.config.document.parse_document`:
line numbers, duplicate keys, size and alias guards) and validated against the v1 schema;
every problem is a :class:`ConfigError` with ``file:line: key: message``. Reading the file
(or stdin) is the caller's job (:mod:`migctl.ops.files`): this layer never touches a file.
"""

from __future__ import annotations

import difflib

from migctl.config.document import parse_document, validate
from migctl.config.errors import ConfigError
from migctl.config.spec import VERSION, MigConfigEntry, MigSpec

#: Every key a config or hooks file knows, for "unknown key; did you mean ...".
KNOWN_KEYS = (
    "version", "mig-configs", "device-filter", "devices", "mig-enabled", "mig-devices",
    "x-migctl", "instances", "profile", "placement", "compute",
    "hooks", "command", "args", "envs", "workdir",
)


def load_text(text: str, source: str = "<config>") -> MigSpec:
    """Parse and validate a mig-parted v1 config (YAML or JSON)."""
    doc = parse_document(text, source, empty_ok=True)
    if doc.data is None:  # mig-parted reads an empty document as a spec without configs
        return MigSpec.model_validate({"version": VERSION}).located(source, {})
    return validate(MigSpec, doc, known_keys=KNOWN_KEYS).located(source, dict(doc.lines))


def get_config(spec: MigSpec, name: str | None) -> list[MigConfigEntry | None]:
    """The entries of config ``name``. ``None`` or ``""`` picks the only config of a one-config
    file (mig-parted's rule). An unknown name lists the available ones, nearest first. An empty
    entry is ``None`` (it matches no GPU)."""
    names = spec.names()
    line = spec.line_of(("mig-configs",))
    if not names:
        asked = f"no config named {name!r}: " if name else ""
        raise ConfigError(f"{asked}the file defines no configs (it has no mig-configs)", source=spec.source, line=line)
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

"""Reading the files a command is given (``-f config.yaml``, ``-k hooks.yaml``, ``-`` for stdin),
and writing the ones it makes (``checkpoint -f``, ``generate-config -f``, the boot service's).

The config layer parses text and never touches a file; this is where the bytes come from.
``apply``/``plan``/``assert -c NAME`` without ``-f`` read :func:`default_config_file`:
``$MIGCTL_CONFIG_FILE`` (or ``$MIG_PARTED_CONFIG_FILE``) when set, else
``/etc/migctl/config.yaml`` when it exists, else
NVIDIA's default mig-parted file, which ships with migctl (:data:`NVIDIA_DEFAULT_CONFIG`).
Every problem (a missing file, not UTF-8, invalid YAML, a schema violation) is a
:class:`~migctl.errors.UsageError` (exit 2) whose message is the config layer's
``file:line: key: message``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from migctl.config import ConfigError, MigSpec, load_text
from migctl.config.hooks import HooksSpec, load_hooks_text
from migctl.errors import UsageError

T = TypeVar("T")

#: The variable that names the config file ``-c NAME`` reads when ``-f`` is not given.
#: The variables that name the config file ``-c NAME`` reads when ``-f`` is not given: migctl's,
#: then mig-parted's (as ``cli/env.py`` reads them for the command line).
CONFIG_ENV = ("MIGCTL_CONFIG_FILE", "MIG_PARTED_CONFIG_FILE")
#: The node's own config file, read when neither variable is set and it exists.
SYSTEM_CONFIG = Path("/etc/migctl/config.yaml")
#: NVIDIA's default mig-parted config (NVIDIA/mig-parted ``deployments/systemd/config-default.yaml``,
#: Apache-2.0, unchanged), shipped as package data: 81 layouts for every current MIG GPU.
NVIDIA_DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "data" / "mig-parted-config-default.yaml"


def default_config_file() -> str:
    """The config file to read when a command is given ``-c NAME`` but no ``-f``:
    ``$MIGCTL_CONFIG_FILE`` (or mig-parted's ``$MIG_PARTED_CONFIG_FILE``) if set (it must exist),
    else :data:`SYSTEM_CONFIG` if it exists, else :data:`NVIDIA_DEFAULT_CONFIG`."""
    for var in CONFIG_ENV:
        named = os.environ.get(var, "").strip()
        if named:
            return named
    if SYSTEM_CONFIG.exists():
        return str(SYSTEM_CONFIG)
    return str(NVIDIA_DEFAULT_CONFIG)


def usage_error(exc: ConfigError) -> UsageError:
    """A config-layer problem as the typed error operations raise (same one-line message)."""
    return UsageError(str(exc))


def read_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The text of ``path`` (``-``: stdin) and the name to report it by (``<stdin>`` for stdin)."""
    if str(path) == "-":
        try:
            return sys.stdin.read(), "<stdin>"
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(str(ConfigError(f"cannot read: {exc}", source="<stdin>"))) from None
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            return f.read(), source
    except UnicodeDecodeError:
        raise UsageError(str(ConfigError("cannot read: not UTF-8 text", source=source))) from None
    except OSError as exc:
        raise UsageError(str(ConfigError(f"cannot read: {exc.strerror or exc}", source=source))) from None


def _load(path: str | os.PathLike[str], parse: Callable[[str, str], T]) -> T:
    text, source = read_text(path)
    try:
        return parse(text, source)
    except ConfigError as exc:
        raise usage_error(exc) from None


def load_config_file(path: str | os.PathLike[str]) -> MigSpec:
    """A mig-parted v1 config file (``-``: stdin, as ``mig-parted apply -f -`` reads it)."""
    return _load(path, load_text)


def load_hooks_file(path: str | os.PathLike[str]) -> HooksSpec:
    """A mig-parted hooks file (``-``: stdin)."""
    return _load(path, load_hooks_text)


def write_file(path: str | os.PathLike[str], text: str, mode: int = 0o600, *, hint: str | None = None) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename) with
    ``mode``: a crash or a full disk leaves the old file or the new one, never half of one.
    Any failure is a :class:`~migctl.errors.UsageError` naming the file (the temp file is removed)."""
    target = os.fspath(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=os.path.dirname(target) or ".")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}", hint=hint) from None

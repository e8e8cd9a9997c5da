"""Reading the files a command is given (``-f config.yaml``, ``-k hooks.yaml``, ``-`` for stdin).

The config layer parses text and never touches a file; this is where the bytes come from.
Every problem (a missing file, not UTF-8, invalid YAML, a schema violation) is a
:class:`~migctl.errors.UsageError` (exit 2) whose message is the config layer's
``file:line: key: message``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from migctl.config import ConfigError, MigSpec, load_text
from migctl.config.hooks import HooksSpec, load_hooks_text
from migctl.errors import UsageError

T = TypeVar("T")


def usage_error(exc: ConfigError) -> UsageError:
    """A config-layer problem as the typed error operations raise (same one-line message)."""
    return UsageError(str(exc))


#: The largest file (or stdin) migctl reads as a config, hooks or jobs file: such files are a few
#: kilobytes; a larger one (``-f /dev/zero``) is refused at once, before the host lock.
MAX_FILE_BYTES = 1024 * 1024


def _too_large(source: str, what: str = "") -> UsageError:
    why = f"cannot read{what}: larger than {MAX_FILE_BYTES // 1024} KiB, which no such file needs"
    return UsageError(str(ConfigError(why, source=source)))


def _decode(data: bytes, source: str, what: str = "") -> str:
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(source, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(str(ConfigError(f"cannot read{what}: not UTF-8 text", source=source))) from None


def read_text(path: str | os.PathLike[str], what: str = "") -> tuple[str, str]:
    """The text of ``path`` (``-``: stdin) and the name to report it by (``<stdin>`` for stdin).

    At most :data:`MAX_FILE_BYTES`; more, or bytes that are not UTF-8, is a :class:`UsageError`
    (``what``, e.g. ``"jobs file"``, names the file in it).
    """
    what = f" the {what}" if what else ""
    if str(path) == "-":
        try:
            stream = getattr(sys.stdin, "buffer", None)
            if stream is not None:
                return _decode(stream.read(MAX_FILE_BYTES + 1), "<stdin>", what), "<stdin>"
            text = sys.stdin.read(MAX_FILE_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(str(ConfigError(f"cannot read{what}: {exc}", source="<stdin>"))) from None
        if len(text) > MAX_FILE_BYTES:
            raise _too_large("<stdin>", what)
        return text, "<stdin>"
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            return _decode(f.read(MAX_FILE_BYTES + 1), source, what), source
    except OSError as exc:
        raise UsageError(str(ConfigError(f"cannot read{what}: {exc.strerror or exc}", source=source))) from None


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

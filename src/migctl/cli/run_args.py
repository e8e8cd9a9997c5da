"""``migctl run``'s command line: ``[--on TARGET] [--queue [SECONDS] | --no-queue] [-q] [--json]
[--record FILE] [global options] [--] COMMAND...``.

The options are typer options (:mod:`migctl.cli.run_cmds`); two things about this grammar are
beyond click, and are settled here before click parses:

* ``--queue`` takes a value only when the next word is a number (``--queue 30 python x.py``,
  ``--queue python x.py``); click's optional values would take ``python``. :func:`normalize`
  rewrites ``--queue [N]`` as ``--queue=N``, or ``--queue=`` + :data:`FOREVER`.
* Options end at the command: the first word that is not an option (or ``--``) starts it, and
  everything after belongs to it, options too. An unknown option before the command is an
  error that says to put the command after ``--``.

``--wait``/``--no-wait`` are the device queue's old names (before ``--wait`` came to mean one
thing on every command, the host lock's wait): they still work, with a deprecation warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.errors import UsageError

#: ``--queue`` with no number: wait as long as needed. A NUL cannot come from a command line.
FOREVER = "\0forever"

#: old spelling -> new (still accepted, with a warning: see :func:`deprecated`).
RENAMED = {"--wait": "--queue", "--no-wait": "--no-queue"}

_FLAGS = frozenset({"--no-queue", "--no-wait", "-q", "--quiet", "--json", "--help", "--debug", "--version"})
_VALUED = {
    "--on": "a TARGET (a MIG-<uuid>, GPU:GI such as 0:13, or a profile)",
    "-o": "a TARGET (a MIG-<uuid>, GPU:GI such as 0:13, or a profile)",
    "--record": "a FILE",
    "--sim": "a SPEC such as h20x8",
    "--state-dir": "a DIR",
}
_JOINED = ("--on=", "--queue=", "--wait=", "--record=", "--sim=", "--state-dir=")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def normalize(args: Sequence[str]) -> list[str]:
    """``args`` with each ``--queue`` in ``--queue=VALUE`` form (old spellings renamed); checks
    what click would word differently."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-") or a == "-":
            break  # the command (or --) starts here: from now on, every word is the command's
        if a in _VALUED:
            if i + 1 >= len(args):
                raise UsageError(f"{a} needs {_VALUED[a]}")
            out += [a, args[i + 1]]
            i += 2
            continue
        if a in ("--queue", "--wait"):
            if i + 1 < len(args) and _is_number(args[i + 1]):
                out.append(f"--queue={args[i + 1]}")
                i += 2
            else:
                out.append(f"--queue={FOREVER}")
                i += 1
            continue
        if a.startswith("--wait="):
            a = "--queue=" + a.split("=", 1)[1]
        if a in _FLAGS or a.startswith(_JOINED):
            out.append(RENAMED.get(a, a))
            i += 1
            continue
        raise UsageError(
            f"run: no such option {a!r}",
            hint="options go before the command; put the command after --: migctl run --on 0:13 -- python -u x.py",
        )
    return out + list(args[i:])


def options_part(args: Sequence[str]) -> list[str]:
    """The words before the command (migctl's own, as :func:`normalize` reads them)."""
    out: list[str] = []
    i = 0
    while i < len(args) and args[i] != "--" and args[i].startswith("-") and args[i] != "-":
        numbered = args[i] in ("--queue", "--wait") and i + 1 < len(args) and _is_number(args[i + 1])
        step = 2 if args[i] in _VALUED or numbered else 1
        out += args[i : i + step]
        i += step
    return out


def deprecated(args: Sequence[str]) -> list[str]:
    """The old spellings (``--wait``, ``--no-wait``) among migctl's own words of ``args``."""
    return [w for w in (a.split("=", 1)[0] for a in options_part(args)) if w in RENAMED]


def queue_seconds(queue: str | None, no_queue: bool) -> float | None:
    """``--queue``/``--no-queue`` as the run takes them: 0 (default), ``None`` (forever) or seconds."""
    if queue is not None and no_queue:
        raise UsageError("--queue and --no-queue exclude each other")
    if queue is None:
        return 0.0
    if queue == FOREVER:
        return None
    try:
        value = float(queue)
    except ValueError:
        raise UsageError(f"--queue {queue!r}: expected a number of seconds") from None
    if value < 0 or value != value:
        raise UsageError(f"--queue {queue!r}: expected a number of seconds >= 0")
    return value


def command_of(words: Sequence[str] | None) -> tuple[str, ...]:
    if not words:
        raise UsageError("run: no command given", hint="e.g. migctl run --on 1g.12gb -- python train.py")
    return tuple(words)

"""``migctl run``'s command line: ``[--on TARGET] [--wait [SECONDS] | --no-wait] [-q] [--json]
[--record FILE] [--] COMMAND...``.

The options are typer options (:mod:`migctl.cli.run_cmds`); two things about this grammar are
beyond click, and are settled here before click parses:

* ``--wait`` takes a value only when the next word is a number (``--wait 30 python x.py``,
  ``--wait python x.py``); click's optional values would take ``python``. :func:`normalize`
  rewrites ``--wait [N]`` as ``--wait=N``, or ``--wait=`` + :data:`FOREVER`.
* Options end at the command: the first word that is not an option (or ``--``) starts it, and
  everything after belongs to it, options too. An unknown option before the command is an
  error that says to put the command after ``--``.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.errors import UsageError

#: ``--wait`` with no number: wait as long as needed. A NUL cannot come from a command line.
FOREVER = "\0forever"

_FLAGS = frozenset({"--no-wait", "-q", "--quiet", "--json", "--help"})
_VALUED = {"--on": "a TARGET (a MIG-<uuid>, GPU:GI such as 0:13, or a profile)", "-o": None, "--record": "a FILE"}
_VALUED["-o"] = _VALUED["--on"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def normalize(args: Sequence[str]) -> list[str]:
    """``args`` with each ``--wait`` in ``--wait=VALUE`` form; checks what click would word differently."""
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
        if a == "--wait":
            if i + 1 < len(args) and _is_number(args[i + 1]):
                out.append(f"--wait={args[i + 1]}")
                i += 2
            else:
                out.append(f"--wait={FOREVER}")
                i += 1
            continue
        if a in _FLAGS or a.startswith(("--on=", "--wait=", "--record=")):
            out.append(a)
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
        step = 2 if args[i] in _VALUED else 1
        out += args[i : i + step]
        i += step
    return out


def wait_seconds(wait: str | None, no_wait: bool) -> float | None:
    """``--wait``/``--no-wait`` as the run takes them: 0 (default), ``None`` (forever) or seconds."""
    if wait is not None and no_wait:
        raise UsageError("--wait and --no-wait exclude each other")
    if wait is None:
        return 0.0
    if wait == FOREVER:
        return None
    try:
        value = float(wait)
    except ValueError:
        raise UsageError(f"--wait {wait!r}: expected a number of seconds") from None
    if value < 0 or value != value:
        raise UsageError(f"--wait {wait!r}: expected a number of seconds >= 0")
    return value


def command_of(words: Sequence[str] | None) -> tuple[str, ...]:
    if not words:
        raise UsageError("run: no command given", hint="e.g. migctl run --on 1g.12gb -- python train.py")
    return tuple(words)

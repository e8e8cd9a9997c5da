"""``migctl run``'s command line, over its whole grammar (hypothesis):

    migctl run [--on TARGET | -o TARGET | --on=TARGET] [--queue [SECONDS] | --queue=SECONDS | --no-queue]
               [-q | --quiet] [--json] [--record FILE] [--sim SPEC] [--debug] [--] COMMAND [ARGS...]

Options come in any order and number before the command (the last of a kind wins); ``--queue``
takes the next word only when it is a number; the first word that is not an option starts the
command, and every word after it is the command's. ``--wait``/``--no-wait`` are ``--queue``'s
old spellings and mean the same. Parsed by the real CLI (the lazy group, typer/click and
``migctl.cli.run_args``), compared with what the grammar says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.config.target import ANY, parse_target
from migctl.errors import UsageError
from migctl.ops.run import RunRequest


@cache
def _run_command() -> Any:
    from migctl.cli.group import load

    return load("run")


def parse(argv: list[str]) -> tuple[RunRequest, dict[str, Any]]:
    """What ``migctl run ARGV`` asks for: the CLI's own parse, then its typed request."""
    from migctl.cli.app import STATE
    from migctl.cli.run_cmds import run_request

    saved = dict(os.environ)  # --sim/--state-dir set the environment for the run's children
    try:
        ctx = _run_command().make_context("run", list(argv))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        STATE.reset([])
    p = ctx.params
    return run_request(p["command"], p["on"], p["queue"], p["no_queue"]), p


@dataclass
class Expected:
    on: str | None = None
    wait: float | None = 0.0
    waits: bool = False
    no_wait: bool = False
    quiet: bool = False
    json: bool = False
    record: str | None = None
    tokens: list[str] = field(default_factory=list)
    bare_wait_last: bool = False  # the last token is a --queue without a number


words = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=10)
#: --queue's spellings: the name, and the deprecated old one (same meaning).
QUEUE = st.sampled_from(["--queue", "--wait"])
NO_QUEUE = st.sampled_from(["--no-queue", "--no-wait"])
numbers = st.one_of(
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["0", "1e3", "2.5", ".5", "inf", " 7 "]),
)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@st.composite
def option(draw: st.DrawFn, e: Expected, sink: bool) -> None:
    """Append one option (in one of its spellings) to ``e.tokens`` and note what it means.

    ``sink``: also ``--json`` and ``--record`` (which route errors: not for tests of errors).
    """
    kinds = ["on", "wait", "bare-wait", "no-wait", "quiet", "global"] + (["json", "record"] if sink else [])
    kind = draw(st.sampled_from(kinds))
    e.bare_wait_last = False
    if kind == "on":
        value = draw(words)
        e.tokens += draw(st.sampled_from([["--on", value], ["-o", value], [f"--on={value}"]]))
        e.on = value
    elif kind == "wait":
        n = draw(numbers)
        name = draw(QUEUE)
        e.tokens += draw(st.sampled_from([[name, n], [f"{name}={n}"]]))
        e.wait, e.waits = float(n), True
    elif kind == "bare-wait":
        e.tokens.append(draw(QUEUE))
        e.wait, e.waits, e.bare_wait_last = None, True, True
    elif kind == "no-wait":
        e.tokens.append(draw(NO_QUEUE))
        e.no_wait = True
    elif kind == "global":  # migctl's global options may stand among run's own
        e.tokens += draw(st.sampled_from([["--sim", "h20x8"], ["--sim=a30"], ["--debug"], ["--state-dir", "/x"]]))
    elif kind == "quiet":
        e.tokens.append(draw(st.sampled_from(["-q", "--quiet"])))
        e.quiet = True
    elif kind == "json":
        e.tokens.append("--json")
        e.json = True
    else:
        path = draw(st.text("abc/._-", min_size=1, max_size=8).filter(lambda t: not t.startswith("-")))
        e.tokens += draw(st.sampled_from([["--record", path], [f"--record={path}"]]))
        e.record = path


@st.composite
def command_line(
    draw: st.DrawFn, *, both_waits: bool = False, sink: bool = True
) -> tuple[list[str], Expected, list[str]]:
    e = Expected()
    for _ in range(draw(st.integers(0, 6))):
        draw(option(e, sink))
    if both_waits and not (e.waits and e.no_wait):
        e.tokens.append(draw(NO_QUEUE))
        e.tokens += [draw(QUEUE), "1"]
        e.no_wait = e.waits = True
        e.bare_wait_last = False
    command = draw(st.lists(words, min_size=1, max_size=4))
    separated = draw(st.booleans())
    first = command[0]
    plain_first = not first.startswith("-") or first == "-"
    if not separated and (not plain_first or (e.bare_wait_last and _is_number(first))):
        separated = True  # without --, that word would be read as an option (or as --queue's value)
    argv = [*e.tokens, *(["--"] if separated else []), *command]
    return argv, e, command


@settings(max_examples=300, deadline=None)
@given(command_line())
def test_every_well_formed_command_line_means_what_the_grammar_says(
    case: tuple[list[str], Expected, list[str]],
) -> None:
    argv, e, command = case
    if e.waits and e.no_wait:
        with pytest.raises(UsageError, match="--queue and --no-queue exclude each other"):
            parse(argv)
        return
    request, params = parse(argv)
    assert request.command == tuple(command)
    assert params["on"] == e.on and request.target.text == (e.on or "").strip()
    assert request.wait_s == e.wait
    assert (params["quiet"], params["json_out"]) == (e.quiet, e.json)
    # click hands typer the text; typer makes the Path when it calls run()
    record = params["record"]
    assert (None if record is None else Path(record)) == (None if e.record is None else Path(e.record))


@settings(max_examples=50, deadline=None)
@given(command_line(both_waits=True))
def test_queue_and_no_queue_exclude_each_other(case: tuple[list[str], Expected, list[str]]) -> None:
    with pytest.raises(UsageError) as info:
        parse(case[0])
    assert info.value.message == "--queue and --no-queue exclude each other"


_KNOWN = (
    *("--on", "-o", "--queue", "--no-queue", "--wait", "--no-wait", "-q", "--quiet", "--json", "--record"),
    *("--help", "--sim", "--state-dir", "--debug", "--version", "--"),
)
unknown = st.text(min_size=1, max_size=8).map(lambda t: "-" + t).filter(
    lambda t: t not in _KNOWN
    and not t.startswith(("--on=", "--queue=", "--wait=", "--record=", "--sim=", "--state-dir="))
    and not _is_number(t)
)


@settings(max_examples=150, deadline=None)
@given(command_line(sink=False), unknown, st.data())
def test_an_unknown_option_before_the_command_is_named(
    case: tuple[list[str], Expected, list[str]], bad: str, data: st.DataObject
) -> None:
    argv, e, _ = case
    # between two whole options (never between an option and its value)
    cuts = [0] + [i for i in range(1, len(e.tokens) + 1) if _starts_option(e.tokens, i)]
    at = data.draw(st.sampled_from(cuts))
    with pytest.raises(UsageError) as info:
        parse([*argv[:at], bad, *argv[at:]])
    assert info.value.message == f"run: no such option {bad!r}"
    assert info.value.hint is not None and "put the command after --" in info.value.hint


def _starts_option(tokens: list[str], i: int) -> bool:
    """Whether an option starts at ``tokens[i]`` (or the options end there)."""
    j = 0
    while j < len(tokens):
        if j == i:
            return True
        valued = tokens[j] in ("--on", "-o", "--record", "--sim", "--state-dir") or (
            tokens[j] in ("--queue", "--wait") and j + 1 < len(tokens) and _is_number(tokens[j + 1])
        )
        j += 2 if valued else 1
    return j == i


@settings(max_examples=100, deadline=None)
@given(command_line(sink=False), st.sampled_from(["--on", "-o", "--record"]))
def test_an_option_without_its_value_says_what_it_needs(
    case: tuple[list[str], Expected, list[str]], option_name: str
) -> None:
    e = case[1]
    with pytest.raises(UsageError) as info:
        parse([*e.tokens, option_name])
    needs = "a FILE" if option_name == "--record" else "a TARGET (a MIG-<uuid>, GPU:GI such as 0:13, or a profile)"
    assert info.value.message == f"{option_name} needs {needs}"


@settings(max_examples=100, deadline=None)
@given(command_line(), st.booleans())
def test_no_command_is_refused(case: tuple[list[str], Expected, list[str]], dashdash: bool) -> None:
    _, e, _ = case
    if e.waits and e.no_wait:
        return
    with pytest.raises(UsageError) as info:
        parse([*e.tokens, *(["--"] if dashdash else [])])
    assert info.value.message == "run: no command given"
    assert info.value.hint == "e.g. migctl run --on 1g.12gb -- python train.py"


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(numbers.filter(lambda n: float(n) > 0).map(lambda n: "-" + n.strip()), st.just("nan")),
    st.booleans(),
    QUEUE,
)
def test_a_negative_or_nan_queue_is_refused(value: str, joined: bool, name: str) -> None:
    argv = [f"{name}={value}"] if joined else [name, value]
    with pytest.raises(UsageError) as info:
        parse([*argv, "true"])
    assert info.value.message == f"--queue {value!r}: expected a number of seconds >= 0"


@settings(max_examples=100, deadline=None)
@given(words.filter(lambda t: not _is_number(t)), QUEUE)
def test_a_queue_that_is_no_number_is_refused(value: str, name: str) -> None:
    with pytest.raises(UsageError) as info:
        parse([f"{name}={value}", "true"])
    assert info.value.message == f"--queue {value!r}: expected a number of seconds"


def test_the_examples_of_the_help() -> None:
    """Fixed cases a reader can check by eye (what the old hand-written parser was tested with)."""
    request, _ = parse(["--on", "0:11", "--queue", "--", "python", "-u", "x.py"])
    assert (request.target, request.wait_s, request.command) == (parse_target("0:11"), None, ("python", "-u", "x.py"))
    request, _ = parse(["--queue", "2.5", "python", "--on", "y"])  # options end at the command
    assert (request.target, request.wait_s, request.command) == (ANY, 2.5, ("python", "--on", "y"))
    assert parse(["--queue=3", "true"])[0].wait_s == 3.0
    assert parse(["true"])[0].wait_s == 0.0  # --no-queue is the default
    assert parse(["--queue", "-q", "true"])[0].wait_s is None  # -q is no number: wait forever, then -q
    assert parse(["--wait", "4", "true"])[0].wait_s == 4.0  # the old spelling still works
    request, _ = parse(["--sim", "h20x8", "--queue", "1", "--json", "python", "--sim", "x"])
    assert (request.wait_s, request.command) == (1.0, ("python", "--sim", "x"))  # the command's --sim is its own
    for bad in (["--on"], [], ["--queue", "--no-queue", "true"], ["--bogus", "true"], ["--queue", "-1", "x"]):
        with pytest.raises(UsageError):
            parse(bad)


def test_the_old_spelling_says_it_is_deprecated(migctl: Any) -> None:
    """``run --wait`` still queues, and says (once, on stderr) that it is ``--queue`` now."""
    r = migctl("--sim", "h20x8", "run", "--wait", "0", "--", "true")
    assert r.code != 0  # no MIG device on a fresh node: refused, but the warning came first
    assert "migctl: warning: run --wait is now --queue" in r.err
    quiet = migctl("--sim", "h20x8", "run", "--queue", "0", "--", "true")
    assert "warning" not in quiet.err

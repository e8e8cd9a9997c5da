"""The docs' own examples work: every command block of README.md and docs/*.md runs, doctest-style.

The convention (also in docs/architecture.md, "The docs are tested"):

* Every fenced block says its language. Command blocks are ```` ```console ```` (a session:
  ``$ `` lines are commands, the lines after one, up to the next, its expected output, stdout
  then stderr) and ```` ```bash ```` (commands only: each must exit 0). Any other language is
  not run; an untagged block with a line starting ``$ `` or ``migctl `` fails this test.
* Expected output is compared line by line (trailing spaces ignored): ``...`` inside a line
  matches any text, and a line that is just ``...`` any number of lines.
* HTML comments on the lines just before a block steer it:
  ``<!-- doctest: skip: REASON -->`` (not run; a test checks the reason and the test it names),
  ``<!-- doctest: setup: COMMAND -->`` (run first, output not shown, must exit 0),
  ``<!-- doctest: file NAME -->`` (a yaml/json block written to ``NAME`` for later commands).
* Each document is one session, in order: a fresh ``MIGCTL_STATE_DIR`` and working directory
  (with ``examples/`` from the repository), no other ``MIGCTL_*`` variable. A ``bash`` block
  runs line by line, stopping at the first that fails. A line with shell syntax (pipes,
  redirections, ``$VAR``) runs in bash, and what it exports stays set for the rest of the
  document. Other lines run directly:
  ``migctl`` in-process (the console script's own entry point; ``sim exec``, which replaces its
  process, apart), ``python`` and other programs as real processes; ``VAR=VALUE migctl ...``
  sets a variable for one command, ``export`` for the rest of the document.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO, run_in_process

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND_LANGUAGES = ("console", "bash")
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*doctest:\s*(skip|setup|file)\s*:?\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    doc: Path
    line: int
    language: str
    body: list[str]
    skip: str | None = None
    setup: list[str] = field(default_factory=list)
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    directives: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        d = _DIRECTIVE.match(lines[i])
        if d:
            directives.append((d[1], d[2]))
            i += 1
            continue
        m = _FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                directives = []
            i += 1
            continue
        indent, language = m[1], m[2]
        start, body = i + 1, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        block = Block(doc, start, language, body)
        for kind, value in directives:
            if kind == "skip":
                block.skip = value or "(no reason given)"
            elif kind == "setup":
                block.setup.append(value)
            else:
                block.file = value
        out.append(block)
        directives = []
        i += 1
    return out


ALL = [b for doc in DOCS for b in blocks(doc)]


def test_every_block_says_what_it_is() -> None:
    untagged = [b.where for b in ALL if not b.language and any(
        line.startswith(("$ ", "migctl ")) for line in b.body)]
    assert not untagged, f"command blocks must be ```console or ```bash: {untagged}"
    reasonless = [b.where for b in ALL if b.skip == "(no reason given)"]
    assert not reasonless, f"a skipped block says why: {reasonless}"


# -- running a document -------------------------------------------------------------------------


_SHELL = re.compile(r"[|<>;&`]|\$\(|\$[A-Za-z_{]")


@dataclass
class Session:
    cwd: Path
    env: dict[str, str]

    def shell(self, script: str) -> tuple[int, str]:
        """Run ``script`` in bash (``set -e``, in the session's directory and environment); the
        variables it exports stay set for the rest of the document."""
        saved = self.cwd / ".doctest-env"
        full = f"set -e -o pipefail\n{script}\nenv -0 > {shlex.quote(str(saved))}\n"
        p = subprocess.run(["bash", "-c", full], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                           timeout=300, check=False)
        if p.returncode == 0 and saved.exists():
            pairs = [item.partition("=") for item in saved.read_text().split("\0") if "=" in item]
            self.env = {k: v for k, _, v in pairs}
            saved.unlink()
        return p.returncode, p.stdout + p.stderr

    def run(self, command: str) -> tuple[int, str]:
        """Run one command line; returns its exit status and its output (stdout, then stderr)."""
        if _SHELL.search(command.split(" #")[0]):
            return self.shell(command)
        words = shlex.split(command, comments=True)
        env = dict(self.env)
        if words and words[0] == "export":
            for assignment in words[1:]:
                key, _, value = assignment.partition("=")
                self.env[key] = value
            return 0, ""
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        if not words:  # VAR=VALUE alone: a variable for the rest of the document, as in a shell
            self.env = env
            return 0, ""
        if words[0] == "migctl" and "exec" not in words:  # sim exec replaces the process: run it apart
            saved = os.getcwd()
            os.chdir(self.cwd)
            try:
                r = run_in_process(tuple(words[1:]), env, None)
            finally:
                os.chdir(saved)
            return r.code, r.out + r.err
        if words[0] in ("python", "python3"):
            words[0] = sys.executable
        try:
            p = subprocess.run(words, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
        except FileNotFoundError:
            return 127, f"{words[0]}: command not found"
        return p.returncode, p.stdout + p.stderr


def matches(expected: list[str], got: list[str]) -> bool:
    """Doctest's ELLIPSIS, by line: ``...`` in a line is any text, a ``...`` line any lines."""
    if not expected:
        return not got
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(matches(rest, got[k:]) for k in range(len(got) + 1))
    if not got:
        return False
    pattern = ".*".join(re.escape(part) for part in head.rstrip().split("..."))
    return re.fullmatch(pattern, got[0].rstrip()) is not None and matches(rest, got[1:])


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _logical_lines(body: list[str]) -> list[str]:
    """A bash block's commands: comments and blank lines dropped, ``\\`` continuations joined."""
    out: list[str] = []
    pending = ""
    for line in body:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out


def console_steps(block: Block) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for line in block.body:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return [(cmd, _trim(out)) for cmd, out in steps]


def run_document(doc: Path, tmp: Path) -> list[str]:
    """Run every block of ``doc``; returns the problems found (and the blocks skipped, as notes)."""
    work = tmp / "work"
    work.mkdir()
    (work / "examples").symlink_to(REPO / "examples")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    env.update({"MIGCTL_STATE_DIR": str(tmp / "state"), "COLUMNS": "120", "HOME": str(tmp), "NO_COLOR": "1",
                "PATH": path, "PYTHONWARNINGS": "ignore"})
    session = Session(work, env)
    problems: list[str] = []
    for block in blocks(doc):
        if block.file:
            (work / block.file).write_text("\n".join(block.body) + "\n")
        if block.skip or block.language not in COMMAND_LANGUAGES:
            continue
        for command in block.setup:
            code, out = session.run(command)
            if code != 0:
                problems.append(f"{block.where}: setup `{command}` exited {code}:\n{out}")
        if block.language == "bash":
            for line in _logical_lines(block.body):
                code, out = session.run(line)
                if code != 0:
                    problems.append(f"{block.where}: `{line}` exited {code}:\n{out}")
                    break
            continue
        for command, expected in console_steps(block):
            _, out = session.run(command)
            got = _trim(out.splitlines())
            if not matches(expected, got):
                problems.append(
                    f"{block.where}: `{command}`\n--- expected\n" + "\n".join(expected) + "\n--- got\n" + "\n".join(got)
                )
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_the_commands_of(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    problems = run_document(doc, tmp_path)
    assert not problems, "\n\n".join(problems)


NOT_RUN = [b for b in ALL if b.skip and b.language in COMMAND_LANGUAGES]


@pytest.mark.parametrize("block", NOT_RUN, ids=lambda b: b.where)
def test_a_block_that_is_not_run_says_why_and_where_it_is_checked_instead(block: Block) -> None:
    """A block the doc test cannot run (hardware, a kill -9, a server) gives its reason, and a
    test it names as doing the same thing exists."""
    reason = block.skip or ""
    assert len(reason.split()) >= 3, f"{block.where}: give a reason, not just {reason!r}"
    for path, name in re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", reason):
        source = REPO / path
        assert source.is_file(), f"{block.where} names {path}, which does not exist"
        if name:
            assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{block.where}: no {path}::{name}"

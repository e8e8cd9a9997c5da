"""One grammar for every command (issue 10 §3), over its whole range (hypothesis):

* global options (``--sim``, ``--state-dir``, ``--json``, ``--debug``) mean the same before and
  after the command name;
* ``--gi``/``--ci``/``--uuid`` take comma lists as well as repeats (``-i`` and its default:
  test_cli_gpus.py);
* a bad value is exit 2 with exactly one line on stderr (or one JSON document with ``--json``),
  and changes nothing;
* ``--help`` shows no Python types, and the registry the top-level help is drawn from lists
  exactly the commands each module defines.
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli, Sim, SimFactory, one_line_error
from migctl.cli import registry
from migctl.config.errors import ConfigError
from migctl.config.gpus import parse_ids, split_list

FIXTURES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)




# -- the registry and --help --------------------------------------------------------------------


def test_each_module_defines_exactly_the_commands_the_registry_lists() -> None:
    import typer

    for module, names in registry.module_commands().items():
        app = importlib.import_module(f"migctl.cli.{module}").app
        defined = list(typer.main.get_group(app).commands)
        assert sorted(defined) == sorted(names), module


def test_top_help_lists_every_command_with_its_registry_line(migctl: Cli) -> None:
    text = migctl("--help").out
    for name, (_, section, line) in registry.COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(line[:40])}", text, re.M), name
        assert f"\n{section}:\n" in text
    for flag, _, _ in registry.GLOBAL_OPTIONS:
        assert f"  {flag}" in text
    assert migctl().code == 2  # no command: the help, as a usage error


#: The commands that are groups of subcommands, and the subcommands each has.
GROUPS = {
    "sim": {"models", "reset", "reset-gpu", "reload-driver", "fabric-manager", "attach", "load", "exec"},
    "boot": {"install", "select", "apply", "status", "uninstall"},
    "slurm": {"task-prolog"},
    "k8s": {"hooks-file", "clients"},
    "ray": {"up", "down"},
    "cluster": {"status", "plan", "apply", "assert"},
}


def test_the_groups_are_the_registrys() -> None:
    from migctl.cli.group import load

    found = {name: set(sub) for name in registry.COMMANDS if (sub := getattr(load(name), "commands", None))}
    assert found == GROUPS


def _all_commands() -> list[list[str]]:
    out = [[name] for name in registry.COMMANDS]
    out += [[group, sub] for group, subs in GROUPS.items() for sub in sorted(subs)]
    return out


#: What typer/click print for a parameter without a metavar, or a default beside our own words.
PYTHON_TYPES = re.compile(r"<(str|int|float|bool|path|list\[|int range|float range)|\[default: |\[x>=")


@pytest.mark.parametrize("argv", _all_commands(), ids=" ".join)
def test_help_shows_no_python_types(migctl: Cli, argv: list[str]) -> None:
    r = migctl(*argv, "--help")
    assert r.code == 0, r.err
    assert PYTHON_TYPES.search(r.out) is None, r.out
    assert "Usage: migctl " + " ".join(argv) in r.out
    for flag in ("--sim", "--state-dir", "--json", "--debug"):
        assert flag in r.out, (argv, flag)  # the global options are every command's (and group's)


def test_the_lock_wait_is_one_option_with_one_default() -> None:
    from migctl.cli.app import DEFAULT_WAIT_S
    from migctl.ops.lock import DEFAULT_WAIT_S as OPS_DEFAULT

    assert DEFAULT_WAIT_S == OPS_DEFAULT


def test_the_help_defaults_are_the_operations_defaults() -> None:
    from migctl.ops.batch import DEFAULT_GRACE_S
    from migctl.ops.doctor import SMOKE_TIMEOUT_S

    assert (DEFAULT_GRACE_S, SMOKE_TIMEOUT_S) == (10.0, 60.0)  # as run_cmds states them without importing


# -- global options before or after the command --------------------------------------------------

READ_ONLY = [["status"], ["devices"], ["profiles"], ["placements", "1g.6gb"], ["export"], ["status", "-i", "0"]]


@pytest.fixture(scope="module")
def reference_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each read-only command's --json on a fresh a30x2 node, with every global option first."""
    from conftest import run_in_process

    state = str(tmp_path_factory.mktemp("state"))
    out = {}
    for argv in READ_ONLY:
        r = run_in_process(("--sim", "a30x2", "--state-dir", state, "--json", *argv), {"COLUMNS": "200"}, None)
        assert r.code == 0, r.err
        out[" ".join(argv)] = r.json()
    return {"state": state, **out}


@FIXTURES
@given(
    argv=st.sampled_from(READ_ONLY),
    places=st.lists(st.booleans(), min_size=3, max_size=3),
    joined=st.booleans(),
    debug=st.booleans(),
)
def test_global_options_mean_the_same_before_and_after_the_command(
    reference_outputs: dict[str, Any], argv: list[str], places: list[bool], joined: bool, debug: bool
) -> None:
    from conftest import run_in_process

    state = reference_outputs["state"]
    options = [
        ["--sim=a30x2"] if joined else ["--sim", "a30x2"],
        [f"--state-dir={state}"] if joined else ["--state-dir", state],
        ["--json"],
    ] + ([["--debug"]] if debug else [])
    before = [w for opt, first in zip(options, [*places, True], strict=False) if first for w in opt]
    after = [w for opt, first in zip(options, [*places, True], strict=False) if not first for w in opt]
    r = run_in_process((*before, *argv, *after), {"COLUMNS": "200"}, None)
    assert r.code == 0, (before, argv, after, r.err)
    assert r.json() == reference_outputs[" ".join(argv)]


def test_sim_given_after_the_command_reaches_the_jobs_it_starts(migctl: Cli, migctl_process: Cli) -> None:
    r = migctl("mode", "enable", "-i", "0", "--sim", "a30x2")
    assert r.code == 0, r.err
    migctl("create", "1g.6gb", "--sim", "a30x2")
    # a real process: the job's output is its own stdout
    r = migctl_process("run", "--sim", "a30x2", "--", "sh", "-c", "echo $MIGCTL_SIM")
    assert (r.code, r.out.strip()) == (0, "a30x2"), r.err


def test_sim_exec_leaves_the_commands_words_to_it(migctl: Cli, migctl_process: Cli) -> None:
    """migctl's own words end at the command ``sim exec`` runs (or at --), as for ``run``."""
    import sys

    show = "import sys; print(sys.argv[1:])"
    for argv in (["sim", "exec", sys.executable], ["sim", "exec", "--", sys.executable]):
        r = migctl_process("--sim", "a30x2", *argv, "-c", show, "--json", "--sim", "x", "-i", "0")
        assert (r.code, r.out.strip()) == (0, "['--json', '--sim', 'x', '-i', '0']"), r.err
    # a --json after the command is the command's: migctl's own error stays one line
    one_line_error(migctl("--sim", "a30x2", "sim", "exec", "no-such-program-x", "--json"), 2)
    for before in (["--json", "sim", "exec"], ["sim", "exec", "--json"], ["sim", "--json", "exec"]):
        r = migctl("--sim", "a30x2", *before, "no-such-program-x")
        assert (r.code, r.json()["error"], r.err) == (2, "usage", ""), r.out
    one_line_error(migctl("--sim", "a30x2", "sim", "exec", "--bogus", "x"), 2)  # an unknown option of migctl's
    one_line_error(migctl("--sim", "a30x2", "sim", "exec"), 2)  # no command


# -- lists: comma-separated, repeated, or both ----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 99), min_size=1, max_size=8), st.data())
def test_id_lists_may_be_split_across_repeats_any_way(ids: list[int], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(ids) - 1), max_size=len(ids) - 1)) if len(ids) > 1 else [])
    groups = [ids[a:b] for a, b in itertools.pairwise([0, *cuts, len(ids)])]
    values = [",".join(map(str, g)) for g in groups]
    assert parse_ids(values, option="--gi") == ids
    assert split_list(values) == [str(i) for i in ids]


@pytest.mark.parametrize("bad", ["x", "9,x", "-1", "1.5", "9;10"])
def test_a_bad_id_names_itself(bad: str) -> None:
    with pytest.raises(ConfigError, match="is not an ID"):
        parse_ids([bad], option="--gi")


@pytest.fixture
def four(sim: SimFactory) -> tuple[Sim, list[dict[str, Any]]]:
    s = sim("h20x8", enable="0")
    return s, s.create("-i", "0", "1g.12gb:4")


@pytest.mark.parametrize("spelling", ["comma", "repeat", "mixed"])
def test_destroy_takes_lists_of_gpu_instances(four: tuple[Sim, list[dict[str, Any]]], spelling: str) -> None:
    s, made = four
    gis = [str(m["gpu_instance_id"]) for m in made[:3]]
    argv = {
        "comma": ["--gi", ",".join(gis)],
        "repeat": [w for g in gis for w in ("--gi", g)],
        "mixed": ["--gi", ",".join(gis[:2]), "--gi", gis[2]],
    }[spelling]
    done = s.json("destroy", "-i", "0", *argv)["destroyed"]
    assert sorted({d["gpu_instance_id"] for d in done}) == sorted(int(g) for g in gis)
    assert [g["id"] for g in s.gpu()["gpu_instances"]] == [made[3]["gpu_instance_id"]]


def test_destroy_takes_lists_of_compute_instances_and_uuids(four: tuple[Sim, list[dict[str, Any]]]) -> None:
    s, made = four
    a, b, c, d = made
    done = s.json("destroy", "-i", "0", "--ci", f"{a['gpu_instance_id']}:0,{b['gpu_instance_id']}:0")["destroyed"]
    assert {x["uuid"] for x in done} == {a["uuid"], b["uuid"]}
    done = s.json("destroy", "--uuid", f"{c['uuid']},{d['uuid']}")["destroyed"]
    assert {x["uuid"] for x in done} == {c["uuid"], d["uuid"]}


# -- bad values: exit 2, one line, nothing changed -------------------------------------------------

BAD_VALUES = [
    ["status", "-i", "x"],
    ["status", "--bogus"],
    ["status", "-i"],
    ["create", "1g.12gb", "-i", "0", "--placement", "x"],
    ["create", "1g.12gb", "-i", "0", "--wait", "soon"],
    ["create-ci", "-i", "0", "--gi", "x"],
    ["destroy", "-i", "0", "--gi", "9,x"],
    ["destroy", "-i", "0", "--ci", "9"],
    ["mode", "sideways"],
    ["export", "-o", "toml"],
    ["plan", "--layout", "1g.12gb:0"],
    ["batch", "--retries", "-1", "x.yaml"],
    ["doctor", "--smoke-timeout", "x"],
    ["sim", "attach", "--pid", "x"],
    ["completion", "tcsh"],
    ["nosuchcommand"],
]


@FIXTURES
@given(argv=st.sampled_from(BAD_VALUES), json_at=st.sampled_from([None, "before", "after"]))
def test_a_bad_value_is_exit_2_in_one_line_and_changes_nothing(
    sim: SimFactory, argv: list[str], json_at: str | None
) -> None:
    s = sim("h20x8", enable="0")
    before = s.status()
    if json_at is None:
        line = one_line_error(s(*argv), 2)
        assert "Traceback" not in line
    else:
        r = s("--json", *argv) if json_at == "before" else s(*argv, "--json")
        assert (r.code, r.err) == (2, "")
        doc = json.loads(r.out)
        assert (doc["error"], doc["exit_code"]) == ("usage", 2) and "\n" not in doc["message"]
    assert s.status() == before


# -- shell completion ----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_that_calls_migctl_back(migctl: Cli, shell: str) -> None:
    r = migctl("completion", shell)
    assert r.code == 0, r.err
    assert f"_MIGCTL_COMPLETE=complete_{shell}" in r.out and "migctl" in r.out
    doc = migctl("completion", shell, "--json").json()
    assert doc["shell"] == shell and doc["script"].strip() == r.out.strip()


def test_the_shell_gets_commands_options_and_subcommands(migctl_process: Cli) -> None:
    """What bash asks (``COMP_WORDS``/``COMP_CWORD``, as the script sets them) and what comes back."""

    def complete(words: str) -> list[str]:
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        r = migctl_process(env={"_MIGCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
        assert r.code == 0, r.err
        return r.out.split()

    assert complete("migctl sta") == ["status"]
    assert set(complete("migctl ")) >= set(registry.COMMANDS)
    assert {"--gi", "--ci", "--uuid", "--all", "--sim", "--json"} <= set(complete("migctl destroy --"))
    assert complete("migctl sim reset") == ["reset", "reset-gpu"]


# -- a command's own options in any order --------------------------------------------------------


@FIXTURES
@given(order=st.permutations(range(4)), joined=st.booleans())
def test_a_commands_options_mean_the_same_in_any_order(
    reference_outputs: dict[str, Any], order: list[int], joined: bool
) -> None:
    """``plan``'s own options, the global ones among them, in every order and spelling."""
    from conftest import run_in_process

    state = reference_outputs["state"]
    groups = [
        ["--layout=1g.6gb:2,2g.12gb"] if joined else ["--layout", "1g.6gb:2,2g.12gb"],
        ["--id=1"] if joined else ["-i", "1"],
        ["--json"],
        [f"--state-dir={state}"] if joined else ["--state-dir", state],
    ]
    argv = ["--sim", "a30x2", "plan", *(w for i in order for w in groups[i])]
    r = run_in_process(tuple(argv), {"COLUMNS": "200"}, None)
    assert r.code == 0, (argv, r.err)
    plan = r.json()
    assert [g["gpu"] for g in plan["gpus"]] == [1]
    assert sorted(c["profile"] for c in plan["gpus"][0]["create"]) == ["1g.6gb", "1g.6gb", "2g.12gb"]

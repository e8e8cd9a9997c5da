"""The ``--json`` contract: each command prints one document that matches the schema generated
from its record, and docs/json.md and docs/schema/ are exactly what the records generate."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import REPO, Sim, SimFactory
from migctl.records.schema import NOT_COMMANDS, PROGRAM_OUTPUT, by_command, command_schema

sys.path.insert(0, str(REPO / "tools"))
import gen_json_docs


def test_docs_are_generated_from_the_records() -> None:
    assert gen_json_docs.main(["--check"]) == 0, "run: python tools/gen_json_docs.py"


def test_every_command_is_in_the_registry() -> None:
    """Every command and every subcommand (``boot install``) has its record; a command whose record
    depends on an option (``export --format slurm``) is registered under its own name too."""
    from migctl.cli.group import load
    from migctl.cli.registry import COMMANDS

    names = set()
    for name in COMMANDS:
        subcommands = getattr(load(name), "commands", None)  # a group (typer vendors click)
        if subcommands is not None:
            names |= {f"{name} {sub}" for sub in subcommands}
        else:
            names.add(name)
    registered = {c.name for c in by_command().values()}
    assert names - PROGRAM_OUTPUT == registered - NOT_COMMANDS
    assert len({c.slug for c in by_command().values()}) == len(by_command())  # one schema file each


def _validate(command: str, document: Any) -> None:
    schema = command_schema(by_command()[command].record)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture
def busy_node(sim: SimFactory) -> Iterator[Sim]:
    """An H20 node with every kind of thing status shows: instances with and without compute
    instances, a process on a MIG device, a migctl lease, and MIG off on GPU 1."""
    from migctl.ops import leases

    s = sim("h20x2", enable="0")
    made = s.create("-i", "0", "3g.48gb", "1g.12gb:2")
    s.ok("create", "-i", "0", "2g.24gb", "--no-compute-instance")
    proc = subprocess.Popen(["sleep", "30"])
    lease = leases.try_acquire(made[1]["uuid"], command="test lease")
    try:
        s.ok("sim", "attach", "--pid", str(proc.pid), "--uuid", made[0]["uuid"], "--memory", "512")
        yield s
    finally:
        if lease is not None:
            lease.release()
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "argv",
    [
        ("status",),
        ("profiles",),
        ("placements",),
        ("placements", "1g.12gb", "-i", "0"),
        ("devices",),
    ],
)
def test_output_matches_the_schema(busy_node: Sim, argv: tuple[str, ...]) -> None:
    _validate(argv[0], busy_node.json(*argv))


def test_status_shows_processes_and_leases_in_the_documented_shape(busy_node: Sim) -> None:
    doc = busy_node.json("status")
    cis = [ci for gi in doc["gpus"][0]["gpu_instances"] for ci in gi["compute_instances"]]
    assert any(ci["processes"] for ci in cis) and any(ci["holder"] for ci in cis)
    _validate("status", doc)


def test_ci_profiles_output_matches_the_schema(busy_node: Sim) -> None:
    gi = busy_node.json("status")["gpus"][0]["gpu_instances"][0]["id"]
    _validate("ci-profiles", busy_node.json("ci-profiles", "-i", "0", "--gi", str(gi)))


def test_the_schema_rejects_what_the_record_would_never_print(busy_node: Sim) -> None:
    doc = busy_node.json("status")
    doc["gpus"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        _validate("status", doc)
    del doc["gpus"][0]["surprise"]
    del doc["gpus"][0]["bus_id"]
    with pytest.raises(jsonschema.ValidationError):
        _validate("status", doc)


def test_schema_files_are_valid_json_schema() -> None:
    for path in sorted(Path(REPO / "docs" / "schema").glob("*.json")):
        import json

        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_sim_commands_print_their_records(sim: SimFactory) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        s = sim("h20x2", enable="0")
        made = s.create("-i", "0", "1g.12gb")
        for argv in (
            ("sim", "models"),
            ("sim", "fabric-manager", "stop"),
            ("sim", "fabric-manager", "start"),
            ("sim", "attach", "--pid", str(proc.pid), "--uuid", made[0]["uuid"], "--util", "30"),
            ("sim", "load", "--pid", str(proc.pid), "--util", "60", "--memory", "900"),
        ):
            doc = s.json(*argv)
            _validate(f"sim {argv[1]}", doc)
        assert s.json("sim", "load", "--pid", str(proc.pid), "--util", "10") == {
            "pid": proc.pid,
            "memory_mib": 900,
            "util": 10,
        }
    finally:
        proc.kill()
        proc.wait()
    _validate("sim reset-gpu", s.json("sim", "reset-gpu", "1"))
    _validate("sim reload-driver", s.json("sim", "reload-driver"))
    _validate("sim reset", s.json("sim", "reset"))

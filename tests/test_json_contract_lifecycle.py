"""The ``--json`` contract of the lifecycle and layout commands, and of the error document.

Each test runs a real command (in-process, on a simulated node in the states where the record
has the most to say: processes, leases, refusals, pending modes, faults) and validates the one
document it prints against the JSON Schema generated from its record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
import yaml

import migctl
from conftest import Cli, Result, Sim, SimFactory, running_on
from migctl.records.errors import ErrorKind
from migctl.records.schema import NOT_COMMANDS, by_command, command_schema


def validate(command: str, document: Any) -> None:
    schema = command_schema(by_command()[command].record)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def one_document(r: Result) -> Any:
    """The command printed exactly one JSON document on stdout (promise 5), and nothing else."""
    return json.loads(r.out)


def test_the_registry_has_the_error_document_and_every_kind_is_in_its_schema() -> None:
    import migctl.ops.launch

    assert set(by_command()) >= NOT_COMMANDS
    kinds = set(get_args(ErrorKind))
    classes: list[type[migctl.MigctlError]] = [migctl.MigctlError]
    while classes:
        cls = classes.pop()
        assert cls.kind in kinds, f"{cls.__name__}.kind {cls.kind!r} is not in records.errors.ErrorKind"
        classes += cls.__subclasses__()


def test_mode_outputs_match_the_schema(sim: SimFactory) -> None:
    s = sim("h20x1,l40sx1", enable=None)
    validate("mode", one_document(s("mode", "enable", "--json")))  # enabled + not_supported
    made = s.create("1g.12gb:2")
    refused = s("mode", "disable", "-i", "0", "--json")
    assert refused.code == 5
    doc = one_document(refused)
    validate("mode", doc)
    assert [i["placement"]["size"] for i in doc["gpus"][0]["instances"]] == [1, 1]
    with running_on(s, uuid=made[0]["uuid"]):
        busy = one_document(s("mode", "disable", "-i", "0", "--destroy-instances", "--json"))
        validate("mode", busy)
        assert busy["gpus"][0]["result"] == "refused" and busy["gpus"][0]["processes"]
    done = one_document(s("mode", "disable", "-i", "0", "--destroy-instances", "--json"))
    validate("mode", done)
    assert done["gpus"][0]["result"] == "disabled" and len(done["gpus"][0]["instances"]) == 2


def test_pending_mode_and_reset_match_the_schema(sim: SimFactory) -> None:
    s = sim("a100-40gb", enable=None)
    with running_on(s, gpu=0):
        r = s("mode", "enable", "--json")
        assert r.code == 7
        validate("mode", one_document(r))
    validate("reset", one_document(s.ok("reset", "-i", "0", "--json")))


def test_create_create_ci_and_destroy_match_the_schema(sim: SimFactory) -> None:
    s = sim()
    validate("create", s.json("create", "1g.12gb:2", "2g.24gb"))
    (gi,) = s.create("3g.48gb", "--no-compute-instance")
    validate("create", {"created": [gi]})  # no compute instance: the nulls are in the schema
    cis = s.json("create-ci", "-i", "0", "--gi", str(gi["gpu_instance_id"]), "1c.3g.48gb:2")
    validate("create-ci", cis)
    validate("destroy", s.json("destroy", "--uuid", cis["created"][0]["uuid"]))
    validate("destroy", s.json("destroy", "--all"))


def test_plan_apply_assert_recover_match_the_schema(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    log = tmp_path / "hook.log"
    hooks = tmp_path / "hooks.yaml"
    touch = {"command": sys.executable, "args": ["-c", f"open({str(log)!r}, 'w')"]}
    hooks.write_text(yaml.safe_dump({"version": "v1", "hooks": {"apply-exit": [touch]}}))
    plan = s.json("plan", "--layout", "3g.48gb,2g.24gb,1g.12gb:2")
    validate("plan", plan)
    assert plan["refused"] is False and plan["error"] is None
    applied = s.json("apply", "--layout", "3g.48gb,2g.24gb,1g.12gb:2", "-k", str(hooks))
    validate("apply", applied)
    assert applied["ok"] is True and [h["point"] for h in applied["hooks"]] == ["apply-exit"] and log.exists()
    recomputed = s.json("plan", "--layout", "3g.48gb[1c,1c,1c],2g.24gb,1g.12gb:2")
    validate("plan", recomputed)
    assert recomputed["gpus"][0]["recompute"][0]["new_compute"] == ["1c.3g.48gb"] * 3
    validate("plan", s.json("apply", "--dry-run", "--layout", "1g.12gb:7"))  # --dry-run: the plan
    matches = s.json("assert", "--layout", "3g.48gb,2g.24gb,1g.12gb:2")
    validate("assert", matches)
    differs = s("assert", "--layout", "1g.12gb:7", "--json")
    assert differs.code == 10
    validate("assert", one_document(differs))
    validate("recover", s.json("recover"))


def test_a_refused_plan_prints_one_document_the_plan_with_its_error(migctl: Cli) -> None:
    s = Sim(migctl, "h20")
    s.ok("apply", "--layout", "3g.48gb,1g.12gb:4")
    busy = next(
        ci["uuid"] for gi in s.gpu()["gpu_instances"] if gi["profile"] == "3g.48gb" for ci in gi["compute_instances"]
    )
    with running_on(s, uuid=busy) as proc:
        for argv in (("plan",), ("apply", "--dry-run")):
            r = s(*argv, "--layout", "7g.96gb", "--json")
            assert r.code == 5 and r.err == "", r  # the refusal's exit code; nothing on stderr
            doc = one_document(r)
            validate("plan", doc)
            assert doc["refused"] is True and doc["gpus"][0]["refused"]
            assert any(f"pid {proc.pid}" in line for line in doc["gpus"][0]["busy"])
            validate("error", doc["error"])
            assert (doc["error"]["error"], doc["error"]["exit_code"]) == ("in_use", 5)
            assert "nothing was changed" in doc["error"]["hint"]
        text = s("plan", "--layout", "7g.96gb")  # without --json: the plan, then the one-line error
        assert text.code == 5 and "refused: " in text.out
        assert text.err.startswith("migctl: error: config '--layout' cannot be applied: GPU 0: ")
    too_big = s("plan", "--layout", "1g.12gb:8", "--json")
    assert too_big.code == 4
    doc = one_document(too_big)
    validate("plan", doc)
    assert doc["error"]["error"] == "insufficient_resources"


def test_export_json_is_the_record_and_o_json_the_mig_parted_file(migctl: Cli) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "3g.48gb@0[1c,1c],2g.24gb@4[]", "-i", "0")
    record = s.json("export", "--portable")
    validate("export", record)
    assert record["portable"] is True and "x-migctl" not in json.dumps(record["config"])
    # mig-parted has no form for a GPU instance without compute instances: it would build a lone 3g.48gb.
    assert len(record["warnings"]) == 1 and "GPU 0's layout" in record["warnings"][0]
    assert "mig-parted would build 3g.48gb [1c.3g.48gb, 1c.3g.48gb] from its counts" in record["warnings"][0]
    assert [gi["placement"] for gi in record["gpus"][0]["gpu_instances"]] == [
        {"start": 0, "size": 4},
        {"start": 4, "size": 2},
    ]
    full = s.json("export")
    assert json.loads(s.ok("export", "-o", "json").out) == full["config"]  # the same file, as data
    assert full["warnings"] == [] and full["config"]["version"] == "v1"


def test_error_documents_match_the_schema(sim: SimFactory) -> None:
    s = sim()
    s.create("1g.12gb:2")
    docs: list[dict[str, Any]] = []
    for argv, env in (
        (("create", "bogus"), None),  # usage
        (("create", "7g.96gb"), None),  # insufficient_resources
        (("create", "1g.12gb:3"), {"MIGCTL_SIM_FAULTS": "create-gi@2=UNKNOWN"}),  # driver, rolled_back
        (("destroy", "--all"), {"MIGCTL_SIM_FAULTS": "destroy-gi@1=UNKNOWN"}),  # driver, destroyed
        (("mode", "sideways"), None),
        (("create",), None),  # a parser error
    ):
        r = s(*argv, "--json", env=env)
        assert r.code != 0, argv
        docs.append(one_document(r))
    for doc in docs:
        validate("error", doc)
    assert docs[2]["rolled_back"] is True and docs[3]["destroyed"] and docs[3]["destroyed"][0]["uuid"]
    with pytest.raises(jsonschema.ValidationError):
        validate("error", {**docs[0], "surprise": 1})


def test_mismatch_error_carries_each_gpus_differences(state_dir: Path) -> None:
    with migctl.Node(sim="h20x2", state_dir=state_dir) as node:
        node.apply("1g.12gb:7", gpus=0)
        with pytest.raises(migctl.MismatchError) as info:
            node.assert_("3g.48gb", gpus="0-1")
    doc = info.value.to_json()
    validate("error", doc)
    assert [d["gpu"] for d in doc["differences"]] == [0, 1]
    first = doc["differences"][0]["differences"]
    assert first[0] == "missing 1x 3g.48gb"
    assert sum(line.startswith("unexpected 1g.12gb") for line in first) == 7
    assert doc["differences"][1]["differences"] == ["MIG is disabled, target wants it enabled"]

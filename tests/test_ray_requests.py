"""What a MIG task or actor may ask for, checked where it is written (no Ray cluster needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migctl.ray import MigRequestError, remote
from migctl.ray.types import parse_memory


@given(st.integers(1, 4096))
def test_sizes_read_as_gib_unless_they_say_mib(n: int) -> None:
    assert parse_memory(n) == parse_memory(f"{n}GiB") == parse_memory(f"{n} gb") == n * 1024
    assert parse_memory(f"{n}MiB") == parse_memory(f"{n}mb") == n


@pytest.mark.parametrize("bad", ["", "GiB", "20 parsecs", "-3GiB", "0", "1e3GiB"])
def test_a_size_that_is_not_one_is_refused_with_the_forms_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match="mig_memory"):
        parse_memory(bad)


def work() -> int:
    return 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs mig='<profile>' or mig_memory"),
        ({"mig": "1g.12gb", "mig_memory": "20GiB"}, "not both"),
        ({"mig": "1g.12gb", "num_gpus": 1}, "num_gpus= cannot be used"),
        ({"mig": "1g.12gb", "scheduling_strategy": "SPREAD"}, "chooses the node"),
        ({"mig": "1g.12gb", "num_cpu": 1}, "unknown option.*num_cpu"),
        ({"mig_memory": "lots"}, "mig_memory='lots'"),
        ({"mig": "1g.12gb", "timeout": -1}, "timeout=-1"),
    ],
)
def test_bad_options_fail_where_the_decorator_is_written(options: dict[str, object], message: str) -> None:
    with pytest.raises(MigRequestError, match=message):
        remote(**options)(work)


def test_a_mig_task_is_not_called_directly_and_options_replace_the_profile() -> None:
    task = remote(mig="1g.12gb", timeout=5)(work)
    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        task()
    by_memory = task.options(mig_memory="40GiB")
    assert by_memory.request.profile is None and by_memory.request.memory_mib == 40 * 1024
    assert by_memory.request.timeout_s == 5 and task.request.profile == "1g.12gb"
    with pytest.raises(MigRequestError, match="max_retries"):
        task.options(max_retries=-1)


def test_bare_decorator_says_what_is_missing() -> None:
    with pytest.raises(MigRequestError, match="mig='<profile>'"):
        remote(work)


def test_cluster_commands_without_a_ray_cluster_say_so_in_one_line(migctl: Any, migctl_process: Any) -> None:
    # A process of its own: a pytest worker that ran the Ray tests is still connected to their cluster.
    r = migctl_process("cluster", "status", env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert r.code == 3 and r.err.count("\n") == 1 and "no Ray cluster at 127.0.0.1:1" in r.err
    d = migctl_process("cluster", "status", "--json", env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert d.code == 3 and json.loads(d.out)["error"] == "not_supported"
    j = migctl("cluster", "apply", "-f", "/nonexistent.yaml", "-c", "x", "--json", env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert j.code == 2 and json.loads(j.out)["error"] == "usage"  # the file is checked before any node is asked

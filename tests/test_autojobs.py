"""The jobs file's ``--auto`` keys (``config/autojobs.py``): sizes, durations, speeds and times,
how a job's keys combine with ``defaults:``, and the one-line located errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migctl.config.autojobs import AutoSpec, from_times, needs, parse_duration, parse_memory
from migctl.config.errors import ConfigError
from migctl.config.jobs import parse_jobs

BYTES = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse(text: str) -> list[AutoSpec | None]:
    return [j.auto for j in parse_jobs(text, "jobs.yaml", reserved_env=frozenset()).jobs]


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_jobs(text, "jobs.yaml", reserved_env=frozenset())
    return str(info.value)


@given(st.integers(1, 10**6), st.sampled_from(sorted(BYTES)), st.sampled_from(["", " "]), st.booleans())
def test_a_size_is_mib_rounded_up_whatever_its_unit(number: int, unit: str, space: str, lower: bool) -> None:
    text = f"{number}{space}{unit.lower() if lower else unit}"
    if number * BYTES[unit] > 2**60:
        return
    assert parse_memory(text) == max(1, math.ceil(number * BYTES[unit] / 2**20))


@given(st.integers(1, 10**7))
def test_a_number_alone_is_mib(mib: int) -> None:
    assert parse_memory(mib) == mib
    assert parse_memory(str(mib)) == mib


@pytest.mark.parametrize("bad", ["", "GiB", "-1GiB", "0", "0MiB", "12 potatoes", "1e3GiB", "nan", True, None, [1]])
def test_a_bad_size_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_memory(bad)


@given(st.lists(st.tuples(st.integers(1, 999), st.sampled_from(sorted(SECONDS))), min_size=1, max_size=4))
def test_a_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == pytest.approx(sum(n * SECONDS[u] for n, u in parts))


@pytest.mark.parametrize("bad", ["", "m", "-5m", "0", "0s", "5 weeks", "1h-2m", "abc", False, None])
def test_a_bad_duration_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@given(
    st.dictionaries(
        st.sampled_from(["1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb", "1g", "7g"]),
        st.floats(0.5, 1e5, allow_nan=False),
        min_size=1,
    )
)
def test_times_become_speeds_that_give_those_times_back(times: dict[str, float]) -> None:
    work, speeds = from_times(times)
    by_name = dict(speeds)
    assert set(by_name) == set(times)
    for name, seconds in times.items():
        assert work / by_name[name] == pytest.approx(seconds, rel=1e-6)
    assert max(by_name.values()) <= 1 or any(v == 1.0 for v in by_name.values())


def test_a_jobs_keys_override_the_defaults_key_by_key() -> None:
    specs = parse(
        "defaults: {memory: 10GiB, work: 1h, speeds: {1g: 1, 7g: 4}}\n"
        "jobs:\n"
        "  - {command: [a]}\n"
        "  - {command: [b], memory: 512MiB}\n"
        "  - {command: [c], speeds: {3g.20gb: 2}}\n"
        "  - {command: [d], model: ResNet, batch: 64}\n"
    )
    assert specs[0] == AutoSpec(10240, 3600.0, (("1g", 1.0), ("7g", 4.0)))
    assert specs[1] == AutoSpec(512, 3600.0, (("1g", 1.0), ("7g", 4.0)))
    assert specs[2] == AutoSpec(10240, 3600.0, (("3g.20gb", 2.0),))
    assert specs[3] == AutoSpec(10240, 3600.0, (("1g", 1.0), ("7g", 4.0)), "resnet", 64)


def test_times_give_the_work_and_the_speeds() -> None:
    (spec,) = parse("jobs: [{command: [a], memory: 4GiB, times: {1g.5gb: 10m, 7g.40gb: 2m}}]")
    assert spec == AutoSpec(4096, 120.0, (("1g.5gb", 0.2), ("7g.40gb", 1.0)))


def test_a_job_without_auto_keys_has_no_auto_spec() -> None:
    assert parse("jobs: [{command: [a], profile: 1g.12gb}]") == [None]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("jobs: [{command: [a], memory: 12 potatoes}]", ":1: jobs[0].memory:", "expected a size such as 18GiB"),
        ("jobs: [{command: [a], work: soon}]", ":1: jobs[0].work:", "expected seconds or a duration"),
        ("jobs: [{command: [a], speeds: {big: 2}}]", ":1: jobs[0].speeds:", "'big' is not a profile name"),
        ("jobs: [{command: [a], speeds: {1g: 0}}]", ":1: jobs[0].speeds:", "must be a number above 0"),
        ("jobs: [{command: [a], times: {7g: never}}]", ":1: jobs[0].times:", "7g: expected seconds"),
        ("jobs: [{command: [a], batch: 4}]", ":1: jobs[0].batch:", "batch goes with model"),
        ("jobs:\n  - command: [a]\n    work: 5m\n    times: {7g: 5m}\n", ":4: jobs[0].times:", "remove work"),
        (
            "defaults:\n  speeds: {7g: 1}\njobs:\n  - command: [a]\n    times: {7g: 5m}\n",
            ":5: jobs[0].times:",
            "give speeds or times, not both",
        ),
        ("defaults:\n  batch: 4\njobs: [{command: [a]}]\n", ":2: defaults.batch:", "batch goes with model"),
        ("jobs: [{command: [a], memery: 4GiB}]", ":1: jobs[0].memery:", "unknown key"),
    ],
)
def test_bad_auto_keys_are_located_errors(text: str, where: str, message: str) -> None:
    line = error(text)
    assert line.startswith("jobs.yaml" + where), line
    assert message in line
    assert "\n" not in line


def test_needs_takes_what_a_jobs_file_takes() -> None:
    assert needs(memory="18GiB", work="20m", speeds={"1G.10GB": 1.0, "7g": 4.5}) == AutoSpec(
        18432, 1200.0, (("1g.10gb", 1.0), ("7g", 4.5))
    )
    assert needs(model="bert", batch=4) == AutoSpec(model="bert", batch=4)
    with pytest.raises(ValueError, match=r"^memory: expected a size"):
        needs(memory="lots")
    with pytest.raises(ValueError, match=r"^times: give speeds or times"):
        needs(speeds={"7g": 1}, times={"7g": 60})

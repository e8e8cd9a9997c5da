"""``migctl exporter`` scraped as Prometheus scrapes it: a real exporter process on an ephemeral
port, read over HTTP, parsed with prometheus_client's own parser, and compared with what
``migctl status --json`` says about the same node. Names and labels are dcgm-exporter's
(``etc/default-counters.csv`` and its renderer: ``gpu``, ``UUID``, ``pci_bus_id``,
``device="nvidia<i>"``, ``modelName``, ``GPU_I_PROFILE``, ``GPU_I_ID``, ``Hostname``,
``DCGM_FI_DRIVER_VERSION``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from busy_node import SPEC, Busy, busy_node
from conftest import MIGCTL, REPO, Cli, SimFactory
from migctl.cli.observe_args import parse_listen
from migctl.errors import UsageError
from migctl.records.schema import by_command, command_schema

Series = dict[str, list[tuple[dict[str, str], float]]]


@contextlib.contextmanager
def exporter(
    state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """A running ``migctl exporter --listen 127.0.0.1:0 --json`` and the document it printed."""
    full_env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": SPEC, **(env or {})}
    proc = subprocess.Popen(
        [*MIGCTL, "exporter", "--listen", "127.0.0.1:0", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
    )
    assert proc.stdout is not None
    try:
        out = b""
        deadline = time.monotonic() + 60
        started: dict[str, Any] | None = None
        while started is None:
            assert time.monotonic() < deadline, "the exporter did not start"
            if select.select([proc.stdout], [], [], 1)[0]:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"the exporter exited ({proc.wait()}): {proc.stderr.read() if proc.stderr else b''!r}"
                out += chunk
                with contextlib.suppress(ValueError):
                    started = json.loads(out)
        yield proc, started
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape(url: str) -> Series:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (loopback)
        body = r.read().decode()
    out: Series = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def one(series: Series, name: str, **labels: str) -> float:
    """The value of the one series of ``name`` with these labels (``""``: the label is absent)."""
    found = [v for lab, v in series.get(name, []) if all(lab.get(k, "") == v2 for k, v2 in labels.items())]
    assert len(found) == 1, f"{name} {labels}: {found} in {series.get(name)}"
    return found[0]


def has(series: Series, name: str, **labels: str) -> bool:
    return any(all(lab.get(k, "") == v for k, v in labels.items()) for lab, _ in series.get(name, []))


@pytest.fixture
def busy(sim: SimFactory) -> Iterator[Busy]:
    with busy_node(sim) as b:
        yield b


def test_a_scrape_says_what_status_says(busy: Busy, state_dir: Path) -> None:
    status = busy.sim.json("status", "--util")
    from migctl import Node
    from migctl.device.system import driver_version

    with Node(sim=SPEC) as node:
        driver = driver_version(node._node.nvml)
    with exporter(state_dir, "--interval", "0.5") as (_, started):
        jsonschema.validate(started, command_schema(by_command()["exporter"].record))
        assert started["host"] == "127.0.0.1" and started["url"] == f"http://127.0.0.1:{started['port']}/metrics"
        series = scrape(started["url"])
    host = socket.gethostname()
    for g in status["gpus"]:
        gpu = {
            "gpu": str(g["index"]),
            "UUID": g["uuid"],
            "pci_bus_id": g["bus_id"],
            "device": f"nvidia{g['index']}",
            "modelName": g["name"],
            "Hostname": host,
        }
        labels = next(
            lab for lab, _ in series["DCGM_FI_DEV_FB_USED"] if lab["gpu"] == gpu["gpu"] and "GPU_I_ID" not in lab
        )
        assert labels == {**gpu, "DCGM_FI_DRIVER_VERSION": driver}
        gpu["GPU_I_ID"] = ""  # the GPU's own series, not its instances'
        used, reserved = one(series, "DCGM_FI_DEV_FB_USED", **gpu), one(series, "DCGM_FI_DEV_FB_RESERVED", **gpu)
        assert used + reserved == g["memory"]["used_mib"]  # status's GPU memory counts the reserve (v1)
        assert one(series, "DCGM_FI_DEV_FB_FREE", **gpu) + used + reserved == g["memory"]["total_mib"]
        for name in ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK"):
            assert one(series, name, **gpu) > 0
        if g["mig"]["current"]:
            assert one(series, "migctl_mig_mode_current", **gpu) == 1
            sizes = sum(gi["placement"]["size"] for gi in g["gpu_instances"])
            assert one(series, "migctl_gpu_slices_free", **gpu) == g["slices"] - sizes == 1
            assert not has(series, "DCGM_FI_DEV_GPU_UTIL", gpu=gpu["gpu"])  # NVML has none in MIG mode
        else:
            assert one(series, "migctl_mig_mode_current", **gpu) == 0
            assert one(series, "DCGM_FI_DEV_GPU_UTIL", **gpu) == g["utilization"]["gpu_pct"] == 40
        for gi in g["gpu_instances"]:
            inst = {**gpu, "GPU_I_PROFILE": gi["profile"], "GPU_I_ID": str(gi["id"])}
            assert (
                one(
                    series,
                    "migctl_gpu_instance_info",
                    **inst,
                    profile_id=str(gi["profile_id"]),
                    placement_start=str(gi["placement"]["start"]),
                    placement_size=str(gi["placement"]["size"]),
                )
                == 1
            )
            for ci in gi["compute_instances"]:
                mem = ci["memory"]
                assert one(series, "DCGM_FI_DEV_FB_USED", **inst) == mem["used_mib"]
                assert one(series, "DCGM_FI_DEV_FB_FREE", **inst) == mem["free_mib"]
                held = one(series, "migctl_mig_device_leased", **inst, mig_uuid=ci["uuid"])
                assert held == (1 if ci["holder"] else 0)
            u = gi["utilization"]
            if u["source"] == "gpm":
                assert one(series, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", **inst) == pytest.approx(u["gpu_pct"] / 100)
                assert one(series, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", **inst) == pytest.approx(u["tensor_pct"] / 100)
            else:  # n/a is a reason, never a 0
                assert not has(series, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", **inst)
                assert one(series, "migctl_utilization_info", **inst, source="n/a", reason=u["reason"]) == 1
    big = one(series, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", gpu="0", GPU_I_PROFILE="3g.40gb")
    assert big == pytest.approx(0.70)
    assert one(series, "migctl_mig_device_leased", mig_uuid=busy.small, job="train-3") == 1
    assert one(series, "migctl_batch_jobs_running") == 1
    assert one(series, "migctl_batch_job_running", job="train-3", mig_uuid=busy.small) == 1
    assert one(series, "migctl_mig_device_processes", mig_uuid=busy.big) == 1
    assert one(series, "migctl_exporter_data_fresh") == 1


def test_lowercase_hostname_as_newer_dcgm_exporter(sim: SimFactory, state_dir: Path) -> None:
    sim(SPEC, enable="0")
    with exporter(state_dir, "--lowercase-hostname") as (_, started):
        series = scrape(started["url"])
    labels = series["DCGM_FI_DEV_FB_USED"][0][0]
    assert labels["hostname"] == socket.gethostname() and "Hostname" not in labels


def test_sigterm_stops_it_cleanly(sim: SimFactory, state_dir: Path) -> None:
    sim(SPEC, enable=None)
    with exporter(state_dir) as (proc, started):
        scrape(started["url"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    with pytest.raises(OSError):
        scrape(started["url"])


def test_layout_changes_and_the_last_apply_are_counted(sim: SimFactory, migctl: Cli, state_dir: Path) -> None:
    s = sim(SPEC, enable="0")
    with exporter(state_dir, "--interval", "0.2") as (_, started):
        before = scrape(started["url"])
        assert one(before, "migctl_layout_changes_total", gpu="0") == 0
        assert "migctl_last_apply_success" not in before
        t0 = time.time()
        s.ok("apply", "-i", "0", "--layout", "3g.40gb,2g.20gb")
        deadline = time.monotonic() + 30
        while True:
            after = scrape(started["url"])
            if one(after, "migctl_layout_changes_total", gpu="0") >= 1 and "migctl_last_apply_success" in after:
                break
            assert time.monotonic() < deadline, "the exporter never saw the apply"
            time.sleep(0.2)
    assert one(after, "migctl_layout_changes_total", gpu="1") == 0
    config = after["migctl_last_apply_success"][0][0]["config"]
    assert one(after, "migctl_last_apply_success", config=config) == 1
    assert t0 <= one(after, "migctl_last_apply_timestamp_seconds") <= time.time()
    assert one(after, "migctl_last_apply_gpus", result="applied") == 1
    assert one(after, "migctl_gpu_instances", gpu="0") == 2


def test_a_scrape_never_waits_for_nvml_and_stale_series_are_withdrawn(sim: SimFactory, state_dir: Path) -> None:
    sim(SPEC, enable="0")
    # From its 3rd call on, every temperature read fails (after migctl's retries): every
    # collection round after the first fails.
    faults = {"MIGCTL_SIM_FAULTS": "nvmlDeviceGetTemperature@3+=UNKNOWN"}
    with exporter(state_dir, "--interval", "0.2", "--max-age", "1", env=faults) as (proc, started):
        first = scrape(started["url"])
        assert one(first, "migctl_exporter_data_fresh") == 1 and "DCGM_FI_DEV_FB_USED" in first
        time.sleep(2)
        began = time.monotonic()
        stale = scrape(started["url"])
        assert time.monotonic() - began < 1  # answered from the cache, not from NVML
    assert one(stale, "migctl_exporter_data_fresh") == 0
    assert not any(name.startswith("DCGM_") for name in stale)
    assert one(stale, "migctl_exporter_collect_errors_total") >= 1
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert "collecting failed" in err and "Traceback" not in err


def test_bad_listen_addresses_are_one_line_errors(migctl: Cli) -> None:
    r = migctl("--sim", SPEC, "exporter", "--listen", "localhost:http")
    assert r.code == 2 and r.err.count("\n") == 1 and "--listen" in r.err and "HOST:PORT" in r.err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = migctl("--sim", SPEC, "exporter", "--listen", f"127.0.0.1:{port}")
    assert r.code == 5 and r.err.count("\n") == 1 and f"127.0.0.1:{port}" in r.err and "Traceback" not in r.err
    r = migctl("--sim", SPEC, "exporter", "--interval", "0", "--json")
    assert r.code == 2 and r.json()["error"] == "usage"


HOSTS = ["127.0.0.1", "0.0.0.0", "localhost", "node-1.example.org", "[::1]", "[fe80::1]", ""]  # noqa: S104


@given(st.sampled_from(HOSTS), st.integers(0, 65535))
def test_listen_accepts_host_port(host: str, port: int) -> None:
    got = parse_listen(f"{host}:{port}" if host else str(port))
    assert got == ((host.strip("[]") or "127.0.0.1"), port)


@given(st.text(max_size=30))
def test_listen_never_fails_otherwise_than_with_a_usage_error(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except UsageError as exc:
        assert "--listen" in str(exc) and "\n" not in str(exc)
        return
    assert 0 <= port <= 65535 and host


def test_nothing_listens_beyond_loopback_by_default() -> None:
    from migctl.cli.observe_cmds import DEFAULT_LISTEN

    assert parse_listen(DEFAULT_LISTEN) == ("127.0.0.1", 9400)  # dcgm-exporter's port, loopback only


def _expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression (targets, variable queries) in a Grafana dashboard."""
    if isinstance(node, dict) and node.get("type") == "datasource":
        return  # a data source picker: its query is a plugin type, not PromQL
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _expressions(value)


#: Labels Prometheus itself adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana label_values query) reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"\$\{?\w+\}?", "", text)  # dashboard variables
    text = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][\w:]*", text):
        word, rest = m.group(0), text[m.end() :].lstrip()
        if rest.startswith("(") or word in PROMQL_WORDS or re.fullmatch(r"\d.*|[smhdwy]", word):
            continue
        names.add(word)
    return names


def test_the_dashboard_reads_only_series_the_exporter_serves(sim: SimFactory, state_dir: Path) -> None:
    s = sim(SPEC, enable=None)
    s.ok("apply", "-i", "0", "--layout", "3g.40gb,2g.20gb")  # GPU 0 in MIG mode, GPU 1 whole, an apply on record
    dashboard = json.loads((REPO / "deploy" / "grafana" / "migctl.json").read_text())
    expressions = list(_expressions(dashboard))
    assert len(expressions) >= 10
    with exporter(state_dir, "--interval", "0.3") as (_, started):
        time.sleep(0.5)
        served = scrape(started["url"])
    served_labels = {name: set().union(*(lab.keys() for lab, _ in values)) for name, values in served.items()}
    used: set[str] = set()
    for expr in expressions:
        names = metric_names(expr)
        missing = names - set(served)
        assert not missing, f"{expr!r} reads {missing}, which the exporter does not serve"
        for label in re.findall(r"(?:by|without)\s*\(([^)]*)\)", expr):
            for name in (n.strip() for n in label.split(",")):
                ok = name in TARGET_LABELS or any(name in served_labels[m] for m in names)
                assert ok, f"{expr!r}: no series has label {name!r}"
        used |= names
    assert {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_FB_USED", "migctl_gpu_slices_free"} <= used


def test_a_record_that_cannot_be_written_never_fails_an_apply(sim: SimFactory, state_dir: Path) -> None:
    s = sim(SPEC, enable=None)
    (state_dir / "last-apply.json").mkdir(parents=True)  # what a full or broken disk looks like to a rename
    r = s.ok("apply", "-i", "0", "--layout", "3g.40gb")
    assert "Traceback" not in r.err
    assert [gi["profile"] for gi in s.gpu(0)["gpu_instances"]] == ["3g.40gb"]


def test_the_systemd_unit_runs_the_exporter_as_documented(migctl: Cli) -> None:
    import configparser
    import shlex

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(REPO / "deploy" / "systemd" / "migctl-exporter.service")
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert Path(argv[0]).name == "migctl" and argv[1] == "exporter"
    assert argv[argv.index("--listen") + 1].startswith("127.0.0.1:")  # loopback unless the admin opens it
    help_text = migctl("exporter", "--help").out
    assert all(opt in help_text for opt in argv[2:] if opt.startswith("--"))
    assert "migctl-boot.service" in unit["Unit"]["After"]

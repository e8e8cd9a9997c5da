"""Benchmark: one scrape of ``migctl exporter`` on 8 GPUs x 7 instances, beside a bare
prometheus_client exporter serving the same number of series.

A simulated 8x H20 node with 7x 1g.12gb per GPU and one busy process per GPU. The exporter
runs in this process (its background collector reading the node every second) and is
scraped over HTTP on 127.0.0.1; the baseline is prometheus_client's own WSGI server with
plain ``Gauge`` metrics holding the same number of series with the same number of labels
each, set once (so a scrape costs only the exposition), scraped the same way in the same run. Wall time per scrape,
median of ``N``. Target (issue 11): under 50 ms. ``--quick``: fewer scrapes.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from _common import environ, print_table  # benchmarks/_common.py

SPEC = "h20x8"
TARGET_MS = 50.0


def _scrape_ms(url: str, n: int) -> tuple[float, bytes]:
    body = b""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (a loopback URL we built)
            body = r.read()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000, body


def _shape(body: bytes) -> list[tuple[str, int]]:
    """(family, labels per series) for every series of a scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(f.name, len(s.labels)) for f in text_string_to_metric_families(body.decode()) for s in f.samples]


def _bare_exporter(shape: list[tuple[str, int]]) -> tuple[object, str]:
    """prometheus_client used the plain way: a ``Gauge`` per family (and label count), every
    series set once, served by its own WSGI server: the cost of exposition alone."""
    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client.exposition import start_wsgi_server

    registry = CollectorRegistry(auto_describe=True)
    gauges: dict[tuple[str, int], Gauge] = {}
    for i, (name, nlabels) in enumerate(shape):
        key = (name, nlabels)
        if key not in gauges:
            labelnames = [f"label{k}" for k in range(nlabels)]
            gauges[key] = Gauge(f"bare_{name}_{nlabels}", "A gauge.", labelnames, registry=registry)
        gauge = gauges[key]
        (gauge.labels(*(f"value-{i}-{k}" for k in range(nlabels))) if nlabels else gauge).set(float(i))
    httpd, _ = start_wsgi_server(0, addr="127.0.0.1", registry=registry)
    return httpd, f"http://127.0.0.1:{httpd.server_port}/metrics"


def main(argv: list[str]) -> int:
    n = 20 if "--quick" in argv else 100
    state = tempfile.mkdtemp(prefix="migctl-bench-exporter-")
    sleepers: list[subprocess.Popen[bytes]] = []
    try:
        with environ(MIGCTL_STATE_DIR=state, MIGCTL_SIM=SPEC, MIGCTL_SIM_LATENCY=None, MIGCTL_SIM_FAULTS=None):
            from bench_top import _setup
            from migctl.device import open_node
            from migctl.exporter.service import Exporter, serve
            from migctl.ops.observe import Observer

            sleepers = _setup()
            service = Exporter(Observer(open_node(SPEC)), interval_s=1.0, max_age_s=30.0)
            service.start()
            server = serve(service, "127.0.0.1", 0)
            _scrape_ms(server.url, 3)  # warm
            ours_ms, body = _scrape_ms(server.url, n)
            shape = _shape(body)
            bare, bare_url = _bare_exporter(shape)
            _scrape_ms(bare_url, 3)
            bare_ms, bare_body = _scrape_ms(bare_url, n)
            collect_s = service._snapshot.duration_s if service._snapshot else float("nan")
            server.close()
            service.stop()
            getattr(bare, "shutdown")()  # noqa: B009
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        shutil.rmtree(state, ignore_errors=True)
    assert len(_shape(bare_body)) == len(shape)
    ok = ours_ms < TARGET_MS
    families = len({name for name, _ in shape})
    print(f"wall time per scrape over HTTP, median of {n}; {len(shape)} series in {families} families")
    verdict = "ok" if ok else "MISSED"
    print_table(
        ("exporter", "scrape ms", "ratio", "target", ""),
        [
            ("migctl exporter, 8x7 instances", f"{ours_ms:.2f}", f"{ours_ms / bare_ms:.2f}x", "< 50 ms", verdict),
            ("bare prometheus_client, same series", f"{bare_ms:.2f}", "1.00x", "", ""),
        ],
    )
    print(f"(background collection round, not part of a scrape: {collect_s * 1000:.1f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

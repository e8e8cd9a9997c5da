"""The exporter's moving parts: a background collector, a cache with a maximum age, an HTTP server.

A scrape never calls NVML. One thread (:meth:`Exporter._run`) collects an observation every
``interval_s`` and turns it into metric families; a scrape serves the last families, which are
replaced whole (never half-built). When collection stalls or fails for longer than
``max_age_s`` (a hung driver, a damaged state file), the GPU series are withdrawn rather than
served stale, and ``migctl_exporter_data_fresh`` drops to 0; the exporter's own health series
are always there.

>>> exporter = Exporter(Observer(node), interval_s=5, max_age_s=30)   # doctest: +SKIP
>>> exporter.start()                                                  # doctest: +SKIP
>>> server = serve(exporter, "127.0.0.1", 9400)                        # doctest: +SKIP
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import start_wsgi_server
from prometheus_client.registry import Collector

from migctl.exporter import families
from migctl.ops.observe import Observer


@dataclass(frozen=True)
class Snapshot:
    """What a scrape serves: the families of one round, and when the round ended (monotonic)."""

    families: list[Metric]
    at: float
    duration_s: float


@dataclass
class Health:
    errors: int = 0
    last_error: str = ""
    rounds: int = 0
    layout_changes: dict[int, int] = field(default_factory=dict)
    layouts: dict[str, tuple[object, ...]] = field(default_factory=dict)


class Exporter(Collector):
    """A prometheus_client collector over a background :class:`Observer` loop."""

    def __init__(
        self,
        observer: Observer,
        *,
        interval_s: float = 5.0,
        max_age_s: float = 30.0,
        hostname_label: str = "Hostname",
    ) -> None:
        self.observer = observer
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self.hostname_label = hostname_label
        self.health = Health()
        self._snapshot: Snapshot | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- collection (the background thread) ----------------------------------------------------------

    def collect_once(self) -> None:
        """One round: observe, build the families, swap them in."""
        started = time.perf_counter()
        obs = self.observer.collect()
        families.count_layout_changes(self.health.layouts, self.health.layout_changes, obs)
        built = families.build(obs, hostname_label=self.hostname_label, layout_changes=self.health.layout_changes)
        self._snapshot = Snapshot(built, time.monotonic(), time.perf_counter() - started)
        self.health.rounds += 1

    def _round(self) -> None:
        try:
            self.collect_once()
        except Exception as exc:  # a failed round must not end the exporter; it is counted and shown
            self.health.errors += 1
            message = f"{type(exc).__name__}: {exc}"
            if message != self.health.last_error:
                print(f"migctl exporter: collecting failed: {message}", file=sys.stderr, flush=True)
            self.health.last_error = message

    def start(self) -> None:
        """Collect a first round with utilization (0.15 s), then keep collecting in the background."""
        self.observer.prime()
        time.sleep(0.15)
        self._round()
        self._thread = threading.Thread(target=self._run, name="migctl-exporter-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._round()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval_s))
        self.observer.close()

    # -- scraping (the HTTP threads) -----------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not collect

    def collect(self) -> Iterable[Metric]:
        """What a scrape sees: the cached families if fresh enough, and the exporter's health."""
        snap = self._snapshot
        age = None if snap is None else time.monotonic() - snap.at
        fresh = snap is not None and age is not None and age <= self.max_age_s
        if fresh and snap is not None:
            yield from snap.families
        host = {self.hostname_label: self.observer.hostname}
        b = families.Builder(self.hostname_label)
        b.gauge(
            "migctl_exporter_data_fresh", "1 while the served GPU series are younger than --max-age.", host, int(fresh)
        )
        b.gauge("migctl_exporter_cache_age_seconds", "Age of the served GPU series.", host, age)
        b.gauge(
            "migctl_exporter_collect_duration_seconds",
            "How long the last collection round took (NVML reads and building the series).",
            host,
            None if snap is None else snap.duration_s,
        )
        b.counter("migctl_exporter_collect_errors", "Collection rounds that failed.", host, self.health.errors)
        yield from b.families()


def registry_for(exporter: Exporter) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    return registry


@dataclass
class Server:
    """A running HTTP server: where it listens, and how to stop it."""

    host: str
    port: int
    _httpd: object
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        shutdown = getattr(self._httpd, "shutdown", None)
        if shutdown is not None:
            shutdown()
        close = getattr(self._httpd, "server_close", None)
        if close is not None:
            close()
        self._thread.join(timeout=5)


def serve(exporter: Exporter, host: str, port: int) -> Server:
    """Serve ``/metrics`` on ``host:port`` (port 0: the OS chooses) in a daemon thread."""
    httpd, thread = start_wsgi_server(port, addr=host, registry=registry_for(exporter))
    return Server(host, int(httpd.server_port), httpd, thread)

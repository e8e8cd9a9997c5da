"""The live views: ``migctl top`` (a terminal view) and ``migctl exporter`` (Prometheus).

Only typer is imported at start-up; each command imports what it draws or serves with
(rich, prometheus_client, the operations) when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from migctl.cli.app import GPUS_OPTION, STATE, commands

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.records.observe import ExporterStarted

app = commands()

DEFAULT_LISTEN = "127.0.0.1:9400"


@app.command()
def top(
    interval: float = typer.Option(
        2.0, "--interval", "-d", metavar="SECONDS", help="Seconds between refreshes (default 2).", show_default=False
    ),
    once: bool = typer.Option(False, "--once", "-1", help="Print one screen (every line) and exit, like nvitop -1."),
    gpus: str | None = GPUS_OPTION,
) -> None:
    """A live view: GPUs, GPU instances, MIG devices with memory, utilization history and users."""
    import sys

    from migctl.cli.app import consoles, emit, want_json
    from migctl.cli.observe_args import check_seconds

    interval = check_seconds("--interval", interval, least=0.2, most=3600)
    node = STATE.node()
    chosen = STATE.select(gpus)
    if want_json():
        from migctl.cli.inspect_cmds import render_status
        from migctl.ops.leases import holder_records
        from migctl.ops.utilization import measured_status

        emit(measured_status(node, chosen, holder_records()), render_status)
        return
    from migctl.ops.observe import Observer
    from migctl.top import app as top_app
    from migctl.top.view import ViewState

    observer = Observer(node, chosen)
    state = ViewState(interval_s=interval)
    try:
        if once or not (sys.stdin.isatty() and sys.stdout.isatty()):
            top_app.once(observer, consoles.out, state)
        else:
            try:
                top_app.run(observer, consoles.out, state)
            except KeyboardInterrupt:  # Ctrl-C quits like q
                pass
    finally:
        observer.close()


@app.command()
def exporter(
    listen: str = typer.Option(
        DEFAULT_LISTEN,
        "--listen",
        metavar="HOST:PORT",
        help=f"Where to serve /metrics (default {DEFAULT_LISTEN}; port 0: any free port).",
        show_default=False,
    ),
    interval: float = typer.Option(
        5.0, "--interval", metavar="SECONDS", help="Seconds between NVML collections (default 5).", show_default=False
    ),
    max_age: float | None = typer.Option(
        None,
        "--max-age",
        metavar="SECONDS",
        help="Withdraw GPU series older than this when collection stalls (default: 3 intervals, at least 15 s).",
        show_default=False,
    ),
    lowercase_hostname: bool = typer.Option(
        False, "--lowercase-hostname", help="Label the host 'hostname' (dcgm-exporter after 4.5) instead of 'Hostname'."
    ),
    gpus: str | None = GPUS_OPTION,
) -> None:
    """Serve Prometheus metrics with dcgm-exporter's names and labels, per GPU and GPU instance."""
    import time

    from migctl.cli.app import emit
    from migctl.cli.observe_args import check_seconds, parse_listen
    from migctl.errors import InUseError, PermissionDeniedError, UsageError
    from migctl.exporter.service import Exporter, serve
    from migctl.ops.observe import Observer
    from migctl.records.observe import ExporterStarted

    host, port = parse_listen(listen)
    interval = check_seconds("--interval", interval, least=0.2)
    age = check_seconds("--max-age", max_age, least=interval) if max_age is not None else max(15.0, 3 * interval)
    node = STATE.node()
    service = Exporter(
        Observer(node, STATE.select(gpus)),
        interval_s=interval,
        max_age_s=age,
        hostname_label="hostname" if lowercase_hostname else "Hostname",
    )
    service.start()
    try:
        try:
            server = serve(service, host, port)
        except OSError as exc:
            where = f"--listen {listen}: cannot listen on {host}:{port}: {exc.strerror or exc}"
            if exc.errno == 98:  # EADDRINUSE
                raise InUseError(
                    where, hint="stop what listens there (dcgm-exporter?) or choose another port"
                ) from None
            if exc.errno == 13:  # EACCES
                raise PermissionDeniedError(where, hint="ports below 1024 need root; use e.g. 9400") from None
            raise UsageError(where, hint="use an address of this machine, e.g. 127.0.0.1:9400") from None
        started = ExporterStarted(server.url, server.host, server.port, interval, age)
        emit(started, _render_started)
        _flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (systemctl stop): a clean stop, exit 0
            pass
        finally:
            server.close()
    finally:
        service.stop()


def _flush() -> None:
    import sys

    sys.stdout.flush()


def _render_started(console: Console, data: ExporterStarted) -> None:
    console.print(
        f"migctl exporter: serving {data.url} (collecting every {data.interval_s:g} s; Ctrl-C stops)", markup=False
    )

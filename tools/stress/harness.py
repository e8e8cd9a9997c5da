"""What every campaign shares: a scratch simulated node, its saved states, running migctl (in this
process, or forked so it can be killed), reading each GPU's layout, and the tally of outcomes.

A GPU's *layout* is its MIG mode and its instances by profile and placement, with their compute
instances by profile and placement: what survives a rollback that creates an instance again
(IDs and UUIDs do not, and are left out).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GiShape = tuple[str, int, tuple[tuple[str, int], ...]]
GpuLayout = tuple[bool, tuple[GiShape, ...]]
NodeLayout = tuple[GpuLayout, ...]

#: Exit codes migctl documents (docs/lifecycle.md); anything else is a finding.
DOCUMENTED_EXITS = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 126, 127, 130})


@dataclass
class Tally:
    """One campaign's outcomes: the numbers ``./dev stress`` prints."""

    name: str
    tried: int = 0
    exact: int = 0
    leaked: int = 0
    busy_destroyed: int = 0
    internal_errors: int = 0
    tracebacks: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.exact == self.tried
            and not (self.leaked or self.busy_destroyed or self.internal_errors or self.tracebacks)
        )

    def note(self, problem: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(problem)

    def texts(self, trial: str, *texts: str) -> None:
        """Count internal errors and tracebacks in what migctl printed."""
        joined = "\n".join(texts)
        if "internal error" in joined:
            self.internal_errors += 1
            self.note(f"{trial}: internal error: {_line(joined, 'internal error')}")
        if "Traceback (most recent call last)" in joined:
            self.tracebacks += 1
            self.note(f"{trial}: traceback: {joined[-300:]}")

    def merge(self, other: Tally) -> None:
        self.tried += other.tried
        self.exact += other.exact
        self.leaked += other.leaked
        self.busy_destroyed += other.busy_destroyed
        self.internal_errors += other.internal_errors
        self.tracebacks += other.tracebacks
        for p in other.problems:
            self.note(p)


def _line(text: str, needle: str) -> str:
    return next((line for line in text.splitlines() if needle in line), "")[:300]


# -- the node --------------------------------------------------------------------------------------


class Scratch:
    """A private state directory holding a simulated node, with named saved states of its GPUs."""

    def __init__(self, spec: str, root: Path | None = None) -> None:
        self.spec = spec
        shm = Path("/dev/shm")  # noqa: S108  (a private mkdtemp inside it)
        if root is None and shm.is_dir() and os.access(shm, os.W_OK):
            root = shm  # memory: the thousands of fsyncs of a campaign cost nothing there
        self.root = Path(tempfile.mkdtemp(prefix="migctl-stress-", dir=root))
        self.state = self.root / "state"
        self.saved: dict[str, Path] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return {"MIGCTL_STATE_DIR": str(self.state), "MIGCTL_SIM": self.spec, **extra}

    def save(self, name: str) -> None:
        dest = self.root / f"saved-{name}"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(self.state / "sim", dest, ignore=shutil.ignore_patterns("*.lock", ".*"))
        self.saved[name] = dest

    def restore(self, name: str) -> None:
        """Put the node back to a saved state; migctl's own state (leases, journals, lock) is wiped."""
        for child in self.state.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        shutil.copytree(self.saved[name], self.state / "sim")

    def layout(self) -> NodeLayout:
        from migctl.device import open_node

        node = open_node(sim=self.spec, state_dir=str(self.state))
        try:
            out = []
            for gpu in node.gpus:
                mode = gpu.mig_mode()
                on = bool(mode and mode.current)
                gis = []
                if on:
                    for gi in gpu.gpu_instances():
                        cis = tuple(sorted((ci.profile, ci.placement.start) for ci in gi.compute_instances()))
                        gis.append((gi.profile, gi.placement.start, cis))
                out.append((on, tuple(sorted(gis))))
            return tuple(out)
        finally:
            node.close()

    def journals(self) -> list[Path]:
        d = self.state / "journal"
        return sorted(d.glob("gpu-*.json")) if d.is_dir() else []

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def leaked(final: NodeLayout, *allowed: NodeLayout) -> int:
    """GPU instances on some GPU that belong to none of the ``allowed`` layouts of that GPU."""
    n = 0
    for g, gpu in enumerate(final):
        known = {gi for layout in allowed for gi in layout[g][1]}
        n += sum(1 for gi in gpu[1] if gi not in known)
    return n


# -- running migctl ----------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith("MIGCTL_")]:
        del os.environ[k]
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Ran:
    code: int
    """Exit status; ``-N`` when signal N ended a forked run."""
    out: str
    err: str


def cli(env: dict[str, str], *args: str, stdin: str = "") -> Ran:
    """migctl's own entry point, in this process, with captured streams and ``env`` for the call."""
    import sys

    from migctl.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    with environment({"COLUMNS": "200", **env}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.stdin = io.StringIO(stdin)
        try:
            code = run(list(args))
        except BaseException as exc:
            import traceback

            err.write("Traceback (most recent call last):\n" + "".join(traceback.format_exception(exc)))
            code = 255
        finally:
            sys.stdin = saved_stdin
    return Ran(code, out.getvalue(), err.getvalue())


class Forked:
    """migctl running in a forked child (so it can be killed for real, or raced)."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self._out = tempfile.TemporaryFile()  # noqa: SIM115  (closed in wait)
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 255
            try:
                os.dup2(self._out.fileno(), 1)
                os.dup2(self._err.fileno(), 2)
                import sys

                from migctl.cli.main import run

                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                signal.signal(signal.SIGINT, signal.default_int_handler)
                for k in [k for k in os.environ if k.startswith("MIGCTL_")]:
                    del os.environ[k]
                os.environ.update(env)
                code = run(list(args))
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        self.pid = pid

    def wait(self, timeout: float = 120) -> Ran:
        """Its exit status (``-N``: signal N ended it; ``-999``: it hung and was killed) and output."""
        status = _wait(self.pid, timeout)
        outs = []
        for f in (self._out, self._err):
            f.seek(0)
            outs.append(f.read().decode(errors="replace"))
            f.close()
        return Ran(status, outs[0], outs[1])


def forked(env: dict[str, str], *args: str, timeout: float = 120) -> Ran:
    """migctl run in a forked child, waited for."""
    return Forked(env, *args).wait(timeout)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -999  # hung: reported as a finding
        time.sleep(0.005)


def preload() -> None:
    """Import what a forked child runs, so no import happens after a fork."""
    import migctl.cli.main
    import migctl.config
    import migctl.ops.apply
    import migctl.ops.create
    import migctl.ops.destroy
    import migctl.ops.recover
    import migctl.ops.run
    import migctl.sim  # noqa: F401


def steps(scratch: Scratch, start: str, args: Sequence[str]) -> int:
    """How many GPU-changing steps ``migctl ARGS`` takes from saved state ``start``."""
    scratch.restore(start)
    log = scratch.root / "steps.log"
    log.unlink(missing_ok=True)
    ran = cli(scratch.env(MIGCTL_STEP_LOG=str(log)), *args)
    if ran.code != 0:
        raise RuntimeError(f"migctl {' '.join(args)} failed while counting its steps: {ran.err}")
    return len(log.read_text().splitlines()) if log.exists() else 0

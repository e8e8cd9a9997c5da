"""``migctl run`` racing ``apply``, ``destroy`` and ``create`` under simulated latency.

Each trial starts the mutation, then after a seeded random delay a ``migctl run`` on one of the
MIG devices the mutation would destroy. The job checks, when it starts and again when it ends,
that its MIG device still exists (its UUID is in the simulated driver's files); exit 42 means a
busy instance was destroyed under it. Whoever wins, the node must end exactly in the old or
the new layout (``recover`` resolves a create whose undo had to keep a leased instance).

* ``apply``: ``1g.12gb:7`` to ``7g.96gb`` (every instance destroyed);
* ``destroy``: ``destroy --all``;
* ``create``: ``create 1g.12gb:5`` that fails at its 4th compute instance and undoes what it
  made, while the run takes a fresh instance (the two older ones are leased by the harness).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from stress.harness import Forked, Scratch, Tally, cli, leaked

#: The job: its device exists when it starts and still when it ends (else exit 42).
CHECK = (
    'f() { grep -qs "$MIGCTL_DEVICE_UUID" "$MIGCTL_STATE_DIR"/sim/gpu-*.json || exit 42; }; f; sleep 0.3; f'
)


@dataclass(frozen=True)
class Race:
    name: str
    setup: tuple[tuple[str, ...], ...]
    command: tuple[str, ...]
    faults: str = ""
    fresh_only: bool = False


RACES = [
    Race("apply", (("apply", "--layout", "1g.12gb:7"),), ("apply", "--layout", "7g.96gb")),
    Race("destroy", (("apply", "--layout", "1g.12gb:7"),), ("destroy", "--all")),
    Race(
        "create",
        (("mode", "enable"), ("create", "1g.12gb:2")),
        ("create", "1g.12gb:5"),
        faults="create-ci@4=UNKNOWN",
        fresh_only=True,
    ),
]


def race(r: Race, trials: int, seed: int, latency: str = "3") -> Tally:
    tally = Tally(f"race: run vs {r.name} (latency x{latency})")
    rng = random.Random(seed)  # noqa: S311  (reproducible delays, not secrets)
    s = Scratch("h20x1")
    try:
        env = s.env()
        cli(env, "status")
        for args in r.setup:
            cli(env, *args)
        s.save("before")
        old = s.layout()
        cli(env, *r.command)
        new = s.layout()
        for n in range(trials):
            s.restore("before")
            _trial(s, r, rng, latency, tally, f"trial {n}", old, new)
    finally:
        s.close()
    return tally


def _uuids(s: Scratch) -> list[str]:
    from migctl.device import open_node

    node = open_node(sim=s.spec, state_dir=str(s.state))
    try:
        return [m.uuid for gpu in node.gpus for m in gpu.mig_devices()]
    finally:
        node.close()


def _trial(
    s: Scratch,
    r: Race,
    rng: random.Random,
    latency: str,
    tally: Tally,
    name: str,
    old: tuple[object, ...],
    new: tuple[object, ...],
) -> None:
    from migctl.ops import leases

    env = s.env()
    existing = _uuids(s)
    held = []
    with _environ(env):
        if r.fresh_only:  # the harness holds the old devices: the run can only take a fresh one
            held = [lease for u in existing if (lease := leases.try_acquire(u, command="stress harness"))]
    try:
        target = "1g.12gb" if r.fresh_only else rng.choice(existing)
        mutation = Forked({**env, "MIGCTL_SIM_LATENCY": latency, "MIGCTL_SIM_FAULTS": r.faults}, *r.command)
        time.sleep(rng.uniform(0.0, 0.6))
        job = Forked(env, "run", "--on", target, "--queue", "2", "--", "sh", "-c", CHECK)
        done = mutation.wait()
        ran = job.wait()
    finally:
        for lease in held:
            lease.release()
    recovered = cli(env, "recover")
    tally.tried += 1
    tally.texts(name, done.out, done.err, ran.out, ran.err, recovered.out, recovered.err)
    if ran.code == 42:
        tally.busy_destroyed += 1
        tally.note(f"{name}: the job's MIG device was destroyed while it ran")
    final = s.layout()
    exact = final in (old, new) and not s.journals() and done.code >= 0 and ran.code >= 0
    if not exact:
        tally.note(f"{name}: mutation exit {done.code}, run exit {ran.code}, layout {final}")
    tally.exact += exact
    tally.leaked += leaked(final, old, new)  # type: ignore[arg-type]


class _environ:
    """This process's environment for the block (the harness takes leases in-process)."""

    def __init__(self, env: dict[str, str]) -> None:
        from stress.harness import environment

        self._cm = environment(env)

    def __enter__(self) -> None:
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(None, None, None)

"""The Python API: the same operations as the CLI, with typed results and typed errors.

>>> import migctl
>>> node = migctl.Node(sim="h20x8")                    # doctest: +SKIP   (omit sim= on a real GPU server)
>>> node.set_mig_mode(True, gpus="0")                  # doctest: +SKIP   nvidia-smi -i 0 -mig 1
[ModeOutcome(gpu=0, name='NVIDIA H20', requested='enabled', result='enabled', ...)]
>>> node.create("1g.12gb:2", "2g.24gb", gpus="0")      # doctest: +SKIP   nvidia-smi mig -i 0 -cgi 19,19,14 -C
[CreatedInstance(gpu=0, gpu_instance_id=..., profile='1g.12gb', ...), ...]
>>> node.destroy(gpus="0", everything=True)            # doctest: +SKIP   nvidia-smi mig -dci && nvidia-smi mig -dgi

Every failure is a :class:`migctl.errors.MigctlError` subclass (``InsufficientResourcesError``,
``InUseError``...) carrying ``nvml_code`` when the driver said no.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from migctl.device import Gpu, open_node
from migctl.ops import inspect, leases, lifecycle
from migctl.ops.lifecycle import CreatedInstance, Destroyed, ModeOutcome, ResetOutcome
from migctl.records.inspect import StatusReport

if TYPE_CHECKING:  # the job-running operations are imported when first used
    from migctl.config.jobs import JobSpec
    from migctl.records.batch import BatchProgress, BatchReport
    from migctl.records.doctor import DoctorReport
    from migctl.records.run import RunEvent, RunReport
    from migctl.usage import DeviceLease, MigDevice


class Node:
    """One machine's MIG GPUs. ``sim="h20x8"`` uses the simulator; omit it on real hardware.

    ``state_dir`` sets ``MIGCTL_STATE_DIR`` for this process (locks, leases, journals and the
    simulated node live there).
    """

    def __init__(self, sim: str | None = None, state_dir: str | os.PathLike[str] | None = None) -> None:
        if state_dir is not None:
            os.environ["MIGCTL_STATE_DIR"] = str(state_dir)
        self._node = open_node(sim)

    @property
    def gpus(self) -> list[Gpu]:
        """The device layer's GPUs (profiles, placements, instances, MIG devices, processes)."""
        return list(self._node.gpus)

    def select(self, gpus: str | int | None = None) -> list[Gpu]:
        return self._node.select(None if gpus is None else str(gpus))

    def status(self, gpus: str | int | None = None) -> StatusReport:
        """What ``migctl status`` shows (``--json`` prints this record)."""
        return inspect.status(self._node, self.select(gpus), leases.holder_records())

    def set_mig_mode(
        self,
        enabled: bool,
        gpus: str | int | None = None,
        *,
        destroy_instances: bool = False,
        wait_s: float | None = None,
    ) -> list[ModeOutcome]:
        """``migctl mode enable|disable``: one outcome per GPU (enabled, pending, refused...)."""
        return lifecycle.set_mig_mode(
            self._node, self.select(gpus), enabled, destroy_instances=destroy_instances, wait_s=wait_s
        )

    def create(
        self,
        *profiles: str,
        gpus: str | int | None = "0",
        placement: int | None = None,
        compute_instance: bool = True,
        wait_s: float | None = None,
    ) -> list[CreatedInstance]:
        """``migctl create``: all or nothing, placements chosen so any order fits."""
        return lifecycle.create(
            self._node,
            self.select(gpus),
            lifecycle.parse_counted(list(profiles)),
            placement=placement,
            compute_instance=compute_instance,
            wait_s=wait_s,
        )

    def create_ci(self, gpu: int, gi: int, *ci_profiles: str, wait_s: float | None = None) -> list[CreatedInstance]:
        """``migctl create-ci``: compute instances in GPU instance ``gi`` (default CI if none named)."""
        (chosen,) = self.select(gpu)
        return lifecycle.create_ci(self._node, chosen, gi, lifecycle.parse_counted(list(ci_profiles)), wait_s=wait_s)

    def destroy(
        self,
        gpus: str | int | None = None,
        *,
        gi: Sequence[int] = (),
        ci: Sequence[tuple[int, int]] = (),
        uuid: Sequence[str] = (),
        everything: bool = False,
        wait_s: float | None = None,
    ) -> list[Destroyed]:
        """``migctl destroy``: refuses, destroying nothing, if any target is in use."""
        chosen = self.select(gpus) if (gpus is not None or everything) else ([] if uuid else self.select(0))
        return lifecycle.destroy(
            self._node, chosen, gi_ids=gi, ci_ids=ci, uuids=uuid, everything=everything, wait_s=wait_s
        )

    def reset(self, gpus: str | int, *, force: bool = False, wait_s: float | None = None) -> list[ResetOutcome]:
        """``migctl reset``: GPU reset so a pending MIG mode takes effect (``force``: even if none is)."""
        return lifecycle.reset(self._node, self.select(gpus), force=force, wait_s=wait_s)

    # -- running work on MIG devices: run, lease, use, devices, batch, doctor ------------------------
    # (over migctl.ops.run, .jobs, .batch, .doctor and migctl.usage; imported on first use)

    def run(
        self,
        command: Sequence[str],
        *,
        on: str | None = None,
        wait: bool | float = False,
        on_event: Callable[[RunEvent], None] | None = None,
    ) -> RunReport:
        """Lease a MIG device, run ``command`` on it to the end, and say how it went.

        >>> report = node.run(["python", "train.py"], on="1g.12gb")    # doctest: +SKIP
        >>> report.device.uuid, report.exit_code                       # doctest: +SKIP
        ('MIG-1b24da31-...', 0)

        ``command`` is an argv list (no shell) and inherits this process's stdin, stdout and
        stderr; it runs with ``CUDA_VISIBLE_DEVICES=MIG-<uuid>`` and the ``MIGCTL_*`` variables.
        ``on``: ``MIG-<uuid>``, ``GPU:GI`` (``"0:13"``), a profile, or ``None`` for any free
        device. ``wait``: ``False`` fails at once when every match is busy, ``True`` waits as
        long as needed, a number waits at most that many seconds. ``on_event`` hears
        ``RunWaiting`` (once, if it waits) and ``RunStarting``. Signals sent to this process
        (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) are forwarded to the command while
        it runs; call it from the main thread.

        Returns: a :class:`~migctl.records.run.RunReport` (device, exit status, signal, timings).

        Raises: :class:`~migctl.ops.child.CommandNotFoundError` (``exit_code`` 127/126) before
        leasing anything; :class:`~migctl.errors.UsageError` for a target that names nothing;
        :class:`~migctl.errors.NotSupportedError` without MIG devices;
        :class:`~migctl.errors.InUseError` naming the holders when no match is free in time.

        Replaces: ``nvidia-smi -L``, then ``CUDA_VISIBLE_DEVICES=MIG-<uuid> COMMAND`` by hand;
        the CLI's ``migctl run --on TARGET [--wait [S]] -- COMMAND``.
        """
        from migctl.config.target import parse_target
        from migctl.ops import run as run_ops
        from migctl.usage import wait_seconds

        request = run_ops.RunRequest(tuple(command), parse_target(on), wait_seconds(wait))
        return run_ops.run(self._node, request, on_event=on_event)

    def lease(self, on: str | None = None, *, wait: bool | float = False) -> DeviceLease:
        """Lease a free MIG device for programs you start yourself; this process is left as it is.

        >>> with node.lease("1g.12gb") as held:                                   # doctest: +SKIP
        ...     subprocess.run(["python", "train.py"], env={**os.environ, **held.env},
        ...                    pass_fds=(held.fd,), check=True)

        ``on`` and ``wait`` as for :meth:`run`. Pass ``held.fd`` to a child so it keeps the
        lease as long as it runs, even if this process ends first.

        Returns: a :class:`~migctl.usage.DeviceLease` (``device``, ``env``, ``fd``,
        ``release()``; a context manager).

        Raises: :class:`~migctl.errors.UsageError`, :class:`~migctl.errors.NotSupportedError`,
        :class:`~migctl.errors.InUseError`, as :meth:`run`.

        Replaces: ``nvidia-smi -L`` and picking a UUID by hand (with no guard against two
        programs picking the same one); ``migctl run --on TARGET`` without the command.
        """
        from migctl.usage import lease_on

        return lease_on(self._node, on, wait=wait)

    def use(self, on: str | None = None, *, wait: bool | float = False) -> MigDevice:
        """``migctl.use()`` on this node: lease a MIG device for *this* process, before CUDA starts.

        >>> dev = node.use("1g.12gb")        # doctest: +SKIP
        >>> import torch                     # doctest: +SKIP   cuda:0 is now dev

        Sets ``CUDA_VISIBLE_DEVICES`` and the ``MIGCTL_*`` variables in ``os.environ``; the lease
        lasts as long as the process (or the ``with dev:`` block).

        Returns: the :class:`~migctl.usage.MigDevice` leased.

        Raises: :class:`~migctl.errors.UsageError` when CUDA is already initialised in the
        process or ``CUDA_VISIBLE_DEVICES`` fixes another device; the errors of :meth:`run`.

        Replaces: ``export CUDA_VISIBLE_DEVICES=MIG-<uuid>`` before starting the program
        (see docs/run.md: choosing a device after CUDA starts cannot work).
        """
        from migctl.usage import use_on

        return use_on(self._node, on, wait=wait)

    def devices(self) -> list[MigDevice]:
        """Every MIG device with who holds it (``busy``, ``holder``: a lease or an NVML process).

        >>> [(d.uuid, d.profile, d.busy) for d in node.devices()]    # doctest: +SKIP
        [('MIG-1b24da31-...', '1g.12gb', False), ...]

        Returns: a list of :class:`~migctl.usage.MigDevice`, GPU by GPU in NVML order.

        Raises: nothing beyond a driver failure (:class:`~migctl.errors.DriverError`).

        Replaces: ``nvidia-smi -L`` plus its "Processes" table.
        """
        from migctl.usage import list_devices

        return list_devices(self._node)

    def batch(
        self,
        jobs: Sequence[JobSpec | Sequence[str]] | str | os.PathLike[str],
        *,
        logs_dir: str | os.PathLike[str] | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        grace_s: float = 10.0,
        max_parallel: int | None = None,
        on_progress: Callable[[BatchProgress], None] | None = None,
    ) -> BatchReport:
        """Run many jobs in parallel, each on its own MIG device as soon as one is free.

        >>> from migctl.config.jobs import job
        >>> report = node.batch([job(["python", "train.py", "--lr", lr], on="1g.12gb", retries=1)
        ...                      for lr in ("1e-3", "3e-4")], logs_dir="logs")   # doctest: +SKIP
        >>> [(j.name, j.status, j.exit_code) for j in report.jobs]               # doctest: +SKIP
        [('job-1', 'succeeded', 0), ('job-2', 'succeeded', 0)]

        ``jobs``: :class:`~migctl.config.jobs.JobSpec` entries (``job(...)`` makes them), plain
        argv lists (a job on any device), or the path of a jobs file. ``retries``/``timeout``
        are the defaults of jobs that set none; ``grace_s`` is the SIGTERM-to-SIGKILL delay for
        jobs stopped by a timeout or by SIGINT/SIGTERM/SIGHUP to this process (which end the
        batch: the report then says ``stopped_by``). Each job's output goes to
        ``logs_dir/<name>.log`` (default ``./migctl-logs/batch-<time>-<pid>/``).
        ``on_progress`` hears a :class:`~migctl.records.batch.BatchProgress` a few times a
        second. Call it from the main thread.

        Returns: a :class:`~migctl.records.batch.BatchReport` (each job's status, exit code,
        attempts and device; the summary with ``exit_code``).

        Raises: :class:`~migctl.errors.UsageError` for a bad jobs file (``file:line: key:
        message``), a job whose target or command does not exist, or a duplicate job name,
        before anything runs;
        :class:`~migctl.errors.NotSupportedError` without MIG devices.

        Replaces: ``xargs -P``/GNU parallel with ``CUDA_VISIBLE_DEVICES`` handed out by hand;
        the CLI's ``migctl batch JOBS.yaml``.
        """
        from pathlib import Path

        from migctl.config.jobs import JobSpec, job
        from migctl.errors import UsageError
        from migctl.ops import batch as batch_ops
        from migctl.ops import jobs as jobs_ops

        if isinstance(jobs, (str, os.PathLike)):
            ready = jobs_ops.load_jobs(Path(jobs), self._node, retries=retries, timeout=timeout)
        else:
            if any(isinstance(j, str) for j in jobs):
                raise UsageError(
                    "batch(jobs): each job is a JobSpec or an argv list, not a string",
                    hint='e.g. node.batch([["python", "train.py"]]) or node.batch("jobs.yaml")',
                )
            specs = [j if isinstance(j, JobSpec) else job(j) for j in jobs]
            ready = jobs_ops.ready(self._node, specs, retries=retries, timeout=timeout)
        return batch_ops.run_batch(
            self._node,
            ready,
            logs_dir=None if logs_dir is None else Path(logs_dir),
            grace_s=grace_s,
            max_parallel=max_parallel,
            on_progress=on_progress,
        )

    def doctor(self, gpus: str | int | None = None, *, smoke: bool = True, smoke_timeout: float = 60.0) -> DoctorReport:
        """Can CUDA programs run on this node's MIG devices? Every check, with its fix.

        >>> report = node.doctor()                                     # doctest: +SKIP
        >>> report.ok, [(c.check, c.status) for c in report.checks if c.status != "pass"]   # doctest: +SKIP
        (False, [('fabric-manager', 'fail'), ('smoke', 'fail'), ...])

        Checks the driver, each GPU's MIG mode (pending changes, MIG enabled without devices,
        GPU instances without compute instance), the fabric manager on NVSwitch boards, and
        with ``smoke`` starts a CUDA smoke test on every free MIG device at once (each at most
        ``smoke_timeout`` seconds).

        Returns: a :class:`~migctl.records.doctor.DoctorReport` (``ok`` is false when a check
        failed).

        Raises: :class:`~migctl.errors.UsageError` for a bad ``gpus`` selection; a finding is
        never raised, it is a failed check.

        Replaces: ``nvidia-smi``, ``nvidia-smi -q`` (MIG mode), ``systemctl status
        nvidia-fabricmanager`` and a ``python -c "import torch; ..."`` on each MIG device;
        the CLI's ``migctl doctor``.
        """
        from migctl.ops import doctor as doctor_ops

        return doctor_ops.diagnose(
            lambda: self._node, gpus=None if gpus is None else str(gpus), smoke=smoke, smoke_timeout=smoke_timeout
        )

    # -- end of running work -------------------------------------------------------------------------

    def close(self) -> None:
        self._node.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

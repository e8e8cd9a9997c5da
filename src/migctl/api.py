"""The Python API: the same operations as the CLI, with typed results and typed errors.

>>> import migctl
>>> node = migctl.Node(sim="h20x8")                    # doctest: +SKIP   (omit sim= on a real GPU server)
>>> node.mode(True, gpus="0").gpus[0].result           # doctest: +SKIP   nvidia-smi -i 0 -mig 1
'enabled'
>>> node.create("1g.12gb:2", "2g.24gb", gpus="0")      # doctest: +SKIP   nvidia-smi mig -i 0 -cgi 19,19,14 -C
CreateReport(created=(CreatedInstance(gpu=0, gpu_instance_id=..., profile='2g.24gb', ...), ...))
>>> node.apply("3g.48gb,2g.24gb,1g.12gb:2", gpus="1")  # doctest: +SKIP   nvidia-mig-parted apply
>>> node.destroy(gpus="0", everything=True)            # doctest: +SKIP   nvidia-smi mig -dci && nvidia-smi mig -dgi

Why this module is long: ``Node`` has one method per command, each a thin call into
:mod:`migctl.ops` whose docstring (example, Returns, Raises, the nvidia-smi / mig-parted
equivalent) is the API's documentation; splitting the class would scatter it.

Every method returns the record the matching command's ``--json`` prints
(:mod:`migctl.records`, documented in ``docs/json.md``). Every failure is a
:class:`migctl.errors.MigctlError` subclass (``InsufficientResourcesError``, ``InUseError``...)
carrying ``nvml_code`` when the driver said no.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from migctl.core.layout import ProfileRequest
from migctl.device import Gpu, open_node
from migctl.errors import UsageError
from migctl.ops import inspect, leases
from migctl.records.inspect import StatusReport
from migctl.records.layouts import ApplyReport, AssertReport, ExportReport, PlanReport, RecoverReport
from migctl.records.lifecycle import CreateReport, DestroyReport, ModeReport, ResetReport
from migctl.records.parity import Checkpoint, CheckpointReport, GenerateConfigReport, RestoreReport
from migctl.records.schedulers import K8sExportReport, SlurmExportReport

if TYPE_CHECKING:  # the config layer (and pydantic) is imported only by the methods that parse
    from migctl.config import MigConfigEntry, MigSpec
    from migctl.ops.plan import NodePlan

#: A GPU selection as ``-i`` takes it: ``0``, ``"0,2"``, ``"0-3"``, a ``GPU-`` UUID; ``None``: all.
Gpus = str | int | None

if TYPE_CHECKING:  # the job-running operations are imported when first used
    from migctl.config.jobs import JobSpec
    from migctl.records.autobatch import AutoBatchReport
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

    def select(self, gpus: Gpus = None) -> list[Gpu]:
        return self._node.select(None if gpus is None else str(gpus))

    def status(self, gpus: Gpus = None, *, utilization: bool = False) -> StatusReport:
        """What ``migctl status`` shows (``--json`` prints this record).

        ``utilization=True`` is ``status --util``: each GPU and GPU instance also carries its
        utilization, measured over 0.2 s (GPM on Hopper and later; NVML's rate on a whole GPU;
        ``source="n/a"`` with the reason elsewhere).

        >>> node.status("0", utilization=True).gpus[0].gpu_instances[0].utilization.gpu_pct  # doctest: +SKIP
        70.0
        """
        if utilization:
            from migctl.ops.utilization import measured_status

            return measured_status(self._node, self.select(gpus), leases.holder_records())
        return inspect.status(self._node, self.select(gpus), leases.holder_records())

    # -- lifecycle: mode, reset, create, create_ci, destroy ------------------------------------------

    def mode(
        self,
        enable: bool,
        gpus: Gpus = None,
        *,
        destroy_instances: bool = False,
        wait_s: float | None = None,
    ) -> ModeReport:
        """Enable or disable MIG mode: ``migctl mode enable|disable`` (``nvidia-smi -i N -mig 1|0``).

        >>> report = node.mode(True, gpus=0)                     # doctest: +SKIP
        >>> report.gpus[0].result                                # doctest: +SKIP
        'enabled'

        Disabling a GPU that has instances is refused (listing them) unless ``destroy_instances``;
        busy instances are never destroyed.

        Returns:
            :class:`~migctl.records.lifecycle.ModeReport`, one outcome per GPU: ``enabled``,
            ``disabled``, ``pending`` (call :meth:`reset` once the listed processes stop),
            ``refused`` or ``not_supported``. A GPU-level refusal is an outcome, not an exception.
        Raises:
            UsageError: a bad ``gpus``. LockTimeoutError: another migctl held the lock past ``wait_s``.
            DriverError: the driver failed in an unexpected way.
        """
        from migctl.ops.mode import set_mig_mode

        return set_mig_mode(self._node, self.select(gpus), enable, destroy_instances=destroy_instances, wait_s=wait_s)

    #: The same as :meth:`mode` (its name before the records).
    set_mig_mode = mode

    def reset(self, gpus: str | int, *, force: bool = False, wait_s: float | None = None) -> ResetReport:
        """Reset GPUs so a pending MIG mode takes effect: ``migctl reset`` (``nvidia-smi --gpu-reset -i N``).

        >>> node.reset(0).gpus[0].mig                            # doctest: +SKIP
        MigModeState(current=True, pending=True)

        A reset destroys every GPU instance; where no mode change is pending that is all it would
        do, so it is refused unless ``force``.

        Returns:
            :class:`~migctl.records.lifecycle.ResetReport`: each GPU's MIG mode after the reset.
        Raises:
            InUseError: a process uses a GPU, a migctl lease holds one of its MIG devices, or
            (without ``force``) the reset would only destroy instances. Nothing is reset.
            UsageError, LockTimeoutError, DriverError.
        """
        from migctl.ops.mode import reset

        return reset(self._node, self.select(gpus), force=force, wait_s=wait_s)

    def create(
        self,
        *profiles: ProfileRequest | str,
        gpus: Gpus = None,
        placement: int | None = None,
        compute_instance: bool = True,
        wait_s: float | None = None,
    ) -> CreateReport:
        """Create GPU instances, each with its default compute instance: ``migctl create``
        (``nvidia-smi mig -i N -cgi LIST -C``), all or nothing, at placements that always fit.

        >>> made = node.create("1g.12gb:2", ProfileRequest("2g.24gb"), gpus=0)    # doctest: +SKIP
        >>> [(m.profile, str(m.placement), m.uuid[:4]) for m in made.created]      # doctest: +SKIP
        [('2g.24gb', '0:2', 'MIG-'), ('1g.12gb', '2:1', 'MIG-'), ('1g.12gb', '3:1', 'MIG-')]

        ``profiles`` are :class:`~migctl.config.ProfileRequest` or the short form (``"1g.12gb:2"``,
        ``"19"``, ``"1g.12gb,2g.24gb"``). ``gpus`` as ``-i``: by default every GPU with MIG
        enabled (docs/cli.md). ``placement`` pins a single GPU instance's start slice;
        ``compute_instance=False`` is ``-cgi`` without ``-C``.

        Returns:
            :class:`~migctl.records.lifecycle.CreateReport`: every instance made, with its MIG UUID.
        Raises:
            UsageError: an unknown profile or GPU, a bad placement (nothing created).
            NotSupportedError: MIG off or not supported. ResetRequiredError: MIG mode pending.
            InsufficientResourcesError: it does not fit (the message says what is free and what
            would fit). DriverError: the driver failed (what the call made was destroyed again;
            ``details["rolled_back"]`` says whether completely). LockTimeoutError.
        """
        from migctl.ops.create import create
        from migctl.ops.gpus import for_create

        return create(
            self._node,
            for_create(self._node, None if gpus is None else str(gpus)),
            self._requests(profiles),
            placement=placement,
            compute_instance=compute_instance,
            wait_s=wait_s,
        )

    def create_ci(
        self, gpu: int, gi: int, *ci_profiles: ProfileRequest | str, wait_s: float | None = None
    ) -> CreateReport:
        """Create compute instances in GPU instance ``gi`` of GPU ``gpu``: ``migctl create-ci``
        (``nvidia-smi mig -i N -cci LIST -gi GI``), all or nothing; the default one if none is named.

        >>> node.create_ci(0, 2, "1c.3g.48gb:3").created[2].compute_instance_id   # doctest: +SKIP
        2

        Returns:
            :class:`~migctl.records.lifecycle.CreateReport`.
        Raises:
            UsageError: an unknown GPU instance or compute-instance profile (nothing created).
            InsufficientResourcesError: they do not fit. DriverError (rolled back), LockTimeoutError.
        """
        from migctl.ops.create import create_ci

        (chosen,) = self.select(gpu)
        return create_ci(self._node, chosen, gi, self._requests(ci_profiles), wait_s=wait_s)

    def destroy(
        self,
        gpus: Gpus = None,
        *,
        gi: Sequence[int] = (),
        ci: Sequence[tuple[int, int]] = (),
        uuid: Sequence[str] = (),
        everything: bool = False,
        wait_s: float | None = None,
    ) -> DestroyReport:
        """Destroy compute instances, then GPU instances: ``migctl destroy``
        (``nvidia-smi mig -dci`` then ``-dgi``). Refuses, destroying nothing, if any target is in use.

        >>> node.destroy(gpus=0, ci=[(2, 0), (2, 1)])           # doctest: +SKIP   -dci -ci 0,1 -gi 2
        >>> node.destroy(uuid=["MIG-..."])                      # doctest: +SKIP   that MIG device's CI
        >>> node.destroy(gpus=0, everything=True)               # doctest: +SKIP   everything on GPU 0

        ``gi`` and ``ci`` (``(GI, CI)`` pairs) apply to ``gpus``, which they need on a node with
        several GPUs (the IDs repeat on each); ``everything`` takes every GPU unless ``gpus``
        says which; ``uuid`` names MIG devices on any GPU (docs/cli.md).

        Returns:
            :class:`~migctl.records.lifecycle.DestroyReport`, in the order destroyed.
        Raises:
            InUseError: a target has a process or a migctl lease (naming them; nothing destroyed).
            UsageError: an unknown ID or UUID. NotSupportedError: MIG off. DriverError: the driver
            failed part-way (``details["destroyed"]`` says what went; calling again finishes).
            LockTimeoutError.
        """
        from migctl.ops.destroy import destroy
        from migctl.ops.gpus import for_instance_ids

        spec = None if gpus is None else str(gpus)
        if gi or ci:
            chosen = for_instance_ids(self._node, spec, "destroy")
        elif uuid and gpus is None and not everything:
            chosen = []  # MIG devices by UUID, on whichever GPU
        else:
            chosen = self.select(gpus)
        return destroy(self._node, chosen, gi_ids=gi, ci_ids=ci, uuids=uuid, everything=everything, wait_s=wait_s)

    # -- layouts: plan, apply, assert_, export, recover --------------------------------------------------

    def plan(
        self,
        layout: str | MigConfigEntry | None = None,
        *,
        file: str | os.PathLike[str] | None = None,
        config: str | None = None,
        spec: MigSpec | None = None,
        gpus: Gpus = None,
    ) -> PlanReport:
        """What :meth:`apply` would do, per GPU, changing nothing: ``migctl plan``
        (``nvidia-mig-parted apply --dry-run``, with placements).

        >>> node.plan("3g.48gb,1g.12gb:4", gpus=0).gpus[0].create     # doctest: +SKIP
        (PlannedCreate(profile='1g.12gb', placement=Placement(start=0, size=1), ...), ...)
        >>> node.plan(file="config.yaml", config="all-balanced")       # doctest: +SKIP

        The layout is an inline ``--layout`` string (or a parsed entry), a mig-parted v1 ``file``
        (``"-"``: stdin) or a loaded ``spec``; ``config`` names the config in a file or spec.
        ``config`` alone reads the file ``migctl apply -c NAME`` reads without ``-f``:
        ``$MIGCTL_CONFIG_FILE``, else ``/etc/migctl/config.yaml``, else NVIDIA's default file.

        Returns:
            :class:`~migctl.records.layouts.PlanReport`. A GPU that refuses (the target needs a busy
            instance, or does not fit) is reported there (``refused``, ``error``), not raised.
        Raises:
            UsageError: a bad file, layout or config name, or a profile a GPU lacks (file:line: key).
        """
        from migctl.ops.plan import plan_report

        return plan_report(self._plan(layout, file, config, spec, gpus))

    def apply(
        self,
        layout: str | MigConfigEntry | None = None,
        *,
        file: str | os.PathLike[str] | None = None,
        config: str | None = None,
        spec: MigSpec | None = None,
        gpus: Gpus = None,
        hooks_file: str | os.PathLike[str] | None = None,
        parallel: bool = True,
        wait_s: float | None = None,
        mode_only: bool = False,
        skip_reset: bool = False,
    ) -> ApplyReport:
        """Apply a layout: ``migctl apply`` (``nvidia-mig-parted apply -f FILE -c NAME``), changing
        only what differs, each GPU a transaction (rolled back on failure), concurrently.

        >>> report = node.apply(file="config.yaml", config="all-balanced")   # doctest: +SKIP
        >>> report.ok, [o.result for o in report.gpus]                       # doctest: +SKIP
        (True, ['applied', 'applied', 'unchanged', ...])

        Arguments as :meth:`plan`; ``hooks_file`` is mig-parted's hooks file (``-k``).
        ``mode_only`` (``apply --mode-only``) applies only each GPU's MIG mode: enabling keeps
        the instances a GPU has, disabling needs them gone. ``skip_reset`` (``--skip-reset``)
        counts a mode change left pending until a GPU reset as done.

        Returns:
            :class:`~migctl.records.layouts.ApplyReport`; ``ok`` is false when a GPU was rolled
            back, failed or (without ``skip_reset``) is pending a reset, or the ``apply-exit``
            hook failed.
        Raises:
            InUseError: the layout needs a busy instance. InsufficientResourcesError: it does not
            fit. Either way nothing is changed. UsageError: as :meth:`plan`, or a failing hook
            before any change. LockTimeoutError.
        """
        from migctl.ops.apply import apply
        from migctl.ops.files import load_hooks_file
        from migctl.ops.hooks import mig_parted_env

        node_plan = self._plan(layout, file, config, spec, gpus)
        if mode_only:
            from migctl.ops.parity import mode_only as reduce_to_mode

            node_plan = reduce_to_mode(self._node, node_plan)
        hooks = load_hooks_file(hooks_file) if hooks_file is not None else None
        env = mig_parted_env(
            os.fspath(file) if file is not None else node_plan.source,
            node_plan.config,
            hooks_file=os.fspath(hooks_file) if hooks_file is not None else "",
            skip_reset=skip_reset,
            mode_only=mode_only,
        )
        return apply(
            self._node, node_plan, hooks=hooks, hook_env=env, parallel=parallel, wait_s=wait_s, skip_reset=skip_reset
        )

    def check(
        self,
        layout: str | MigConfigEntry | None = None,
        *,
        file: str | os.PathLike[str] | None = None,
        config: str | None = None,
        spec: MigSpec | None = None,
        gpus: Gpus = None,
    ) -> AssertReport:
        """How the node differs from a layout: ``migctl assert`` (``nvidia-mig-parted assert``), as a record.

        >>> node.check("3g.48gb,1g.12gb:4", gpus=0).matches            # doctest: +SKIP
        False

        Returns:
            :class:`~migctl.records.layouts.AssertReport` (``matches``, and each GPU's differences).
        Raises:
            UsageError: as :meth:`plan`.
        """
        from migctl.ops.check import check

        return check(self._plan(layout, file, config, spec, gpus), self._node)

    def assert_(
        self,
        layout: str | MigConfigEntry | None = None,
        *,
        file: str | os.PathLike[str] | None = None,
        config: str | None = None,
        spec: MigSpec | None = None,
        gpus: Gpus = None,
    ) -> AssertReport:
        """:meth:`check`, raising when the node differs: ``migctl assert`` (``nvidia-mig-parted assert``).

        >>> node.assert_(file="config.yaml", config="all-balanced")    # doctest: +SKIP

        Returns:
            :class:`~migctl.records.layouts.AssertReport` (it matches).
        Raises:
            MismatchError: some GPU differs (exit 10; ``details["differences"]`` per GPU).
            UsageError: as :meth:`plan`.
        """
        from migctl.ops.check import assert_node

        return assert_node(self._node, self._plan(layout, file, config, spec, gpus))

    def export(self, gpus: Gpus = None, *, name: str = "current", portable: bool = False) -> ExportReport:
        """The node's layout as a mig-parted v1 config: ``migctl export`` (``nvidia-mig-parted export``).

        >>> from migctl.config.export import render
        >>> print(render(node.export().config))                 # doctest: +SKIP
        version: v1
        mig-configs:
          current: ...

        Returns:
            :class:`~migctl.records.layouts.ExportReport`: the layout, the file as data
            (``config``; ``apply`` reproduces it exactly) and, with ``portable`` (no ``x-migctl``
            keys, so mig-parted can read it), what the file cannot express.
        Raises:
            UsageError: a bad ``gpus``.
        """
        from migctl.ops.export import export

        return export(self.select(gpus), name, portable=portable)

    def export_slurm(
        self,
        gpus: Gpus = None,
        *,
        node_name: str | None = None,
        mig_minors: str | None = None,
        dev_root: str | None = None,
    ) -> SlurmExportReport:
        """gres.conf lines and the slurm.conf ``NodeName`` fragment for the current layout:
        ``migctl export --format slurm`` (what Slurm's ``AutoDetect=nvml`` finds, written down).

        >>> report = node.export_slurm(node_name="gpu7")        # doctest: +SKIP
        >>> print(report.gres_conf, report.slurm_conf)          # doctest: +SKIP
        Name=gpu Type=nvidia_h20_1g.12gb MultipleFiles=/dev/nvidia0,/dev/nvidia-caps/nvidia-cap12,...
        NodeName=gpu7 Gres=gpu:nvidia_h20_1g.12gb:2,gpu:nvidia_h20_3g.48gb:1

        The capability minors come from the driver's ``/proc/driver/nvidia-caps/mig-minors``
        and the paths from its ``/dev`` (on a simulated node: the simulated driver's own files);
        ``mig_minors`` reads another copy of that table, ``dev_root`` writes another folder for
        ``/dev``. Records are in slurmd's index order (see docs/slurm.md).

        Returns:
            :class:`~migctl.records.schedulers.SlurmExportReport`.
        Raises:
            UsageError: the ``mig_minors`` file cannot be read or lacks a MIG device; a bad ``gpus``.
            DriverError: the driver's mig-minors table cannot be read or lacks a MIG device.
        """
        from migctl.ops.integrations import slurm_export

        return slurm_export(self._node, self.select(gpus), node_name=node_name, mig_minors=mig_minors, root=dev_root)

    def export_k8s(self, gpus: Gpus = None) -> K8sExportReport:
        """What NVIDIA's device plugin (v0.20) advertises for the current layout under the ``mixed``
        and ``single`` strategies, and the labels GPU feature discovery sets: ``migctl export
        --format k8s`` (``kubectl describe node`` after the plugin and GFD ran).

        >>> node.export_k8s().resources.mixed.resources        # doctest: +SKIP
        {'nvidia.com/mig-1g.12gb': 14}

        Returns:
            :class:`~migctl.records.schedulers.K8sExportReport` (a strategy the plugin would refuse
            has ``ok`` false and the plugin's reason in ``error``).
        Raises:
            UsageError: a bad ``gpus``.
        """
        from migctl.ops.integrations import k8s_export

        return k8s_export(self.select(gpus))

    # -- mig-parted parity: generate_config, checkpoint, restore -------------------------------------

    def generate_config(
        self, gpus: Gpus = None, *, file: str | os.PathLike[str] | None = None, fmt: str = "yaml"
    ) -> GenerateConfigReport:
        """The configs ``nvidia-mig-parted generate-config`` builds, from the profiles NVML reports:
        ``migctl generate-config`` (``all-disabled``, ``all-enabled``, ``all-<profile>``, ``all-balanced``).

        >>> node.generate_config().config["mig-configs"]["all-balanced"]     # doctest: +SKIP
        [{'devices': 'all', 'mig-enabled': True, 'mig-devices': {'1g.12gb': 2, '2g.24gb': 1, '3g.48gb': 1}}]

        With ``file`` the config is also written there, as ``fmt`` (``yaml`` or ``json``).

        Returns:
            :class:`~migctl.records.parity.GenerateConfigReport` (``config`` is the v1 file as data).
        Raises:
            UsageError: no MIG-capable GPU among ``gpus``, a bad ``fmt``, or ``file`` cannot be written.
        """
        from migctl.ops.parity import generate_config

        if fmt not in ("yaml", "json"):
            raise UsageError(f"fmt {fmt!r}: expected yaml or json")
        return generate_config(self.select(gpus), file, "json" if fmt == "json" else "yaml")

    def checkpoint(self, gpus: Gpus = None, *, file: str | os.PathLike[str] | None = None) -> CheckpointReport:
        """The node's exact MIG state (mode, GPU instances and compute instances with placements):
        ``migctl checkpoint`` (``nvidia-mig-parted checkpoint``, placements included).

        >>> saved = node.checkpoint(file="/var/tmp/mig.json").checkpoint      # doctest: +SKIP
        >>> node.restore(saved)                                              # doctest: +SKIP

        With ``file`` it is also written there (atomically, mode 0600) for ``restore -f``.

        Returns:
            :class:`~migctl.records.parity.CheckpointReport` (``checkpoint`` is what :meth:`restore` takes).
        Raises:
            UsageError: a bad ``gpus``, or ``file`` cannot be written.
        """
        from migctl.ops.parity import write_checkpoint

        return write_checkpoint(self.select(gpus), file)

    def restore(
        self,
        checkpoint: Checkpoint | str | os.PathLike[str],
        *,
        hooks_file: str | os.PathLike[str] | None = None,
        mode_only: bool = False,
        wait_s: float | None = None,
    ) -> RestoreReport:
        """Bring every checkpointed GPU (found by UUID) back to that exact state: ``migctl restore``
        (``nvidia-mig-parted restore``), through apply's planner and transaction.

        >>> node.restore("/var/tmp/mig.json").ok             # doctest: +SKIP
        True

        ``checkpoint`` is a :class:`~migctl.records.parity.Checkpoint` or the path of a checkpoint
        file (``"-"``: stdin). What already matches is kept; ``mode_only`` restores only MIG modes.

        Returns:
            :class:`~migctl.records.parity.RestoreReport`; ``ok`` is false when a GPU was rolled
            back, failed or is pending a reset.
        Raises:
            InUseError: the state needs a busy instance (nothing is changed). UsageError: a bad
            checkpoint file, a GPU the node lacks, a profile a GPU lacks. LockTimeoutError.
        """
        from migctl.ops.files import load_hooks_file
        from migctl.ops.parity import restore

        source = "<checkpoint>"
        if not isinstance(checkpoint, Checkpoint):
            from migctl.integrations.checkpoint import CheckpointError, from_text
            from migctl.ops.files import read_text

            text, source = read_text(checkpoint)
            try:
                checkpoint = from_text(text, source)
            except CheckpointError as exc:
                raise UsageError(str(exc)) from None
        hooks = load_hooks_file(hooks_file) if hooks_file is not None else None
        return restore(
            self._node,
            checkpoint,
            source,
            hooks=hooks,
            hooks_file="" if hooks_file is None else os.fspath(hooks_file),
            only_mode=mode_only,
            wait_s=wait_s,
        )

    def recover(self, *, wait_s: float | None = None) -> RecoverReport:
        """Finish, or roll back, an apply or create a crash or ``kill -9`` interrupted: ``migctl recover``
        (mig-parted has none: it reapplies).

        >>> node.recover().recovered                            # doctest: +SKIP
        ()

        Returns:
            :class:`~migctl.records.layouts.RecoverReport`: per interrupted GPU, ``finished``,
            ``rolled_back`` or ``failed`` (the journal is kept for another try).
        Raises:
            LockTimeoutError.
        """
        from migctl.ops.recover import recover

        return recover(self._node, wait_s=wait_s)

    def _requests(self, items: Sequence[ProfileRequest | str]) -> list[ProfileRequest]:
        if all(isinstance(item, ProfileRequest) for item in items):
            return [item for item in items if isinstance(item, ProfileRequest)]
        from migctl.config import ConfigError, as_profile_requests
        from migctl.ops.files import usage_error

        try:
            return as_profile_requests(items)
        except ConfigError as exc:
            raise usage_error(exc) from None

    def _plan(
        self,
        layout: str | MigConfigEntry | None,
        file: str | os.PathLike[str] | None,
        config: str | None,
        spec: MigSpec | None,
        gpus: Gpus,
    ) -> NodePlan:
        from migctl.config import ConfigError, parse_layout
        from migctl.ops.files import default_config_file, load_config_file, usage_error
        from migctl.ops.plan import plan_node

        if layout is None and file is None and spec is None and config:
            file = default_config_file()  # as `migctl apply -c NAME` without -f
        given = [x for x in (layout, file, spec) if x is not None]
        if len(given) != 1:
            raise UsageError("give exactly one of: a layout, file= or spec=")
        chosen = self.select(gpus)
        if isinstance(layout, str):
            try:
                layout = parse_layout(layout)
            except ConfigError as exc:
                raise usage_error(exc) from None
        if layout is not None:
            return plan_node(self._node, layout, None, chosen, source="--layout")
        if file is not None:
            return plan_node(self._node, load_config_file(file), config, chosen, source=os.fspath(file))
        assert spec is not None
        return plan_node(self._node, spec, config, chosen, source=spec.source)

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
        the CLI's ``migctl run --on TARGET [--queue [S]] -- COMMAND``.
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

    def auto_batch(
        self,
        jobs: Sequence[JobSpec] | str | os.PathLike[str],
        *,
        gpus: Gpus = None,
        objective: str = "jct",
        logs_dir: str | os.PathLike[str] | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        grace_s: float = 10.0,
        on_progress: Callable[[BatchProgress], None] | None = None,
    ) -> AutoBatchReport:
        """Run a batch with migctl choosing each job's profile and reshaping idle MIG slices for it.

        >>> from migctl.config.autojobs import needs
        >>> from migctl.config.jobs import job
        >>> report = node.auto_batch([
        ...     job(["python", "bert.py"], auto=needs(model="bert", batch=4, work="20m")),
        ...     job(["python", "etl.py"], auto=needs(memory="4GiB", work="5m")),
        ... ], gpus="0-3")                                                          # doctest: +SKIP
        >>> [(s.name, s.profile, s.end_s) for s in report.schedule]                 # doctest: +SKIP
        [('job-1', '7g.40gb', 1201.3), ('job-2', '1g.5gb', 300.4)]

        ``jobs``: :class:`~migctl.config.jobs.JobSpec` entries whose ``auto`` says what each
        needs (:func:`~migctl.config.autojobs.needs`: ``memory``, ``work``, ``speeds`` or
        ``times``, or a ``model`` from the speed table), or the path of a jobs file with those
        keys (docs/scheduler.md). ``gpus``: the GPUs it may use and reshape (default every
        MIG-capable one). ``objective``: ``"jct"`` (mean completion time) or ``"makespan"``.
        The rest is as :meth:`batch`: the same leases, environment, logs, retries, timeouts and
        SIGINT/SIGTERM handling. Instances it made stay when it ends.

        Returns: an :class:`~migctl.records.autobatch.AutoBatchReport` (``jobs`` and ``summary``
        as :meth:`batch` returns them, each job's profile, start, end and planned end, every
        reshape).

        Raises: :class:`~migctl.errors.UsageError` before anything runs or changes for a job
        without memory or work, a model the speed table lacks, a job with a target, a job no
        profile here can hold, a bad ``objective`` or ``gpus``;
        :class:`~migctl.errors.NotSupportedError` without a MIG-capable GPU.

        Replaces: choosing a MIG layout by hand (``nvidia-mig-parted apply``) and then handing
        out ``CUDA_VISIBLE_DEVICES``; the CLI's ``migctl batch --auto JOBS.yaml``.
        """
        from pathlib import Path

        from migctl.core.scheduler import OBJECTIVES
        from migctl.ops import autobatch, autojobs

        chosen = next((o for o in OBJECTIVES if o == objective), None)
        if chosen is None:
            raise UsageError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
        scope = autojobs.scope(self._node, None if gpus is None else str(gpus))
        if isinstance(jobs, (str, os.PathLike)):
            ready = autojobs.load_auto_jobs(Path(jobs), self._node, scope, retries=retries, timeout=timeout)
        else:
            ready = autojobs.ready_auto(self._node, scope, list(jobs), retries=retries, timeout=timeout)
        return autobatch.run_auto_batch(
            self._node,
            ready,
            scope,
            objective=chosen,
            logs_dir=None if logs_dir is None else Path(logs_dir),
            grace_s=grace_s,
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

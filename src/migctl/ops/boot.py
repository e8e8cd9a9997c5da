"""The boot service: record a layout now, re-apply it exactly at every boot, report how it went.

Hopper and later GPUs lose MIG mode and every instance when the driver reloads. ``install`` and
``select`` apply the chosen config now (or check that the node already matches it) and then
record the node's resulting layout **pinned**: every GPU instance with its start slice and its
compute instances, as a v1 config (``layout.yaml``, config ``boot``, with a ``device-filter``
per GPU). At boot, ``boot apply`` applies that recorded layout, not the original config: the
planner has no choice left, so each slice comes back where it was, whatever the order or the
state the GPUs boot in. The original config is kept beside it (``config.yaml``) for
``boot select``.

Files: ``<boot dir>/{selection.json,config.yaml,layout.yaml}`` (0600, dir 0700; boot dir
``$MIGCTL_BOOT_DIR``, default ``/etc/migctl/boot``), the unit in ``$MIGCTL_SYSTEMD_DIR``
(default ``/etc/systemd/system``), the last boot's result in ``<state dir>/boot/last.json``.
``systemctl`` is run (argv) only when systemd is running and the unit directory is systemd's;
otherwise ``install`` enables the unit the way ``systemctl enable`` does, with the
``multi-user.target.wants`` link. Every operation returns a record of
:mod:`migctl.records.boot`.

(About 450 lines: the boot service's whole life cycle, record, unit, boot-time apply and status,
kept in one module because they share its file layout.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from migctl.config import ConfigError, MigSpec, export_text, load_text
from migctl.config.hooks import HooksSpec
from migctl.device import Node
from migctl.errors import EXIT_CODES, Interrupted, MigctlError, MismatchError, StateError, UsageError
from migctl.integrations.systemd import UNIT_NAME, WANTED_BY, BootUnit, unit_text
from migctl.ops import statefiles
from migctl.ops.apply import apply
from migctl.ops.check import check
from migctl.ops.export import current_layout
from migctl.ops.files import load_hooks_file, usage_error, write_file
from migctl.ops.hooks import mig_parted_env
from migctl.ops.plan import NodePlan, plan_node, refusal_error
from migctl.paths import state_dir
from migctl.records import dumps, to_data
from migctl.records.boot import BootRecorded, BootRun, BootSelection, BootStatus, BootUninstall, MigDeviceRow
from migctl.records.common import GpuDifferences
from migctl.records.layouts import ApplyReport

BOOT_DIR_ENV = "MIGCTL_BOOT_DIR"
UNIT_DIR_ENV = "MIGCTL_SYSTEMD_DIR"
DEFAULT_BOOT_DIR = "/etc/migctl/boot"
DEFAULT_UNIT_DIR = "/etc/systemd/system"
LAYOUT_NAME = "boot"
SYSTEMCTL_TIMEOUT_S = 60
R = TypeVar("R")


def boot_dir(option: str | None = None) -> Path:
    return Path(option or os.environ.get(BOOT_DIR_ENV) or DEFAULT_BOOT_DIR)


def unit_dir(option: str | None = None) -> Path:
    return Path(option or os.environ.get(UNIT_DIR_ENV) or DEFAULT_UNIT_DIR)


def _private_dir(path: Path) -> Path:
    """Create ``path`` 0700 if missing; an existing folder is used as it is (never chmod'ed)."""
    if not path.is_dir():
        try:
            path.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise UsageError(
                f"cannot create {path}: {exc.strerror or exc}",
                hint=f"run as root, or choose another folder with --boot-dir / ${BOOT_DIR_ENV}",
            ) from None
    return path


def _read_record(cls: type[R], path: Path) -> R:
    """A record stored as JSON (``to_data``) read back; ``ValueError`` when it is not one."""
    from pydantic import TypeAdapter, ValidationError

    try:
        data = statefiles.load_json(statefiles.read_small(path))  # bounded: never /dev/zero
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


# -- recording -------------------------------------------------------------------------------


def _hooks(path: str | None) -> HooksSpec | None:
    return load_hooks_file(path) if path else None


def _failures(report: ApplyReport) -> str:
    """What went wrong; after Ctrl-C/SIGTERM, what each GPU ended as (applied, or rolled back)."""
    if report.interrupted:
        each = "; ".join(f"GPU {o.gpu}: {o.result} {o.detail}".strip() for o in report.gpus)
        return f"interrupted by {report.interrupted}: {each}"
    bad = "; ".join(
        f"GPU {o.gpu}: {o.result} {o.detail}".strip()
        for o in report.gpus
        if o.result not in ("applied", "unchanged", "skipped")
    )
    return bad or "the apply-exit hook failed"


def mig_table(node: Node, gpus: Sequence[int] | None = None) -> tuple[MigDeviceRow, ...]:
    """GPU -> GPU instance -> compute instance -> MIG UUID, for the boot log."""
    rows = []
    for gpu in node.gpus:
        if gpus is not None and gpu.index not in gpus:
            continue
        for gi in gpu.gpu_instances():
            for ci in gi.compute_instances():
                rows.append(MigDeviceRow(gpu.index, gpu.name, gi.id, gi.profile, gi.placement, ci.id, ci.profile,
                                         ci.uuid))
    return tuple(rows)


def _spec(text: str, source: str) -> MigSpec:
    try:
        return load_text(text, source)
    except ConfigError as exc:
        raise usage_error(exc) from None


def record(
    node: Node,
    config_text: str,
    config_source: str,
    name: str | None,
    *,
    hooks_file: str | None = None,
    apply_now: bool = True,
    directory: Path,
    wait_s: float | None = None,
) -> BootRecorded:
    """Apply config ``name`` now (``apply_now``) or check the node matches it, then record it pinned.

    Raises the apply's refusal (nothing changed) or :class:`~migctl.errors.MigctlError` when the
    apply failed, :class:`~migctl.errors.MismatchError` with ``apply_now=False`` when the node
    differs, :class:`~migctl.errors.UsageError` for a bad config; nothing is recorded then.
    """
    spec = _spec(config_text, config_source)
    hooks = _hooks(hooks_file)
    node_plan = plan_node(node, spec, name, node.gpus, source=config_source)
    if node_plan.refusals:
        raise refusal_error(node_plan)
    covered = tuple(g.gpu for g in node_plan.gpus if g.target is not None)
    if not covered:
        raise UsageError(f"config {node_plan.config!r} covers no GPU of this node; nothing to record")
    outcomes: ApplyReport | None = None
    if apply_now:
        env = mig_parted_env(config_source, node_plan.config, hooks_file=hooks_file or "")
        outcomes = apply(node, node_plan, hooks=hooks, hook_env=env, wait_s=wait_s)
        if outcomes.interrupted:
            raise Interrupted(
                f"applying config {node_plan.config!r}: {_failures(outcomes)}",
                hint="nothing was recorded; the boot service (if installed) keeps its previous layout",
            )
        if not outcomes.ok:
            raise MigctlError(
                f"applying config {node_plan.config!r} failed ({_failures(outcomes)})",
                hint="nothing was recorded; the boot service (if installed) keeps its previous layout",
            )
    else:
        report = check(node_plan, node)
        if not report.matches:
            bad = tuple(g for g in report.gpus if g.differences)
            text = " | ".join(f"GPU {g.gpu}: " + "; ".join(g.differences) for g in bad)
            raise MismatchError(
                f"--no-apply: the node does not match config {node_plan.config!r}: {text}",
                hint="apply it first, or leave out --no-apply; nothing was recorded",
                differences=bad,
            )
    layout_yaml = export_text(current_layout([node.gpus[i] for i in covered]), LAYOUT_NAME, device_filter=True)
    selection = BootSelection(
        config_source, node_plan.config, os.path.abspath(hooks_file) if hooks_file else None, time.time(), covered
    )
    _private_dir(directory)
    nothing = "nothing was recorded"
    write_file(directory / "config.yaml", config_text, hint=nothing)
    write_file(directory / "layout.yaml", layout_yaml, hint=nothing)
    write_file(directory / "selection.json", dumps(selection) + "\n", hint=nothing)
    return BootRecorded(selection, apply_now, outcomes.gpus if outcomes else (), layout_yaml, None, None, ())


def load_selection(directory: Path) -> BootSelection | None:
    """What ``install``/``select`` recorded in ``directory``; ``None`` when nothing is."""
    path = directory / "selection.json"
    if not path.exists():
        return None
    try:
        return _read_record(BootSelection, path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable boot selection ({exc})",
                         hint="record it again: migctl boot select NAME") from None


def recorded_config(directory: Path) -> tuple[str, str]:
    """The config text recorded by ``install`` and the name to report it by."""
    path = directory / "config.yaml"
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"no recorded config in {directory} ({why})",
                         hint="install first: migctl boot install -f FILE -c NAME") from None


# -- the unit ----------------------------------------------------------------------------------


def _systemd_live(directory: Path) -> bool:
    """Whether to drive the real systemd: it runs, systemctl exists, the unit dir is its own."""
    return (
        Path("/run/systemd/system").is_dir()
        and shutil.which("systemctl") is not None
        and directory.resolve() == Path(DEFAULT_UNIT_DIR).resolve()
    )


def _systemctl(*args: str) -> None:
    exe = shutil.which("systemctl")
    if exe is None:
        raise MigctlError("systemctl not found")
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MigctlError(f"systemctl {' '.join(args)} failed: {exc}") from None
    if out.returncode != 0:
        raise MigctlError(f"systemctl {' '.join(args)} failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")


def boot_unit(directory: Path, timeout_s: int) -> BootUnit:
    """The unit for this installation: this Python runs ``migctl boot apply`` with this state dir."""
    env = [("MIGCTL_STATE_DIR", str(state_dir()))]
    if os.environ.get("MIGCTL_SIM"):
        env.append(("MIGCTL_SIM", os.environ["MIGCTL_SIM"]))
    exec_start = (sys.executable, "-m", "migctl", "boot", "apply", "--boot-dir", str(directory.resolve()))
    return BootUnit(exec_start, str(directory.resolve()), str(state_dir()), timeout_s, tuple(env))


def _check_units(units: Path) -> None:
    if not units.is_dir():
        raise UsageError(f"unit directory {units} does not exist",
                         hint=f"is systemd installed? choose another with --unit-dir / ${UNIT_DIR_ENV}")


def write_unit(units: Path, directory: Path, timeout_s: int) -> tuple[Path, str]:
    """Write and enable the unit; returns its path and how it was enabled."""
    _check_units(units)
    path = units / UNIT_NAME
    write_file(path, unit_text(boot_unit(directory, timeout_s)), 0o644)
    if _systemd_live(units):
        _systemctl("daemon-reload")
        _systemctl("enable", UNIT_NAME)
        return path, "systemctl"
    wants = units / f"{WANTED_BY}.wants"
    try:
        wants.mkdir(exist_ok=True, mode=0o755)
        link = wants / UNIT_NAME
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path.resolve())
    except OSError as exc:
        raise UsageError(f"cannot enable {path} in {wants}: {exc.strerror or exc}") from None
    return path, "wants-link"


def install(
    node: Node,
    config_text: str,
    config_source: str,
    name: str | None,
    *,
    hooks_file: str | None,
    apply_now: bool,
    directory: Path,
    units: Path,
    timeout_s: int,
    wait_s: float | None = None,
) -> BootRecorded:
    """``boot install``: :func:`record`, then write and enable the unit (checked first: a missing
    unit folder or a bad timeout changes nothing)."""
    if timeout_s <= 0:
        raise UsageError(f"--timeout {timeout_s}: must be a positive number of seconds")
    _check_units(units)
    rec = record(node, config_text, config_source, name, hooks_file=hooks_file, apply_now=apply_now,
                 directory=directory, wait_s=wait_s)
    path, how = write_unit(units, directory, timeout_s)
    if how == "systemctl":
        return replace(rec, unit=str(path), enabled_by="systemctl")
    note = (f"systemd is not managing {units}: the unit was enabled with a {WANTED_BY}.wants link, as systemctl "
            "enable does; on the real host run: systemctl daemon-reload")
    return replace(rec, unit=str(path), enabled_by="wants-link", notes=(note,))


def uninstall(directory: Path, units: Path) -> BootUninstall:
    """Disable and remove the unit and the recorded selection; the GPUs' layout is left as it is."""
    removed: list[str] = []
    path = units / UNIT_NAME
    if path.exists() and _systemd_live(units):
        _systemctl("disable", UNIT_NAME)
    link = units / f"{WANTED_BY}.wants" / UNIT_NAME
    for p in (link, path, directory / "selection.json", directory / "layout.yaml", directory / "config.yaml"):
        if p.is_symlink() or p.exists():
            try:
                p.unlink()
            except OSError as exc:
                raise UsageError(f"cannot remove {p}: {exc.strerror or exc}",
                                 hint="run as root; removed so far: " + (", ".join(removed) or "nothing")) from None
            removed.append(str(p))
    if _systemd_live(units) and removed:
        _systemctl("daemon-reload")
    with contextlib.suppress(OSError):
        directory.rmdir()  # only if empty
    return BootUninstall(tuple(removed))


# -- at boot ---------------------------------------------------------------------------------


LAST_FILE = "last.json"


def last_path() -> Path:
    return state_dir() / "boot" / LAST_FILE


def _last_file() -> Path:
    """Where ``boot apply`` records its result; anything but a file in its place refuses it now."""
    path = statefiles.subdir("boot") / LAST_FILE
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise statefiles.os_error(exc, path, "use") from None
    if not stat.S_ISREG(st.st_mode):
        raise StateError(
            f"{path} is not a file: migctl records the last boot apply there; nothing was applied",
            hint=f"move {path} out of the way while no migctl command runs; migctl makes a new one",
        )
    return path


def _recorded_plan(node: Node, directory: Path) -> NodePlan:
    layout_path = directory / "layout.yaml"
    try:
        text = layout_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {layout_path}: {why}", hint="record it again: migctl boot select NAME") from None
    try:
        spec = load_text(text, str(layout_path))
    except ConfigError as exc:
        raise UsageError(str(exc), hint="record it again: migctl boot select NAME") from None
    return plan_node(node, spec, LAYOUT_NAME, node.gpus, source=str(layout_path))


def boot_apply(node: Node, directory: Path, *, wait_s: float | None = None) -> BootRun:
    """``boot apply``: apply the recorded pinned layout (what the unit runs). Every failure is in
    the record (``ok`` false, ``error``, ``exit_code``), which is saved for ``status``."""
    started = time.time()
    last = _last_file()  # checked before any change: its result must have somewhere to go
    selection: BootSelection | None = None
    try:
        selection = load_selection(directory)
        if selection is None:
            raise UsageError(f"nothing recorded in {directory}", hint="migctl boot install -f FILE -c NAME")
        node_plan = _recorded_plan(node, directory)
        if node_plan.refusals:
            raise refusal_error(node_plan)
        hooks = _hooks(selection.hooks_file)
        env = mig_parted_env(node_plan.source, selection.config_name, hooks_file=selection.hooks_file or "")
        report = apply(node, node_plan, hooks=hooks, hook_env=env, wait_s=wait_s)
        run = BootRun(
            ok=report.ok,
            started=started,
            seconds=round(time.time() - started, 3),
            config_name=selection.config_name,
            recovered=report.recovered,
            outcomes=report.gpus,
            hooks=report.hooks,
            table=mig_table(node, selection.gpus),
            error=None if report.ok else _failures(report),
            exit_code=0 if report.ok else EXIT_CODES["interrupted"] if report.interrupted else 1,
        )
    except MigctlError as exc:
        run = BootRun(False, started, round(time.time() - started, 3), selection.config_name if selection else None,
                      (), (), (), (), str(exc), exc.exit_code)
    try:
        statefiles.write_json(last, to_data(run))  # 0600 (0660 when shared)
    except MigctlError as exc:  # the GPUs are as the run says: say that too, not only that it was not saved
        ended = "succeeded" if run.ok else f"failed ({run.error})"
        raise type(exc)(
            f"{exc.message}; the boot apply itself {ended}, but `migctl boot status` cannot show it",
            hint=exc.hint,
        ) from None
    return run


def _last() -> BootRun | None:
    path = last_path()
    if not path.exists():
        return None
    try:
        return _read_record(BootRun, path)
    except (OSError, ValueError):
        return None  # unreadable (an older format, a damaged file): as if none


def status(node: Node | None, directory: Path, units: Path) -> BootStatus:
    """``boot status``: the unit, the recorded selection, the last boot apply, and (with ``node``)
    whether the node has the recorded layout now."""
    path = units / UNIT_NAME
    link = units / f"{WANTED_BY}.wants" / UNIT_NAME
    selection = load_selection(directory)
    matches: bool | None = None
    differences: tuple[GpuDifferences, ...] = ()
    if node is not None and selection is not None and (directory / "layout.yaml").exists():
        try:
            report = check(_recorded_plan(node, directory), node)
            matches, differences = report.matches, tuple(g for g in report.gpus if g.differences)
        except UsageError:
            matches = None
    return BootStatus(
        unit=str(path),
        installed=path.exists(),
        enabled=link.is_symlink() or link.exists(),
        boot_dir=str(directory),
        selection=selection,
        last_boot=_last(),
        matches_now=matches,
        differences=differences,
    )

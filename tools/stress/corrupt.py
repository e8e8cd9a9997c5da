"""Every state file truncated, garbled, of the wrong shape, huge, nested past any parser's depth,
unreadable, or replaced by a directory (or a directory replaced by a file), then every command
that reads state: no internal error, no traceback, a
documented exit code, a damaged file named by path (exit 11), and nothing changed by a command
that failed.

migctl's own files: a lease (free, and held with a garbled record), the leases folder, a
journal left by a ``kill -9``, the journal folder, the host lock, its owner file, the last
apply's record (``last-apply.json``), the last boot apply's (``boot/last.json``), and the state
directory itself. "Unreadable" is mode 000 (for root, who reads any mode: a symbolic link to
itself, which no one can open). The simulator's files (``sim/node.json``, ``sim/gpu-0.json``) are a separate
campaign: they stand for the driver, and the simulator owns their handling.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from stress.harness import DOCUMENTED_EXITS, Forked, Scratch, Tally, cli, leaked

DAMAGES = ("truncated", "garbled", "wrong-shape", "huge", "deep", "unreadable", "directory")

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("status", "--json"),
    ("devices",),
    ("run", "--on", "{uuid}", "--no-queue", "--", "true"),
    ("create", "-i", "1", "1g.12gb"),
    ("destroy", "-i", "0", "--gi", "{gi}"),
    ("apply", "-i", "1", "--layout", "2g.24gb:2"),
    ("recover",),
    ("doctor", "--no-smoke"),
    ("assert", "--layout", "1g.12gb:7"),
    ("mode", "enable", "-i", "1"),
    ("checkpoint",),
    ("restore", "-f", "{ck}"),
    ("top", "--once"),
    ("boot", "status", "--boot-dir", "{boot}", "--unit-dir", "{units}"),
    ("boot", "apply", "--boot-dir", "{boot}"),
)
SHORT_COMMANDS = (COMMANDS[0], COMMANDS[3], COMMANDS[6], COMMANDS[7], COMMANDS[12], COMMANDS[14])


def _damage(path: Path, how: str) -> None:
    if how == "directory":
        if path.is_dir():  # a folder: a file in its place
            shutil.rmtree(path)
            path.write_text("not a directory\n")
        else:
            path.unlink(missing_ok=True)
            path.mkdir()
        return
    if path.is_dir():
        return  # folders are only replaced
    if how == "unreadable":
        if os.geteuid() == 0:
            path.unlink(missing_ok=True)
            path.symlink_to(path.name)  # ELOOP: nobody can open it
        elif path.exists():
            path.chmod(0)
        return
    data = path.read_bytes() if path.exists() else b""
    if how == "huge":  # valid JSON far past any state file's size
        path.write_bytes(b'{"pad": "' + b"x" * (8 << 20) + b'"}')
    elif how == "deep":  # small, but nested past the JSON parser's recursion limit
        path.write_bytes(b"[" * 200_000)
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbled":
        path.write_bytes(bytes(b ^ 0x5A for b in data[:64]) + b"\x00\xff{[" + data[64:])
    else:  # valid JSON, wrong shape
        path.write_text(json.dumps([{"gpu": "0", "pid": -1, "since": 1e308}, None, 2**70]))


class _Scenario:
    """h20x2: GPU 0 at ``1g.12gb:7`` with a lease file; GPU 1 left half-way by a killed apply."""

    def __init__(self) -> None:
        self.s = Scratch("h20x2")
        env = self.s.env()
        cli(env, "apply", "-i", "0", "--layout", "1g.12gb:7")
        cli(env, "mode", "enable", "-i", "1")
        self.uuid = _first_uuid(self.s)
        cli(env, "run", "--on", self.uuid, "--", "true")  # leaves its lease file
        self.ck = self.s.root / "checkpoint.json"
        self.ck.write_text(cli(env, "checkpoint").out)
        self.boot, self.units = self.s.root / "boot", self.s.root / "units"
        self.units.mkdir()
        self.boot_config = self.s.root / "boot.yaml"
        self.boot_config.write_text(cli(env, "export").out)
        dirs = ("--boot-dir", str(self.boot), "--unit-dir", str(self.units))
        assert cli(env, "boot", "install", "-f", str(self.boot_config), "-c", "current", "--no-apply", *dirs).code == 0
        assert cli(env, "boot", "apply", "--boot-dir", str(self.boot)).code == 0  # its boot/last.json
        killed = Forked({**env, "MIGCTL_FAULT_STEP": "3:KILL"}, "apply", "-i", "1", "--layout", "3g.48gb,2g.24gb")
        killed.wait()
        (self.s.state / "migctl.lock.owner").write_text(json.dumps({"pid": 1, "command": "x", "since": 0}))
        self.gi = "13"
        shutil.copytree(self.s.state, self.s.root / "saved-all")

    def restore(self) -> None:
        if self.s.state.is_dir():
            shutil.rmtree(self.s.state)
        else:
            self.s.state.unlink()
        shutil.copytree(self.s.root / "saved-all", self.s.state)

    def files(self) -> dict[str, Path]:
        st = self.s.state
        return {
            "lease": st / "leases" / f"{self.uuid}.lock",
            "lease (held)": st / "leases" / f"{self.uuid}.lock",
            "leases folder": st / "leases",
            "journal": st / "journal" / "gpu-1.json",
            "journal folder": st / "journal",
            "host lock": st / "migctl.lock",
            "lock owner": st / "migctl.lock.owner",
            "last apply": st / "last-apply.json",
            "last boot apply": st / "boot" / "last.json",
            "state directory": st,
        }

    def sim_files(self) -> dict[str, Path]:
        sim = self.s.state / "sim"
        return {"sim node.json": sim / "node.json", "sim gpu-0.json": sim / "gpu-0.json"}


def _first_uuid(s: Scratch) -> str:
    from migctl.device import open_node

    node = open_node(sim=s.spec, state_dir=str(s.state))
    try:
        return node.gpus[0].mig_devices()[-1].uuid
    finally:
        node.close()


def corruption(short: bool, simulator: bool = False) -> Tally:
    tally = Tally("corruption of every simulator file" if simulator else "corruption of every state file")
    scen = _Scenario()
    try:
        files = scen.sim_files() if simulator else scen.files()
        commands = SHORT_COMMANDS if short else COMMANDS
        for label, path in files.items():
            scen.restore()
            folder = path.is_dir()
            for how in DAMAGES:
                if how != "directory" and folder:
                    continue  # a folder is only ever replaced by a file
                for command in commands:
                    scen.restore()
                    _one(scen, tally, label, path, how, command)
    finally:
        scen.s.close()
    return tally


def _one(scen: _Scenario, tally: Tally, label: str, path: Path, how: str, command: tuple[str, ...]) -> None:
    try:
        before = scen.s.layout()
    except Exception:  # the simulator's own file is what is damaged: compare after the fact only
        before = None
    held: Callable[[], None] = lambda: None  # noqa: E731
    if label == "lease (held)":  # someone holds it, and its record is what is damaged
        fd = os.open(path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = lambda: os.close(fd)  # noqa: E731
    _damage(path, how)
    names = {"{uuid}": scen.uuid, "{gi}": scen.gi, "{ck}": str(scen.ck), "{boot}": str(scen.boot),
             "{units}": str(scen.units)}
    args = [names.get(a, a) for a in command]
    trial = f"{label} {how}: migctl {' '.join(args)}"
    try:
        ran = cli(scen.s.env(), *args)
    finally:
        held()
    tally.tried += 1
    tally.texts(trial, ran.out, ran.err)
    exact = ran.code in DOCUMENTED_EXITS
    if not exact:
        tally.note(f"{trial}: exit {ran.code}: {ran.err[-200:]}")
    if ran.code == 11 and str(scen.s.root) not in ran.err + ran.out:
        exact = False
        tally.note(f"{trial}: exit 11 without naming the file: {ran.err[-200:]}")
    if before is not None and ran.code != 0 and args[0] in ("create", "destroy", "apply", "mode", "restore", "boot"):
        try:
            after = scen.s.layout()
        except Exception:
            after = before
        if after != before:
            exact = False
            tally.note(f"{trial}: failed (exit {ran.code}) but changed the node")
        tally.leaked += leaked(after, before)
    tally.exact += exact

"""A real single-node Slurm cluster for tests: munged, slurmctld and slurmd in a temp folder.

Debian's packages (installed by ``tools/install-slurm.sh``), run in the foreground as children
of the test on free local ports, and stopped when the test ends. Nothing outside the folder is
touched (no /etc/slurm, no /run/munge).
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
PROGRAMS = ("slurmd", "slurmctld", "srun", "sinfo", "munged")


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p, path=SBIN) is None]


def exe(name: str) -> str:
    path = shutil.which(name, path=SBIN)
    assert path is not None, name
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_name() -> str:
    return socket.gethostname().split(".", 1)[0]


def write_conf(root: Path, node_line: str, gres_conf: str, task_prolog: Path | None = None) -> Path:
    """slurm.conf and gres.conf in ``root``; ``node_line`` is ``NodeName=... Gres=...`` from migctl."""
    for d in ("spool", "state", "log"):
        (root / d).mkdir(exist_ok=True)
    host = node_name()
    conf = root / "slurm.conf"
    lines = [
        "ClusterName=migctltest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "AuthType=auth/munge",
        f"AuthInfo=socket={root}/munge.sock",
        "CredType=cred/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ReturnToService=2",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "GresTypes=gpu",
        *([f"TaskProlog={task_prolog}"] if task_prolog else []),
        f"{node_line} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]
    conf.write_text("\n".join(lines) + "\n")
    (root / "gres.conf").write_text(gres_conf)
    return conf


def make_device_files(paths: list[str]) -> bool:
    """Make the device files slurmd stats character devices, as nvidia-modprobe makes them on a
    GPU server; returns whether they all are.

    The simulated driver lays them out as plain files (``<state>/sim/root/dev/...``); slurmd
    parses a gres.conf naming plain files but logs "is not a valid character or block device"
    for each, and then gives a job no GPU (an empty ``CUDA_VISIBLE_DEVICES``; checked with
    slurmd 22.05). As root, each plain file is replaced in place by a character device (major 195
    for ``nvidia<m>``, 511 for ``nvidia-cap<n>``; minor from the name, as the driver numbers
    them; nothing opens them). Without the privilege to ``mknod`` they stay plain files.
    """
    chardev = True
    for p in sorted(set(paths)):
        path = Path(p)
        if path.exists() and stat.S_ISCHR(path.stat().st_mode):
            continue
        minor = int("".join(c for c in path.name if c.isdigit()) or 0)
        major = 511 if "nvidia-caps" in p else 195
        made = path.with_name(f".{path.name}.chr")
        try:
            os.mknod(made, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
        except OSError:
            chardev = False
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            continue
        os.replace(made, path)
    return chardev


@contextmanager
def cluster(root: Path, conf: Path) -> Iterator[dict[str, str]]:
    """Run munged, slurmctld and slurmd; yields the environment for srun/sinfo; stops them after."""
    env = {**os.environ, "SLURM_CONF": str(conf)}
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    root.chmod(0o755)  # munged wants its socket's folder reachable
    procs: list[subprocess.Popen[bytes]] = []
    log = open(root / "log" / "daemons.log", "ab")  # noqa: SIM115 (closed below)
    try:
        procs.append(subprocess.Popen(
            [exe("munged"), "-F", "-f", f"--socket={root}/munge.sock", f"--key-file={key}",
             f"--log-file={root}/log/munged.log", f"--pid-file={root}/munged.pid", f"--seed-file={root}/munge.seed",
             "--num-threads=1"], stdout=log, stderr=log, start_new_session=True))
        deadline = time.monotonic() + 10
        while not (root / "munge.sock").exists():
            assert time.monotonic() < deadline, "munged did not start: " + (root / "log/munged.log").read_text()
            time.sleep(0.05)
        procs.append(subprocess.Popen([exe("slurmctld"), "-D", "-i", "-f", str(conf)], stdout=log, stderr=log,
                                      env=env, start_new_session=True))
        procs.append(subprocess.Popen([exe("slurmd"), "-D", "-f", str(conf), "-N", node_name()], stdout=log,
                                      stderr=log, env=env, start_new_session=True))
        deadline = time.monotonic() + 30
        while True:
            out = subprocess.run([exe("sinfo"), "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=env,
                                 timeout=10, check=False)
            if out.stdout.strip() == "idle":
                break
            for p in procs:
                assert p.poll() is None, "a Slurm daemon exited: " + _logs(root)
            assert time.monotonic() < deadline, f"node not idle ({out.stdout.strip()!r}): " + _logs(root)
            time.sleep(0.2)
        yield env
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def _logs(root: Path) -> str:
    out = []
    for name in ("slurmctld.log", "slurmd.log", "daemons.log"):
        p = root / "log" / name
        if p.exists():
            out.append(f"--- {name}\n" + p.read_text()[-2000:])
    return "\n".join(out)

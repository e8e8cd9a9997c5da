"""``migctl sim exec -- CMD...``: any program that uses pynvml runs against the simulated node.

The child gets ``PYTHONPATH`` with :mod:`migctl.sim.pynvml_hook` first. Its
``sitecustomize`` runs when any Python in the child's process tree starts, opens the node named
by ``MIGCTL_SIM`` / ``MIGCTL_STATE_DIR`` and installs the simulator as pynvml's C library
(``pynvml.nvmlLib``, see :mod:`migctl.sim.clib`). pynvml's own functions then run unchanged,
every symbol lookup (nvitop's and gpustat's ``_v2``/``_v3`` probes too) is answered by the
simulator, and the real ``libnvidia-ml`` is never loaded, even on a machine that has one.
A ``sitecustomize`` the environment already had still runs after the hook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parent / "pynvml_hook"
#: Set in the child, so a tool (and a test) can tell the hook was asked for.
MARKER = "MIGCTL_SIM_EXEC"


def child_env(spec: str, state_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``sim exec`` child: the node, and the hook first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    package_root = Path(__file__).resolve().parents[2]  # the folder holding migctl/, so the hook can import it
    paths = [str(HOOK_DIR), str(package_root)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update({"PYTHONPATH": os.pathsep.join(paths), "MIGCTL_SIM": spec, "MIGCTL_STATE_DIR": str(state_dir)})
    env[MARKER] = "1"
    return env


def install() -> None:
    """Make this process's pynvml talk to the simulated node named by the environment."""
    import pynvml

    from migctl import sim

    spec = os.environ.get("MIGCTL_SIM") or None
    state_dir = os.environ.get("MIGCTL_STATE_DIR") or None
    nvml = sim.open(spec, state_dir)
    with pynvml.libLoadLock:
        pynvml.nvmlLib = nvml.library
        pynvml._nvmlGetFunctionPointer_cache.clear()

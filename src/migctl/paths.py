"""Where migctl keeps its state: locks, leases, journals, and the simulated node.

``MIGCTL_STATE_DIR`` wins. Otherwise root uses ``/var/lib/migctl`` (one place per host, so the
host-wide lock really is host-wide) and other users ``$XDG_STATE_HOME/migctl`` (default
``~/.local/state/migctl``). The folder is created 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

from migctl.sim.state import ensure_private_dir


def state_dir() -> Path:
    env = os.environ.get("MIGCTL_STATE_DIR")
    if env:
        return ensure_private_dir(Path(env).expanduser())
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ensure_private_dir(Path("/var/lib/migctl"))
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return ensure_private_dir(Path(base) / "migctl")

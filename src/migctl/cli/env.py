"""Environment variables that name the config, as mig-parted's service uses them.

migctl's own names win over mig-parted's, which are honoured so a node set up for
``nvidia-mig-parted`` (``/etc/profile.d/nvidia-mig-parted.sh``, its systemd drop-in) works
unchanged. A command-line option always wins over both.
"""

from __future__ import annotations

import os

CONFIG_FILE = ("MIGCTL_CONFIG_FILE", "MIG_PARTED_CONFIG_FILE")
SELECTED_CONFIG = ("MIGCTL_SELECTED_CONFIG", "MIG_PARTED_SELECTED_CONFIG")
HOOKS_FILE = ("MIGCTL_HOOKS_FILE", "MIG_PARTED_HOOKS_FILE")
CHECKPOINT_FILE = ("MIGCTL_CHECKPOINT_FILE", "MIG_PARTED_CHECKPOINT_FILE")


def from_env(option: str | None, names: tuple[str, ...]) -> str | None:
    """``option`` if given, else the first of ``names`` set to a non-empty value."""
    if option is not None:
        return option
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None

"""The README's install block works exactly as written (issue 10, section 9).

It is run verbatim, in bash, in a copy of the checkout, with a ``PATH`` that has a Python 3 but
no migctl: the block must make the virtualenv, install migctl, make ``migctl`` a command of the
same shell, and take the simulated node through its first steps. (tests/test_docs.py skips
this block because it installs a package; this test is the one that runs it.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def install_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Install and first steps", 1)[1]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m is not None, "README.md has no bash block under 'Install and first steps'"
    return m.group(1)


def checkout_copy(dest: Path) -> None:
    """The files of the checkout (tracked, and new ones git does not ignore), without .venv."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.mark.slow
def test_the_readme_install_block_works_as_written(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout to copy")
    repo = tmp_path / "migctl"
    checkout_copy(repo)
    python_dir = str(Path(shutil.which("python3") or sys.executable).resolve().parent)
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin and "migctl" not in p]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIGCTL_", "VIRTUAL_ENV", "PYTHON"))}
    env.update({"PATH": os.pathsep.join([python_dir, *path]), "HOME": str(tmp_path),
                "MIGCTL_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "120"})
    assert shutil.which("migctl", path=env["PATH"]) is None  # nothing but the block can make it a command
    p = subprocess.run(["bash", "-e", "-c", install_block()], cwd=repo, env=env, capture_output=True, text=True,
                       timeout=900, check=False)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    assert "command not found" not in p.stderr
    assert "GPU 0 (NVIDIA H20): enabled" in p.stdout  # migctl mode enable -i 0, on the simulated node
    assert "(UUID: MIG-" in p.stdout  # migctl devices lists the MIG devices it created
    assert p.stdout.count("GPU 0: destroyed GPU instance") == 3  # and destroy --all removed all three
    assert not (tmp_path / "state").is_symlink() and (tmp_path / "state").is_dir()  # the node lived there

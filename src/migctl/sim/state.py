"""The simulated node on disk: shared safely by every process that opens it.

Layout of ``<state_dir>/sim/``::

    node.json       the node: spec, models, driver and fabric-manager state
    gpu-N.json      one GPU: MIG mode, GPU/compute instances, processes
    gpu-N.lock      serialises changes to GPU N (other GPUs change concurrently, as on hardware)
    node.lock       serialises changes to node.json

Every change is read-modify-write under the file's lock and written atomically (temporary file,
fsync, rename), so a crash or ``kill -9`` leaves either the old or the new state, never half of
one. Readers take no lock: a rename is atomic, so they always see a whole file. Files are 0600
and the folder 0700.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

LOCK_TIMEOUT_S = 60.0


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so readers see the old or the new file, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # Compact output keeps json on its C encoder (indent would force the Python one).
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(PermissionError):
        os.chmod(path, 0o700)
    return path


class Store:
    """JSON documents in one folder, each with its own lock, read through a small cache."""

    def __init__(self, root: Path) -> None:
        self.root = ensure_private_dir(root)
        self._cache: dict[str, tuple[tuple[int, int, int], Any]] = {}
        self._paths: dict[str, Path] = {}

    def _path(self, name: str) -> Path:
        path = self._paths.get(name)
        if path is None:
            path = self._paths[name] = self.root / f"{name}.json"
        return path

    def lock(self, name: str) -> FileLock:
        lock_path = self.root / f"{name}.lock"
        lock = FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S, mode=0o600)
        return lock

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def read(self, name: str) -> Any:
        """The document's current content (cached until the file is replaced)."""
        path = self._path(name)
        st = os.stat(path)
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == sig:
            return hit[1]
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
        self._cache[name] = (sig, data)
        return data

    def write(self, name: str, data: Any) -> None:
        atomic_write_json(self._path(name), data)
        self._cache.pop(name, None)

    @contextlib.contextmanager
    def edit(self, name: str) -> Iterator[Any]:
        """Lock ``name``, yield a fresh private copy, write it back if the block succeeds."""
        with self.lock(name):
            with self._path(name).open(encoding="utf-8") as f:
                data = json.load(f)
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self.write(name, data)

    def remove_all(self) -> None:
        for p in self.root.glob("*.json"):
            p.unlink()
        self._cache.clear()

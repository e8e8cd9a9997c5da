"""The simulated node on disk: shared safely by every process that opens it.

Layout of ``<state_dir>/sim/``::

    node.json       the node: spec, models, driver and fabric-manager state
    gpu-N.json      one GPU: MIG mode, GPU/compute instances, processes
    gpu-N.lock      serialises changes to GPU N (other GPUs change concurrently, as on hardware)
    node.lock       serialises changes to node.json
    root/           the driver's files (/proc/driver/nvidia-caps/mig-minors, /dev/nvidia*)

Every change is read-modify-write under the file's lock and written atomically (temporary file,
fsync, rename), so a crash or ``kill -9`` leaves either the old or the new state, never half of
one. A temporary file such a crash leaves behind (``.gpu-N.json.XXXX``) is removed the next time
that file is changed, under its lock (so never one a live writer still needs). Readers take no
lock: a rename is atomic, so they always see a whole file. Files are 0600; a folder the simulator
makes is 0700 (one that exists keeps its mode).

A file that cannot be read as the simulator wrote it (truncated, garbled, of the wrong shape,
replaced by a directory) raises :class:`SimStateError`, naming the file, what is wrong with it
and the fix (``migctl sim reset``), never a ``JSONDecodeError``/``KeyError``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from migctl.errors import DriverError

LOCK_TIMEOUT_S = 60.0

#: Checks a document's shape; returns what is wrong with it, or ``None``.
Checker = Callable[[Any], "str | None"]


class SimStateError(DriverError):
    """A file of the simulated node is damaged (exit 8, as a driver failure)."""

    def __init__(self, path: Path, problem: str, spec: str | None = None) -> None:
        fix = f"migctl --sim {spec} sim reset" if spec else "migctl --sim SPEC sim reset"
        super().__init__(
            f"the simulated node's file {path} {problem}",
            hint=f"start the simulated node fresh (its instances are lost): {fix}",
        )
        self.path = path
        self.problem = problem


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so readers see the old or the new file, never a mix."""
    # Compact output keeps json on its C encoder (indent would force the Python one).
    atomic_write_text(path, json.dumps(data, sort_keys=True, separators=(",", ":")))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (0600) via a temporary file, fsync and rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
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
    """``path`` as a folder: each missing folder on the way is made 0700; one that exists is used
    as it is (migctl never changes the mode of a folder it did not just create: an administrator
    may have shared it, docs/safety.md)."""
    missing: list[Path] = []
    p = path
    while not p.exists() and not p.is_symlink() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:  # another process made it meanwhile: theirs, used as it is
            continue
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)  # made just now (the umask may have narrowed it)
    path.mkdir(exist_ok=True)  # no-op for a folder; FileExistsError for a file in its place
    return path


class Store:
    """JSON documents in one folder, each with its own lock, read through a small cache.

    ``checkers`` maps a name prefix (``"gpu-"``, ``"node"``) to the function that checks a
    document's shape each time it is read from disk.
    """

    def __init__(self, root: Path, checkers: dict[str, Checker] | None = None) -> None:
        self.root = ensure_private_dir(root)
        self._cache: dict[str, tuple[tuple[int, int, int], Any]] = {}
        self._paths: dict[str, Path] = {}
        self._checkers = dict(checkers or {})
        self._swept: set[str] = set()
        self.spec_hint: str | None = None  # named in the fix of a SimStateError

    def _path(self, name: str) -> Path:
        path = self._paths.get(name)
        if path is None:
            path = self._paths[name] = self.root / f"{name}.json"
        return path

    def lock(self, name: str) -> FileLock:
        return FileLock(str(self.root / f"{name}.lock"), timeout=LOCK_TIMEOUT_S, mode=0o600)

    def exists(self, name: str) -> bool:
        path = self._path(name)
        return path.exists() or path.is_symlink()

    def _fail(self, path: Path, problem: str) -> SimStateError:
        return SimStateError(path, problem, self.spec_hint)

    def _load(self, name: str, path: Path) -> Any:
        try:
            with path.open(encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise self._fail(path, "is missing") from None
        except IsADirectoryError:
            raise self._fail(path, "is a directory, not a file") from None
        except UnicodeDecodeError:
            raise self._fail(path, "is not text (garbled)") from None
        except OSError as exc:
            raise self._fail(path, f"cannot be read ({exc.strerror or exc})") from None
        if not text.strip():
            raise self._fail(path, "is empty (truncated)")
        try:
            data = json.loads(text)
        except RecursionError:
            raise self._fail(path, "is not valid JSON (garbled: nested too deeply)") from None
        except ValueError as exc:
            raise self._fail(path, f"is not valid JSON (truncated or garbled: {exc})") from None
        problem = self._check(name, data)
        if problem is not None:
            raise self._fail(path, f"does not hold what the simulator wrote: {problem}")
        return data

    def _check(self, name: str, data: Any) -> str | None:
        for prefix, checker in self._checkers.items():
            if name.startswith(prefix):
                return checker(data)
        return None

    def read(self, name: str) -> Any:
        """The document's current content (cached until the file is replaced)."""
        path = self._path(name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise self._fail(path, "is missing") from None
        except OSError as exc:
            raise self._fail(path, f"cannot be read ({exc.strerror or exc})") from None
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == sig:
            return hit[1]
        data = self._load(name, path)
        self._cache[name] = (sig, data)
        return data

    def write(self, name: str, data: Any) -> None:
        atomic_write_json(self._path(name), data)
        self._cache.pop(name, None)

    def _sweep(self, name: str) -> None:
        """Remove temporary files a killed writer of ``name`` left (call with its lock held)."""
        if name in self._swept:
            return
        for leftover in self.root.glob(f".{name}.json.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        self._swept.add(name)

    @contextlib.contextmanager
    def edit(self, name: str) -> Iterator[Any]:
        """Lock ``name``, yield a fresh private copy, write it back if the block succeeds."""
        with self.lock(name):
            self._sweep(name)
            data = self._load(name, self._path(name))
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self.write(name, data)

    @contextlib.contextmanager
    def replacing(self, name: str, *, lock: bool = True) -> Iterator[None]:
        """Lock ``name`` (unless the caller holds its lock) to write it whole, whatever it holds now."""
        with self.lock(name) if lock else contextlib.nullcontext():
            self._swept.discard(name)
            self._sweep(name)
            path = self._path(name)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            yield

    def remove_all(self) -> None:
        """Remove every document (and anything put in a document's place) and leftover temporary files."""
        for p in self.root.glob("*.json"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        for p in self.root.glob(".*.json.*"):
            with contextlib.suppress(OSError):
                p.unlink()
        self._cache.clear()

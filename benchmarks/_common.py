"""What the benchmarks share: a scoped environment and a Markdown table."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, with ``None``, unset) environment variables for the block, then restore them.

    The benchmarks drive migctl in-process, and migctl reads ``MIGCTL_STATE_DIR``/``MIGCTL_SIM``
    from the environment; this keeps one benchmark's private node from leaking into the next.
    """
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A Markdown table (pasted as is into docs/)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")

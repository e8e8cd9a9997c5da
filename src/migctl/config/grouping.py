"""How mig-parted turns ``mig-devices`` counts into GPU instances, so a file builds the same layout.

mig-parted (``pkg/types/mig_config.go`` ``Flatten``, ``pkg/mig/config/config.go``
``SetMigConfig``) does not read a count as "that many GPU instances". It works on *devices*:

1. **Flatten.** Every key contributes ``count`` devices (one compute instance each: ``3g.48gb``
   is a 3g GPU instance's full-size compute instance, ``1c.3g.48gb`` a 1-slice one). The list
   is sorted by GPU-instance slices ``G`` (largest first), then compute slices ``C`` (largest
   first), then the ``+`` attributes as text (``me.all``, ``me``, ``gfx``, none: descending).
   Go's map order is random and its sort is not stable, so devices that compare equal on all
   three (``1g.10gb`` and ``1g.20gb``) come in any order there; migctl breaks those ties by
   memory (largest first), then name. That never changes the grouping: equal-comparing devices
   of different GPU-instance profiles never share a GPU instance.
2. **Reuse the last GPU instance.** Devices are created in that order. Each one goes into the
   GPU instance created last when that instance has the same GPU-instance profile and the
   compute instance still fits in it; otherwise a new GPU instance is created. So
   ``1c.7g.40gb: 7`` is one 7g instance holding seven 1-slice compute instances,
   ``{1c.3g.20gb: 1, 2c.3g.20gb: 1}`` one 3g instance holding a 2c and a 1c, and
   ``3g.20gb: 2`` two 3g instances (a full-size compute instance leaves no room).
3. **Every order, until one works.** When creating fails (the GPU has no room for the
   instances that order makes), mig-parted wipes the GPU and tries the next order, through all
   distinct permutations of the flattened list (``iteratePermutationsUntilSuccess``, a swap
   permutation that skips swapping equal devices). ``{2c.3g.20gb: 2, 1c.3g.20gb: 2}`` on an
   A100 first makes three 3g instances (2c | 2c+1c | 1c), which do not fit, then two (2c+1c each).

migctl does the same: :func:`build` takes the first order, in mig-parted's sequence, whose
instances ``fits`` accepts (the caller asks the planner whether they fit an empty GPU).
Differences, each deliberate:

* *Fits* means "some placement of these instances exists": migctl creates at explicit
  placements, mig-parted lets the driver choose, so where an order fails on mig-parted only
  because of the driver's placement choices, migctl keeps that order's grouping.
* *The compute instance still fits* is decided by :func:`compute_fits`, a rule rather than
  the driver's answer (compute-instance profiles can only be read from a GPU instance that
  exists): compute instances are placed in compute-slice spans (``CTS`` ids), a ``c``-slice one
  taking an aligned span of the next power of two (a 3-slice one takes 4), in a GPU instance's
  span of the next power of two above its slices; so ``3c + 3c`` fill a 7g instance and a
  further ``1c`` does not fit. For every GPU-instance profile of every model migctl knows, the
  rule agrees with the compute-instance placements (``tests/test_mig_parted_parity.py``
  checks it against the simulator's).
* An order whose first devices already make GPU instances that cannot fit is not continued
  (mig-parted fails on it at that point too, then goes on), and at most :data:`ORDER_LIMIT`
  steps are taken (mig-parted tries every order, which for large mixed configs is millions);
  when no order fits, the first order's grouping is returned and the planner explains why it
  does not fit.

Pure, no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from migctl.config.spec import parse_profile
from migctl.core.geometry import GiProfile

#: How many steps :func:`build` takes at most through the orders (permutations) it tries.
ORDER_LIMIT = 20_000


@dataclass(frozen=True)
class Device:
    """One entry of mig-parted's flattened list: a compute instance to create.

    ``key`` is the ``mig-devices`` key it came from, ``gi`` its GPU-instance profile,
    ``compute`` the compute-instance profile's canonical name (the GPU-instance profile's own
    name for the full-size one, else ``1c.3g.48gb``) and ``slices`` its compute slices.
    """

    key: str
    gi: GiProfile
    compute: str
    slices: int


@dataclass(frozen=True)
class Grouped:
    """A GPU instance mig-parted would create, and the devices (compute instances) it holds."""

    gi: GiProfile
    devices: tuple[Device, ...]

    @property
    def compute(self) -> tuple[str, ...]:
        """Its compute instances' profiles, sorted."""
        return tuple(sorted(d.compute for d in self.devices))

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(d.key for d in self.devices)


def _attributes(device: Device) -> str:
    """The ``+`` attributes as mig-parted joins them (``-me`` is a negative one: none)."""
    parsed = parse_profile(device.gi.name)
    suffix = parsed[3] if parsed else ""
    return suffix[1:] if suffix.startswith("+") else ""


def _gb(device: Device) -> int:
    parsed = parse_profile(device.gi.name)
    return parsed[2] if parsed else 0


def _compare(a: Device, b: Device) -> int:
    """mig-parted's order (G, C, attributes: all descending), then migctl's tie-break."""
    for x, y in ((a.gi.slice_count, b.gi.slice_count), (a.slices, b.slices)):
        if x != y:
            return -1 if x > y else 1
    ta, tb = _attributes(a), _attributes(b)
    if ta != tb:
        return -1 if ta > tb else 1
    if _gb(a) != _gb(b):
        return -1 if _gb(a) > _gb(b) else 1
    return (a.gi.name > b.gi.name) - (a.gi.name < b.gi.name) or (a.key > b.key) - (a.key < b.key)


def flatten(counts: Sequence[tuple[Device, int]]) -> list[Device]:
    """``count`` copies of each device, in mig-parted's creation order."""
    devices = [d for d, n in counts for _ in range(n)]
    return sorted(devices, key=functools.cmp_to_key(_compare))


def _span(slices: int) -> int:
    """The compute-slice span a ``slices``-slice instance takes: the next power of two."""
    return 1 << max(0, slices - 1).bit_length()


def compute_fits(gi_slices: int, compute: Sequence[int]) -> bool:
    """Whether compute instances of ``compute`` slices fit together in a GPU instance of
    ``gi_slices`` compute slices: their slices add up to at most its slices, and their spans
    (powers of two, aligned: they pack exactly when their sum fits) to at most its span."""
    return sum(compute) <= gi_slices and sum(_span(c) for c in compute) <= _span(gi_slices)


def group(order: Sequence[Device]) -> list[Grouped]:
    """The GPU instances mig-parted creates for devices created in ``order``."""
    groups: list[list[Device]] = []
    for d in order:
        last = groups[-1] if groups else None
        if last is not None and last[0].gi.id == d.gi.id and compute_fits(
            d.gi.slice_count, [x.slices for x in last] + [d.slices]
        ):
            last.append(d)
        else:
            groups.append([d])
    return [Grouped(g[0].gi, tuple(g)) for g in groups]


def orders(devices: Sequence[Device]) -> Iterator[list[Device]]:
    """Every distinct order of ``devices``, in the sequence mig-parted tries them (the first is
    ``devices`` itself): swap each later device into place unless an equal one was already
    tried there."""
    items = list(devices)

    def permute(i: int) -> Iterator[list[Device]]:
        if i >= len(items):
            yield list(items)
            return
        for j in range(i, len(items)):
            if any(items[k] == items[j] for k in range(i, j)):
                continue
            items[i], items[j] = items[j], items[i]
            yield from permute(i + 1)
            items[i], items[j] = items[j], items[i]

    return permute(0)


#: ``fits(groups, complete)``: whether these GPU instances fit an empty GPU; ``complete`` is false
#: for the instances of a prefix of an order (only their profiles matter then).
Fits = Callable[[Sequence[Grouped], bool], bool]


class _Stop(Exception):
    pass


def build(devices: Sequence[Device], fits: Fits, *, limit: int = ORDER_LIMIT) -> list[Grouped]:
    """The GPU instances mig-parted ends up with for ``devices`` (already :func:`flatten`-ed):
    those of the first order, in :func:`orders`' sequence, whose grouping ``fits``; the first
    order's when none does.

    Orders are walked as mig-parted walks them, except that an order whose first devices already
    make GPU instances that cannot fit is not continued (no continuation of it can fit: more
    devices only add instances); at most ``limit`` steps are taken.
    """
    first = group(devices)
    if all(d.slices == d.gi.slice_count for d in devices):
        return first  # full-size compute instances only: every order makes the same instances
    if fits(first, True):
        return first
    items = list(devices)
    prefixes: dict[tuple[int, ...], bool] = {}
    complete: dict[tuple[tuple[int, tuple[str, ...]], ...], bool] = {}
    steps = 0

    def prefix_fits(k: int) -> bool:
        groups = group(items[:k])
        key = tuple(sorted(g.gi.id for g in groups))
        if key not in prefixes:
            prefixes[key] = fits(groups, False)
        return prefixes[key]

    def permute(i: int) -> list[Grouped] | None:
        nonlocal steps
        steps += 1
        if steps > limit:
            raise _Stop
        if i >= len(items):
            groups = group(items)
            shape = tuple(sorted((g.gi.id, g.compute) for g in groups))
            if shape not in complete:
                complete[shape] = fits(groups, True)
            return groups if complete[shape] else None
        for j in range(i, len(items)):
            if any(items[k] == items[j] for k in range(i, j)):
                continue
            items[i], items[j] = items[j], items[i]
            found = permute(i + 1) if prefix_fits(i + 1) else None
            items[i], items[j] = items[j], items[i]
            if found is not None:
                return found
        return None

    try:
        return permute(0) or first
    except _Stop:
        return first

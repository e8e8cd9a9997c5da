"""When the on-demand scheduler makes a new MIG device and when it lets a request wait for one of its
profile (migctl.ray.book.Estimates): pure, no Ray."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from migctl.ray.book import DEFAULT_NEW_DEVICE_S, Estimates


def test_before_anything_is_learnt_or_with_no_device_a_new_one_is_always_worth_it() -> None:
    e = Estimates()
    assert e.new_device_s == DEFAULT_NEW_DEVICE_S
    assert e.wait("1g.12gb", 0, 5) == math.inf and e.worth_making("1g.12gb", 0, 5)
    e.ran("1g.12gb", 0.2)
    assert e.wait("2g.24gb", 0, 0) == math.inf and e.worth_making("2g.24gb", 0, 0)


def test_a_burst_of_short_tasks_waits_for_the_devices_it_has_until_the_queue_is_long() -> None:
    """Ten 1g.12gb devices running 0.2 s tasks, a new device costs 1 s: the 50 requests at the head
    of the queue are served sooner by those ten (each frees every 0.2 s) than by a new device."""
    e = Estimates()
    e.ran("1g.12gb", 0.2)
    assert [e.worth_making("1g.12gb", ahead, 10) for ahead in (0, 49, 50, 200)] == [False, False, True, True]
    # What a request of another profile knows: the others' tasks, until its own have run.
    assert e.wait("3g.48gb", 0, 1) == e.wait("1g.12gb", 0, 1)


def test_measurements_move_the_estimates_gradually() -> None:
    e = Estimates()
    e.ran("1g.12gb", 1.0)
    e.ran("1g.12gb", 11.0)
    assert 1.0 < e.run_s["1g.12gb"] < 11.0
    before = e.new_device_s
    e.made(5.0)
    e.bound(5.0)
    assert before < e.new_device_s < 10.0


@given(
    st.floats(0.001, 1000), st.integers(0, 1000), st.integers(1, 200), st.integers(0, 50), st.integers(1, 50)
)
def test_a_longer_queue_waits_longer_and_more_devices_wait_less(
    run: float, ahead: int, devices: int, more_ahead: int, more_devices: int
) -> None:
    e = Estimates()
    e.ran("p", run)
    assert e.wait("p", ahead + more_ahead, devices) >= e.wait("p", ahead, devices)
    assert e.wait("p", ahead, devices + more_devices) <= e.wait("p", ahead, devices)
    if e.worth_making("p", ahead, devices):  # worth it for one request: for every one behind it too
        assert e.worth_making("p", ahead + more_ahead, devices)

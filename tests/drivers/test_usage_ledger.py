"""The libvirt driver's usage ledger: a pure model of a host, driven by Hypothesis.

The model host has active domains (the truth), our own starts and stops
(announced with ``expect``), other parties' starts and stops, lifecycle events
delivered late but in order, and reloads that list the truth and load it a
little later. Whatever the interleaving, once every event has arrived the
ledger is either unknown (the driver asks libvirt) or exactly right.
"""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import EventKind, Resources
from drivers.libvirt._ledger import UsageLedger

NAMES = ["a", "b", "c"]
SIZES = {"a": Resources(1, 64), "b": Resources(2, 128), "c": Resources(4, 512)}


class Host:
    """The truth, the event queue libvirt would deliver, and the ledger under test."""

    def __init__(self) -> None:
        self.active: dict[str, Resources] = {}
        self.events: deque[tuple[str, EventKind]] = deque()
        self.ledger = UsageLedger()
        self.reload: tuple[dict[str, Resources], int] | None = None

    def truth(self) -> Resources:
        return Resources(sum(r.cpus for r in self.active.values()),
                         sum(r.memory_mb for r in self.active.values()))

    def deliver(self) -> None:
        if self.events:
            self.ledger.observe(*self.events.popleft())

    def our_start(self, name: str, deliver_first: bool) -> None:
        if name in self.active:
            return  # the driver refuses before announcing anything
        self.ledger.expect(name, EventKind.STARTED)
        self.active[name] = SIZES[name]
        self.events.append((name, EventKind.STARTED))
        if deliver_first:  # the event thread beat the caller back
            while self.events:
                self.deliver()
        self.ledger.started(name, SIZES[name])

    def our_destroy(self, name: str, deliver_first: bool) -> None:
        self.ledger.expect(name, EventKind.STOPPED)
        if name not in self.active:
            self.ledger.cancel(name, EventKind.STOPPED)  # libvirt refused: no event
            return
        del self.active[name]
        self.events.append((name, EventKind.STOPPED))
        if deliver_first:
            while self.events:
                self.deliver()
        self.ledger.stopped(name)

    def foreign(self, name: str) -> None:
        if name in self.active:
            del self.active[name]
            self.events.append((name, EventKind.STOPPED))
        else:
            self.active[name] = SIZES[name]
            self.events.append((name, EventKind.STARTED))

    def foreign_undefine(self, name: str) -> None:
        if name not in self.active:
            self.events.append((name, EventKind.REMOVED))

    def begin_reload(self) -> None:
        self.reload = (dict(self.active), self.ledger.begin_reload())

    def end_reload(self) -> None:
        if self.reload is not None:
            self.ledger.reset(*self.reload)
            self.reload = None

    def check(self) -> None:
        if not self.events and self.ledger.known:
            assert self.ledger.used() == self.truth()


step = st.one_of(
    st.tuples(st.just("our_start"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("our_destroy"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("foreign"), st.sampled_from(NAMES)),
    st.tuples(st.just("foreign_undefine"), st.sampled_from(NAMES)),
    st.tuples(st.just("deliver")),
    st.tuples(st.just("begin_reload")),
    st.tuples(st.just("end_reload")),
)


@settings(max_examples=300)
@given(st.lists(step, max_size=40))
def test_once_every_event_has_arrived_the_ledger_is_unknown_or_exact(steps: list[tuple]) -> None:
    host = Host()
    host.ledger.reset({})
    for action, *args in steps:
        getattr(host, action)(*args)
        host.check()
    host.end_reload()
    while host.events:
        host.deliver()
    host.check()


def test_our_own_start_and_stop_keep_it_known_and_others_make_it_unknown() -> None:
    ledger = UsageLedger()
    assert not ledger.known and ledger.used() is None
    ledger.reset({"test": Resources(2, 512)})
    ledger.expect("a", EventKind.STARTED)
    ledger.started("a", Resources(1, 64))
    ledger.observe("a", EventKind.STARTED)  # ours: consumed
    assert ledger.used() == Resources(3, 576)
    ledger.observe("a", EventKind.RESUMED)  # does not change usage
    assert ledger.known
    ledger.observe("b", EventKind.STARTED)  # someone else's
    assert not ledger.known


def test_a_reload_that_raced_an_invalidation_is_dropped() -> None:
    ledger = UsageLedger()
    epoch = ledger.begin_reload()
    ledger.observe("x", EventKind.CRASHED)
    assert ledger.reset({}, epoch) is False and not ledger.known
    assert ledger.reset({}, ledger.begin_reload()) is True and ledger.used() == Resources()


def test_forgetting_expectations_makes_the_next_matching_event_count_as_someone_elses() -> None:
    ledger = UsageLedger()
    ledger.expect("a", EventKind.STOPPED)  # announced, but the event will never come (unwatched)
    ledger.invalidate(forget_expected=True)
    ledger.reset({"a": SIZES["a"]})
    ledger.observe("a", EventKind.STOPPED)  # a real stop by someone else
    assert ledger.used() is None  # not swallowed: the driver reloads from libvirt
    kept = UsageLedger()
    kept.expect("a", EventKind.STOPPED)
    kept.invalidate()
    kept.reset({"a": SIZES["a"]})
    kept.observe("a", EventKind.STOPPED)
    assert kept.used() == SIZES["a"]  # a plain invalidate keeps expectations (our call is in flight)

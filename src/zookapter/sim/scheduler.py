"""The simulator's event loop: a heap of callbacks ordered by (virtual time, sequence number).

Everything that happens in a simulated run — a packet arriving, an fsync completing, a node
ticking, a client timing out, a fault — is one entry `(time_ms, seq, fn, args)`. `seq` is a
global counter, so entries at the same millisecond run in the order they were scheduled and
the whole run is a pure function of what was scheduled, i.e. of the seed. There is no
asyncio and no wall clock: a callback runs to completion, then the next one is popped.

The trace is optional because it costs: when on, the simulation records one small tuple per
dispatched event and `Trace.digest()` hashes them, which is how the determinism tests prove
that a seed replays exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

EVENTS_MAX_DEFAULT = 2_000_000  # a runaway (livelocked) run stops here instead of hanging CI


class BudgetExceeded(RuntimeError):
    """The run scheduled more events than allowed: a livelock or a busy loop in a node."""


class Trace:
    """Ordered record of dispatched events; its digest identifies a run."""
    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[tuple[Any, ...]] = []

    def record(self, *fields: Any) -> None:
        self.lines.append(fields)

    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        for line in self.lines:
            h.update(repr(line).encode())
            h.update(b"\n")
        return h.hexdigest()

    def tail(self, count: int = 40) -> list[str]:
        return [" ".join(str(f) for f in line) for line in self.lines[-count:]]


class Scheduler:
    """A virtual clock plus the event heap; `run` drives it up to a time limit."""
    __slots__ = ("now_ms", "_heap", "_seq", "events_run", "events_max")

    def __init__(self, events_max: int = EVENTS_MAX_DEFAULT) -> None:
        self.now_ms = 0
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.events_run = 0
        self.events_max = events_max

    def at(self, time_ms: int, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` at virtual time `time_ms` (never in the past)."""
        if time_ms < self.now_ms:
            raise AssertionError(f"scheduling at {time_ms} ms, before now ({self.now_ms} ms)")
        self._seq += 1
        heappush(self._heap, (time_ms, self._seq, fn, args))

    def after(self, delay_ms: int, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now_ms + delay_ms, fn, *args)

    @property
    def pending(self) -> int:
        return len(self._heap)

    def next_time_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run(self, until_ms: int, stop: Callable[[], bool] | None = None) -> None:
        """Dispatch every event due at or before `until_ms`, then set the clock to it.
        `stop` is polled after each event so a caller can end early (all work done)."""
        heap = self._heap
        budget = self.events_max - self.events_run
        dispatched = 0
        try:
            while heap and heap[0][0] <= until_ms:
                time_ms, _, fn, args = heappop(heap)
                self.now_ms = time_ms
                fn(*args)
                dispatched += 1
                if dispatched > budget:
                    raise BudgetExceeded(
                        f"more than {self.events_max} events by {time_ms} ms")
                if stop is not None and stop():
                    return
            self.now_ms = max(self.now_ms, until_ms)
        finally:
            self.events_run += dispatched

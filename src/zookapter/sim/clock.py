"""Per-node clocks for the simulator: local time derived from virtual time.

A node never sees the simulator's virtual time directly. Its `tick(now_ms)` and every event
it handles are stamped with its own clock, which is the virtual time shifted by an offset and
optionally running at a slightly different rate. Faults move that clock: `jump` models an NTP
step or a VM pause seen through a wall clock, and `restart` gives a restarted process a fresh
origin, as Java's `System.nanoTime()` has an arbitrary origin per JVM (ZooKeeper measures
timeouts with it). Node code must therefore only compare its own readings with each other.
"""

from __future__ import annotations


class NodeClock:
    """local(now) = anchor_local + (now - anchor_virtual) * rate, as whole milliseconds."""
    __slots__ = ("_anchor_virtual", "_anchor_local", "_rate", "monotonic", "_last")

    def __init__(self, offset_ms: int = 0, rate: float = 1.0, *, monotonic: bool = True) -> None:
        if rate <= 0:
            raise ValueError(f"clock rate {rate} must be positive")
        self._anchor_virtual = 0
        self._anchor_local = offset_ms
        self._rate = rate
        self.monotonic = monotonic  # forbid backward readings (a monotonic clock source)
        self._last = offset_ms

    def local(self, now_ms: int) -> int:
        elapsed = now_ms - self._anchor_virtual
        if self._rate != 1.0:
            elapsed = int(elapsed * self._rate)
        reading = self._anchor_local + elapsed
        if self.monotonic and reading < self._last:
            raise AssertionError(f"monotonic clock went back: {reading} < {self._last}")
        self._last = reading
        return reading

    def jump(self, now_ms: int, delta_ms: int) -> None:
        """Step the clock by `delta_ms` (negative only for a non-monotonic clock)."""
        if self.monotonic and delta_ms < 0:
            raise ValueError("a monotonic clock cannot jump backwards")
        self._reanchor(now_ms, self.local(now_ms) + delta_ms)
        if not self.monotonic:
            self._last = self._anchor_local

    def set_rate(self, now_ms: int, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"clock rate {rate} must be positive")
        self._reanchor(now_ms, self.local(now_ms))
        self._rate = rate

    def restart(self, now_ms: int, origin_ms: int) -> None:
        """A new process: the clock restarts from an unrelated origin."""
        self._anchor_virtual = now_ms
        self._anchor_local = origin_ms
        self._last = origin_ms

    def _reanchor(self, now_ms: int, local_ms: int) -> None:
        self._anchor_virtual = now_ms
        self._anchor_local = local_ms

"""Latency distributions for the simulator's network links, disks and clients.

A `Latency` is a uniform range with an optional slow tail: most samples fall in
[min_ms, max_ms], and with probability `slow_p` a sample is drawn from [max_ms, slow_max_ms]
instead. That shape is enough to produce the interleavings that matter (reordering between
links, a straggling fsync, a follower that lags behind) while staying cheap: one or two
`random()` calls per sample, no Python-level `randint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds of virtual time; integers so that runs are exact and replayable."""
    min_ms: int = 1
    max_ms: int = 5
    slow_p: float = 0.0
    slow_max_ms: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.min_ms <= self.max_ms:
            raise ValueError(f"latency range [{self.min_ms}, {self.max_ms}] is empty")
        if not 0.0 <= self.slow_p <= 1.0:
            raise ValueError(f"slow_p {self.slow_p} is not a probability")
        if self.slow_p and self.slow_max_ms < self.max_ms:
            raise ValueError("slow_max_ms must be >= max_ms when slow_p > 0")

    def sample(self, rng: Random) -> int:
        if self.slow_p and rng.random() < self.slow_p:
            return self.max_ms + int(rng.random() * (self.slow_max_ms - self.max_ms + 1))
        return self.min_ms + int(rng.random() * (self.max_ms - self.min_ms + 1))

    def scaled(self, factor: float) -> Latency:
        """The same shape, `factor` times slower (a degraded disk or a congested link)."""
        return Latency(int(self.min_ms * factor), int(self.max_ms * factor), self.slow_p,
                       int(self.slow_max_ms * factor))


ZERO = Latency(0, 0)

"""The simulator's fake disk: what a node wrote, what it fsynced, and what a crash leaves.

A disk holds named append-only logs of records (a txn log) and named small files written
atomically (acceptedEpoch/currentEpoch, written by ZooKeeper as temp file + fsync + rename).
Records are arbitrary Python objects: the simulator does not encode bytes, it models which
writes survive.

Each log has a *volatile* view (what the running node has written, including truncations)
and a *durable* view (what is on the platter). `sync(log, upto)` — called when an fsync
completes — makes the first `upto` volatile records durable, plus any truncation done before
it. A crash (`crash`) returns the `DiskImage` a restarted node recovers from:
- everything durable survives;
- of the records appended since the last fsync, a random prefix survives (the page cache was
  partly flushed), and the first lost record may survive *torn* (`Torn`), which recovery must
  recognise and discard, as ZooKeeper's log reader does with a bad checksum at the tail;
- a truncation not yet fsynced either happened (and then some later appends may survive) or
  did not (the old durable records come back).
With `lose_unsynced=False` the disk keeps everything written (a disk with a battery-backed
cache): useful to tell durability bugs from others.

Atomic files change at once when the write completes (`put`); a crash before that keeps the
old value. Latency is applied by the caller (the simulation serialises each node's disk
operations in one queue, so completions happen in request order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from random import Random
from types import MappingProxyType
from typing import Any

from .latency import Latency


@dataclass(frozen=True, slots=True)
class Torn:
    """A record that was being written when the machine died: its bytes are incomplete."""
    record: Any


@dataclass(frozen=True, slots=True)
class DiskImage:
    """What a node finds on its disk when it starts: durable logs and files."""
    logs: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: MappingProxyType({}))
    files: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def log(self, name: str) -> tuple[Any, ...]:
        return self.logs.get(name, ())

    def file(self, name: str, default: Any = None) -> Any:
        return self.files.get(name, default)


EMPTY_IMAGE = DiskImage()


@dataclass(frozen=True, slots=True)
class DiskProfile:
    fsync: Latency = Latency(1, 4, 0.05, 40)
    put: Latency = Latency(1, 4)
    tear_p: float = 0.3  # chance that a crash leaves the first lost record torn
    lose_unsynced: bool = True


class _Log:
    __slots__ = ("durable", "volatile", "dirty_from")

    def __init__(self, records: Iterable[Any]) -> None:
        self.volatile: list[Any] = list(records)
        self.durable: list[Any] = list(self.volatile)
        self.dirty_from = len(self.volatile)  # volatile[:dirty_from] == durable[:dirty_from]


class Disk:
    """One node's disk; survives the node's crashes (a restart builds a new one from
    `crash()`'s image)."""

    def __init__(self, image: DiskImage = EMPTY_IMAGE) -> None:
        self._logs = {name: _Log(records) for name, records in image.logs.items()}
        self._files: dict[str, Any] = dict(image.files)
        self.busy_until_ms = 0  # the node's disk queue: next completion not before this

    def _log(self, name: str) -> _Log:
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = _Log(())
        return log

    def append(self, name: str, records: Iterable[Any]) -> None:
        self._log(name).volatile.extend(records)

    def truncate(self, name: str, length: int) -> None:
        """Keep the first `length` records (volatile until the next sync)."""
        log = self._log(name)
        if not 0 <= length <= len(log.volatile):
            raise AssertionError(f"truncating {name} to {length} of {len(log.volatile)}")
        del log.volatile[length:]
        if length < log.dirty_from:
            log.dirty_from = length

    def length(self, name: str) -> int:
        return len(self._log(name).volatile)

    def records(self, name: str) -> tuple[Any, ...]:
        """The volatile view (what the node believes it wrote)."""
        return tuple(self._log(name).volatile)

    def sync(self, name: str, upto: int | None = None) -> None:
        """An fsync of `name` issued when the log had `upto` records has completed. Records
        appended after the call may also become durable: that only makes the disk kinder."""
        log = self._log(name)
        end = len(log.volatile) if upto is None else min(upto, len(log.volatile))
        if end < log.dirty_from:
            return
        del log.durable[log.dirty_from:]
        log.durable.extend(log.volatile[log.dirty_from:end])
        log.dirty_from = end

    def put(self, name: str, value: Any) -> None:
        self._files[name] = value

    def durable_image(self) -> DiskImage:
        """The durable state, as a clean shutdown after a final fsync would leave it."""
        return DiskImage(MappingProxyType({n: tuple(lg.durable) for n, lg in self._logs.items()}),
                         MappingProxyType(dict(self._files)))

    def crash(self, rng: Random, profile: DiskProfile) -> DiskImage:
        """Power loss: decide what of the unsynced writes survives (module docstring)."""
        logs = {}
        for name, log in self._logs.items():
            if not profile.lose_unsynced:
                logs[name] = tuple(log.volatile)
            else:
                logs[name] = self._survivors(log, rng, profile.tear_p)
        return DiskImage(MappingProxyType(logs), MappingProxyType(dict(self._files)))

    @staticmethod
    def _survivors(log: _Log, rng: Random, tear_p: float) -> tuple[Any, ...]:
        keep = log.dirty_from
        truncation_pending = keep < len(log.durable)
        if truncation_pending and rng.random() < 0.5:
            return tuple(log.durable)  # the truncation never reached the disk
        pending = log.volatile[keep:]
        flushed = int(rng.random() * (len(pending) + 1))
        survivors = log.durable[:keep] + pending[:flushed]
        if flushed < len(pending) and tear_p and rng.random() < tear_p:
            survivors.append(Torn(pending[flushed]))
        return tuple(survivors)

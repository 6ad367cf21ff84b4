"""A shared counter changed by optimistic versioned writes (kazoo's Counter, Curator's
SharedCount with `curator=True`).

The value lives in the data of one node: by default `repr(value)` in ASCII, read back with
the type of `default` (int or float), exactly kazoo's encoding, so kazoo's Counter on the same
path sees the same value; with `curator=True` a 4-byte big-endian int, Curator's SharedCount
format (and kazoo's `support_curator`). An empty node reads as `default`.

A change reads (value, version), writes value + delta with that version, and starts over when
another writer got there first (BadVersionError). So that a change whose reply is lost with
the connection is applied exactly once, the write is a multi that also creates an ephemeral
marker child `__counter_op-<uuid>`: after a reconnect the marker's existence says whether the
write went through. The marker is deleted right after. Only if the session expires before the
outcome could be read is it unknowable (the marker died with the session); the change then
raises SessionExpiredError and may or may not have been applied.
"""

from __future__ import annotations

import asyncio
import random
import struct
import uuid
from typing import Union

from ..client.aio import AsyncZooKeeper
from ..client.errors import (
    BadVersionError,
    ConnectionClosedError,
    NoNodeError,
    SessionExpiredError,
)
from ..client.sync import ZooKeeperClient
from ._cleanup import remove_ephemeral
from ._sync import SyncRecipe
from ._waiting import RETRYABLE

Number = Union[int, float]
MARKER_PREFIX = "__counter_op-"
_CURATOR = struct.Struct(">i")
BACKOFF_MAX_S = 0.05


class Counter:
    """`await counter.add(2)`, `await counter.subtract(1)`, `await counter.get()`; after a
    change `pre_value` and `post_value` hold the value before and after it."""

    def __init__(self, client: AsyncZooKeeper, path: str, default: Number = 0, *,
                 curator: bool = False) -> None:
        if curator and not isinstance(default, int):
            raise TypeError("a Curator-compatible counter holds ints only")
        self.client = client
        self.path = path
        self.default = default
        self.default_type: type = type(default)
        self.curator = curator
        self.pre_value: Number | None = None
        self.post_value: Number | None = None
        self._ensured = False

    async def get(self) -> Number:
        """The current value."""
        return (await self._read())[0]

    value = get

    async def add(self, delta: Number) -> Number:
        """Add `delta` (of the counter's type); return the new value."""
        return await self._change(delta)

    async def subtract(self, delta: Number) -> Number:
        return await self._change(-delta)

    # -- internals --------------------------------------------------------------------------

    def encode(self, value: Number) -> bytes:
        if self.curator:
            return _CURATOR.pack(value)
        return repr(value).encode("ascii")

    def decode(self, data: bytes) -> Number:
        if not data:
            return self.default
        if self.curator:
            return int(_CURATOR.unpack(data)[0])
        return self.default_type(data.decode("ascii"))

    async def _read(self) -> tuple[Number, int]:
        if not self._ensured:
            await self.client.retry(self.client.ensure_path, self.path)
            self._ensured = True
        data, stat = await self.client.retry(self.client.get, self.path)
        return self.decode(data), stat.version

    async def _change(self, delta: Number) -> Number:
        if not isinstance(delta, self.default_type) or isinstance(delta, bool):
            raise TypeError(f"the counter holds {self.default_type.__name__} values")
        marker = f"{self.path}/{MARKER_PREFIX}{uuid.uuid4().hex}"
        while True:
            before, version = await self._read()
            after = before + delta
            if await self._write(after, version, marker):
                await remove_ephemeral(self.client, marker)
                self.pre_value, self.post_value = before, after
                return after
            self.post_value = None
            await asyncio.sleep(random.uniform(0, BACKOFF_MAX_S))

    async def _write(self, value: Number, version: int, marker: str) -> bool:
        """Try one versioned write; True if it was applied (exactly once)."""
        zk = self.client
        session = zk.session_id
        tx = zk.transaction().set_data(self.path, self.encode(value), version)
        tx.create(marker, b"", ephemeral=True)
        try:
            await tx.commit()
            return True
        except BadVersionError:
            return False
        except ConnectionClosedError:
            raise
        except SessionExpiredError:  # failed before it was sent: nothing was applied
            return False
        except RETRYABLE:
            return await self._settle(marker, session)

    async def _settle(self, marker: str, session: int) -> bool:
        """After a lost reply: did the write go through?"""
        zk = self.client
        await zk.retry(zk.sync, self.path)
        try:
            applied = await zk.retry(zk.exists, marker) is not None
        except NoNodeError:
            applied = False
        if not applied and zk.session_id != session:
            raise SessionExpiredError(
                f"session expired while changing counter {self.path}: outcome unknown")
        return applied


class SyncCounter(SyncRecipe[Counter]):
    """Blocking Counter, with kazoo's operators: `counter += 2; counter.value`."""

    def __init__(self, client: ZooKeeperClient, path: str, default: Number = 0, *,
                 curator: bool = False) -> None:
        super().__init__(client, lambda zk: Counter(zk, path, default, curator=curator))

    @property
    def value(self) -> Number:
        return self._run(self._inner.get())

    @property
    def pre_value(self) -> Number | None:
        return self._inner.pre_value

    @property
    def post_value(self) -> Number | None:
        return self._inner.post_value

    def add(self, delta: Number) -> Number:
        return self._run(self._inner.add(delta))

    def subtract(self, delta: Number) -> Number:
        return self._run(self._inner.subtract(delta))

    def __add__(self, delta: Number) -> SyncCounter:
        self.add(delta)
        return self

    def __sub__(self, delta: Number) -> SyncCounter:
        self.subtract(delta)
        return self

"""Contenders in kazoo's lock layout — how they are named, queued, created and found again —
so that zookapter's locks, read/write locks, elections and leases queue together with
kazoo's recipes on the same paths.

A contender is an ephemeral-sequential child of the lock node named
`<unique prefix><kind><10-digit sequence>` (data: its identifier), where the prefix is a random
uuid hex and the kind marker is `__lock__` (exclusive lock, write side of a read/write lock,
election candidate, lease mutex) or `__rlock__` (read side). Children that do not end in a
kind marker followed by ten digits are not contenders.

Contenders are ordered by their sequence number, which the server assigns from the parent's
cversion at create time, so queue order is creation order (the uuid prefix plays no part). A
contender is first when no *blocking* contender has a smaller sequence number; otherwise it
waits for the nearest one in front of it only (its predecessor), which avoids a herd effect
when the holder leaves:

    kind         blocked by            (kazoo class)
    __lock__     __lock__              Lock, Election (and so NonBlockingLease)
    __lock__     __lock__, __rlock__   WriteLock
    __rlock__    __lock__              ReadLock

kazoo compares the sequence suffixes as strings; for the non-negative sequence numbers a
parent hands out during its first 2**31 creations that order is the numeric one used here.

The unique prefix is Curator's "protected" trick: when the reply to the create is lost with
the connection, the node may or may not exist; listing the parent and looking for the prefix
finds it again instead of creating a second contender that would queue behind the first.

The naming and ordering functions are pure; the coroutines at the end talk to the server.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ..client.aio import AsyncZooKeeper
from ..client.errors import NoNodeError
from ._identifiers import identifiers_of
from ._typed import Retry, children, create_with_stat
from ._waiting import RETRYABLE

LOCK_MARK = "__lock__"
READ_MARK = "__rlock__"
LOCK_ONLY = frozenset({LOCK_MARK})

_CONTENDER = re.compile(r"(__lock__|__rlock__)(-?\d{10})$")


@dataclass(frozen=True, slots=True)
class Contender:
    """One queued node: its child name, kind marker and sequence number."""
    name: str
    mark: str
    sequence: int


def parse(name: str) -> Contender | None:
    """The contender a child name denotes, or None for a child that is not one."""
    m = _CONTENDER.search(name)
    if m is None:
        return None
    return Contender(name, m.group(1), int(m.group(2)))


def queue(children: Iterable[str], marks: frozenset[str] = LOCK_ONLY) -> list[Contender]:
    """The contenders among `children` whose kind is in `marks`, in queue order."""
    found = [c for c in map(parse, children) if c is not None and c.mark in marks]
    found.sort(key=lambda c: c.sequence)
    return found


def predecessor(children: list[str], node: str, blocked_by: frozenset[str] = LOCK_ONLY
                ) -> str | None:
    """The child `node` must wait for: the blocking contender nearest in front of it, or None
    when nothing in front blocks it (it is first). `node` must be in `children`."""
    me = parse(node)
    if me is None or node not in children:
        raise ValueError(f"{node!r} is not a queued contender")
    ahead = [c for c in queue(children, blocked_by) if c.sequence < me.sequence]
    return ahead[-1].name if ahead else None


def find_own(children: Iterable[str], prefix: str) -> str | None:
    """Our node among `children`, recognised by the unique prefix it was created with."""
    for child in children:
        if child.startswith(prefix):
            return child
    return None


def new_prefix(mark: str = LOCK_MARK) -> str:
    """A node-name prefix no other contender uses, ending in the kind marker."""
    return uuid.uuid4().hex + mark


# -- on the server --------------------------------------------------------------------------

async def find_own_node(zk: AsyncZooKeeper, parent: str, prefix: str
                        ) -> tuple[str, int] | None:
    """(name, owner session) of this session's node named `prefix...` under `parent`."""
    name = find_own(await children(zk, parent), prefix)
    if name is None:
        return None
    stat = await zk.exists(f"{parent}/{name}")
    if stat is None or stat.ephemeralOwner != zk.session_id:
        return None
    return name, stat.ephemeralOwner


async def create_protected(zk: AsyncZooKeeper, parent: str, prefix: str,
                           data: bytes) -> tuple[str, int]:
    """Create `parent/prefix<seq>` (ephemeral, sequential) exactly once; return its name and
    the session that owns it. A create whose outcome a lost connection hid is looked up by
    its prefix before it is tried again."""
    while True:
        try:
            path, stat = await create_with_stat(zk, f"{parent}/{prefix}", data,
                                                ephemeral=True, sequence=True, makepath=True)
            return path.rsplit("/", 1)[1], stat.ephemeralOwner
        except RETRYABLE:
            found = await zk.retry(find_own_node, zk, parent, prefix)
            if found is not None:
                return found


async def contender_identifiers(zk: AsyncZooKeeper, path: str,
                                marks: frozenset[str] = LOCK_ONLY,
                                retry: Retry | None = None) -> list[str]:
    """The identifiers (node data) of the contenders of the kinds `marks` under `path`, first
    in the queue first, as kazoo's contenders() lists them; contenders that leave meanwhile
    are skipped. `retry`: the caller's retry policy (default `zk.retry`)."""
    retry = retry or zk.retry
    try:
        names = [c.name for c in queue(await retry(children, zk, path), marks)]
    except NoNodeError:
        return []
    return await identifiers_of(zk, path, names, retry)

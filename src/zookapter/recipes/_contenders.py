"""Who is queued for a lock, in which order, and whom each contender waits for — the naming
and ordering rules of kazoo's lock recipes, so zookapter and kazoo contenders queue together.

A contender is an ephemeral-sequential child of the lock node named
`<unique prefix><kind><10-digit sequence>`, where the prefix is a random uuid hex (it lets a
contender find its own node again when the create's reply was lost) and the kind marker is
`__lock__` (exclusive lock, write side of a read/write lock) or `__rlock__` (read side).
Children that do not end in a kind marker followed by ten digits are not contenders.

Contenders are ordered by their sequence number, which the server assigns from the parent's
cversion at create time, so queue order is creation order. A contender holds the lock when no
*blocking* contender has a smaller sequence number; otherwise it waits for the nearest one in
front of it only (its predecessor), which avoids a herd effect when the holder leaves:

    kind         blocked by            (kazoo class)
    __lock__     __lock__              Lock
    __lock__     __lock__, __rlock__   WriteLock
    __rlock__    __lock__              ReadLock

kazoo compares the sequence suffixes as strings; for the non-negative sequence numbers a
parent hands out during its first 2**31 creations that order is the numeric one used here.

Pure: no I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOCK_MARK = "__lock__"
READ_MARK = "__rlock__"

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


def queue(children: list[str], marks: frozenset[str]) -> list[Contender]:
    """The contenders among `children` whose kind is in `marks`, in queue order."""
    found = [c for c in map(parse, children) if c is not None and c.mark in marks]
    found.sort(key=lambda c: c.sequence)
    return found


def predecessor(children: list[str], node: str, blocked_by: frozenset[str]) -> str | None:
    """The child `node` must wait for: the blocking contender nearest in front of it, or None
    when nothing in front blocks it (it holds the lock). `node` must be in `children`."""
    me = parse(node)
    if me is None or node not in children:
        raise ValueError(f"{node!r} is not a queued contender")
    ahead = [c for c in queue(children, blocked_by) if c.sequence < me.sequence]
    return ahead[-1].name if ahead else None


def find_own(children: list[str], prefix: str) -> str | None:
    """Our node among `children`, recognised by the unique prefix it was created with."""
    for child in children:
        if child.startswith(prefix):
            return child
    return None

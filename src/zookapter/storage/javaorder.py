"""Iteration order of Java's HashMap/HashSet, so snapshots list things in the order a Java
server would (only needed for byte-for-byte equality with Java-written files; any order is
valid to every reader).

A HashMap walks its table bucket by bucket; bucket = spread(hashCode) & (capacity - 1) with
spread(h) = h ^ (h >>> 16); inside a bucket entries keep insertion order (resizes preserve it).
The capacity is a power of two that grows (never shrinks) once size exceeds 3/4 of it.

- A node's children set starts as `new HashSet<>(8)` and grows with insertions, so for a node
  without deletion history the capacity follows from the current size.
- The session and ACL maps are copied into `new HashMap<>(map)` just before writing, whose
  capacity is tableSizeFor(size / 0.75 + 1) (the rule up to JDK 18; Debian's ZooKeeper 3.8
  runs on JDK 17).

Inside a bucket we order by creation zxid for children (= insertion order on a live server)
and by key for sessions and ACL indexes. Nodes whose children set once held more entries than
now (deletions) may come out in a different order than on a Java server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

K = TypeVar("K")


def string_hash(s: str) -> int:
    """java.lang.String.hashCode (over UTF-16 code units), as an unsigned 32-bit value."""
    h = 0
    if s.isascii():
        for b in s.encode("ascii"):
            h = (31 * h + b) & 0xFFFFFFFF
        return h
    raw = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(raw), 2):
        h = (31 * h + ((raw[i] << 8) | raw[i + 1])) & 0xFFFFFFFF
    return h


def long_hash(v: int) -> int:
    """java.lang.Long.hashCode, as an unsigned 32-bit value."""
    v &= 0xFFFFFFFFFFFFFFFF
    return (v ^ (v >> 32)) & 0xFFFFFFFF


def _spread(h: int) -> int:
    return h ^ (h >> 16)


def grown_capacity(size: int, initial: int = 8) -> int:
    """Capacity of a HashMap created with `initial` after `size` insertions (no removals)."""
    cap = initial
    while size > cap * 3 // 4:
        cap *= 2
    return cap


def copy_capacity(size: int) -> int:
    """Capacity of `new HashMap<>(m)` for a map of `size` entries (JDK <= 18)."""
    t = int(size / 0.75 + 1.0)
    cap = 1
    while cap < t:
        cap *= 2
    return cap


def hash_order(items: Iterable[K], hash_fn: Callable[[K], int], capacity: int,
               tiebreak: Callable[[K], object]) -> list[K]:
    mask = capacity - 1
    return sorted(items, key=lambda k: (_spread(hash_fn(k)) & mask, tiebreak(k)))


def children_order(names: Iterable[str], czxid_of: Callable[[str], int]) -> list[str]:
    """A DataNode's children in Java HashSet order (capacity grown from 8)."""
    names = list(names)
    if len(names) < 2:
        return names
    return hash_order(names, string_hash, grown_capacity(len(names)),
                      lambda n: (czxid_of(n), n))


def long_keys_order(keys: Iterable[int]) -> list[int]:
    """Keys of a `new HashMap<Long, ...>(m)` copy in iteration order."""
    keys = list(keys)
    if len(keys) < 2:
        return keys
    return hash_order(keys, long_hash, copy_capacity(len(keys)), lambda k: k)

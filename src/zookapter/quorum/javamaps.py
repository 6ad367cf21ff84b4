"""Iteration orders of the Java maps behind ZooKeeper's quorum config, so that our config
text lists members exactly as a Java server does.

QuorumMaj/QuorumHierarchical keep members, groups and weights in HashMap<Long, ...>s, filled
in the order java.util.Properties iterates the config keys; Properties is a ConcurrentHashMap
(JDK 9+). Both orders are reproduced here (see storage/javaorder.py for the HashMap rules).
Checked against Apache ZooKeeper 3.8 in tests/test_quorum_config.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..storage.javaorder import grown_capacity, hash_order, long_hash, string_hash


def java_long_order(ids: Iterable[int]) -> list[int]:
    """Iteration order of a HashMap<Long, ...> filled in the order given (initial capacity
    16): by bucket, and by insertion inside a bucket (only ids that differ by a multiple of
    the table size share one)."""
    ids = list(ids)
    position = {sid: i for i, sid in enumerate(ids)}
    return hash_order(ids, long_hash, grown_capacity(len(ids), 16), position.__getitem__)


def java_properties_order(keys: Iterable[str]) -> list[str]:
    """The order in which java.util.Properties (a ConcurrentHashMap since JDK 9) iterates keys
    that were put in the order given. This decides the insertion order into the verifier's
    maps, which shows in the config text when two ids share a HashMap bucket (1 and 17 ...).

    ConcurrentHashMap(8) starts with 16 bins and doubles when the count reaches 3/4 of the
    table. A doubling keeps the longest tail of a bin that goes to the same new bin in order
    and puts the nodes before it, reversed, in front (its "lastRun" split). Bins never get 8
    keys in a config file, so tree bins are not modelled."""
    table: list[list[tuple[int, str]]] = [[] for _ in range(16)]
    n, count = 16, 0
    for key in keys:
        h = string_hash(key)
        h = (h ^ (h >> 16)) & 0x7FFFFFFF
        chain = table[h & (n - 1)]
        if any(k == key for _, k in chain):
            continue  # a repeated key keeps its place
        chain.append((h, key))
        count += 1
        if count >= n - (n >> 2):
            table = _chm_split(table, n)
            n *= 2
    return [k for chain in table for _, k in chain]


def _chm_split(table: list[list[tuple[int, str]]], n: int) -> list[list[tuple[int, str]]]:
    grown: list[list[tuple[int, str]]] = [[] for _ in range(2 * n)]
    for i, chain in enumerate(table):
        if not chain:
            continue
        last = 0
        for j in range(1, len(chain)):
            if chain[j][0] & n != chain[last][0] & n:
                last = j
        low, high = grown[i], grown[i + n]
        (high if chain[last][0] & n else low).extend(chain[last:])
        for node in chain[:last]:
            (high if node[0] & n else low).insert(0, node)
    return grown

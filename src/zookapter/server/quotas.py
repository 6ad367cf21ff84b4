"""Quotas under /zookeeper/quota, as ZooKeeper's Quotas / StatsTrack / DataTree do it.

A quota on path P lives in `/zookeeper/quota<P>/zookeeper_limits` (limits, written by
clients such as zkCli's setquota) and `/zookeeper/quota<P>/zookeeper_stats` (usage, kept up
to date by each server *locally*, not through txns: its data changes but its stat does not).
Usage counts P itself and every descendant. Soft limits (`count`, `bytes`) only log; hard
limits (`countHardLimit`, `byteHardLimit`) reject creates and setData with QuotaExceeded
when zookeeper.enforceQuota=true.
"""

from __future__ import annotations

import logging

from ..protocol.consts import QUOTA_PATH, Err, Op

log = logging.getLogger("zookapter.quota")

LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"


def parse_stats(data: bytes | None) -> dict[str, int]:
    """StatsTrack: `count=<n>,bytes=<n>` optionally followed by `=;key=value;...`."""
    out: dict[str, int] = {}
    if not data:
        return out
    text = data.decode("utf-8", "replace")
    for pair in text.replace(";", ",").split(","):
        kv = [x for x in pair.split("=") if x != ""]
        if len(kv) >= 2:
            try:
                out[kv[0]] = int(kv[1])
            except ValueError:
                pass
    return out


def format_stats(stats: dict[str, int]) -> bytes:
    """StatsTrack.toString: count and bytes first, extra keys sorted after `=;`."""
    count, nbytes = stats.get("count", -1), stats.get("bytes", -1)
    text = f"count={count},bytes={nbytes}"
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        text += "=;" + "".join(f"{k}={stats[k]};" for k in extra)
    return text.encode("utf-8")


def quota_target(path: str) -> tuple[str, str] | None:
    """For `/zookeeper/quota/a/b/zookeeper_limits` -> ("/a/b", "zookeeper_limits")."""
    if not path.startswith(QUOTA_PATH + "/"):
        return None
    parent, _, name = path.rpartition("/")
    if name not in (LIMIT_NODE, STAT_NODE):
        return None
    target = parent[len(QUOTA_PATH):]
    return (target or "/"), name


class QuotaExceeded(Exception):
    code = Err.QUOTA_EXCEEDED


def check(tree: object, path: str, old_len: int, new_len: int, op: int) -> None:
    """ZooKeeperServer.checkQuota against the committed tree; raise on a hard limit."""
    prefix = tree.max_quota_prefix(path)  # type: ignore[attr-defined]
    if prefix is None:
        return
    count_diff = 1 if op == Op.CREATE else 0
    bytes_diff = new_len - old_len
    limit_node = tree.get(f"{QUOTA_PATH}{prefix}/{LIMIT_NODE}")  # type: ignore[attr-defined]
    if limit_node is None:
        return
    limits = parse_stats(limit_node.data)
    stat_node = tree.get(f"{QUOTA_PATH}{prefix}/{STAT_NODE}")  # type: ignore[attr-defined]
    if stat_node is None:
        return
    current = parse_stats(stat_node.data)
    for diff, soft_key, hard_key, cur_key in ((count_diff, "count", "countHardLimit", "count"),
                                              (bytes_diff, "bytes", "byteHardLimit", "bytes")):
        soft, hard = limits.get(soft_key, -1), limits.get(hard_key, -1)
        if diff == 0 or (soft < 0 and hard < 0):
            continue
        new = current.get(cur_key, -1) + diff
        limit = hard if hard > -1 else soft
        if new > limit:
            if hard > -1:
                raise QuotaExceeded(prefix)
            log.warning("Quota exceeded: %s %s=%d limit=%d", prefix, soft_key, new, limit)

"""The simulator's fake network: per-link latency, loss, duplication, partitions, and an
optional connection-oriented mode that behaves like the TCP connections ZAB runs over.

Datagram mode (``connections=False``): every message is delivered independently after a
latency drawn for its link, so messages reorder freely; it may be dropped (``drop_p``) or
delivered twice (``duplicate_p``). A partition drops what is sent across it and what is in
flight across it when it arrives.

Connection mode (the default): between two nodes there is at most one connection per
`channel` (any hashable name; ZooKeeper has one for elections and one for the leader's quorum
port, and they break independently when a node closes one).
- Messages on a connection arrive in the order sent and are never lost or duplicated while
  it stays up; latency still varies, so different connections interleave arbitrarily.
- A partition between the two ends, a crash of either end, or `close` breaks it: everything
  in flight is lost, and each surviving end gets a disconnect notice after a detection delay
  (`detect`), delivered before anything from a later connection between the same pair.
- A send on a broken connection is lost (a write into a dead socket). Between the break and
  its notice an end does not know yet, so even `open_=True` sends are lost then.
- A send with ``open_=True`` when there is no connection opens one (the connecting side of
  a TCP client); the other end gets a connect notice first. If the peer is down or
  unreachable, the sender gets a disconnect notice after `connect_timeout_ms` instead.

The network reports to a `NetworkSink` (the simulation), which turns deliveries and notices
into node events. Nodes have "lives": a notice addressed to a node that has since crashed is
discarded, so a restarted node never hears about its previous incarnation's connections.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol

from .latency import Latency
from .scheduler import Scheduler


class NetworkSink(Protocol):
    def is_up(self, node: int) -> bool: ...

    def deliver(self, dst: int, src: int, payload: Any) -> None: ...

    def connection_event(self, node: int, peer: int, connected: bool,
                         channel: Hashable) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkProfile:
    latency: Latency = Latency(1, 5)
    drop_p: float = 0.0  # datagram mode only: a connection never loses data while up
    duplicate_p: float = 0.0  # datagram mode only


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    connections: bool = True
    link: LinkProfile = field(default_factory=LinkProfile)
    detect: Latency = Latency(5, 50)  # until an end notices its connection broke
    connect_timeout_ms: int = 100


class _Conn:
    """One connection slot between nodes lo < hi; sides are indexed 0 (lo) and 1 (hi)."""
    __slots__ = ("ends", "channel", "gen", "open", "ready", "stale")

    def __init__(self, lo: int, hi: int, channel: Hashable) -> None:
        self.ends = (lo, hi)
        self.channel = channel
        self.gen = 0  # bumps on every successful open; in-flight messages carry theirs
        self.open = False
        self.ready = [0, 0]  # earliest next arrival at each side, to keep per-side order
        self.stale = [False, False]  # side's connection broke and it has not been told yet


class Network:
    """See the module docstring. `sent/delivered/dropped` are for reports and tests."""

    def __init__(self, scheduler: Scheduler, rng: Random, sink: NetworkSink,
                 config: NetworkConfig | None = None) -> None:
        self._sched = scheduler
        self._rng = rng
        self._sink = sink
        self.config = config or NetworkConfig()
        self._links: dict[tuple[int, int], LinkProfile] = {}
        self._blocked: set[tuple[int, int]] = set()
        self._conns: dict[tuple[int, int, Hashable], _Conn] = {}
        self._pairs: dict[tuple[int, int], list[_Conn]] = {}
        self._life: dict[int, int] = {}
        self.sent = 0
        self.delivered = 0
        self.dropped = 0

    # -- faults --------------------------------------------------------------------------

    def set_link(self, src: int, dst: int, profile: LinkProfile | None) -> None:
        """Override (or with None, reset) the profile of the directed link src -> dst."""
        if profile is None:
            self._links.pop((src, dst), None)
        else:
            self._links[(src, dst)] = profile

    def block(self, src: int, dst: int) -> None:
        """Cut src -> dst (one way); a connection needs both ways, so it breaks."""
        self._blocked.add((src, dst))
        for conn in self._pairs.get((src, dst) if src < dst else (dst, src), ()):
            self._break(conn)

    def partition(self, groups: Iterable[Collection[int]], nodes: Iterable[int]) -> None:
        """Only nodes in the same group can talk; a node in no group is alone."""
        component = {n: i for i, group in enumerate(groups) for n in group}
        members = sorted(nodes)
        for a in members:
            for b in members:
                if a != b and (a not in component or component.get(a) != component.get(b)):
                    self.block(a, b)

    def heal(self) -> None:
        """Remove every cut. Broken connections stay broken until someone reconnects."""
        self._blocked.clear()

    def reachable(self, src: int, dst: int) -> bool:
        return (src, dst) not in self._blocked

    def node_crashed(self, node: int) -> None:
        """Break the node's connections; its peers notice after the detection delay."""
        self._life[node] = self._life.get(node, 0) + 1
        for conn in self._conns.values():
            if node in conn.ends:
                conn.stale[0 if node == conn.ends[0] else 1] = False
                self._break(conn)

    def close(self, src: int, dst: int, channel: Hashable = None) -> None:
        """src closes its connection to dst; only dst gets a notice."""
        conn = self._conns.get((src, dst, channel) if src < dst else (dst, src, channel))
        if conn is not None and conn.open:
            self._break(conn, quiet=src)

    def _conn(self, src: int, dst: int, channel: Hashable) -> _Conn:
        key = (src, dst, channel) if src < dst else (dst, src, channel)
        conn = self._conns.get(key)
        if conn is None:
            conn = self._conns[key] = _Conn(key[0], key[1], channel)
            self._pairs.setdefault((key[0], key[1]), []).append(conn)
        return conn

    # -- traffic -------------------------------------------------------------------------

    def send(self, src: int, dst: int, payload: Any, open_: bool = False,
             channel: Hashable = None) -> None:
        if src == dst:
            raise AssertionError(f"node {src} sent a message to itself over the network")
        self.sent += 1
        if not self.config.connections:
            self._send_datagram(src, dst, payload)
            return
        conn = self._conn(src, dst, channel)
        src_side = 0 if src == conn.ends[0] else 1
        if conn.stale[src_side] or (not conn.open and not (open_ and self._open(conn, src))):
            self.dropped += 1
            return
        dst_side = 1 - src_side
        arrive = self._sched.now_ms + self._link(src, dst).latency.sample(self._rng)
        if arrive < conn.ready[dst_side]:
            arrive = conn.ready[dst_side]
        conn.ready[dst_side] = arrive
        self._sched.at(arrive, self._arrive_conn, conn, conn.gen, dst, src, payload)

    def _arrive_conn(self, conn: _Conn, gen: int, dst: int, src: int, payload: Any) -> None:
        if conn.gen != gen or not conn.open:
            self.dropped += 1
            return
        self.delivered += 1
        self._sink.deliver(dst, src, payload)

    def _open(self, conn: _Conn, src: int) -> bool:
        src_side = 0 if src == conn.ends[0] else 1
        dst = conn.ends[1 - src_side]
        now = self._sched.now_ms
        if not (self.reachable(src, dst) and self.reachable(dst, src) and self._sink.is_up(dst)):
            conn.stale[src_side] = True  # lost until the failure notice reaches src
            self._sched.at(now + self.config.connect_timeout_ms, self._notify, conn, src,
                           self._life.get(src, 0), False)
            return False
        conn.gen += 1
        conn.open = True
        dst_side = 1 - src_side
        told = max(now + self._link(src, dst).latency.sample(self._rng), conn.ready[dst_side])
        conn.ready[dst_side] = told
        self._sched.at(told, self._notify, conn, dst, self._life.get(dst, 0), True)
        return True

    def _break(self, conn: _Conn, quiet: int | None = None) -> None:
        if not conn.open:
            return
        conn.open = False
        now = self._sched.now_ms
        for side, node in enumerate(conn.ends):
            if node == quiet or not self._sink.is_up(node):
                continue
            told = max(now + self.config.detect.sample(self._rng), conn.ready[side])
            conn.ready[side] = told
            conn.stale[side] = True
            self._sched.at(told, self._notify, conn, node, self._life.get(node, 0), False)

    def _notify(self, conn: _Conn, node: int, life: int, connected: bool) -> None:
        if self._life.get(node, 0) != life:
            return  # addressed to an incarnation that has crashed since
        side = 0 if node == conn.ends[0] else 1
        if not connected:
            conn.stale[side] = False
        self._sink.connection_event(node, conn.ends[1 - side], connected, conn.channel)

    def _send_datagram(self, src: int, dst: int, payload: Any) -> None:
        link = self._link(src, dst)
        rng = self._rng
        if (src, dst) in self._blocked or (link.drop_p and rng.random() < link.drop_p):
            self.dropped += 1
            return
        now = self._sched.now_ms
        self._sched.at(now + link.latency.sample(rng), self._arrive_datagram, dst, src, payload)
        if link.duplicate_p and rng.random() < link.duplicate_p:
            self._sched.at(now + link.latency.sample(rng), self._arrive_datagram, dst, src,
                           payload)

    def _arrive_datagram(self, dst: int, src: int, payload: Any) -> None:
        if (src, dst) in self._blocked or not self._sink.is_up(dst):
            self.dropped += 1
            return
        self.delivered += 1
        self._sink.deliver(dst, src, payload)

    def _link(self, src: int, dst: int) -> LinkProfile:
        if self._links:
            return self._links.get((src, dst), self.config.link)
        return self.config.link

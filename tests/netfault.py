"""Network partitions between ensemble members on one machine, with Linux network namespaces.

Loopback cannot be partitioned: every member shares one interface. So each member runs in a
network namespace of its own (`ip netns exec`), with one veth link to a *hub* namespace that
routes between them; the test process (the clients) reaches the hub over one more veth link
from the root namespace:

    root ns (clients) ── hub ns (router) ── ns 1 (server 1, 10.213.X.1)
                                        ├── ns 2 (server 2, 10.213.X.2)
                                        └── ...

A partition is a pair of policy rules in the hub (`ip rule add from A to B blackhole`):
packets the hub forwards between A and B are dropped silently, in both directions, as a
switch failure would: established connections stall until the peers' own timeouts notice
(syncLimit, the election connect timeout), and new connections hang rather than being
refused. Clients are not cut off, so a member on the minority side still has clients talking
to it (the interesting case for a stale leader). This needs root and a kernel with network
namespaces and policy routing, nothing else (no iptables, no tc actions); `unavailable()`
says why a machine lacks it, and tests skip with that reason.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable

_SEQUENCE = itertools.count(1)
_PROBED: list[str | None] = []


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=10)


def unavailable() -> str | None:
    """None when namespaces can be used here, else the reason they cannot (probed once)."""
    if not _PROBED:
        _PROBED.append(_probe())
    return _PROBED[0]


def _probe() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    name = f"zkftprobe{os.getpid()}"
    try:
        made = _ip("netns", "add", name, check=False)
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip()}"
        rule = _ip("-n", name, "rule", "add", "from", "10.0.0.1", "to", "10.0.0.2",
                   "blackhole", check=False)
        if rule.returncode != 0:
            return f"policy routing is not available: {rule.stderr.strip()}"
        return None
    finally:
        _ip("netns", "del", name, check=False)


class NamespaceNetwork:
    """One namespace per member plus a routing hub; see the module docstring.

    Use as a context manager around the ensemble's whole life: `address(sid)` is where the
    member listens and is reached, `wrap(sid, argv)` runs its command inside its namespace.
    """

    def __init__(self, sids: Iterable[int]) -> None:
        self.sids = sorted(sids)
        assert self.sids and max(self.sids) < 200
        seq = next(_SEQUENCE)
        self.token = f"zkft{os.getpid() % 100000}n{seq}"  # at most 15 chars for link names
        self.subnet = ""  # chosen by setup(), when the route that claims it is added
        self.cuts: set[tuple[int, int]] = set()
        self._up = False

    # -- addressing ---------------------------------------------------------------------

    def address(self, sid: int) -> str:
        assert self.subnet, "set the network up first"
        return f"{self.subnet}.{sid}"

    def namespace(self, sid: int | str) -> str:
        return f"{self.token}-{sid}"

    def wrap(self, sid: int, argv: list[str]) -> list[str]:
        """`argv` run inside member `sid`'s namespace (`ip netns exec` execs it: the pid a
        test signals is the server's own)."""
        return ["ip", "netns", "exec", self.namespace(sid), *argv]

    # -- set-up and tear-down -------------------------------------------------------------

    def __enter__(self) -> NamespaceNetwork:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def setup(self) -> None:
        _reap_stale()
        self.subnet = _free_subnet()
        hub, gw = self.namespace("hub"), f"{self.subnet}.254"
        try:
            self._up = True
            _ip("netns", "add", hub)
            _ip("-n", hub, "link", "set", "lo", "up")
            subprocess.run(["ip", "netns", "exec", hub, "sysctl", "-qw",
                            "net.ipv4.ip_forward=1"], check=True, timeout=10)
            for sid in self.sids:
                self._add_member(sid, hub, gw)
            # the root namespace's way in: a /32 pair and a route for the whole subnet
            root_side, hub_side = f"{self.subnet}.200", f"{self.subnet}.201"
            _ip("link", "add", self.token, "type", "veth", "peer", "name", "h0", "netns", hub)
            _ip("addr", "add", root_side, "peer", hub_side, "dev", self.token)
            _ip("link", "set", self.token, "up")
            _ip("-n", hub, "addr", "add", hub_side, "peer", root_side, "dev", "h0")
            _ip("-n", hub, "link", "set", "h0", "up")
            _ip("route", "add", f"{self.subnet}.0/24", "via", hub_side)
        except Exception:
            self.teardown()
            raise

    def _add_member(self, sid: int, hub: str, gw: str) -> None:
        ns, me = self.namespace(sid), self.address(sid)
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", f"h{sid}", "netns", hub, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        _ip("-n", hub, "addr", "add", gw, "peer", me, "dev", f"h{sid}")
        _ip("-n", hub, "link", "set", f"h{sid}", "up")
        _ip("-n", ns, "addr", "add", me, "peer", gw, "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "route", "add", "default", "via", gw)

    def teardown(self) -> None:
        """Remove everything; deleting the root-side link first also drops its route at once
        (namespaces themselves are reclaimed by the kernel asynchronously)."""
        if not self._up:
            return
        self._up = False
        _ip("link", "del", self.token, check=False)
        names: list[int | str] = [*self.sids, "hub"]
        for name in names:
            _ip("netns", "del", self.namespace(name), check=False)
        self.cuts.clear()

    # -- faults ---------------------------------------------------------------------------

    def cut(self, a: int, b: int) -> None:
        """Drop all traffic between members a and b (both directions)."""
        for src, dst in ((a, b), (b, a)):
            if (src, dst) not in self.cuts:
                self._rule("add", src, dst)
                self.cuts.add((src, dst))

    def partition(self, *groups: Iterable[int]) -> None:
        """Split the members into groups that cannot reach each other (members in no group
        keep reaching everyone)."""
        sets = [set(g) for g in groups]
        for i, left in enumerate(sets):
            for right in sets[i + 1:]:
                for a in left:
                    for b in right:
                        self.cut(a, b)

    def isolate(self, sid: int) -> None:
        """Cut `sid` off from every other member (its clients still reach it)."""
        self.partition([sid], [s for s in self.sids if s != sid])

    def heal(self) -> None:
        for src, dst in sorted(self.cuts):
            self._rule("del", src, dst)
        self.cuts.clear()

    def _rule(self, verb: str, src: int, dst: int) -> None:
        _ip("-n", self.namespace("hub"), "rule", verb, "from", self.address(src),
            "to", self.address(dst), "blackhole")


def _reap_stale() -> None:
    """Remove what a test process killed before its teardown left behind (names carry the
    creator's pid; a pid that no longer runs cannot be using them)."""
    listed = _ip("netns", "list", check=False).stdout.split()
    links = _ip("-o", "link", "show", check=False).stdout
    for name in set(listed) | set(re.findall(r"^\d+: (zkft\d+n\d+)@", links, re.M)):
        match = re.fullmatch(r"zkft(\d+)n\d+(-\w+)?", name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        if match.group(2):
            _ip("netns", "del", name, check=False)
        else:
            _ip("link", "del", name, check=False)


def _pid_alive(pid_tail: int) -> bool:
    """Whether a process whose pid ends in these digits (pid % 100000) may still run."""
    return any(int(p) % 100000 == pid_tail for p in os.listdir("/proc") if p.isdigit())


def _free_subnet() -> str:
    """A 10.213.N /24 the root namespace has no route for (one per live network)."""
    routes = _ip("route", "show", check=False).stdout
    start = os.getpid() % 200
    for i in range(250):
        candidate = f"10.213.{(start + i) % 250}"
        if f"{candidate}.0/24" not in routes:
            return candidate
    raise RuntimeError("no free 10.213.N.0/24 subnet")

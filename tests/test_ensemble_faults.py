"""Real ensembles under client load while members crash, stall and are partitioned.

Each scenario starts an ensemble of real server processes (zookapter, Apache ZooKeeper 3.8 or
a mix), runs `ensemble_load.ClientLoad` against it (several sessions creating unique nodes,
doing versioned setData on shared keys, and sync+read), injects faults, and then checks that
- every acknowledged create exists on every member, and members agree on everything;
- the recorded history of writes (and of reads outside stale-leader windows) is linearizable,
  final reads of the shared keys included, so an acknowledged write that was lost fails it.

Faults: SIGKILL of the leader (restarted later); SIGSTOP of the leader for longer than
syncLimit, then SIGCONT (the others elect a new leader; the old one must step down and must
not acknowledge writes as a stale leader); network partitions between members in network
namespaces (netfault.py; skipped where they are unavailable: no root, no `ip netns`).

The rolling migration replaces the members of a 3-server Apache ensemble by zookapter servers
one at a time, on the same dataDir and ports, under load: clients may see nothing but
connection loss (which they retry), and nothing acknowledged may be lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import pytest

from zookapter.client import ZooKeeperClient
from zookapter.client.errors import NodeExistsError
from zookapter.protocol.jute import Writer
from zookapter.protocol.records import ConnectRequest
from zookapter.sim.history import INFO, OK
from zookapter.sim.znode_model import NODE_EXISTS, OK_CODE, ZnodeOp

import netfault
from ensemble import Ensemble, wait_for
from ensemble_load import (
    UNIQUE,
    ClientLoad,
    check_creates,
    check_linearizable,
    record_final_reads,
    summary,
)
from oracle import apache_zookeeper_available
from rawclient import RawClient

SYNC_LIMIT_S = 2.5  # Ensemble's default: tickTime 250 ms x syncLimit 10
WAIT_S = 60.0  # every wait is a polling loop; this is only its ceiling
needs_java = pytest.mark.skipif(not apache_zookeeper_available(),
                                reason="Apache ZooKeeper not installed")
needs_netns = pytest.mark.skipif(netfault.unavailable() is not None,
                                 reason=f"no network namespaces: {netfault.unavailable()}")


# -- plumbing ---------------------------------------------------------------------------------


def _connect(e: Ensemble, sids: list[int]) -> ZooKeeperClient:
    client = ZooKeeperClient(e.hosts(sids), timeout=15.0, randomize_hosts=False)
    client.start(WAIT_S)
    return client


def _client_hosts(e: Ensemble, clients: int) -> list[str]:
    """One connect string per client, each starting at a different member."""
    sids = sorted(e.peers)
    return [e.hosts(sids[i % len(sids):] + sids[:i % len(sids)]) for i in range(clients)]


@contextmanager
def _under_load(e: Ensemble, clients: int = 4) -> Iterator[ClientLoad]:
    print(f"\n{time.strftime('%H:%M:%S')} ensemble serving, leader {e.leader()}", flush=True)
    admin = _connect(e, sorted(e.peers))
    members = {(e.address(s), e.ports[s].client): s for s in e.peers}
    load = ClientLoad(_client_hosts(e, clients), members=members)
    try:
        load.setup(admin)
        load.start()
        load.wait_for_progress(30)
        yield load
    finally:
        load.stop()
        admin.close()


class _StaleWriteProbe:
    """A session pinned to one member (the leader about to be paused or cut off), which sends
    one create while that member is a stale leader. The create must not be acknowledged, and
    must be gone once the member rejoined (truncated: no quorum ever logged it)."""

    PROCESS = 500

    def __init__(self, e: Ensemble, load: ClientLoad, sid: int) -> None:
        self.load = load
        self.path = f"{UNIQUE}/stale-probe-{sid}-{load.recorder.now_ms()}"
        self.client = _connect(e, [sid])
        self.status: str | None = None
        self._thread: threading.Thread | None = None

    def fire(self) -> None:
        self._thread = threading.Thread(target=self._create, daemon=True)
        self._thread.start()

    def _create(self) -> None:
        op = self.load.recorder.invoke(self.PROCESS, ZnodeOp("create", self.path, b"stale"))
        try:
            self.client.create(self.path, b"stale")
            self.status, output = OK, (OK_CODE,)
        except NodeExistsError:
            self.status, output = OK, (NODE_EXISTS,)
        except Exception:
            self.status, output = INFO, None
        self.load.recorder.complete(op, self.status, output)

    def finish(self) -> str:
        """Wait for the create's outcome (the member steps down and drops the connection, or
        the client's read timeout gives up) and close the session."""
        assert self._thread is not None
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "the probe's create never returned"
        self.client.close()
        assert self.status == INFO, f"a stale leader acknowledged {self.path}"
        self.load.absent.append(self.path)
        return self.status


def _not_serving(e: Ensemble, sid: int) -> bool:
    return e.mode(sid) not in ("leader", "follower")


def _serving_in_quorum(e: Ensemble, sid: int) -> bool:
    return e.mode(sid) in ("leader", "follower") and e.leader() is not None


def _note(load: ClientLoad, what: str) -> None:
    """A timeline line (shown with -s, or with a failure's captured output)."""
    print(f"[{load.recorder.now_ms() / 1000:6.1f}s] {what}; {load.acked()} acked", flush=True)


def _others(e: Ensemble, sid: int) -> list[int]:
    return [s for s in sorted(e.peers) if s != sid]


def _verify(e: Ensemble, load: ClientLoad) -> None:
    """After the load stopped and every member is back: the checks of the module docstring."""
    _note(load, f"load stopped: {summary(load)}")
    leader = e.wait_for_quorum(WAIT_S)
    children: dict[int, list[str]] = {}
    values: dict[int, list[tuple[bytes, int]]] = {}
    for sid in sorted(e.peers):
        client = _connect(e, [sid])
        try:
            client.sync("/")
            names = client.get_children(UNIQUE)
            assert isinstance(names, list)
            children[sid] = names
            values[sid] = []
            for key in load.keys:
                client.sync(key)
                data, stat = client.get(key)
                values[sid].append((data, stat.version))
            if sid == leader:
                record_final_reads(load, client)
        finally:
            client.close()
    assert all(v == values[leader] for v in values.values()), values
    check_creates(load, children)
    for path in load.absent:
        assert all(path.rsplit("/", 1)[1] not in c for c in children.values()), path
    check_linearizable(load)


# -- faults -----------------------------------------------------------------------------------


def _kill_leader(e: Ensemble, load: ClientLoad) -> None:
    leader = e.wait_for_quorum(WAIT_S)
    _note(load, f"SIGKILL leader {leader}")
    e.kill(leader)
    _note(load, f"new leader {e.wait_for_quorum(WAIT_S, _others(e, leader))}")
    load.wait_for_progress()
    _note(load, f"restart {leader}")
    e.restart(leader)
    e.wait_for_mode(leader, "follower", WAIT_S)
    _note(load, f"{leader} follows")
    load.wait_for_progress()


def _pause_leader(e: Ensemble, load: ClientLoad) -> None:
    """SIGSTOP past syncLimit: the others elect a new leader meanwhile; after SIGCONT the
    old leader must find out and follow (writes it was sent meanwhile must not be acked)."""
    leader = e.wait_for_quorum(WAIT_S)
    probe = _StaleWriteProbe(e, load, leader)
    with load.stale_leader_window():
        paused_at = time.monotonic()
        _note(load, f"SIGSTOP leader {leader}")
        e.pause(leader)
        try:
            probe.fire()
            _note(load, f"new leader {e.wait_for_quorum(WAIT_S, _others(e, leader))}")
            load.wait_for_progress()
            time.sleep(max(0.0, paused_at + 2 * SYNC_LIMIT_S - time.monotonic()))
        finally:
            _note(load, f"SIGCONT {leader}")
            e.resume(leader)
        e.wait_for_mode(leader, "follower", WAIT_S)
        _note(load, f"{leader} follows; the probe's create: {probe.finish()}")
    load.wait_for_progress()


def _isolate(e: Ensemble, net: netfault.NamespaceNetwork, load: ClientLoad, sid: int) -> None:
    """Cut `sid` off from the other members (not from clients) until it stopped serving and
    the rest serve without it; then heal and wait for it to follow again."""
    probe = _StaleWriteProbe(e, load, sid) if e.mode(sid) == "leader" else None
    with load.stale_leader_window():
        _note(load, f"cut off {'leader' if probe else 'follower'} {sid}")
        net.isolate(sid)
        try:
            if probe is not None:
                probe.fire()
            _note(load, f"leader {e.wait_for_quorum(WAIT_S, _others(e, sid))} serves the rest")
            load.wait_for_progress()
            wait_for(partial(_not_serving, e, sid), WAIT_S,
                     f"cut-off server {sid} to stop serving", [e.peers[sid]])
            _note(load, f"{sid} stopped serving")
        finally:
            net.heal()
        e.wait_for_mode(sid, "follower", WAIT_S)
        _note(load, f"healed; {sid} follows")
        if probe is not None:
            _note(load, f"the probe's create: {probe.finish()}")
    load.wait_for_progress()


def _split(e: Ensemble, net: netfault.NamespaceNetwork, load: ClientLoad,
           minority: list[int]) -> None:
    """Partition the ensemble in two; the majority side must serve, the minority must not."""
    majority = [s for s in sorted(e.peers) if s not in minority]
    leader = e.wait_for_quorum(WAIT_S)
    probe = _StaleWriteProbe(e, load, leader) if leader in minority else None
    with load.stale_leader_window():
        _note(load, f"partition {minority} | {majority}")
        net.partition(minority, majority)
        try:
            if probe is not None:
                probe.fire()
            _note(load, f"leader {e.wait_for_quorum(WAIT_S, majority)} serves the majority")
            load.wait_for_progress()
            for sid in minority:
                wait_for(partial(_not_serving, e, sid), WAIT_S,
                         f"minority server {sid} to stop serving", [e.peers[sid]])
            _note(load, "the minority stopped serving")
        finally:
            net.heal()
        for sid in minority:
            e.wait_for_mode(sid, "follower", WAIT_S)
        _note(load, "healed; the minority follows")
        if probe is not None:
            _note(load, f"the probe's create: {probe.finish()}")
    load.wait_for_progress()


@contextmanager
def _network_if_available(size: int) -> Iterator[netfault.NamespaceNetwork | None]:
    """Namespaces for `size` members where the machine allows them, else None."""
    if netfault.unavailable() is not None:
        yield None
        return
    with netfault.NamespaceNetwork(range(1, size + 1)) as net:
        yield net


def _report(name: str, load: ClientLoad, started: float) -> None:
    counts = summary(load).splitlines()[0]  # _verify printed the slow operations already
    print(f"\n{name}: {time.monotonic() - started:.1f}s, {counts}")


# -- scenarios --------------------------------------------------------------------------------


def test_three_zookapter_servers_survive_leader_crash_and_stall() -> None:
    started = time.monotonic()
    with Ensemble(3, kinds="zzz") as e:
        with _under_load(e) as load:
            _kill_leader(e, load)
            _pause_leader(e, load)
        _verify(e, load)
    _report("zzz kill+pause", load, started)


@needs_netns
def test_three_zookapter_servers_survive_partitions() -> None:
    started = time.monotonic()
    with netfault.NamespaceNetwork([1, 2, 3]) as net, Ensemble(3, kinds="zzz",
                                                                network=net) as e:
        with _under_load(e) as load:
            _isolate(e, net, load, e.wait_for_quorum(WAIT_S))  # the leader
            leader = e.wait_for_quorum(WAIT_S)
            _isolate(e, net, load, _others(e, leader)[0])  # a follower
        _verify(e, load)
    _report("zzz partitions", load, started)


def _send_connect(raw: RawClient, session_id: int = 0, passwd: bytes = b"\0" * 16) -> None:
    """A ConnectRequest (30 s sessions) that the test does not wait on."""
    w = Writer()
    ConnectRequest(0, 0, 30000, session_id, passwd, False, True).write(w)
    raw.send_frame(bytes(w.buf))


def _answered_or_closed(raw: RawClient, wait_s: float) -> str:
    raw.sock.settimeout(wait_s)
    try:
        raw.recv_frame()
        return "answered"
    except (EOFError, ConnectionError):
        return "closed"
    except TimeoutError:
        return "hung"


def test_a_follower_drops_revalidations_its_lost_leader_never_answered() -> None:
    """A client resuming its session on a follower makes it ask the leader (REVALIDATE). If
    that leader is gone, the question is never answered; after the next election the same
    session resuming there must be answered by the new leader, not wait behind it."""
    with Ensemble(3, kinds="zzz") as e:
        leader = e.wait_for_quorum(WAIT_S)
        follower = _others(e, leader)[0]
        owner = RawClient(e.address(leader), e.ports[leader].client)
        session = owner.connect(30000)
        owner.close()  # the session lives on for its timeout
        e.pause(leader)
        try:
            first = RawClient(e.address(follower), e.ports[follower].client)
            _send_connect(first, session.sessionId, session.passwd)  # asks the paused leader
            e.wait_for_quorum(WAIT_S, _others(e, leader))
            second = RawClient(e.address(follower), e.ports[follower].client, timeout=10.0)
            resp = second.connect(30000, session.sessionId, session.passwd)
            assert resp.sessionId == session.sessionId and resp.timeOut > 0
            first.close()
            second.close()
        finally:
            e.resume(leader)


def test_clients_a_paused_leader_finds_waiting_are_served_or_closed() -> None:
    """Connections the kernel accepted for a paused leader are taken up by the process when it
    resumes, in the same loop turn in which it learns that it lost its followers: they must
    end up with the role that follows (answered or closed), not with the retired one."""
    with Ensemble(3, kinds="zzz") as e:
        leader = e.wait_for_quorum(WAIT_S)
        e.pause(leader)
        try:
            waiting = [RawClient(e.address(leader), e.ports[leader].client) for _ in range(4)]
            for raw in waiting:
                _send_connect(raw)
            e.wait_for_quorum(WAIT_S, _others(e, leader))  # its followers gave up on it
        finally:
            e.resume(leader)
        outcomes = [_answered_or_closed(raw, 10.0) for raw in waiting]
        assert "hung" not in outcomes, outcomes
        e.wait_for_mode(leader, "follower", WAIT_S)


@pytest.mark.slow
def test_five_zookapter_servers_under_every_fault() -> None:
    """Partitions only where namespaces are available: the leader and one follower are cut
    off from the three others, which must elect a leader among themselves."""
    started = time.monotonic()
    with _network_if_available(5) as net, Ensemble(5, kinds="zzzzz", network=net) as e:
        with _under_load(e, clients=5) as load:
            _kill_leader(e, load)
            _pause_leader(e, load)
            if net is not None:
                leader = e.wait_for_quorum(WAIT_S)
                _split(e, net, load, [leader, _others(e, leader)[0]])
        _verify(e, load)
    _report("zzzzz kill+pause" + ("+split" if net else ""), load, started)


@pytest.mark.slow
@pytest.mark.oracle
@needs_java
@pytest.mark.parametrize("kinds", ["jjz", "zzj"])
def test_mixed_ensemble_survives_leader_crash_and_stall(kinds: str) -> None:
    """Member 3 usually wins the first election: "jjz" starts under a zookapter leader,
    "zzj" under a Java one; after the crash the other kind may lead."""
    started = time.monotonic()
    with _network_if_available(3) as net, Ensemble(3, kinds=kinds, network=net) as e:
        with _under_load(e) as load:
            _kill_leader(e, load)
            _pause_leader(e, load)
            if net is not None:
                _isolate(e, net, load, e.wait_for_quorum(WAIT_S))
        _verify(e, load)
    _report(f"{kinds} kill+pause" + ("+isolate" if net else ""), load, started)


@pytest.mark.slow
@pytest.mark.oracle
@needs_java
def test_rolling_migration_from_apache_zookeeper() -> None:
    """Members of a Java ensemble are replaced by zookapter one by one (the leader last):
    each new member starts on the old one's dataDir and must sync and follow before the next
    one goes. Clients see connection loss at most, and retry it."""
    started = time.monotonic()
    with Ensemble(3, kinds="jjj") as e:
        with _under_load(e) as load:
            leader = e.wait_for_quorum(WAIT_S)
            for sid in [*_others(e, leader), leader]:
                _note(load, f"replace {sid} ({e.mode(sid)}) by zookapter")
                e.replace(sid, "z")
                wait_for(partial(_serving_in_quorum, e, sid), WAIT_S,
                         f"zookapter member {sid} to serve", [e.peers[sid]])
                _note(load, f"{sid} is a zookapter {e.mode(sid)}; leader {e.leader()}")
                load.wait_for_progress(100)
        assert e.kinds == "zzz"
        _verify(e, load)
    assert set(load.errors()) <= {"ConnectionLossError"}, load.errors()
    assert load.lost_sessions() == 0
    _report("jjj->zzz rolling migration", load, started)

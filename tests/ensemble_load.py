"""Client load on a real ensemble, recorded as a history and checked afterwards.

`ClientLoad` runs `clients` sessions of zookapter's asyncio client on one event loop in a
background thread. Each is one history *process* and loops, lightly paced:

- create a unique node /fz/u/p<P>-<N> (after a connection loss the same path is tried again,
  as a real client would, so NodeExists is a legitimate answer then);
- setData on one of a few shared keys /fz/k<i> with the version it last saw (BadVersion is
  an answer too, after which it reads the key again to learn its version);
- optionally a read of a shared key, preceded by a sync on the same session.

Every attempt is one `Operation` of `zookapter.sim.history`: invoked just before the request
leaves, completed OK with the server's answer (errors the server decided, like BadVersion,
are answers), or INFO when the outcome is unknown (connection loss, session expiry, a
timeout). Positions come from one counter, so real-time precedence between processes is
exact. `check()` then runs the simulator's linearizability checker over the writes.

Reads are only worth checking when no stale leader can answer them: ZooKeeper serves reads
from the member's local state and a sync is answered by whoever believes it leads, so a
leader that was paused or partitioned may answer a read (even after a sync) from before the
new leader's writes. That is ZooKeeper's documented consistency, not a bug: reads that
overlap such a window (`stale_leader_window()`) are left out, writes never are. The final
reads of every shared key (after healing, with a sync) are always checked, which is what
catches a lost write.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from zookapter.client import AsyncZooKeeper, ConnectionState, ZooKeeperClient
from zookapter.client.errors import BadVersionError, NodeExistsError, NoNodeError
from zookapter.sim import linearizability
from zookapter.sim.history import FAIL, INFO, OK, History, Operation, Outcome, format_ops
from zookapter.sim.znode_model import BAD_VERSION, NO_NODE, NODE_EXISTS, OK_CODE, ZnodeOp

ROOT = "/fz"
UNIQUE = f"{ROOT}/u"
SETUP_PROCESS = 0
FINAL_PROCESS = 999
Output = tuple[Any, ...]  # the znode model's outputs: error code first


def shared_key(i: int) -> str:
    return f"{ROOT}/k{i}"


class RecordedHistory:
    """A sim History fed from several threads, with wall-clock milliseconds."""

    def __init__(self) -> None:
        self.history = History()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self.gave_up_ms: dict[int, int] = {}  # when INFO operations were given up on

    def ended_ms(self, op: Operation) -> int:
        """When the client had its answer or gave up (now, for one still running)."""
        if op.ret_ms is not None:
            return op.ret_ms
        return self.gave_up_ms.get(op.id, self.now_ms())

    def now_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def invoke(self, process: int, op: ZnodeOp, node: int | None = None) -> Operation:
        with self._lock:
            return self.history.invoke(process, op, self.now_ms(), node)

    def complete(self, op: Operation, status: str, value: object = None) -> None:
        with self._lock:
            now = self.now_ms()
            self.history.complete(op, Outcome(status, value), now)
            if status == INFO:
                self.gave_up_ms[op.id] = now

    def ops(self) -> list[Operation]:
        with self._lock:
            return list(self.history.ops)


@dataclass
class _Process:
    """One client session and what it remembers between operations."""
    pid: int
    client: AsyncZooKeeper
    versions: dict[str, int]
    next_unique: int = 0
    retry_path: str | None = None
    errors: Counter[str] = field(default_factory=Counter)
    lost_session: int = 0


class ClientLoad:
    """See the module docstring. Start with `start()`, end with `stop()` (idempotent)."""

    def __init__(self, hosts: list[str], *, keys: int = 3, reads: bool = True,
                 session_timeout_s: float = 10.0, pace_s: float = 0.01, seed: int = 7,
                 members: dict[tuple[str, int], int] | None = None) -> None:
        """`hosts`: one connect string per client (order it so that clients start on
        different members). `members`: (address, client port) -> server id, to record which
        member each operation was sent to."""
        self.hosts = hosts
        self.members = members or {}
        self.keys = [shared_key(i) for i in range(keys)]
        self.reads = reads
        self.session_timeout_s = session_timeout_s
        self.pace_s = pace_s
        self.rng = random.Random(seed)
        self.recorder = RecordedHistory()
        self.procs: list[_Process] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._ready = threading.Event()
        self.stale_windows: list[tuple[int, int]] = []  # see stale_leader_window()
        self.absent: list[str] = []  # paths that must not exist in the end (tests add them)

    # -- life cycle -----------------------------------------------------------------------

    def setup(self, client: ZooKeeperClient) -> None:
        """Create the parents (outside the history) and the shared keys (inside it)."""
        client.ensure_path(UNIQUE)
        for key in self.keys:
            op = self.recorder.invoke(SETUP_PROCESS, ZnodeOp("create", key, b"init"))
            client.create(key, b"init")
            self.recorder.complete(op, OK, (OK_CODE,))

    def start(self) -> ClientLoad:
        self._thread = threading.Thread(target=self._run, name="client-load", daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self._failure is not None:
            raise AssertionError(f"client load did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            assert not self._thread.is_alive(), "client load did not stop"
            self._thread = None
        self.recorder.history.finish()
        if self._failure is not None:
            raise AssertionError("client load crashed") from self._failure

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # reported by start()/stop()
            self._failure = e
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        for pid, hosts in enumerate(self.hosts, start=1):
            client = AsyncZooKeeper(hosts, timeout=self.session_timeout_s,
                                    randomize_hosts=False, max_backoff=0.5)
            await client.start(30)
            proc = _Process(pid, client, {key: 0 for key in self.keys})
            client.add_listener(self._watch_session(proc))
            self.procs.append(proc)
        self._ready.set()
        try:
            await asyncio.gather(*(self._worker(p) for p in self.procs))
        finally:
            for p in self.procs:
                await p.client.stop()

    @staticmethod
    def _watch_session(proc: _Process) -> Callable[[ConnectionState], None]:
        def on_state(state: ConnectionState) -> None:
            if state == ConnectionState.LOST and not proc.client._closing:
                proc.lost_session += 1
        return on_state

    # -- the workload ---------------------------------------------------------------------

    async def _worker(self, proc: _Process) -> None:
        rng = random.Random(self.rng.random())
        while not self._stop.is_set():
            roll = rng.random()
            if proc.retry_path is not None or roll < 0.4:
                await self._create(proc)
            elif roll < 0.8 or not self.reads:
                await self._set(proc, rng.choice(self.keys), rng)
            else:
                await self._read(proc, rng.choice(self.keys))
            await asyncio.sleep(self.pace_s * rng.uniform(0.5, 1.5))

    async def _attempt(self, proc: _Process, op: ZnodeOp,
                       call: Callable[[], Awaitable[Output]]) -> Output | None:
        """Run one recorded operation; returns the model output, or None if unknown."""
        entry = self.recorder.invoke(proc.pid, op, self._member_of(proc.client))
        output: Output
        try:
            output = await asyncio.wait_for(call(), 3 * self.session_timeout_s)
        except NodeExistsError:
            output = (NODE_EXISTS,)
        except BadVersionError:
            output = (BAD_VERSION,)
        except NoNodeError:
            output = (NO_NODE,)
        except (Exception, asyncio.TimeoutError) as e:  # unknown outcome
            proc.errors[type(e).__name__] += 1
            self.recorder.complete(entry, INFO)
            await asyncio.sleep(0.05)
            return None
        self.recorder.complete(entry, OK, output)
        return output

    async def _create(self, proc: _Process) -> None:
        path = proc.retry_path or f"{UNIQUE}/p{proc.pid}-{proc.next_unique}"
        data = path.encode()

        async def call() -> tuple[int]:
            await proc.client.create(path, data)
            return (OK_CODE,)
        output = await self._attempt(proc, ZnodeOp("create", path, data), call)
        if output is None:
            proc.retry_path = path
            return
        proc.retry_path = None
        proc.next_unique += 1

    async def _set(self, proc: _Process, key: str, rng: random.Random) -> None:
        version = proc.versions[key]
        data = f"p{proc.pid}-{rng.getrandbits(40):x}".encode()

        async def call() -> tuple[int, int]:
            stat = await proc.client.set(key, data, version)
            return (OK_CODE, stat.version)
        output = await self._attempt(proc, ZnodeOp("set", key, data, version), call)
        if output is not None and output[0] == OK_CODE:
            proc.versions[key] = output[1]
        elif output is None or output[0] == BAD_VERSION:
            await self._read(proc, key)  # learn the current version (recorded like any read)

    async def _read(self, proc: _Process, key: str) -> None:
        async def call() -> tuple[int, bytes, int]:
            await proc.client.sync(key)
            data, stat = await proc.client.get(key)
            return (OK_CODE, data, stat.version)
        output = await self._attempt(proc, ZnodeOp("get", key), call)
        if output is not None and output[0] == OK_CODE:
            proc.versions[key] = output[2]

    @contextmanager
    def stale_leader_window(self) -> Iterator[None]:
        """Mark the time a stale leader may exist (from pausing or cutting off a leader until
        it is back as a follower): reads overlapping it are not checked."""
        start = self.recorder.now_ms()
        try:
            yield
        finally:
            self.stale_windows.append((start, self.recorder.now_ms()))

    def _member_of(self, client: AsyncZooKeeper) -> int | None:
        """The server the session is connected to now (None while it is not)."""
        live = client._live
        if live is None or live.transport is None:
            return None
        peer = live.transport.get_extra_info("peername")
        return self.members.get(tuple(peer[:2])) if peer else None

    # -- observation ----------------------------------------------------------------------

    def acked(self) -> int:
        """Operations answered so far (a measure of progress)."""
        return sum(1 for op in self.recorder.ops() if op.status == OK)

    def wait_for_progress(self, more: int = 60, timeout_s: float = 60.0) -> None:
        """Wait until `more` further operations are answered: the ensemble serves again."""
        target = self.acked() + more
        deadline = time.monotonic() + timeout_s
        while self.acked() < target:
            if self._failure is not None:
                raise AssertionError("client load crashed") from self._failure
            if time.monotonic() > deadline:
                raise AssertionError(f"no progress: {self.acked()} of {target} answered "
                                     f"after {timeout_s}s; errors {self.errors()}")
            time.sleep(0.05)

    def errors(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for p in self.procs:
            total.update(p.errors)
        return total

    def lost_sessions(self) -> int:
        return sum(p.lost_session for p in self.procs)

    def counts(self) -> dict[str, int]:
        return self.recorder.history.counts()


# -- verdicts ------------------------------------------------------------------------------


def record_final_reads(load: ClientLoad, client: ZooKeeperClient) -> None:
    """Read every shared key after a sync, as one more process, appended to the history
    after everything else returned: a lost acknowledged write shows up as a violation."""
    for key in load.keys:
        client.sync(key)
        op = load.recorder.invoke(FINAL_PROCESS, ZnodeOp("get", key))
        data, stat = client.get(key)
        load.recorder.complete(op, OK, (OK_CODE, data, stat.version))


def check_linearizable(load: ClientLoad) -> linearizability.Result:
    """Linearizability of the writes and of the reads outside stale-leader windows (the final
    reads always); raises with the checker's explanation on a violation or an unfinished
    search."""
    def overlaps_stale(op: Operation) -> bool:
        end = op.ret_ms if op.ret_ms is not None else load.recorder.now_ms()
        return any(op.call_ms <= w_end and w_start <= end
                   for w_start, w_end in load.stale_windows)
    ops = [op for op in load.recorder.ops()
           if op.status != FAIL and (op.input.f != "get" or not overlaps_stale(op))]
    result = linearizability.check(ops)
    if result.ok is not True:
        with tempfile.NamedTemporaryFile("w", prefix="zk-history-", suffix=".txt",
                                         delete=False) as out:
            out.write(format_ops(load.recorder.ops()) + "\n")
        raise AssertionError(f"{result.explain()}\n(whole history in {out.name})")
    return result


def check_creates(load: ClientLoad, children_by_member: dict[int, list[str]]) -> None:
    """Every member holds every acknowledged create, nothing that was never attempted, and
    the same set of nodes as every other member."""
    ops = [op for op in load.recorder.ops()
           if op.input.f == "create" and op.input.path.startswith(UNIQUE + "/")]
    attempted = {op.input.path.rsplit("/", 1)[1] for op in ops}
    acked = {op.input.path.rsplit("/", 1)[1] for op in ops if op.status == OK}
    first = None
    for sid, children in sorted(children_by_member.items()):
        have = set(children)
        missing = acked - have
        assert not missing, f"member {sid} lost acknowledged creates: {sorted(missing)[:10]}"
        stray = have - attempted
        assert not stray, f"member {sid} has nodes nobody created: {sorted(stray)[:10]}"
        if first is None:
            first = have
        assert have == first, f"member {sid} differs: {sorted(have ^ first)[:10]}"


def summary(load: ClientLoad, slow_ms: int = 3000) -> str:
    """Counts, errors, and the operations that took longer than `slow_ms`."""
    c = load.counts()
    slow = [op for op in load.recorder.ops()
            if load.recorder.ended_ms(op) - op.call_ms > slow_ms]
    return (f"{len(load.recorder.history)} ops: {c[OK]} ok, {c[INFO]} unknown; errors "
            f"{dict(load.errors())}; lost sessions {load.lost_sessions()}"
            + "".join(f"\n  slow: {op} (gave up at {load.recorder.ended_ms(op)}ms)"
                      for op in slow))

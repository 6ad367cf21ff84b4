"""Simulated clients: closed-loop processes that issue requests and record a history.

Each client runs one request at a time, like a Jepsen worker: invoke, wait for the reply
(or time out), think, repeat, until the workload window ends. A reply with status FAIL means
"not done here" (e.g. not the leader), so the client moves to another node (the one named
by a `Redirect`, if the server gave one); an INFO reply or
a timeout leaves the operation's outcome unknown, and the client continues as a fresh
process (Jepsen's rule: an indeterminate operation may still be in flight, so the next one
must not be attributed to the same process). Client <-> server links are not partitioned:
faults hit the ensemble, and a client cut off from a quorum sees timeouts anyway.

`final_requests` are issued after the cluster has been healed and has settled: typically a
read of every key, which gives the linearizability checker a last word on lost writes.
Each is retried on another node until it is OK (or out of attempts), with a generous
timeout.

Requests are produced by a generator function of the client rng; `znode_requests` is the
standard one for the znode model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

from .cluster import Simulation, stream
from .history import FAIL, INFO, OK, History, Operation, Outcome, Redirect
from .latency import Latency
from .znode_model import ZnodeOp

RequestGenerator = Callable[[Random, int], Any]  # (rng, sequence number) -> request


@dataclass(frozen=True)
class WorkloadConfig:
    clients: int = 3
    start_ms: int = 20
    end_ms: int = 2_000  # no new request is invoked after this
    think: Latency = Latency(0, 10)
    link: Latency = Latency(1, 3)  # client <-> server, each way
    timeout_ms: int = 400
    final_timeout_ms: int = 2_000
    final_attempts: int = 20
    final_retry_ms: int = 50  # pause before retrying a final request that was not answered
    keys: int = 3


@dataclass
class _Client:
    index: int
    process: int
    node: int
    final: bool = False
    attempts: int = 0
    pending: Operation | None = None
    requests: list[Any] = field(default_factory=list)  # for final clients: what is left


class Clients:
    """The client side of a run: drives requests into `sim` and fills `history`."""

    def __init__(self, sim: Simulation, config: WorkloadConfig,
                 generate: RequestGenerator) -> None:
        self.sim = sim
        self.config = config
        self.generate = generate
        self.history = History()
        self.rng = stream(sim.seed, "clients")
        self._clients: list[_Client] = []
        self._by_request: dict[int, tuple[_Client, Operation]] = {}
        self._next_process = 0
        self._serial = 0
        self.final_pending = 0
        self.final_statuses: list[str] = []  # per final request: OK, or how it last ended
        sim.reply_sink = self._on_reply

    def _process(self) -> int:
        self._next_process += 1
        return self._next_process - 1

    def _random_node(self, avoid: int | None = None) -> int:
        nodes = [n for n in self.sim.config.nodes if n != avoid] or list(self.sim.config.nodes)
        return nodes[int(self.rng.random() * len(nodes))]

    def start(self) -> None:
        for i in range(self.config.clients):
            client = _Client(i, self._process(), self._random_node())
            self._clients.append(client)
            self.sim.scheduler.at(self.config.start_ms + i, self._invoke_next, client)

    def add_final(self, requests: Sequence[Any], at_ms: int) -> None:
        """Issue `requests` one after another from a dedicated client starting at `at_ms`."""
        client = _Client(len(self._clients), self._process(), self._random_node(), final=True,
                         requests=list(requests))
        self._clients.append(client)
        self.final_pending += len(requests)
        self.sim.scheduler.at(at_ms, self._invoke_next, client)

    def _invoke_next(self, client: _Client) -> None:
        sim = self.sim
        now = sim.scheduler.now_ms
        if client.final:
            if not client.requests:
                return
            request = client.requests[0]
        else:
            if now > self.config.end_ms:
                return
            request = self.generate(self.rng, self._serial)
            self._serial += 1
        op = self.history.invoke(client.process, request, now, client.node)
        client.pending = op
        self._by_request[op.id] = (client, op)
        sim.submit(client.node, op.id, request, self.config.link.sample(self.rng))
        timeout = self.config.final_timeout_ms if client.final else self.config.timeout_ms
        sim.scheduler.after(timeout, self._timeout, client, op)

    def _on_reply(self, node: int, request_id: int, outcome: Outcome) -> None:
        self.sim.scheduler.after(self.config.link.sample(self.rng), self._reply_arrives,
                                 request_id, outcome)

    def _reply_arrives(self, request_id: int, outcome: Outcome) -> None:
        entry = self._by_request.pop(request_id, None)
        if entry is None:
            return  # timed out already (or a duplicate reply)
        client, op = entry
        self._complete(client, op, outcome)

    def _timeout(self, client: _Client, op: Operation) -> None:
        if self._by_request.pop(op.id, None) is not None:
            self._complete(client, op, Outcome(INFO, "timeout"))

    def _complete(self, client: _Client, op: Operation, outcome: Outcome) -> None:
        self.history.complete(op, outcome, self.sim.scheduler.now_ms)
        client.pending = None
        if outcome.status == FAIL:
            hint = outcome.value
            client.node = (hint.node if isinstance(hint, Redirect) and hint.node is not None
                           else self._random_node(avoid=client.node))
        elif outcome.status == INFO:
            client.process = self._process()
            client.node = self._random_node(avoid=client.node)
        if client.final:
            self._final_done(client, outcome)
        if client.final:
            delay = 0 if outcome.status == OK else self.config.final_retry_ms
        else:
            delay = self.config.think.sample(self.rng)
        self.sim.scheduler.after(delay, self._invoke_next, client)

    def _final_done(self, client: _Client, outcome: Outcome) -> None:
        """A final request is retried (elsewhere) until OK or out of attempts."""
        client.attempts += 1
        if outcome.status == OK or client.attempts >= self.config.final_attempts:
            self.final_statuses.append(outcome.status)
            client.requests.pop(0)
            client.attempts = 0
            self.final_pending -= 1

    def finish(self) -> History:
        self.history.finish()
        return self.history


def znode_keys(count: int) -> list[str]:
    return [f"/k{i}" for i in range(count)]


def znode_requests(keys: int) -> RequestGenerator:
    """Random create/set/get/delete on `keys` paths, with unique data and versions that
    sometimes match (versions are small because znodes are recreated often)."""
    paths = znode_keys(keys)

    def generate(rng: Random, serial: int) -> ZnodeOp:
        path = paths[int(rng.random() * len(paths))]
        x = rng.random()
        if x < 0.25:
            return ZnodeOp("create", path, b"%d" % serial)
        if x < 0.55:
            version = -1 if rng.random() < 0.3 else int(rng.random() * 4)
            return ZnodeOp("set", path, b"%d" % serial, version)
        if x < 0.85:
            return ZnodeOp("get", path)
        version = -1 if rng.random() < 0.5 else int(rng.random() * 4)
        return ZnodeOp("delete", path, None, version)

    return generate


def znode_final_reads(keys: int) -> list[ZnodeOp]:
    return [ZnodeOp("get", path) for path in znode_keys(keys)]

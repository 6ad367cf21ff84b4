"""zookapter.sim: a deterministic simulator for replicated nodes, and the history checkers.

What it is
----------
One process, one thread, one heap of events in virtual time. Nodes are pure cores with the
shape of the quorum peer — ``node.step(event) -> list[action]`` and
``node.tick(now_ms) -> list[action]`` — driven by seeded fake components:

- ``scheduler``  the event loop: (virtual ms, sequence number) order, no asyncio, no wall clock;
- ``network``    per-link latency, loss, duplication, partitions; a TCP-like connection mode
                 (in order, broken by partitions and crashes, both ends notified);
- ``disk``       written vs fsynced data; a crash keeps a random prefix of unsynced appends,
                 maybe a torn record; slow fsyncs; restart recovers from what survived;
- ``clock``      per-node clocks with random origins, optional skew, jumps;
- ``nemesis``    fault schedules (partition, heal, crash, restart, clock jump, slow disk);
- ``cluster``    the `Simulation`: nodes + a `Binding` (how events are built and actions
                 executed for one kind of node) + crash/restart through a node factory;
- ``workload``   closed-loop clients recording a `History` (invoke / ok / fail / info);
- ``linearizability`` + ``znode_model``  Wing-Gong-Lowe checking against ZooKeeper's
                 create / setData / getData / delete semantics, split by path;
- ``checks``     same zxid sequence on every server, no acknowledged write lost, one leader
                 per epoch;
- ``runner``     `Scenario`, `run_seed`, `verify_seed(s)`, `SimFailure`.

A run is a pure function of (scenario, seed): every random choice comes from streams derived
from the seed, node cores get their own seeded `random.Random` through the factory, and the
cores must not read clocks, threads or global randomness themselves. Nor may they depend on
the iteration order of sets or dicts keyed by str (it changes with PYTHONHASHSEED between
processes; the replay test runs under a different hash seed on purpose).

Writing a scenario
------------------
Give a `Binding` (action type -> handler using `NodeContext`; constructors for message,
disconnect and client-request events), a factory ``(node_id, disk_image, now_ms, rng) ->
node`` that recovers from the `DiskImage` alone, and configs. The binding reports facts with
``ctx.observe(Applied(zxid, digest))``, ``Restored(last_zxid)``, ``Role("leading", epoch)``
and answers clients with ``ctx.reply(request_id, Outcome(OK, output, zxid))`` — or
``Outcome(FAIL, Redirect(leader))`` for "not here", ``Outcome(INFO, ...)`` for "unknown".
See tests/sim_toy.py for a complete small example (a primary-backup store with flaws that
can be switched on to see the checkers catch them), and zab_binding.py for the real thing:
the Zab core and the server role cores under faults, with ZAB-specific checks (zab_checks).

Replaying a seed
----------------
A failing seed raises `SimFailure`, whose message has the seed, the violations, the fault
schedule, and a command line such as::

    python -m zookapter.sim tests/sim_toy.py:SCENARIO --seed 1234 --trace

which runs exactly that seed again (same events, same history; the trace digest printed
proves it) and prints the summary, the problems, the fault schedule and, with ``--trace``,
the last dispatched events (``--tail N``) and the history (``--history``). From Python::

    from zookapter.sim import run_seed
    result = run_seed(scenario, 1234, trace=True)
    print(result.report(), result.trace_digest())
    print("\\n".join(result.sim.trace.tail(200)))

Keep runs cheap (a few thousand events): CI runs many seeds. ``--seeds A:B`` runs a range
and stops at the first failure.
"""

from . import znode_model
from .checks import (
    Applied,
    Observed,
    Restored,
    Role,
    check_acked_applied,
    check_applied_sequences,
    check_one_leader_per_epoch,
)
from .cluster import Binding, NodeContext, SimConfig, Simulation, stream
from .disk import EMPTY_IMAGE, Disk, DiskImage, DiskProfile, Torn
from .history import FAIL, INFO, OK, History, Operation, Outcome, Redirect
from .latency import Latency
from .linearizability import ZNODE_MODEL, Model
from .linearizability import check as check_linearizability
from .nemesis import NemesisConfig, generate
from .network import LinkProfile, Network, NetworkConfig
from .runner import (
    RunResult,
    Scenario,
    SimFailure,
    find_failure,
    run_seed,
    verify_seed,
    verify_seeds,
)
from .scheduler import Scheduler, Trace
from .workload import WorkloadConfig, znode_final_reads, znode_requests
from .znode_model import ZnodeOp

__all__ = [
    "Applied", "Binding", "check_acked_applied", "check_applied_sequences",
    "check_linearizability", "check_one_leader_per_epoch", "Disk", "DiskImage", "DiskProfile",
    "EMPTY_IMAGE", "FAIL", "find_failure", "generate", "History", "INFO", "Latency",
    "LinkProfile", "Model", "NemesisConfig", "Network", "NetworkConfig", "NodeContext",
    "Observed", "OK", "Operation", "Outcome", "Redirect", "Restored", "Role", "run_seed",
    "RunResult", "Scenario", "Scheduler", "SimConfig", "SimFailure", "Simulation", "stream",
    "Torn", "Trace", "verify_seed", "verify_seeds", "WorkloadConfig", "znode_final_reads",
    "ZNODE_MODEL", "znode_model", "znode_requests", "ZnodeOp"
]

"""Seeded random faults over the in-test Zab router (tests/zabnet.py): crashes, restarts,
partitions, slow disks, local and forwarded writes, small committed logs (txn-log and
snapshot syncs); the "observer" variant adds an observer and forced snapshot syncs. After
healing everything, all servers must hold one history that contains every txn any server
applied as committed, with the same bytes.

Each seed replays identically. Pinned seeds are past failures:
- plain 128, 398: a would-be leader snapshotted state holding an uncommitted txn, which a
  later TRUNC could not remove (the core no longer snapshots when it starts leading);
- plain 1168: a TRUNC below a snapshot named with an epoch-start zxid (taken after a
  SNAP sync); that snapshot holds exactly the history up to the TRUNC point and must stay;
- observer 652: a superseded txn left in the log after a SNAP sync came back in a later
  txn-log DIFF (a SNAP sync now discards the whole log);
- observer 5: election notifications bouncing between an observer and a lagging voter
  (the router now delivers a bounded number of message generations per time step).
ZAB_FUZZ_SEEDS=N runs N seeds of each variant (default 20).
"""

from __future__ import annotations

import os
import random

import pytest
from zabnet import Net

from zookapter.quorum.zab_events import Apply

SEEDS = int(os.environ.get("ZAB_FUZZ_SEEDS", "20"))
CASES = [("plain", s) for s in [*range(SEEDS), 128, 398, 1168, 1846]] + \
    [("observer", s) for s in [*range(SEEDS), 5, 652]]


def _net(variant: str, rnd: random.Random, n: int) -> Net:
    if variant == "plain":
        return Net(n, commit_log_count=rnd.choice([3, 10, 500]),
                   snapshot_size_factor=rnd.choice([-1.0, 0.33, 0.0]))
    return Net(n, observers=[n + 1], commit_log_count=rnd.choice([3, 10, 500]),
               snapshot_size_factor=rnd.choice([-1.0, 0.33, 0.0]),
               force_snap_sync=rnd.random() < 0.3)


def _random_step(net: Net, rnd: random.Random, n: int, tag: bytes) -> None:
    r = rnd.random()
    lead = net.leader()
    if r < 0.4 and lead is not None:
        for _ in range(rnd.randint(1, 4)):
            net.write(tag)
    elif r < 0.5:
        alive = [s for s in net.nodes if net.nodes[s].alive]
        if len(alive) > 1:
            net.crash(rnd.choice(alive))
    elif r < 0.6:
        dead = [s for s in net.nodes if not net.nodes[s].alive]
        if dead:
            net.start(rnd.choice(dead))
    elif r < 0.7:
        ids = list(net.nodes)
        rnd.shuffle(ids)
        k = rnd.randint(1, n - 1)
        net.partition(ids[:k], ids[k:])
    elif r < 0.78:
        net.heal()
    elif r < 0.85:
        s = rnd.choice(list(net.nodes))
        if net.nodes[s].alive:
            net.slow_disks.add(s)
    elif r < 0.9:
        for s in list(net.slow_disks):
            net.release_disk(s)
    elif r < 0.95 and lead is not None:
        via = rnd.choice([s for s in net.nodes if s != lead.sid])
        if net.nodes[via].serving:
            net.write(tag, via=via)
    net.run(rnd.choice([10, 50, 200, 600]))


@pytest.mark.parametrize(("variant", "seed"), CASES)
def test_random_faults_keep_one_history(variant: str, seed: int) -> None:
    rnd = random.Random(seed)
    n = 3 if seed % 2 else 5
    net = _net(variant, rnd, n)
    committed: dict[int, bytes] = {}
    execute = net._action

    def watch(node, action):  # type: ignore[no-untyped-def]
        if isinstance(action, Apply) and not action.recovered:
            for p in action.proposals:
                assert committed.setdefault(p.zxid, p.data) == p.data, hex(p.zxid)
        execute(node, action)

    net._action = watch  # type: ignore[method-assign]
    net.start()
    for i in range(60):
        _random_step(net, rnd, n, b"s%d-%d" % (seed, i))
    net.heal()
    for s in list(net.slow_disks):
        net.release_disk(s)
    for s in net.nodes:
        if not net.nodes[s].alive:
            net.start(s)
    net.run_until(net.stable, 60_000)
    final = net.write(b"final")
    net.run_until(lambda: all(final in net.zxids(s) for s in net.nodes))
    lead = net.leader()
    assert lead is not None
    history = net.zxids(lead.sid)
    assert history == sorted(set(history))
    for s in net.nodes:
        assert net.zxids(s) == history, (s, net.status())
    data = {p.zxid: p.data for p in lead.state}
    lost = [hex(z) for z, d in committed.items() if data.get(z) != d]
    assert not lost, f"committed txns lost or changed: {lost}"

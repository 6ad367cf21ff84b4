"""The leader's reconfig checks and the new configuration they compute (quorum/reconfig.py),
and who leads a new configuration (quorum/activation.py). No servers: the ensemble tests
(test_ensemble_reconfig.py) check the same against Apache ZooKeeper 3.8."""

from __future__ import annotations

import pytest

from zookapter.protocol.consts import Err
from zookapter.quorum.activation import designated_leader
from zookapter.quorum.config import verifier_from_text
from zookapter.quorum.reconfig import ReconfigPlanner, ReconfigRequest
from zookapter.server.prep import KeeperError

BASE = verifier_from_text(
    "server.1=localhost:2002:2001:participant\n"
    "server.2=localhost:2012:2011:participant\n"
    "server.3=localhost:2022:2021:participant\n"
    "version=100000000")
ZXID = 0x100000005


def _planner(synced: bool = True) -> ReconfigPlanner:
    return ReconfigPlanner(lambda: BASE, lambda qv: synced)


def _req(joining: str | None = None, leaving: str | None = None,
         members: str | None = None, version: int = -1) -> ReconfigRequest:
    return ReconfigRequest(joining, leaving, members, version)


def _error(planner: ReconfigPlanner, req: ReconfigRequest) -> int:
    with pytest.raises(KeeperError) as info:
        planner.plan(req, ZXID)
    return info.value.code


def test_adding_and_removing_an_observer() -> None:
    joining = "server.100=0.0.0.0:4001:4002:observer;0.0.0.0:4003"
    qv = _planner().plan(_req(joining=joining), ZXID)
    text = qv.to_string()
    assert text == BASE.to_string().rpartition("\n")[0] + "\n" + joining + \
        f"\nversion={ZXID:x}"
    assert list(qv.observing_members) == [100]
    back = ReconfigPlanner(lambda: qv, lambda _: True).plan(_req(leaving="100"), ZXID + 1)
    assert back.members == BASE.members and back.version == ZXID + 1


@pytest.mark.parametrize(("req", "code"), [
    (_req(joining="some thing"), Err.BAD_ARGUMENTS),  # no "="
    (_req(joining="server.4=localhost:1:2"), Err.BAD_ARGUMENTS),  # no client port
    (_req(joining="server.4=localhost:5:5;6"), Err.BAD_ARGUMENTS),  # quorum == election
    (_req(joining="server.x=localhost:1:2;3"), Err.MARSHALLING_ERROR),  # Long.parseLong
    (_req(leaving="one"), Err.MARSHALLING_ERROR),
    (_req(leaving="1,2"), Err.BAD_ARGUMENTS),  # fewer than 2 voters left
    (_req(members="server.1=localhost:2002:2001;2000,bogus=1"), Err.BAD_ARGUMENTS),
    (_req(joining="server.9=localhost:1:2;3", version=0x100000001), Err.BAD_VERSION),
])
def test_refusals(req: ReconfigRequest, code: int) -> None:
    assert _error(_planner(), req) == code


def test_checks_run_in_zookeepers_order() -> None:
    planner = _planner(synced=False)
    # a stale version is reported before a malformed spec, which comes before quorum
    assert _error(planner, _req(joining="some thing", version=5)) == Err.BAD_VERSION
    assert _error(planner, _req(joining="some thing")) == Err.BAD_ARGUMENTS
    assert _error(planner, _req(leaving="3")) == Err.NEW_CONFIG_NO_QUORUM
    planner = _planner()
    qv = planner.plan(_req(leaving="3"), ZXID)
    planner.proposed(qv)  # in flight until current() catches up
    assert _error(planner, _req(leaving="2")) == Err.RECONFIG_IN_PROGRESS


def test_bulk_membership_accepts_commas_for_newlines() -> None:
    members = ("server.1=localhost:2002:2001:participant;2000,"
               "server.2=localhost:2012:2011:participant;2010")
    qv = _planner().plan(_req(members=members), ZXID)
    assert sorted(qv.voting_members) == [1, 2] and qv.version == ZXID


def test_designated_leader() -> None:
    without_me = verifier_from_text(
        "server.2=localhost:2012:2011:participant\nserver.3=localhost:2022:2021:participant\n"
        "version=1")
    assert designated_leader(BASE, BASE, 1, [{1, 2}]) == 1  # still a voter, same address
    # the voter that acked the reconfig and the most proposals after it
    assert designated_leader(without_me, BASE, 1, [{1, 2, 3}, {1, 3}]) == 3
    assert designated_leader(without_me, BASE, 1, [{1, 2, 3}, {1}]) == 2

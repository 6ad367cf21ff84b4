"""Group membership with service discovery: member processes register themselves as
instances of a service; an observer prints the live member list as it shrinks and grows.

    python examples/membership_demo.py --members 3

What happens:
1. N member processes start; each registers an ephemeral node /demo-services/members/<id>.
2. One member is killed with SIGKILL: no goodbye, so its node disappears when the server
   expires its session (after the session timeout).
3. A new member starts and joins.
4. The remaining members exit cleanly: they unregister at once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

from zookapter.client import ZooKeeperClient
from zookapter.recipes.discovery import (
    ServiceInstance,
    SyncServiceDiscovery,
    SyncServiceRegistry,
)

SERVICE = "members"
BASE_PATH = "/demo-services"


def member(hosts: str, member_id: str, session_timeout: float) -> None:
    """A member: register, then stay until stdin closes (the demo's way to stop us)."""
    with ZooKeeperClient(hosts, timeout=session_timeout) as zk:
        registry = SyncServiceRegistry(zk, BASE_PATH)
        registry.register(SERVICE, ServiceInstance(
            SERVICE, id=member_id, address="127.0.0.1", port=9000 + os.getpid() % 1000,
            payload={"pid": os.getpid()}))
        print(f"  [{member_id}] registered (pid {os.getpid()})", flush=True)
        sys.stdin.read()
        registry.close()
        print(f"  [{member_id}] unregistered and leaving", flush=True)


class Demo:
    def __init__(self, hosts: str, session_timeout: float) -> None:
        self.hosts = hosts
        self.session_timeout = session_timeout
        self.procs: dict[str, subprocess.Popen] = {}
        self.current: list[str] = []
        self.changed = threading.Condition()

    def on_change(self, instances: list[ServiceInstance]) -> None:
        with self.changed:
            self.current = sorted(i.id for i in instances)
            print(f"observer: {len(self.current)} members {self.current}", flush=True)
            self.changed.notify_all()

    def wait_for(self, expected: list[str], timeout: float = 60.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.current == sorted(expected), timeout):
                raise TimeoutError(f"expected members {expected}, have {self.current}")

    def start_member(self, member_id: str) -> None:
        self.procs[member_id] = subprocess.Popen(
            [sys.executable, __file__, "member", member_id, "--hosts", self.hosts,
             "--session-timeout", str(self.session_timeout)], stdin=subprocess.PIPE)

    def kill_member(self, member_id: str) -> None:
        proc = self.procs.pop(member_id)
        proc.kill()
        proc.wait()

    def stop_member(self, member_id: str) -> None:
        proc = self.procs.pop(member_id)
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def run(hosts: str, members: int, session_timeout: float) -> None:
    demo = Demo(hosts, session_timeout)
    names = [f"member-{i}" for i in range(1, members + 1)]
    with ZooKeeperClient(hosts) as zk:
        with SyncServiceDiscovery(zk, BASE_PATH).cache(SERVICE) as cache:
            cache.on_change(demo.on_change)
            demo.on_change(cache.instances())
            try:
                if demo.current:
                    print("waiting for the members of an earlier run to expire")
                    demo.wait_for([])
                print(f"starting {members} members")
                for name in names:
                    demo.start_member(name)
                demo.wait_for(names)

                victim = names[0]
                print(f"killing {victim} with SIGKILL: it goes once its session expires")
                started = time.monotonic()
                demo.kill_member(victim)
                names.remove(victim)
                demo.wait_for(names)
                print(f"{victim} gone after {time.monotonic() - started:.1f}s")

                newcomer = f"member-{members + 1}"
                print(f"starting {newcomer}")
                demo.start_member(newcomer)
                names.append(newcomer)
                demo.wait_for(names)

                print("stopping the others cleanly: they unregister at once")
                for name in list(names):
                    demo.stop_member(name)
                demo.wait_for([])
                print("done: every member came and went as expected")
            finally:
                demo.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", choices=["demo", "member"], default="demo")
    parser.add_argument("member_id", nargs="?", help="(member role) this member's id")
    parser.add_argument("--hosts", default="127.0.0.1:2181")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--session-timeout", type=float, default=4.0,
                        help="members' session timeout in seconds (the server may raise it "
                             "to 2 x tickTime)")
    args = parser.parse_args()
    if args.role == "member":
        member(args.hosts, args.member_id, args.session_timeout)
    else:
        run(args.hosts, args.members, args.session_timeout)


if __name__ == "__main__":
    main()

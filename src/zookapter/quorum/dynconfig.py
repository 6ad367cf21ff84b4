"""The quorum shell's side of dynamic configuration: what follows when the Zab core
activates a configuration (`QuorumPeer.activate`), and the reconfig planner a leading
server's core gets.

- /zookeeper/config shows the active configuration's text (ZKDatabase
  .initConfigInZKDatabase: data = the text, version -1, mzxid = the config version; its data
  watchers fire). This is local state outside the digest, like in ZooKeeper; the reconfig
  txn itself writes the same text.
- The shell's own view (`QuorumPeerConfig.verifier`) follows, so connections to members
  added by a reconfig (election port, leader's quorum port) use their addresses.
- With reconfigEnabled, the configuration goes to disk as ZooKeeper puts it
  (setQuorumVerifier(qv, writeToDisk=true)): `<zoo.cfg>.dynamic.<version hex>` holds the
  member lines (sorted, no version line, no trailing newline) and zoo.cfg is rewritten
  without its server./group/weight/peerType lines (and without clientPort/clientPortAddress
  when our own server line names a client address), pointing at that file with
  dynamicConfigFile=; a restart then starts from the active configuration. On the first
  start from a zoo.cfg that still lists the members, a copy is kept as `<zoo.cfg>.bak`.
  Not done: the `.next` file of a reconfig proposed but not committed at a restart.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..protocol.consts import CONFIG_PATH, EventType
from ..server.config import parse_properties
from ..server.datatree import DataTree
from .config import QuorumPeerConfig, QuorumVerifier
from .javamaps import java_properties_order
from .leader import LeaderRole
from .peer import QuorumPeer
from .reconfig import ReconfigPlanner


def show_config(tree: DataTree | None, qv: QuorumVerifier, now_ms: int) -> None:
    """initConfigInZKDatabase: put `qv`'s text in /zookeeper/config."""
    node = None if tree is None else tree.get(CONFIG_PATH)
    if node is None:
        return
    node.data = qv.to_bytes()
    node.version = -1
    node.mzxid = qv.version
    node.mtime = now_ms
    node._stat_bytes = None
    if tree is not None and tree.watches is not None:
        tree.watches.trigger(CONFIG_PATH, EventType.NODE_DATA_CHANGED, qv.version, node.acl)


def with_verifier(qcfg: QuorumPeerConfig, qv: QuorumVerifier) -> QuorumPeerConfig:
    return replace(qcfg, verifier=qv)


def election_peers(qv: QuorumVerifier, my_id: int,
                   known: dict[int, tuple[str, int]]) -> dict[int, tuple[str, int]]:
    """Election addresses to dial: every other member of `qv` (a member that said hello
    from an address of its own keeps it)."""
    peers = {sid: m.election_addrs[0] for sid, m in qv.members.items() if sid != my_id}
    for sid, addr in known.items():
        if sid not in peers and sid != my_id:
            peers[sid] = addr
    return peers


def _atomic_write(path: Path, data: bytes) -> None:
    """AtomicFileWritingIdiom: a sibling temp file, fsynced, renamed over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def backup_static_config(config_path: str | None) -> None:
    """backupOldConfig: zoo.cfg still holds the members (no dynamicConfigFile yet)."""
    if config_path and os.path.isfile(config_path):
        tmp = Path(config_path + ".bak.tmp")
        shutil.copyfile(config_path, tmp)
        os.replace(tmp, config_path + ".bak")


_MOVED_KEYS = ("server.", "group", "weight", "dynamicConfigFile", "peerType")


def write_config(config_path: str | None, qv: QuorumVerifier, my_id: int) -> str | None:
    """Put `qv` on disk next to zoo.cfg and point zoo.cfg at it; the dynamic file's path."""
    if not config_path or not os.path.isfile(config_path):
        return None
    dynamic = Path(f"{config_path}.dynamic.{qv.version:x}")
    _atomic_write(dynamic, qv.dynamic_file_text().encode("utf-8"))
    me = qv.members.get(my_id)
    erase_client = me is not None and me.client_addr is not None and not me.client_from_static
    props = parse_properties(Path(config_path).read_text(encoding="utf-8"))
    lines = []
    for key in java_properties_order(props):
        moved = key.startswith(_MOVED_KEYS) or \
            erase_client and key.startswith(("clientPort", "clientPortAddress"))
        if not moved:
            lines.append(f"{key.strip()}={props[key].strip()}\n")
    lines.append(f"dynamicConfigFile={dynamic.resolve()}\n")
    _atomic_write(Path(config_path), "".join(lines).encode("utf-8"))
    return str(dynamic)


def planner_for(peer: QuorumPeer, qcfg: QuorumPeerConfig) -> ReconfigPlanner | None:
    """The reconfig checks for a leading server's core; None without reconfigEnabled
    (its requests then fail with ReconfigDisabled)."""
    if not qcfg.reconfig_enabled:
        return None

    def quorum_synced(qv: QuorumVerifier) -> bool:
        role = peer.role
        return isinstance(role, LeaderRole) and role.quorum_synced(qv)

    current: Callable[[], QuorumVerifier] = lambda: peer.config.verifier  # noqa: E731
    return ReconfigPlanner(current, quorum_synced,
                           standalone_enabled=qcfg.standalone_enabled,
                           multi_address_enabled=qcfg.multi_address_enabled)


__all__ = ["backup_static_config", "election_peers", "planner_for", "show_config",
           "with_verifier", "write_config"]

"""Dynamic configuration requests: getConfig (a getData of /zookeeper/config) and reconfig
(opcode 16).

The config node lives outside any chroot: Java's getConfig reads /zookeeper/config on the
server whatever the client's chroot. `ConfigRequest` gets that effect without any special
case in the connection core: the core rewrites the record's `path` field (the client-side key
under which the watch is registered and the reply reported), but `write()` always puts the
absolute config path on the wire. The server's notification names /zookeeper/config, which
lies outside the chroot, so the core hands it back unchanged and it matches the key.
(With a chroot, a config watch is not re-registered after a reconnect: setWatches would
prefix the chroot. Read the config again after a reconnect if that matters.)

`ReconfigRequest` is ZooKeeper's: comma-separated server specs to add and ids to remove
(incremental mode) or a whole new membership (bulk mode), and the config version it applies
to (-1: whatever is current). Standalone servers refuse it (ReconfigDisabledError or
UnimplementedError); ensembles need reconfigEnabled=true and an authorised user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..protocol.consts import CONFIG_PATH
from ..protocol.jute import Writer


@dataclass(slots=True)
class ConfigRequest:
    """getData of the config node. `path` is only the client-side key; see the module doc."""
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.ustring(CONFIG_PATH).bool(self.watch)


@dataclass(slots=True)
class ReconfigRequest:
    joiningServers: str | None
    leavingServers: str | None
    newMembers: str | None
    curConfigId: int

    def write(self, w: Writer) -> None:
        w.ustring(self.joiningServers).ustring(self.leavingServers)
        w.ustring(self.newMembers).long(self.curConfigId)


def server_list(servers: str | Iterable[str] | None) -> str | None:
    """A reconfig argument as the wire wants it: None, or one comma-separated string (a
    list of specs like "server.4=host:2888:3888;2181" or of ids is joined)."""
    if servers is None or isinstance(servers, str):
        return servers or None
    joined = ",".join(str(s) for s in servers)
    return joined or None

"""The ensemble part of zoo.cfg and the quorum verifiers built from it.

Mirrors ZooKeeper's QuorumPeerConfig (static/dynamic config, myid, peerType, limits), its
QuorumServer (`server.N=` spec parsing and printing) and the two QuorumVerifier flavours:
majority (`QuorumMaj`) and hierarchical groups/weights (`QuorumHierarchical`).

The verifier's text form, `to_string()`, is what ZooKeeper stores in /zookeeper/config, sends
inside every election notification and in NEWLEADER: one `server.N=...` line per member, each
ending in a newline, then `version=<hex>` without one. Members are listed in the iteration
order of Java's HashMap<Long, ...> (ascending ids for ids below the table size, so a member
`17` comes right after `1` in a 16-bucket table; see javamaps.py). The text was checked
against a real 3.8 ensemble (tests/test_quorum_interop.py) and parsing and printing against
Java's own classes (tests/test_quorum_config.py).

Nothing here resolves host names: names are kept as written, which is also what Java prints;
IP literals are printed in Java's InetAddress form (IPv6 uncompressed).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

from ..server.config import parse_properties
from .javamaps import java_long_order, java_properties_order

LONG_MIN = -(1 << 63)
LONG_MAX = (1 << 63) - 1
_JAVA_INT = re.compile(r"[+-]?[0-9]+\Z")
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0", "[::]"})
_WRONG_FORMAT = (" does not have the form server_config or server_config;client_config where "
                 "server_config is the pipe separated list of host:port:port or "
                 "host:port:port:type and client_config is port or host:port")


class ConfigError(ValueError):
    """An ensemble configuration ZooKeeper would refuse (ConfigException and friends)."""


class LearnerType(Enum):
    PARTICIPANT = "participant"
    OBSERVER = "observer"


# --- small Java-compatible parsers -----------------------------------------------------------

def java_split(s: str, sep: str) -> list[str]:
    """String.split with a literal separator: trailing empty strings are dropped."""
    parts = s.split(sep)
    if len(parts) == 1:
        return parts
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def java_long(text: str, what: str = "number") -> int:
    """Long.parseLong: optional sign and ASCII digits only, no surrounding blanks."""
    if text is None or not _JAVA_INT.match(text):
        raise ConfigError(f"{what} {text} is not a number")
    v = int(text)
    if not LONG_MIN <= v <= LONG_MAX:
        raise ConfigError(f"{what} {text} is out of range")
    return v


def _port(text: str, host: str) -> int:
    if not _JAVA_INT.match(text) or not -(1 << 31) <= int(text) < (1 << 31):
        raise ConfigError(f"Address unresolved: {host}:{text}")
    port = int(text)
    if not 0 <= port <= 0xFFFF:
        raise ConfigError(f"port out of range:{port}")
    return port


def get_host_and_port(s: str) -> list[str]:
    """ConfigUtils.getHostAndPort: `[v6]:a:b` keeps the bracketed host whole, else split(':')."""
    if s.startswith("["):
        i = s.find("]")
        if i < 0:
            raise ConfigError(f"{s} starts with '[' but has no matching ']:'")
        if i + 2 == len(s):
            raise ConfigError(f"{s} doesn't have a port after colon")
        if i + 2 < len(s):
            return [s[1:i], *java_split(s[i + 2:], ":")]
        return [s.replace("[", "").replace("]", "")]
    return java_split(s, ":")


def java_host_string(host: str) -> str:
    """The host as InetSocketAddress.getHostString() reports it: names as written, but IPv6
    literals in Java's uncompressed form (`::1` -> `0:0:0:0:0:0:0:1`), and IPv4-mapped ones
    as IPv4 (Java turns them into Inet4Address)."""
    if ":" not in host:
        return host
    addr, _, scope = host.partition("%")
    try:
        ip = ipaddress.IPv6Address(addr)
    except ValueError:
        return host
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    text = ":".join(f"{int(group, 16):x}" for group in ip.exploded.split(":"))
    return f"{text}%{scope}" if scope else text


def delimited_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def is_wildcard(host: str) -> bool:
    return host in _WILDCARD_HOSTS


# --- one server.N line -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QuorumServer:
    """One ensemble member. `addrs` holds (host, quorumPort, electionPort) per address; more
    than one only with multiAddress.enabled. `client_from_static` marks a client address that
    came from clientPort/clientPortAddress rather than the server line: Java does not print it."""
    id: int
    addrs: tuple[tuple[str, int, int], ...]
    type: LearnerType = LearnerType.PARTICIPANT
    client_addr: tuple[str, int] | None = None
    client_from_static: bool = False

    @property
    def hostname(self) -> str:
        return self.addrs[-1][0]

    @property
    def quorum_addrs(self) -> tuple[tuple[str, int], ...]:
        return tuple((h, q) for h, q, _ in self.addrs)

    @property
    def election_addrs(self) -> tuple[tuple[str, int], ...]:
        return tuple((h, e) for h, _, e in self.addrs)

    def to_string(self) -> str:
        # Java sorts the address set by host string before printing.
        ordered = sorted(self.addrs, key=lambda a: a[0])
        out = "|".join(f"{delimited_host(h)}:{q}:{e}" for h, q, e in ordered)
        out += ":" + self.type.value
        if self.client_addr is not None and not self.client_from_static:
            host, port = self.client_addr
            out += f";{delimited_host(host)}:{port}"
        return out

    __str__ = to_string


def parse_server(sid: int, spec: str, multi_address_enabled: bool = False) -> QuorumServer:
    """Parse the value of `server.<sid>=`, with QuorumServer's checks and messages."""
    server_client = java_split(spec, ";")
    if not server_client or len(server_client) > 2:
        raise ConfigError(spec + _WRONG_FORMAT)
    client_addr = None
    if len(server_client) == 2:
        client_parts = get_host_and_port(server_client[1])
        if len(client_parts) > 2:
            raise ConfigError(spec + _WRONG_FORMAT)
        host = java_host_string(client_parts[0]) if len(client_parts) == 2 else "0.0.0.0"
        client_addr = (host, _port(client_parts[-1], host))
    addresses = java_split(server_client[0], "|")
    if not multi_address_enabled and len(addresses) > 1:
        raise ConfigError("Multiple address feature is disabled, but multiple addresses were "
                          f"specified for sid {sid}")
    addrs: list[tuple[str, int, int]] = []
    learner_type: LearnerType | None = None
    for address in addresses:
        parts = get_host_and_port(address)
        if not 3 <= len(parts) <= 4:
            raise ConfigError(spec + _WRONG_FORMAT)
        host = java_host_string(parts[0])
        quorum_port, election_port = _port(parts[1], host), _port(parts[2], host)
        if quorum_port == election_port:
            raise ConfigError("Client and election port must be different! Please update the "
                              f"configuration file on server.{sid}")
        if len(parts) == 4:
            t = _learner_type(parts[3])
            if learner_type is not None and t is not learner_type:
                raise ConfigError(f"Multiple addresses should have similar roles: "
                                  f"{learner_type.value} vs {t.value}")
            learner_type = t
        if (host, quorum_port, election_port) not in addrs:  # Java keeps a set
            addrs.append((host, quorum_port, election_port))
    return QuorumServer(sid, tuple(addrs), learner_type or LearnerType.PARTICIPANT, client_addr)


def _learner_type(text: str) -> LearnerType:
    v = text.strip().lower()
    if v == "observer":
        return LearnerType.OBSERVER
    if v == "participant":
        return LearnerType.PARTICIPANT
    raise ConfigError(f"Unrecognised peertype: {text}")


# --- quorum verifiers ------------------------------------------------------------------------

@dataclass(frozen=True)
class QuorumVerifier:
    """Majority quorums (QuorumMaj). Subclassed for hierarchical quorums."""
    members: Mapping[int, QuorumServer]
    version: int = 0

    @property
    def voting_members(self) -> dict[int, QuorumServer]:
        return {i: s for i, s in self.members.items() if s.type is LearnerType.PARTICIPANT}

    @property
    def observing_members(self) -> dict[int, QuorumServer]:
        return {i: s for i, s in self.members.items() if s.type is LearnerType.OBSERVER}

    def is_voter(self, sid: int) -> bool:
        s = self.members.get(sid)
        return s is not None and s.type is LearnerType.PARTICIPANT

    def weight(self, sid: int) -> int:
        """A vote for a server of weight 0 never wins an election. QuorumMaj says 1 for
        everyone, observers included (FLE keeps non-voters out by other checks)."""
        return 1

    @cached_property
    def _voter_ids(self) -> frozenset[int]:
        """The voters, computed once: the leader asks for a quorum on every ACK."""
        return frozenset(self.voting_members)

    def contains_quorum(self, ids: Iterable[int]) -> bool:
        """True if the voting members among `ids` form a majority of the voting members.
        (Java's QuorumMaj counts the set as given; its callers only ever add voters.)"""
        voters = self._voter_ids
        return len(voters.intersection(ids)) > len(voters) // 2

    def member_lines(self) -> list[str]:
        return [f"server.{i}={self.members[i].to_string()}"
                for i in java_long_order(self.members)]

    def to_string(self) -> str:
        """QuorumVerifier.toString(): the /zookeeper/config text."""
        return "".join(line + "\n" for line in self.member_lines()) + f"version={self.version:x}"

    __str__ = to_string

    def to_bytes(self) -> bytes:
        return self.to_string().encode("utf-8")

    def dynamic_file_text(self, keep_version: bool = False) -> str:
        """What QuorumPeerConfig.writeDynamicConfig puts in zoo.cfg.dynamic.<version>: the
        lines sorted as strings, joined by newlines, no trailing newline, no version line."""
        lines = [ln for ln in self.to_string().split("\n")
                 if keep_version or not ln.startswith("version")]
        return "\n".join(sorted(lines))

    def with_version(self, version: int) -> QuorumVerifier:
        """The same membership under another version, the way Java's leader makes it when it
        stamps the initial config: parsed back from our own text (so client addresses that
        came from clientPort are gone, and map order follows the text)."""
        head = self.to_string().rpartition("\n")[0]
        text = (head + "\n" if head else "") + f"version={version:x}"
        return verifier_from_text(text, multi_address_enabled=True)

    def equivalent(self, other: QuorumVerifier) -> bool:
        """QuorumMaj.equals: same kind, and same version or same members."""
        return type(other) is type(self) and \
            (other.version == self.version or dict(other.members) == dict(self.members))


@dataclass(frozen=True)
class HierarchicalQuorumVerifier(QuorumVerifier):
    """QuorumHierarchical: a quorum is a majority of the non-empty groups, each of which has
    more than half of its weight present. `groups` maps gid -> member ids (in the order they
    were listed), `weights` maps sid -> weight (1 unless given)."""
    groups: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    weights: Mapping[int, int] = field(default_factory=dict)

    def weight(self, sid: int) -> int:
        # Java unboxes a missing weight into a NullPointerException; a server without a weight
        # has no say, so 0 (can never be elected) is the safe reading.
        return self.weights.get(sid, 0)

    def _group_of(self) -> dict[int, int]:
        return {sid: gid for gid, sids in self.groups.items() for sid in sids}

    def _group_weights(self) -> dict[int, int]:
        return {gid: sum(self.weights[s] for s in sids) for gid, sids in self.groups.items()}

    def contains_quorum(self, ids: Iterable[int]) -> bool:
        ids = set(ids)
        if not ids:
            return False
        group_of = self._group_of()
        present: dict[int, int] = {}
        for sid in ids:
            gid = group_of.get(sid)
            if gid is not None:
                present[gid] = present.get(gid, 0) + self.weights[sid]
        group_weights = self._group_weights()
        groups_with_weight = len(self.groups) - sum(1 for w in group_weights.values() if w == 0)
        majority_groups = sum(1 for gid, w in present.items() if w > group_weights[gid] // 2)
        return majority_groups > groups_with_weight // 2

    def to_string(self) -> str:
        lines = self.member_lines()
        # Java rebuilds each group's list by walking its HashMap<sid, gid>, so ids come out
        # in that map's hash order, not in the order they were written.
        group_of = self._group_of()
        listed: dict[int, list[int]] = {}
        for sid in java_long_order(group_of):
            listed.setdefault(group_of[sid], []).append(sid)
        for gid in java_long_order(listed):
            lines.append(f"group.{gid}=" + ":".join(str(s) for s in listed[gid]))
        for sid in java_long_order(self.weights):
            lines.append(f"weight.{sid}={self.weights[sid]}")
        return "".join(line + "\n" for line in lines) + f"version={self.version:x}"

    def equivalent(self, other: QuorumVerifier) -> bool:
        """QuorumHierarchical.equals: same version, or same members, groups and weights."""
        if not isinstance(other, HierarchicalQuorumVerifier):
            return False
        return other.version == self.version or \
            dict(other.members) == dict(self.members) and \
            self._group_of() == other._group_of() and dict(self.weights) == dict(other.weights)


def _key_id(key: str) -> int:
    """`server.3` -> 3 (Java: Long.parseLong of everything after the first dot)."""
    return java_long(key[key.find(".") + 1:], "server id")


def verifier_from_properties(props: Mapping[str, str], multi_address_enabled: bool = False
                             ) -> QuorumVerifier:
    """createQuorumVerifier: hierarchical as soon as any key starts with group/weight."""
    hierarchical = any(k.startswith(("group", "weight")) for k in props)
    members: dict[int, QuorumServer] = {}
    version = 0
    groups: dict[int, list[int]] = {}
    weights: dict[int, int] = {}
    seen_in_group: set[int] = set()
    for key in java_properties_order(props):
        value = props[key]
        if key.startswith("server."):
            sid = _key_id(key)
            members[sid] = parse_server(sid, value, multi_address_enabled)
        elif key == "version":
            version = _hex_long(value)
        elif hierarchical and key.startswith("group"):
            gid = _key_id(key)
            for part in value.split(":"):
                sid = java_long(part, "server id")
                if sid in seen_in_group:
                    raise ConfigError(f"Server {sid}is in multiple groups")
                seen_in_group.add(sid)
                groups.setdefault(gid, []).append(sid)
        elif hierarchical and key.startswith("weight"):
            weights[_key_id(key)] = java_long(value, "weight")
    if not hierarchical:
        return QuorumVerifier(members, version)
    for sid in java_long_order(members):
        if members[sid].type is LearnerType.PARTICIPANT:
            if sid not in seen_in_group:
                raise ConfigError(f"Server {sid}is not in a group")
            weights.setdefault(sid, 1)
    for sids in groups.values():
        for sid in sids:
            if sid not in weights:
                raise ConfigError(f"Server {sid} of a group has no weight and no server line")
    return HierarchicalQuorumVerifier(members, version, {g: tuple(s) for g, s in groups.items()},
                                      weights)


def _hex_long(text: str) -> int:
    try:
        v = int(text, 16) if re.fullmatch(r"[+-]?[0-9a-fA-F]+", text) else None
    except ValueError:
        v = None
    if v is None or not LONG_MIN <= v <= LONG_MAX:
        raise ConfigError(f"bad config version {text!r}")
    return v


def parse_dynamic_config(props: Mapping[str, str], *, standalone_enabled: bool = True,
                         backward_compatible: bool = False,
                         multi_address_enabled: bool = False) -> QuorumVerifier:
    """QuorumPeerConfig.parseDynamicConfig: build the verifier and check the member counts.
    Outside backward-compatibility mode (i.e. a dynamic file or config text) only server.,
    group, weight and version keys are allowed."""
    for key in props:
        if not backward_compatible and not key.startswith(("server.", "group", "weight")) \
                and key != "version":
            raise ConfigError(f"Unrecognised parameter: {key}")
    qv = verifier_from_properties(props, multi_address_enabled)
    voters, observers = len(qv.voting_members), len(qv.observing_members)
    if voters == 0:
        if not standalone_enabled:
            raise ConfigError("standaloneEnabled = false then number of participants should "
                              "be >0")
        if observers > 0:
            raise ConfigError("Observers w/o participants is an invalid configuration")
    elif voters == 1 and standalone_enabled and observers > 0:
        raise ConfigError("Observers w/o quorum is an invalid configuration")
    return qv


def verifier_from_text(text: str, multi_address_enabled: bool = False) -> QuorumVerifier:
    """QuorumPeer.configFromString: parse config text (as found in a notification, NEWLEADER
    or /zookeeper/config) back into a verifier."""
    return parse_dynamic_config(parse_properties(text), multi_address_enabled=multi_address_enabled)


def version_from_filename(filename: str) -> int | None:
    """`zoo.cfg.dynamic.100000000` -> 0x100000000; None if the suffix is not hex."""
    i = filename.rfind(".")
    if i < 0:
        return None
    try:
        return _hex_long(filename[i + 1:])
    except ConfigError:
        return None


def parse_myid(text: str | None) -> int:
    """The myid file: Java reads one line and Long.parseLong()s it, without trimming."""
    first = None if text is None or text == "" else re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    if first is None or not _JAVA_INT.match(first):
        raise ConfigError(f"serverid {first} is not a number")
    return java_long(first, "serverid")


# --- the quorum part of zoo.cfg --------------------------------------------------------------

def _bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ConfigError(f"Invalid option {value} for {key}. Choose 'true' or 'false.'")
    return v == "true"


def _int(props: Mapping[str, str], key: str, default: int) -> int:
    if key not in props:
        return default
    v = java_long(props[key].strip(), key)
    if not -(1 << 31) <= v < (1 << 31):
        raise ConfigError(f"{key} {props[key]} is out of range")
    return v


@dataclass(frozen=True)
class QuorumPeerConfig:
    """What QuorumPeerConfig derives from zoo.cfg (+ dynamic file, + myid) for replication."""
    verifier: QuorumVerifier
    my_id: int | None
    peer_type: LearnerType = LearnerType.PARTICIPANT
    tick_time_ms: int = 3000
    init_limit: int = 0
    sync_limit: int = 0
    election_alg: int = 3
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    multi_address_enabled: bool = False
    quorum_listen_on_all_ips: bool = False
    client_port_address: tuple[str, int] | None = None
    dynamic_config_file: str | None = None

    @property
    def is_distributed(self) -> bool:
        """Quorum mode: more than one voter, or standaloneEnabled=false."""
        return not self.standalone_enabled or len(self.verifier.voting_members) > 1

    @property
    def me(self) -> QuorumServer | None:
        return None if self.my_id is None else self.verifier.members.get(self.my_id)

    @property
    def init_limit_ms(self) -> int:
        return self.tick_time_ms * self.init_limit

    @property
    def sync_limit_ms(self) -> int:
        return self.tick_time_ms * self.sync_limit


def parse_quorum_peer_config(props: Mapping[str, str], myid_text: str | None = None, *,
                             dynamic_props: Mapping[str, str] | None = None
                             ) -> QuorumPeerConfig:
    """Read the ensemble settings of a parsed zoo.cfg (see server.config.parse_properties).

    `myid_text` is the content of dataDir/myid (None when the file is absent).
    `dynamic_props` is the parsed file named by dynamicConfigFile=, if any: its version comes
    from the file name, and server./group/weight lines may then not appear in zoo.cfg.
    """
    props = {k.strip(): v.strip() for k, v in props.items()}
    multi = _bool("multiAddress.enabled", props["multiAddress.enabled"]) \
        if "multiAddress.enabled" in props else False
    standalone = _bool("standaloneEnabled", props["standaloneEnabled"]) \
        if "standaloneEnabled" in props else True
    peer_type = _learner_type(props["peerType"]) if "peerType" in props \
        else LearnerType.PARTICIPANT
    election_alg = _int(props, "electionAlg", 3)
    if election_alg != 3:
        raise ConfigError("Invalid electionAlg value. Only 3 is supported.")
    dynamic_file = props.get("dynamicConfigFile")
    if dynamic_file is not None:
        for key in props:
            if key.startswith(("server.", "group", "weight")):
                raise ConfigError(f"parameter: {key} must be in a separate dynamic config file")
        if dynamic_props is None:
            raise ConfigError(f"Error processing {dynamic_file}: dynamic file not given")
        dyn = {k.strip(): v for k, v in dynamic_props.items()}
        if "version" in dyn:
            raise ConfigError("dynamic file shouldn't have version inside")
        version = version_from_filename(dynamic_file)
        if version is not None:
            dyn["version"] = f"{version:x}"
        verifier = parse_dynamic_config(dyn, standalone_enabled=standalone,
                                        multi_address_enabled=multi)
    else:
        verifier = parse_dynamic_config(props, standalone_enabled=standalone,
                                        backward_compatible=True, multi_address_enabled=multi)
    my_id = parse_myid(myid_text) if myid_text is not None else None
    client = _client_port_address(props)
    verifier, client = _setup_client_port(verifier, my_id, client)
    if my_id is not None:
        # setupPeerType: the server list wins over peerType=.
        peer_type = LearnerType.OBSERVER if my_id in verifier.observing_members \
            else LearnerType.PARTICIPANT
    cfg = QuorumPeerConfig(
        verifier=verifier, my_id=my_id, peer_type=peer_type,
        tick_time_ms=_int(props, "tickTime", 3000), init_limit=_int(props, "initLimit", 0),
        sync_limit=_int(props, "syncLimit", 0), election_alg=election_alg,
        standalone_enabled=standalone,
        reconfig_enabled=_bool("reconfigEnabled", props["reconfigEnabled"])
        if "reconfigEnabled" in props else False,
        multi_address_enabled=multi,
        quorum_listen_on_all_ips=_bool("quorumListenOnAllIPs", props["quorumListenOnAllIPs"])
        if "quorumListenOnAllIPs" in props else False,
        client_port_address=client, dynamic_config_file=dynamic_file)
    if cfg.is_distributed:
        if cfg.init_limit == 0:
            raise ConfigError("initLimit is not set")
        if cfg.sync_limit == 0:
            raise ConfigError("syncLimit is not set")
        if my_id is None:
            raise ConfigError("myid file is missing")
    return cfg


def _client_port_address(props: Mapping[str, str]) -> tuple[str, int] | None:
    port = _int(props, "clientPort", 0)
    address = props.get("clientPortAddress")
    if port == 0:
        if address is not None:
            raise ConfigError("clientPortAddress is set but clientPort is not set")
        return None
    return (address if address is not None else "0.0.0.0", port)


def _setup_client_port(qv: QuorumVerifier, my_id: int | None,
                       client: tuple[str, int] | None
                       ) -> tuple[QuorumVerifier, tuple[str, int] | None]:
    """setupClientPort: our own server line's client address wins (and must agree with
    clientPort/clientPortAddress); without one, the static address is attached to our server
    marked as static, so it is not printed in the config text."""
    me = None if my_id is None else qv.members.get(my_id)
    if me is None:
        return qv, client
    if client is not None and me.client_addr is not None:
        if is_wildcard(client[0]):
            conflict = client[1] != me.client_addr[1]
        else:
            conflict = client != me.client_addr
        if conflict:
            raise ConfigError(f"client address for this server (id = {my_id}) in static config "
                              f"file is {client} is different from client address found in "
                              f"dynamic file: {me.client_addr}")
    if me.client_addr is not None:
        return qv, me.client_addr
    members = dict(qv.members)
    members[me.id] = QuorumServer(me.id, me.addrs, me.type, client, client is not None)
    if isinstance(qv, HierarchicalQuorumVerifier):
        return HierarchicalQuorumVerifier(members, qv.version, qv.groups, qv.weights), client
    return QuorumVerifier(members, qv.version), client

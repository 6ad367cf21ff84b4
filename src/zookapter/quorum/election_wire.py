"""Bytes of the leader-election channel: QuorumCnxManager's handshake and framing, and
FastLeaderElection's notification message.

A server opens one TCP connection per peer to the peer's election port and first writes an
initial message (big-endian, no length prefix):

    long protocolVersion   -65536 (V1, one address) or -65535 (V2, multiAddress.enabled)
    long sid               sender's id (Long.MAX_VALUE: an observer without id)
    int  addrLength        1..2048
    byte addr[addrLength]  UTF-8 "host:port" of the sender's election address; V2 joins
                           several with "|"; IPv6 hosts in brackets

A first long >= 0 is a pre-3.5 peer that sent only its sid. After that, both directions carry
`int length` (1..512 KiB) + payload frames; each payload is one notification:

    int state, long leader, long zxid, long electionEpoch, long peerEpoch,
    int version (2), int configLength, byte config[configLength]

Older peers sent 28 bytes (no peerEpoch: it is the zxid's epoch) or 40 bytes (peerEpoch, and a
version field the receiver ignores). Byte layouts were checked against captures from Apache
ZooKeeper 3.8 in tests/testdata/quorum/.

`ChannelDecoder` is the sans-I/O reader for one connection: feed it received bytes, get back
the initial message (on accepted connections) and notification payloads.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum

from .config import get_host_and_port, is_wildcard, java_split

PROTOCOL_VERSION_V1 = -65536
PROTOCOL_VERSION_V2 = -65535
OBSERVER_ID = (1 << 63) - 1  # QuorumPeer.OBSERVER_ID: "I have no id", receiver invents one
INITIAL_ADDR_LEN_MAX = 2048  # QuorumCnxManager.maxBuffer
FRAME_LEN_MAX = 512 * 1024  # QuorumCnxManager.PACKETMAXSIZE
NOTIFICATION_VERSION = 2  # Notification.CURRENTVERSION

_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")
_PORT = re.compile(r"[+-]?[0-9]+\Z")
_HEAD = struct.Struct(">qqi")  # protocolVersion, sid, addrLength
_NOTE28 = struct.Struct(">iqqq")  # state, leader, zxid, electionEpoch
_NOTE = struct.Struct(">iqqqqii")  # ... peerEpoch, version, configLength


class ServerState(IntEnum):
    """QuorumPeer.ServerState, by ordinal (the notification's `state`)."""
    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


class ElectionWireError(ValueError):
    """Bytes a Java peer would reject (it closes the connection or skips the message)."""


# --- initial message -------------------------------------------------------------------------

def format_address(host: str, port: int) -> str:
    """NetUtils.formatInetAddr: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class InitialMessage:
    """The connecting side's identification. `addresses` are election addresses; an empty
    tuple (legacy sid-only message, or only wildcard addresses) means "use the config"."""
    sid: int
    addresses: tuple[tuple[str, int], ...] = ()
    protocol_version: int = PROTOCOL_VERSION_V1

    def encode(self) -> bytes:
        if self.protocol_version >= 0:  # legacy: the sid alone
            return _LONG.pack(self.sid)
        addrs = self.addresses if self.protocol_version == PROTOCOL_VERSION_V2 \
            else self.addresses[:1]
        raw = "|".join(format_address(h, p) for h, p in addrs).encode("utf-8")
        if not 0 < len(raw) <= INITIAL_ADDR_LEN_MAX:
            raise ElectionWireError(f"election address of {len(raw)} bytes")
        return _HEAD.pack(self.protocol_version, self.sid, len(raw)) + raw


def initial_message_size(buf: bytes | bytearray | memoryview) -> int | None:
    """Bytes the initial message at the start of `buf` takes, None if more are needed.
    Raises on values QuorumCnxManager rejects."""
    if len(buf) < 8:
        return None
    (version,) = _LONG.unpack_from(buf, 0)
    if version >= 0:
        return 8
    if version not in (PROTOCOL_VERSION_V1, PROTOCOL_VERSION_V2):
        raise ElectionWireError(f"Got unrecognized protocol version {version}")
    if len(buf) < _HEAD.size:
        return None
    _, _, n = _HEAD.unpack_from(buf, 0)
    if n <= 0 or n > INITIAL_ADDR_LEN_MAX:
        raise ElectionWireError(f"Unreasonable buffer length: {n}")
    return _HEAD.size + n if len(buf) >= _HEAD.size + n else None


def decode_initial_message(buf: bytes) -> InitialMessage:
    """Parse a complete initial message (see initial_message_size)."""
    size = initial_message_size(buf)
    if size is None or size != len(buf):
        raise ElectionWireError(f"initial message of {len(buf)} bytes is incomplete or long")
    (version,) = _LONG.unpack_from(buf, 0)
    if version >= 0:
        return InitialMessage(version, (), version)
    _, sid, _ = _HEAD.unpack_from(buf, 0)
    text = bytes(buf[_HEAD.size:]).decode("utf-8", "replace")
    addresses = []
    for item in java_split(text, "|"):
        try:
            parts = get_host_and_port(item)
        except ValueError:
            raise ElectionWireError(f"Badly formed address: {item}")
        if len(parts) != 2:
            raise ElectionWireError(f"Badly formed address: {item}")
        if not _PORT.match(parts[1]) or not 0 <= int(parts[1]) <= 0xFFFF:
            raise ElectionWireError(f"Bad port number: {parts[1]}")
        if not is_wildcard(parts[0]):
            addresses.append((parts[0], int(parts[1])))
    return InitialMessage(sid, tuple(addresses), version)


# --- notifications ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Notification:
    """One FastLeaderElection message: the sender's state and the vote it proposes.
    `state` stays a plain int so an unknown value survives decoding (Java ignores such a
    message from a voter, but still answers a non-voter). `config` is the sender's
    QuorumVerifier text, present only when version > 1."""
    state: int
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    version: int = NOTIFICATION_VERSION
    config: bytes = b""

    def encode(self) -> bytes:
        """The payload as Java's buildMsg writes it (no length prefix)."""
        if self.version > 1:
            return _NOTE.pack(self.state, self.leader, self.zxid, self.election_epoch,
                              self.peer_epoch, self.version, len(self.config)) + self.config
        # The 40-byte form of pre-reconfig peers.
        return _NOTE.pack(self.state, self.leader, self.zxid, self.election_epoch,
                          self.peer_epoch, self.version, 0)[:40]

    def frame(self) -> bytes:
        return frame(self.encode())

    @staticmethod
    def decode(payload: bytes | bytearray | memoryview) -> Notification:
        """Parse like FastLeaderElection's WorkerReceiver, including the 28/40-byte forms."""
        size = len(payload)
        if size < 28:
            raise ElectionWireError(f"Got a short response: {size}")
        state, leader, zxid, election_epoch = _NOTE28.unpack_from(payload, 0)
        if size == 28:
            return Notification(state, leader, zxid, election_epoch, zxid >> 32, 0)
        if size < 36:
            raise ElectionWireError(f"partial notification of {size} bytes")
        (peer_epoch,) = _LONG.unpack_from(payload, 28)
        if size == 40:  # the version field is there but not read
            return Notification(state, leader, zxid, election_epoch, peer_epoch, 0)
        if size < 40:
            raise ElectionWireError(f"partial notification of {size} bytes")
        (version,) = _INT.unpack_from(payload, 36)
        if version <= 1:
            return Notification(state, leader, zxid, election_epoch, peer_epoch, version)
        if size < 44:
            raise ElectionWireError(f"partial notification of {size} bytes")
        (n,) = _INT.unpack_from(payload, 40)
        if n < 0 or n > size:
            raise ElectionWireError(f"Invalid configLength in notification message: {n}")
        if 44 + n > size:
            raise ElectionWireError(f"partial notification of {size} bytes")
        return Notification(state, leader, zxid, election_epoch, peer_epoch, version,
                            bytes(payload[44:44 + n]))

    @property
    def config_text(self) -> str:
        return self.config.decode("utf-8", "replace")


def frame(payload: bytes) -> bytes:
    if not 0 < len(payload) <= FRAME_LEN_MAX:
        raise ElectionWireError(f"frame of {len(payload)} bytes")
    return _INT.pack(len(payload)) + payload


class ChannelDecoder:
    """Splits one election connection's byte stream. With `expect_initial` (the accepting
    side) the first item returned is the InitialMessage; then raw notification payloads.
    Errors are raised as ElectionWireError: Java closes the connection on them."""

    __slots__ = ("_buf", "_need_initial")

    def __init__(self, expect_initial: bool) -> None:
        self._buf = bytearray()
        self._need_initial = expect_initial

    def feed(self, data: bytes) -> list[InitialMessage | bytes]:
        self._buf += data
        out: list[InitialMessage | bytes] = []
        if self._need_initial:
            size = initial_message_size(self._buf)
            if size is None:
                return out
            out.append(decode_initial_message(bytes(self._buf[:size])))
            del self._buf[:size]
            self._need_initial = False
        while len(self._buf) >= 4:
            (n,) = _INT.unpack_from(self._buf, 0)
            if n <= 0 or n > FRAME_LEN_MAX:
                raise ElectionWireError(f"Received packet with invalid packet: {n}")
            if len(self._buf) < 4 + n:
                break
            out.append(bytes(self._buf[4:4 + n]))
            del self._buf[:4 + n]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)

"""The leader<->learner (Zab) channel: QuorumPacket records and their payloads.

Every message on a learner's connection to the leader's quorum port is one jute QuorumPacket
written with no length prefix: `int type, long zxid, buffer data, vector<Id> authinfo`.
`PacketDecoder` therefore has to walk the record structure to find where a packet ends.
The exception is SNAP: the leader writes the snapshot stream (then the jute string
"BenWasHere") right after the SNAP packet; the decoder stops after SNAP and hands the rest
of the buffer to whoever reads the snapshot (`take_remaining`).

The `data` payloads are built with DataOutputStream or jute (same big-endian bytes):
  REQUEST            long sessionId, int cxid, int type, then the raw request body
  PROPOSAL / INFORM  TxnHeader + txn record [+ TxnDigest]  (= a txn log entry's payload)
  PING (learner)     (long sessionId, int timeoutMs)*  for sessions touched since last ping
  REVALIDATE         learner: long sessionId, int timeoutMs; leader: long sessionId, bool valid
  FOLLOWERINFO/OBSERVERINFO   LearnerInfo {long sid, int protocolVersion, long configVersion}
  LEADERINFO         int protocolVersion (0x10000)
  ACKEPOCH           int currentEpoch, or -1 if the learner had already accepted this epoch
  NEWLEADER          the leader's QuorumVerifier text
  COMMITANDACTIVATE  long designatedLeader;  INFORMANDACTIVATE  long designatedLeader + proposal
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ..protocol.jute import JUTE_MAXBUFFER_DEFAULT, JuteError, Reader, Writer
from ..protocol.records import Id
from ..protocol.txns import Txn
from ..storage.txnlog import Digest, decode_payload, encode_payload

ZAB_PROTOCOL_VERSION = 0x10000  # what LEADERINFO and LearnerInfo carry since ZooKeeper 3.4
SNAP_SIGNATURE = "BenWasHere"

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_HEAD = struct.Struct(">iq")
_HEAD_LEN = struct.Struct(">iqi")  # type, zxid and the data length: a packet's first 16 bytes
_NO_AUTHINFO = b"\xff\xff\xff\xff"  # vector<Id> authinfo = null
_TOUCH = struct.Struct(">qi")
_REQUEST_HEAD = struct.Struct(">qii")
_LEARNER_INFO = struct.Struct(">qiq")


class PacketType(IntEnum):
    """Leader's packet type constants."""
    REQUEST = 1
    PROPOSAL = 2
    ACK = 3
    COMMIT = 4
    PING = 5
    REVALIDATE = 6
    SYNC = 7
    INFORM = 8
    COMMITANDACTIVATE = 9
    NEWLEADER = 10
    FOLLOWERINFO = 11
    UPTODATE = 12
    DIFF = 13
    TRUNC = 14
    SNAP = 15
    OBSERVERINFO = 16
    LEADERINFO = 17
    ACKEPOCH = 18
    INFORMANDACTIVATE = 19


class PacketError(ValueError):
    """A malformed quorum packet or payload."""


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | (counter & 0xFFFFFFFF)


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def counter_of(zxid: int) -> int:
    return zxid & 0xFFFFFFFF


# --- the record ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QuorumPacket:
    type: int
    zxid: int
    data: bytes | None = None
    authinfo: tuple[Id, ...] | None = None

    def write(self, w: Writer) -> None:
        w.raw(_HEAD.pack(self.type, self.zxid)).buffer(self.data)
        if self.authinfo is None:
            w.int(-1)
        else:
            w.int(len(self.authinfo))
            for ident in self.authinfo:
                ident.write(w)

    def encode(self) -> bytes:
        if self.authinfo is None:  # every packet but a learner's REQUEST / PING reply
            data = self.data
            if data is None:
                return _HEAD_LEN.pack(self.type, self.zxid, -1) + _NO_AUTHINFO
            return b"".join((_HEAD_LEN.pack(self.type, self.zxid, len(data)), data,
                             _NO_AUTHINFO))
        w = Writer()
        self.write(w)
        return w.getvalue()

    @staticmethod
    def read(r: Reader) -> QuorumPacket:
        typ, zxid = r.int(), r.long()
        data = r.buffer()
        ids = r.vector(Id.read)
        return QuorumPacket(typ, zxid, data, None if ids is None else tuple(ids))

    @staticmethod
    def decode(buf: bytes) -> QuorumPacket:
        r = Reader(buf)
        pkt = QuorumPacket.read(r)
        if r.remaining():
            raise PacketError(f"{r.remaining()} bytes after the packet")
        return pkt

    @property
    def name(self) -> str:
        try:
            return PacketType(self.type).name
        except ValueError:
            return f"UNKNOWN{self.type}"


def packet_size(buf: bytes | bytearray | memoryview, max_len: int = 2 * JUTE_MAXBUFFER_DEFAULT,
                start: int = 0) -> int | None:
    """Length of the QuorumPacket at `start` in `buf`, or None if it is not complete yet."""
    pos = start + _HEAD.size + 4
    if len(buf) < pos:
        return None
    (n,) = _INT.unpack_from(buf, start + _HEAD.size)
    if n < -1 or n > max_len:
        raise PacketError(f"unreasonable data length {n}")
    pos += max(n, 0) + 4
    if len(buf) < pos:
        return None
    (count,) = _INT.unpack_from(buf, pos - 4)
    if count < -1 or count > max_len:
        raise PacketError(f"unreasonable authinfo count {count}")
    for _ in range(max(count, 0) * 2):  # each Id is two jute strings
        if len(buf) < pos + 4:
            return None
        (n,) = _INT.unpack_from(buf, pos)
        if n < -1 or n > max_len:
            raise PacketError(f"unreasonable string length {n}")
        pos += 4 + max(n, 0)
    return pos - start if len(buf) >= pos else None


class PacketDecoder:
    """Splits a quorum-port byte stream into QuorumPackets (sans-I/O)."""

    __slots__ = ("_buf", "max_len", "stopped_at_snap")

    def __init__(self, max_len: int = 2 * JUTE_MAXBUFFER_DEFAULT) -> None:
        self._buf = bytearray()
        self.max_len = max_len
        self.stopped_at_snap = False

    def feed(self, data: bytes) -> list[QuorumPacket]:
        """Packets completed by `data`. Packets without authinfo (all but some learner
        REQUESTs) are cut straight out of the buffer; consumed bytes are dropped once."""
        buf = self._buf
        buf += data
        out: list[QuorumPacket] = []
        pos, end = 0, len(buf)
        while not self.stopped_at_snap and end - pos >= _HEAD_LEN.size:
            typ, zxid, n = _HEAD_LEN.unpack_from(buf, pos)
            if n < -1 or n > self.max_len:
                raise PacketError(f"unreasonable data length {n}")
            data_end = pos + _HEAD_LEN.size + (n if n > 0 else 0)
            if end < data_end + 4:
                break
            (count,) = _INT.unpack_from(buf, data_end)
            if count == -1 or count == 0:
                pkt = QuorumPacket(typ, zxid,
                                   None if n < 0 else bytes(buf[pos + _HEAD_LEN.size:data_end]),
                                   None if count < 0 else ())
                pos = data_end + 4
            else:
                size = packet_size(buf, self.max_len, pos)
                if size is None:
                    break
                try:
                    pkt = QuorumPacket.decode(bytes(buf[pos:pos + size]))
                except JuteError as e:
                    raise PacketError(str(e))
                pos += size
            out.append(pkt)
            self.stopped_at_snap = typ == PacketType.SNAP
        if pos:
            del buf[:pos]
        return out

    def take_remaining(self) -> bytes:
        """Bytes after a SNAP packet (the start of the snapshot stream); resumes decoding."""
        rest = bytes(self._buf)
        self._buf.clear()
        self.stopped_at_snap = False
        return rest


# --- payloads --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LearnerInfo:
    sid: int
    protocol_version: int = ZAB_PROTOCOL_VERSION
    config_version: int = 0

    def encode(self) -> bytes:
        return _LEARNER_INFO.pack(self.sid, self.protocol_version, self.config_version)

    @staticmethod
    def decode(data: bytes) -> LearnerInfo:
        """The leader reads as much as is there: sid (8), + version (12), + config (20).
        Missing fields: protocol version 0 (pre-Zab-1.0), config version -1 (unknown)."""
        if len(data) < 8:
            raise PacketError(f"LearnerInfo of {len(data)} bytes")
        (sid,) = _LONG.unpack_from(data, 0)
        version = _INT.unpack_from(data, 8)[0] if len(data) >= 12 else 0
        config = _LONG.unpack_from(data, 12)[0] if len(data) >= 20 else -1
        return LearnerInfo(sid, version, config)


@dataclass(frozen=True, slots=True)
class ForwardedRequest:
    """REQUEST: a client write forwarded by a learner; `body` is the request record that
    followed the RequestHeader on the client connection."""
    session_id: int
    cxid: int
    type: int
    body: bytes = b""

    def encode(self) -> bytes:
        return _REQUEST_HEAD.pack(self.session_id, self.cxid, self.type) + self.body

    @staticmethod
    def decode(data: bytes) -> ForwardedRequest:
        if len(data) < _REQUEST_HEAD.size:
            raise PacketError(f"REQUEST data of {len(data)} bytes")
        sid, cxid, typ = _REQUEST_HEAD.unpack_from(data, 0)
        return ForwardedRequest(sid, cxid, typ, bytes(data[_REQUEST_HEAD.size:]))


def encode_touches(touches: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> bytes:
    """A learner's PING reply data: (sessionId, timeoutMs) per touched session."""
    return b"".join(_TOUCH.pack(s, t) for s, t in touches)


def decode_touches(data: bytes | None) -> list[tuple[int, int]]:
    data = data or b""
    if len(data) % _TOUCH.size:
        raise PacketError(f"PING data of {len(data)} bytes")
    return [_TOUCH.unpack_from(data, i) for i in range(0, len(data), _TOUCH.size)]


def encode_revalidate_request(session_id: int, timeout_ms: int) -> bytes:
    return _TOUCH.pack(session_id, timeout_ms)


def decode_revalidate_request(data: bytes) -> tuple[int, int]:
    if len(data) < _TOUCH.size:
        raise PacketError(f"REVALIDATE data of {len(data)} bytes")
    return _TOUCH.unpack_from(data, 0)


def encode_revalidate_reply(session_id: int, valid: bool) -> bytes:
    return _LONG.pack(session_id) + (b"\x01" if valid else b"\x00")


def decode_revalidate_reply(data: bytes) -> tuple[int, bool]:
    if len(data) < 9:
        raise PacketError(f"REVALIDATE reply of {len(data)} bytes")
    return _LONG.unpack_from(data, 0)[0], data[8] != 0


def encode_proposal(txn: Txn, digest: Digest | None = None) -> bytes:
    """PROPOSAL / INFORM data: the same bytes a txn log entry holds."""
    return encode_payload(txn, digest)


def decode_proposal(data: bytes) -> tuple[Txn, Digest | None]:
    try:
        return decode_payload(data)
    except (JuteError, ValueError) as e:
        raise PacketError(f"bad proposal: {e}")


def encode_int(v: int) -> bytes:
    """LEADERINFO / ACKEPOCH data."""
    return _INT.pack(v)


def decode_int(data: bytes | None) -> int:
    if data is None or len(data) < 4:
        raise PacketError("missing int payload")
    return _INT.unpack_from(data, 0)[0]


def encode_activate(designated_leader: int, proposal: bytes = b"") -> bytes:
    """COMMITANDACTIVATE (no proposal) / INFORMANDACTIVATE data."""
    return _LONG.pack(designated_leader) + proposal


def decode_activate(data: bytes) -> tuple[int, bytes]:
    if len(data) < 8:
        raise PacketError(f"activate data of {len(data)} bytes")
    return _LONG.unpack_from(data, 0)[0], bytes(data[8:])


# --- packets as the Java peers build them ----------------------------------------------------

def follower_info(accepted_epoch: int, info: LearnerInfo, observer: bool = False
                  ) -> QuorumPacket:
    typ = PacketType.OBSERVERINFO if observer else PacketType.FOLLOWERINFO
    return QuorumPacket(typ, make_zxid(accepted_epoch, 0), info.encode())


def leader_info(new_epoch: int) -> QuorumPacket:
    return QuorumPacket(PacketType.LEADERINFO, make_zxid(new_epoch, 0),
                        encode_int(ZAB_PROTOCOL_VERSION))


def ack_epoch(last_logged_zxid: int, current_epoch: int) -> QuorumPacket:
    """`current_epoch` = -1 when the learner had already accepted the leader's epoch."""
    return QuorumPacket(PacketType.ACKEPOCH, last_logged_zxid, encode_int(current_epoch))


def new_leader(new_epoch: int, config_text: str) -> QuorumPacket:
    return QuorumPacket(PacketType.NEWLEADER, make_zxid(new_epoch, 0),
                        config_text.encode("utf-8"))


def proposal(txn: Txn, digest: Digest | None = None) -> QuorumPacket:
    return QuorumPacket(PacketType.PROPOSAL, txn.zxid, encode_proposal(txn, digest))


def ping_reply(ping: QuorumPacket, touches: list[tuple[int, int]]) -> QuorumPacket:
    """A learner echoes the leader's PING (zxid and authinfo) with its touched sessions."""
    return QuorumPacket(PacketType.PING, ping.zxid, encode_touches(touches), ping.authinfo)


def simple(typ: PacketType, zxid: int) -> QuorumPacket:
    """ACK, COMMIT, UPTODATE, DIFF, TRUNC, SNAP, SYNC and the leader's PING: no data."""
    return QuorumPacket(typ, zxid)

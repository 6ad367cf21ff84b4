"""Torn and corrupted txn logs at start-up, byte by byte.

A real dataDir is produced by the server (start-up snapshot + `log.1`, a small preAllocSize so
the log is followed by preallocated zeros) whose last record is one of: a create, a multi
(two creates and a setData), a setData, a closeSession. Then:

- torn tail: the file is cut at EVERY offset inside the last record, and the rest is either
  missing (file ends there), zeros (as preallocation leaves it), 0xFF bytes, or random garbage;
  or the record is complete but the byte at that offset is flipped (preallocated zeros after).
  Recovery (`storage.database.Database.load`, the server's own start-up path) must give the
  state before the last txn, cut the file back to the record's offset with a warning naming
  file and offset, and then accept a new log + restart. Which outcome is right is decided by
  ZooKeeper's FileTxnIterator rules, spelled out in `expected_outcome`: a record that cannot be
  complete (short header, negative length or one running past EOF, no 'B' end marker) is a torn
  tail; a zero length is the end of the log (preallocated zeros); a complete record whose CRC
  fails is torn only if nothing but zeros follows, else the log is corrupt. A sample of cuts
  also goes through the full in-process server (kazoo reads, a write, a restart).
- corruption in the middle: one byte flipped in an earlier record's payload or CRC, or a wrong
  magic: the start must fail with CorruptLogError naming file and offset, the CLI server must
  exit with that message, and no file in the dataDir may change.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from support import dump_server, free_port

from zookapter.protocol.consts import Op
from zookapter.protocol.records import OPEN_ACL_UNSAFE
from zookapter.protocol.txns import CreateTxn, Txn
from zookapter.storage.database import Database
from zookapter.storage.files import VERSION_DIR
from zookapter.storage.txnlog import CorruptLogError, TxnLogWriter, iter_log_file
from zookapter.testing import ZookapterServer

SRC = Path(__file__).resolve().parent.parent / "src"
STAT = struct.Struct(">qqqqiiiqiiq")
PREALLOC_KB = "16"
KINDS = ("create", "multi", "set", "close")
VARIANTS = ("cut", "zeros", "ff", "garbage", "flip")
RECORD_HEAD = struct.Struct(">qi")


# --- building dataDirs -------------------------------------------------------------------------

def _kazoo(hosts: str) -> KazooClient:
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=30)
    return zk


def _build(data_dir: Path, kind: str) -> None:
    """A dataDir whose last log record is `kind` (the server is stopped under the client)."""
    with ZookapterServer(data_dir=str(data_dir),
                         props={"zookeeper.preAllocSize": PREALLOC_KB}) as s:
        zk = _kazoo(s.hosts)
        zk.create("/t/a", b"a0", makepath=True)
        for i in range(5):
            zk.create(f"/t/n{i}", b"n" * (i * 40))
        zk.set("/t/a", b"a1")
        t = zk.transaction()
        t.create("/t/pair1", b"p")
        t.create("/t/pair2", b"p")
        t.commit()
        zk.delete("/t/n0")
        if kind == "create":
            zk.create("/t/last", b"L" * 60)
        elif kind == "multi":
            t = zk.transaction()
            t.create("/t/m1", b"m1")
            t.create("/t/m2", b"m2")
            t.set_data("/t/a", b"a-multi")
            assert not any(isinstance(r, Exception) for r in t.commit())
        elif kind == "set":
            zk.set("/t/a", b"S" * 33)
        elif kind == "close":
            zk.stop()
        else:
            raise AssertionError(kind)
        # The server stops first: nothing (not even a closeSession) follows the last record.
    zk.stop()
    zk.close()


def _state(db) -> tuple:
    tree = {p: (n.data, STAT.unpack(n.stat_bytes())) for p, n in db.tree.nodes.items()}
    return tree, dict(db.sessions), db.last_zxid


def _sums(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def _only_log(vdir: Path) -> Path:
    logs = sorted(vdir.glob("log.*"))
    assert len(logs) == 1, logs
    return logs[0]


class Pristine:
    def __init__(self, root: Path, kind: str) -> None:
        self.kind = kind
        self.data_dir = root / f"pristine-{kind}"
        _build(self.data_dir, kind)
        self.vdir = self.data_dir / VERSION_DIR
        self.log = _only_log(self.vdir)
        self.log_bytes = self.log.read_bytes()
        it = iter_log_file(self.log)
        entries = list(it)
        assert it.torn is None and it.end is not None
        self.record = entries[-1].offset  # where the last record starts ...
        self.end = it.end[1]  # ... and ends
        self.last_txn = entries[-1].txn
        assert len(self.log_bytes) > self.end, "expected preallocated zeros after the records"
        self.full = _state(self.load_copy(root / "probe", self.log_bytes))
        self.before = _state(self.load_copy(root / "probe", self.log_bytes[:self.record]))
        assert self.full != self.before
        assert self.before[2] == self.last_txn.zxid - 1

    def copy_to(self, work: Path, log_bytes: bytes) -> Path:
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(self.data_dir, work)
        (work / VERSION_DIR / self.log.name).write_bytes(log_bytes)
        return work

    def load_copy(self, work: Path, log_bytes: bytes):
        return Database(str(self.copy_to(work, log_bytes)), None).load()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("torn")
    return {kind: Pristine(root, kind) for kind in KINDS}


# --- what ZooKeeper's FileTxnIterator makes of the bytes at a record offset ----------------------

def expected_outcome(buf: bytes, offset: int) -> str:
    rest = buf[offset:]
    if len(rest) < RECORD_HEAD.size:
        return "torn"
    crc, length = RECORD_HEAD.unpack_from(rest)
    if length == 0:
        return "end"  # preallocated zeros: the log ends here, nothing is torn
    if length < 0 or RECORD_HEAD.size + length + 1 > len(rest):
        return "torn"
    if rest[RECORD_HEAD.size + length] != ord("B"):
        return "torn"
    if zlib.adler32(rest[RECORD_HEAD.size:RECORD_HEAD.size + length]) == crc:
        return "intact"
    if rest[RECORD_HEAD.size + length + 1:].count(0) == len(rest) - RECORD_HEAD.size - length - 1:
        return "torn"  # the unsynced last write: only zeros follow
    return "corrupt"


def _mutate(p: Pristine, cut: int, variant: str, rng: random.Random) -> bytes:
    head = p.log_bytes[:cut]
    size = len(p.log_bytes)
    if variant == "cut":
        return head
    if variant == "zeros":
        return head + bytes(size - cut)
    if variant == "ff":
        return head + b"\xff" * (size - cut)
    if variant == "flip":  # the whole record, one byte of it wrong (a page half persisted)
        buf = bytearray(p.log_bytes)
        buf[cut] ^= 0x10
        return bytes(buf)
    return head + rng.randbytes(size - cut)


def _next_txn(db, zxid: int, path: str) -> Txn:
    root = db.tree.nodes["/"]
    return Txn(0x1234, 1, zxid, int(time.time() * 1000), Op.CREATE,
               CreateTxn(path, b"after", tuple(OPEN_ACL_UNSAFE), False, root.cversion + 1))


def _torn_warnings(caplog, log: Path, offset: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and str(log) in r.getMessage()
            and str(offset) in r.getMessage()]


# --- torn tails, every byte -----------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_torn_last_record_every_offset(pristine, kind, tmp_path, caplog):
    p = pristine[kind]
    rng = random.Random(f"torn-{kind}")
    work = tmp_path / "work"
    outcomes: dict[str, int] = {}
    for cut in range(p.record + 1, p.end):
        for variant in VARIANTS:
            where = f"{kind}: cut at {cut} (record {p.record}..{p.end}), {variant}"
            buf = _mutate(p, cut, variant, rng)
            expected = expected_outcome(buf, p.record)
            outcomes[expected] = outcomes.get(expected, 0) + 1
            p.copy_to(work, buf)
            vdir = work / VERSION_DIR
            log = vdir / p.log.name
            sums = _sums(vdir)
            caplog.clear()
            if expected == "corrupt":
                with pytest.raises(CorruptLogError) as info:
                    Database(str(work), None).load()
                assert (info.value.file, info.value.offset) == (log, p.record), where
                assert _sums(vdir) == sums, where
                continue
            assert expected != "intact", where
            with caplog.at_level(logging.WARNING, logger="zookapter.storage"):
                db = Database(str(work), None).load()
            assert _state(db) == p.before, where
            if expected == "torn":
                assert db.torn == (log, p.record), where
                assert log.stat().st_size == p.record, where
                assert _torn_warnings(caplog, log, p.record), where
                others = {k: v for k, v in sums.items() if k != log.name}
                assert {k: v for k, v in _sums(vdir).items() if k != log.name} == others, where
            else:  # a zero length: the log simply ends (ZooKeeper's preallocation rule)
                assert db.torn is None and _sums(vdir) == sums, where
            # The next start appends a new log file; a restart reads both.
            nxt = _next_txn(db, db.last_zxid + 1, "/after")
            with TxnLogWriter(vdir, nxt.zxid, prealloc_size=4096) as w:
                w.append(nxt)
            db2 = Database(str(work), None).load()
            assert db2.torn is None and db2.last_zxid == nxt.zxid, where
            tree2, sessions2, _ = _state(db2)
            assert tree2.pop("/after")[0] == b"after", where
            assert {k: v for k, v in tree2.items() if k != "/"} == \
                {k: v for k, v in p.before[0].items() if k != "/"}, where
            assert sessions2 == p.before[1], where
    print(f"{kind}: record of {p.end - p.record} bytes, outcomes {outcomes}")
    # Every variant really was exercised (the zeros after a cut header read as "end").
    assert outcomes.get("torn", 0) > 2 * (p.end - p.record), outcomes
    assert outcomes.get("end", 0) >= 11, outcomes


def test_torn_tail_expected_outcomes_are_not_vacuous():
    """The reference rules themselves, on hand-made records."""
    payload = b"x" * 20
    rec = RECORD_HEAD.pack(zlib.adler32(payload), len(payload)) + payload + b"B"
    assert expected_outcome(rec, 0) == "intact"
    assert expected_outcome(rec[:-1], 0) == "torn"
    assert expected_outcome(rec[:5] + bytes(30), 0) == "end"
    bad = rec[:14] + b"y" + rec[15:]
    assert expected_outcome(bad + bytes(10), 0) == "torn"
    assert expected_outcome(bad + b"\x01", 0) == "corrupt"


def _server_sample(p: Pristine) -> list[tuple[int, str]]:
    header = p.record + 5
    payload = (p.record + p.end) // 2
    marker = p.end - 1
    return [(header, "cut"), (payload, "zeros"), (payload, "garbage"), (marker, "zeros"),
            (p.record + 12, "ff")]


@pytest.mark.parametrize("kind", ("create", "multi"))
def test_torn_last_record_full_server(pristine, kind, tmp_path, caplog):
    p = pristine[kind]
    expected_t = {path: (data, stat) for path, (data, stat) in p.before[0].items()
                  if path == "/t" or path.startswith("/t/")}
    for cut, variant in _server_sample(p):
        where = f"{kind}: cut at {cut}, {variant}"
        buf = _mutate(p, cut, variant, random.Random(cut))
        outcome = expected_outcome(buf, p.record)
        assert outcome in ("torn", "end"), where
        work = p.copy_to(tmp_path / f"srv-{cut}-{variant}", buf)
        log = work / VERSION_DIR / p.log.name
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="zookapter"):
            with ZookapterServer(data_dir=str(work)) as s:
                got = dump_server(s.hosts, "/t", timeout=10)
                zk = _kazoo(s.hosts)
                zk.create("/t/after", b"after")
                zk.stop()
                zk.close()
        assert {k: (d, STAT.unpack(struct.pack(">qqqqiiiqiiq", *st)))
                for k, (d, st) in got.items()} == expected_t, where
        if outcome == "torn":
            assert _torn_warnings(caplog, log, p.record), where
        assert log.stat().st_size == (p.record if outcome == "torn" else len(buf)), where
        with ZookapterServer(data_dir=str(work)) as s:
            again = dump_server(s.hosts, "/t", timeout=10)
        assert again.pop("/t/after")[0] == b"after", where
        assert {k: v for k, v in again.items() if k != "/t"} == \
            {k: v for k, v in got.items() if k != "/t"}, where


def test_torn_only_record_and_torn_header_of_the_newest_log(tmp_path, caplog):
    """The newest log (written after a restart) holds a createSession and a create: tearing its
    first record leaves a header-only file, tearing the file header itself leaves a file that is
    removed; either way
    the next start serves the older state, logs into a log of the same name, and a restart
    reads it back."""
    data = tmp_path / "data"
    _build(data, "create")  # log.1 ... /t/last
    with ZookapterServer(data_dir=str(data), props={"zookeeper.preAllocSize": PREALLOC_KB}) as s:
        zk = _kazoo(s.hosts)
        zk.create("/t/only", b"only record")
    zk.stop()
    zk.close()
    vdir = data / VERSION_DIR
    newest = max(vdir.glob("log.*"), key=lambda q: int(q.name.split(".")[1], 16))
    assert newest.name != "log.1"
    entries = list(iter_log_file(newest))
    assert [e.txn.type for e in entries] == [Op.CREATE_SESSION, Op.CREATE]
    assert entries[0].offset == 16
    original = newest.read_bytes()
    cuts = [(k, "header") for k in range(0, 16)] + [
        (k, "record") for k in range(17, entries[1].offset, 4)]
    for cut, what in cuts:
        where = f"newest log cut at {cut} ({what})"
        work = tmp_path / f"w{cut}"
        shutil.copytree(data, work)
        log = work / VERSION_DIR / newest.name
        log.write_bytes(original[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="zookapter.storage"):
            with ZookapterServer(data_dir=str(work)) as s:
                got = dump_server(s.hosts, "/t", timeout=10)
                assert "/t/only" not in got and "/t/last" in got, where
                zk = _kazoo(s.hosts)
                zk.create("/t/again", b"again")
                zk.stop()
                zk.close()
        assert _torn_warnings(caplog, log, 0 if what == "header" else 16), where
        # The same zxid comes again, so the new log has the old name (and none of its bytes).
        assert next(iter(iter_log_file(log))).txn.zxid == entries[0].txn.zxid, where
        assert any(e.txn.record.path == "/t/again" for e in iter_log_file(log)
                   if e.txn.type == Op.CREATE), where
        with ZookapterServer(data_dir=str(work)) as s:
            again = dump_server(s.hosts, "/t", timeout=10)
        assert again["/t/again"][0] == b"again" and "/t/only" not in again, where
        assert {k for k in again if k != "/t"} == {k for k in got if k != "/t"} | {"/t/again"}


# --- corruption in the middle: refuse to start, touch nothing ------------------------------

def _middle_corruptions(p: Pristine) -> list[tuple[str, int, int]]:
    """(what, byte position, record offset) for flips in records before the last one."""
    entries = list(iter_log_file(p.log))
    out = []
    for idx in (0, len(entries) // 2, len(entries) - 2):
        off = entries[idx].offset
        length = RECORD_HEAD.unpack_from(p.log_bytes, off)[1]
        out.append((f"record {idx} payload start", off + 12, off))
        out.append((f"record {idx} payload middle", off + 12 + length // 2, off))
        out.append((f"record {idx} payload end", off + 12 + length - 1, off))
        out.append((f"record {idx} crc", off + 7, off))
    return out


def _assert_refuses(work: Path, log: Path, offset: int | None, where: str) -> None:
    vdir = work / VERSION_DIR
    sums = _sums(vdir)
    with pytest.raises(CorruptLogError) as info:
        Database(str(work), None).load()
    assert info.value.file == log, where
    if offset is not None:
        assert info.value.offset == offset, where
        assert f"offset {offset}" in str(info.value), where
    assert str(log) in str(info.value), where
    with pytest.raises(CorruptLogError) as info2:
        ZookapterServer(data_dir=str(work)).start()
    assert str(info2.value) == str(info.value), where
    assert _sums(vdir) == sums, where


def test_corrupt_middle_record_is_fatal_and_changes_nothing(pristine, tmp_path):
    p = pristine["create"]
    for what, pos, offset in _middle_corruptions(p):
        buf = bytearray(p.log_bytes)
        buf[pos] ^= 0x5A
        work = p.copy_to(tmp_path / "work", bytes(buf))
        _assert_refuses(work, work / VERSION_DIR / p.log.name, offset, what)


def test_wrong_magic_is_fatal_and_changes_nothing(pristine, tmp_path):
    p = pristine["set"]
    for i in range(4):
        buf = bytearray(p.log_bytes)
        buf[i] ^= 0x20
        work = p.copy_to(tmp_path / "work", bytes(buf))
        _assert_refuses(work, work / VERSION_DIR / p.log.name, 0, f"magic byte {i}")


def test_corruption_in_an_earlier_log_file(tmp_path):
    """With several logs to replay (newer snapshots removed), a flipped byte in the first
    file, or its magic, stops the start too; a torn tail there is skipped as ZooKeeper does."""
    data = tmp_path / "data"
    with ZookapterServer(data_dir=str(data), props={"zookeeper.snapCount": "20",
                                                    "zookeeper.preAllocSize": PREALLOC_KB}) as s:
        zk = _kazoo(s.hosts)
        for i in range(60):
            zk.create(f"/e{i}", b"%d" % i)
        zk.stop()
        zk.close()
    vdir = data / VERSION_DIR
    snaps = sorted(vdir.glob("snapshot.*"), key=lambda q: int(q.name.split(".")[1], 16))
    for q in snaps[1:]:
        q.unlink()  # recovery must now replay every log from the start-up snapshot on
    logs = sorted(vdir.glob("log.*"), key=lambda q: int(q.name.split(".")[1], 16))
    assert len(logs) >= 3
    full = _state(Database(str(data), None).load())
    assert {f"/e{i}" for i in range(60)} <= set(full[0])
    pristine_first = logs[0].read_bytes()
    entries = list(iter_log_file(logs[0]))
    work = tmp_path / "work"
    for what, mutate, offset in (
            ("payload", lambda b: b.__setitem__(entries[1].offset + 20,
                                                b[entries[1].offset + 20] ^ 1), entries[1].offset),
            ("magic", lambda b: b.__setitem__(0, b[0] ^ 1), 0)):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(data, work)
        buf = bytearray(pristine_first)
        mutate(buf)
        (work / VERSION_DIR / logs[0].name).write_bytes(bytes(buf))
        _assert_refuses(work, work / VERSION_DIR / logs[0].name, offset, f"first log {what}")


# --- the command-line server ---------------------------------------------------------------

def test_cli_server_refuses_corrupt_log(pristine, tmp_path):
    p = pristine["multi"]
    _what, pos, offset = _middle_corruptions(p)[1]
    buf = bytearray(p.log_bytes)
    buf[pos] ^= 0xFF
    work = p.copy_to(tmp_path / "work", bytes(buf))
    vdir = work / VERSION_DIR
    sums = _sums(vdir)
    cfg = tmp_path / "zoo.cfg"
    port = free_port()
    cfg.write_text(f"tickTime=2000\ndataDir={work}\nclientPort={port}\n"
                   "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        x for x in (str(SRC), os.environ.get("PYTHONPATH")) if x))
    proc = subprocess.run([sys.executable, "-m", "zookapter.cli", "server", str(cfg)],
                          capture_output=True, text=True, timeout=60, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert str(vdir / p.log.name) in out and f"offset {offset}" in out, out[-3000:]
    assert _sums(vdir) == sums

"""Data-directory naming and the FileHeader shared by txn logs and snapshots.

Files live in `<dataDir>/version-2/` and are named `<prefix>.<zxid in lowercase hex, no
padding>`: `log.<zxid of the first txn in the file>`, `snapshot.<last zxid applied when the
snapshot started>` (optionally `.gz`/`.snappy`). Like ZooKeeper, a name is parsed from its
first two dot-separated parts, so `snapshot.1a.gz` is zxid 0x1a.

FileHeader (16 bytes): int magic, int version (2), long dbid (0 in logs, -1 in snapshots).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

VERSION_DIR = "version-2"
LOG_PREFIX = "log"
SNAPSHOT_PREFIX = "snapshot"

LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
FORMAT_VERSION = 2
LOG_DBID = 0
SNAP_DBID = -1

FILE_HEADER = struct.Struct(">iiq")

_HEX = frozenset("0123456789abcdefABCDEF")


def file_name(prefix: str, zxid: int) -> str:
    return f"{prefix}.{zxid & 0xFFFFFFFFFFFFFFFF:x}"


def log_name(zxid: int) -> str:
    return file_name(LOG_PREFIX, zxid)


def snapshot_name(zxid: int) -> str:
    return file_name(SNAPSHOT_PREFIX, zxid)


def zxid_from_name(name: str, prefix: str) -> int | None:
    """The zxid in `<prefix>.<hex>[.anything]`, or None if the name is not one of ours."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != prefix or not parts[1] or len(parts[1]) > 16:
        return None
    if not set(parts[1]) <= _HEX:
        return None
    v = int(parts[1], 16)
    return v - (1 << 64) if v >= (1 << 63) else v


def sorted_files(directory: str | os.PathLike[str], prefix: str,
                 newest_first: bool = False) -> list[tuple[int, Path]]:
    """(zxid, path) of every `<prefix>.<hex>` file in `directory`, sorted by zxid."""
    d = Path(directory)
    out = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    for name in names:
        z = zxid_from_name(name, prefix)
        if z is not None and (d / name).is_file():
            out.append((z, d / name))
    out.sort(key=lambda t: (t[0], t[1].name), reverse=newest_first)
    return out


def version_dir(directory: str | os.PathLike[str]) -> Path:
    """The `version-2` directory of a dataDir/dataLogDir. A path that already is one (named
    `version-2`, without a `version-2` inside) is taken as is, for command-line tools."""
    d = Path(directory)
    if d.name == VERSION_DIR and not (d / VERSION_DIR).is_dir():
        return d
    return d / VERSION_DIR


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a directory so a newly created file's entry is durable (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

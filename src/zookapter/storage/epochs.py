"""The `acceptedEpoch` and `currentEpoch` files of a quorum member's dataDir.

As ZooKeeper's QuorumPeer keeps them in `<dataDir>/version-2/`: the ASCII decimal epoch, read
as the first line; written atomically (a `.tmp` file, fsynced, renamed over the old one) so a
crash leaves either the old or the new value. A standalone server neither reads nor writes
them (ZooKeeperServerMain does not); replication uses them to remember the last epoch it
accepted (acceptedEpoch) and the epoch of the last NEWLEADER it acknowledged (currentEpoch).
When they are missing, ZooKeeper initialises both from the epoch of the last logged zxid.
"""

from __future__ import annotations

import os
from pathlib import Path

ACCEPTED_EPOCH = "acceptedEpoch"
CURRENT_EPOCH = "currentEpoch"


class EpochFileError(ValueError):
    pass


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def read_epoch(version_dir: str | os.PathLike[str], name: str) -> int | None:
    """The epoch stored in `name`, or None when the file does not exist."""
    path = Path(version_dir) / name
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    line = text.split("\n", 1)[0]
    try:
        return int(line)
    except ValueError:
        raise EpochFileError(f"{path}: not an epoch: {line!r}") from None


def write_epoch(version_dir: str | os.PathLike[str], name: str, epoch: int) -> None:
    """Atomically replace `name` with `epoch` (digits only, as ZooKeeper writes it)."""
    if epoch < 0:
        raise EpochFileError(f"negative epoch {epoch}")
    directory = Path(version_dir)
    tmp = directory / (name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, str(epoch).encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / name)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_epochs(version_dir: str | os.PathLike[str], last_zxid: int) -> tuple[int, int]:
    """(acceptedEpoch, currentEpoch), initialised from `last_zxid` when missing, and
    checked as ZooKeeper checks them (acceptedEpoch must not be below currentEpoch)."""
    current = read_epoch(version_dir, CURRENT_EPOCH)
    if current is None:
        current = epoch_of(last_zxid)
        write_epoch(version_dir, CURRENT_EPOCH, current)
    accepted = read_epoch(version_dir, ACCEPTED_EPOCH)
    if accepted is None:
        accepted = epoch_of(last_zxid)
        write_epoch(version_dir, ACCEPTED_EPOCH, accepted)
    if accepted < current:
        raise EpochFileError(f"acceptedEpoch {accepted} is less than currentEpoch {current}")
    return accepted, current

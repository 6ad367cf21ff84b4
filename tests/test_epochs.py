"""acceptedEpoch/currentEpoch files: ZooKeeper's text format, atomic replacement, defaults."""

from __future__ import annotations

import pytest

from zookapter.storage.epochs import (
    ACCEPTED_EPOCH,
    CURRENT_EPOCH,
    EpochFileError,
    load_epochs,
    read_epoch,
    write_epoch,
)


def test_roundtrip_and_format(tmp_path):
    write_epoch(tmp_path, CURRENT_EPOCH, 7)
    assert (tmp_path / CURRENT_EPOCH).read_bytes() == b"7"
    assert read_epoch(tmp_path, CURRENT_EPOCH) == 7
    assert not (tmp_path / (CURRENT_EPOCH + ".tmp")).exists()
    (tmp_path / ACCEPTED_EPOCH).write_text("12\nignored\n")  # first line only, as Java
    assert read_epoch(tmp_path, ACCEPTED_EPOCH) == 12
    assert read_epoch(tmp_path, "missing") is None


def test_defaults_from_last_zxid_and_order_check(tmp_path):
    assert load_epochs(tmp_path, (3 << 32) | 17) == (3, 3)
    assert read_epoch(tmp_path, CURRENT_EPOCH) == 3
    write_epoch(tmp_path, CURRENT_EPOCH, 5)
    with pytest.raises(EpochFileError):
        load_epochs(tmp_path, 0)
    (tmp_path / ACCEPTED_EPOCH).write_text("x")
    with pytest.raises(EpochFileError):
        read_epoch(tmp_path, ACCEPTED_EPOCH)


def test_reads_files_written_by_apache_zookeeper_format(tmp_path):
    # QuorumPeer writes the bare decimal number without a newline
    (tmp_path / CURRENT_EPOCH).write_bytes(b"1")
    (tmp_path / ACCEPTED_EPOCH).write_bytes(b"1")
    assert load_epochs(tmp_path, 1 << 32) == (1, 1)

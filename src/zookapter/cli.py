"""Command line: `zookapter server [CONFIG] [-Dname=value ...]`, `zookapter version`, and the
storage tools `zookapter purge`, `zookapter txnlog`, `zookapter snapshot`, and `zookapter shell`
(zkCli.sh; ops/shell.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from . import __version__


def _split_defines(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Pull Java-style -Dname=value flags out of argv (they may appear anywhere)."""
    rest: list[str] = []
    props: dict[str, str] = {}
    for a in argv:
        if a.startswith("-D") and len(a) > 2:
            k, _, v = a[2:].partition("=")
            props[k] = v
        elif a.startswith("-X") or a.startswith("-XX:"):
            logging.getLogger("zookapter").info("ignoring JVM flag %s", a)
        else:
            rest.append(a)
    return rest, props


def _run_server(config_path: str | None, props: dict[str, str]) -> int:
    from .ops.http import StartupError
    from .server.config import ConfigError, load_config
    from .server.standalone import StandaloneServer
    try:
        cfg = load_config(config_path, props)
    except ConfigError as e:
        logging.getLogger("zookapter").error("invalid configuration: %s", e)
        return 2
    if config_path is None:
        cfg.client_port = 2181
        cfg.client_port_address = "127.0.0.1"

    from .quorum.config import ConfigError as QuorumConfigError
    from .quorum.shell import QuorumServer, quorum_config_for
    try:
        qcfg = quorum_config_for(cfg)
    except (QuorumConfigError, OSError) as e:
        logging.getLogger("zookapter").error("invalid ensemble configuration: %s", e)
        return 2

    async def main() -> None:
        server: StandaloneServer | QuorumServer = \
            StandaloneServer(cfg) if qcfg is None else QuorumServer(cfg, qcfg)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stopped.set)
        await server.stopped.wait()
        logging.getLogger("zookapter").info("shutting down")
        await server.stop()

    _install_uvloop()
    _tune_gc()
    _batch_scheduling()
    profile_to = os.environ.get("ZOOKAPTER_CPROFILE")  # development: where to dump stats
    try:
        if profile_to:
            import cProfile
            cProfile.runctx("asyncio.run(main())", globals(), locals(),
                            f"{profile_to}.{os.getpid()}")
        else:
            asyncio.run(main())
    except StartupError as e:
        # ZooKeeper exits too: 4 for the AdminServer, 1 for the metrics provider
        logging.getLogger("zookapter").error("%s, exiting abnormally", e)
        return e.exit_code
    return 0


def _tune_gc() -> None:
    """Znodes never form reference cycles; the default gen-0 threshold (700) makes the
    collector walk the young generation thousands of times a second under write load."""
    import gc
    gc.set_threshold(100_000, 50, 1000)


def _batch_scheduling() -> None:
    """SCHED_BATCH for the server's threads (ZOOKAPTER_SCHED_BATCH=0 keeps SCHED_OTHER).

    An event-loop server works in turns: read everything ready, process it, write the
    replies, sleep. Under SCHED_OTHER each write that wakes a peer (a follower, the fsync
    thread, a client) lets the woken task preempt us in the middle of the turn, so the
    batch we were building waits a whole time slice; on a busy 2-core host that cost a
    3-member ensemble about a tenth of its write throughput (benchmarks/ensemble.py).
    A task woken under SCHED_BATCH waits for the running one's slice instead of preempting
    it (so members, and the threads within one, no longer preempt each other); CPU shares
    are unchanged. Unprivileged; where the call is not available nothing changes."""
    if os.environ.get("ZOOKAPTER_SCHED_BATCH", "1") == "0":
        return
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError) as e:
        logging.getLogger("zookapter").debug("SCHED_BATCH not available: %s", e)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _parse_zxid(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a zxid: {text!r} (decimal or 0x hex)") from None


def _run_purge(data_dir: str, data_log_dir: str | None, count: int, dry_run: bool) -> int:
    """zkCleanup.sh / PurgeTxnLog: keep `count` snapshots and the logs they need."""
    from pathlib import Path

    from .storage.purge import MIN_SNAP_RETAIN_COUNT, purge
    if count < MIN_SNAP_RETAIN_COUNT:
        print(f"count should be greater than or equal to {MIN_SNAP_RETAIN_COUNT}",
              file=sys.stderr)
        return 2
    for d in (data_dir, data_log_dir):
        if d is not None and not Path(d).is_dir():
            print(f"Path '{d}' does not exist.", file=sys.stderr)
            return 2
    result = purge(data_dir, data_log_dir, count, dry_run=dry_run)
    plan = result.plan
    verb = "Would remove" if dry_run else "Removing"
    for p in result.deleted:
        _out(f"{verb} file: {p}")
    for p, err in result.errors:
        print(f"Failed to remove {p}: {err}", file=sys.stderr)
    if plan.oldest_retained_zxid is None:
        _out(f"no valid snapshot in {plan.snap_dir}: nothing to purge")
    else:
        _out(f"kept {len(plan.retained_snapshots)} snapshots (oldest "
             f"snapshot.{plan.oldest_retained_zxid:x}) and {len(plan.kept_logs)} logs; "
             f"{'would remove' if dry_run else 'removed'} {len(result.deleted_snapshots)} "
             f"snapshots and {len(result.deleted_logs)} logs")
    return 1 if result.errors else 0


def _run_txnlog(path: str, as_json: bool, from_zxid: int | None) -> int:
    """TxnLogToolkit: one line per txn of a log file, or of the logs in a directory."""
    import json
    from pathlib import Path

    from .storage import dump
    from .storage.files import version_dir
    from .storage.txnlog import CorruptLogError, iter_log, iter_log_file
    p = Path(path)
    if p.is_dir():
        d = version_dir(p)
        it = iter_log(d, -(1 << 63) if from_zxid is None else from_zxid)
        if not it.files:
            print(f"no txn log files (log.<zxid>) in {d}", file=sys.stderr)
            return 2
    elif p.is_file():
        it = iter_log_file(p)
    else:
        print(f"File doesn't exist or not readable: {path}", file=sys.stderr)
        return 2
    count = 0
    current = None
    end: dict[str, object] = {"event": "end", "status": "ok"}
    try:
        for entry in it:
            if from_zxid is not None and entry.txn.zxid < from_zxid:
                continue
            if as_json:
                _out(json.dumps(dump.entry_json(entry), ensure_ascii=False))
            else:
                if entry.file != current:
                    current = entry.file
                    head = dump.log_file_header(entry.file)
                    dbid, version = (head[2], head[1]) if head else ("?", "?")
                    _out(f"ZooKeeper Transactional Log File {entry.file} with dbid {dbid} "
                         f"txnlog format version {version}")
                _out(dump.txn_text(entry.txn, entry.digest))
            count += 1
    except CorruptLogError as e:
        end.update(status="corrupt", file=str(e.file), offset=e.offset, reason=e.reason)
    else:
        torn = it.torn or (it.torn_earlier[0] if it.torn_earlier else None)
        if torn is not None:
            end.update(status="torn", file=str(torn[0]), offset=torn[1])
    end["txns"] = count
    if as_json:
        _out(json.dumps(end))
    elif end["status"] == "corrupt":
        _out(f"CORRUPT: {end['file']} at offset {end['offset']}: {end['reason']} "
             f"(after {count} txns)")
    elif end["status"] == "torn":
        _out(f"EOF reached after {count} txns; torn tail in {end['file']} at offset "
             f"{end['offset']} (an incomplete last record, left by a crash while appending; "
             "the server cuts it off on start)")
    else:
        _out(f"EOF reached after {count} txns.")
    return 1 if end["status"] == "corrupt" else 0


def _run_snapshot(path: str, as_json: bool, with_data: bool) -> int:
    """SnapshotFormatter: the tree, sessions, ACLs and digest of a snapshot file."""
    import json
    from pathlib import Path

    from .storage import dump
    from .storage.files import version_dir
    from .storage.snapshot import SnapshotError, find_snapshots
    p = Path(path)
    if p.is_dir():
        found = find_snapshots(version_dir(p), limit=1)
        if not found:
            print(f"no valid snapshot in {version_dir(p)}", file=sys.stderr)
            return 2
        p = found[0]
    elif not p.is_file():
        print(f"File doesn't exist or not readable: {path}", file=sys.stderr)
        return 2
    try:
        view = dump.load_snapshot_view(p)
    except (SnapshotError, OSError, ValueError) as e:
        print(f"invalid snapshot: {e}", file=sys.stderr)
        return 1
    if as_json:
        _out(json.dumps(dump.snapshot_json(view, with_data), ensure_ascii=False))
    else:
        for line in dump.snapshot_text(view, with_data):
            _out(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "shell":  # zkCli-style words (-server, create -e ...): no argparse
        from .ops.shell import main as shell_main
        return shell_main(argv[1:])
    argv, props = _split_defines(argv)
    parser = argparse.ArgumentParser(prog="zookapter", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="cmd")
    p_server = sub.add_parser("server", help="run a standalone server",
                              description="Run a server. CONFIG is a ZooKeeper zoo.cfg; "
                              "-Dname=value sets Java-style system properties.")
    p_server.add_argument("config", nargs="?", help="zoo.cfg path")
    sub.add_parser("version", help="print the version")
    sub.add_parser("shell", help="a ZooKeeper shell compatible with zkCli.sh "
                   "(see `zookapter shell --help`)", add_help=False)
    p_purge = sub.add_parser(
        "purge", help="delete old snapshots and txn logs (zkCleanup.sh)",
        description="Keep the COUNT newest snapshots and the txn logs needed to replay from "
        "the oldest of them; delete older snapshots and logs (ZooKeeper's PurgeTxnLog). "
        "Directories are zoo.cfg's dataDir/dataLogDir (or their version-2).")
    p_purge.add_argument("data_dir", help="dataDir (snapshots)")
    p_purge.add_argument("data_log_dir", nargs="?", help="dataLogDir (txn logs; default: "
                         "dataDir)")
    p_purge.add_argument("-n", "--count", type=int, default=3,
                         help="snapshots to keep, >= 3 (default 3)")
    p_purge.add_argument("--dry-run", action="store_true",
                         help="only print what would be removed")
    p_log = sub.add_parser(
        "txnlog", help="print the txns of a txn log (TxnLogToolkit)",
        description="Print one line per txn of a log.<zxid> file, or of every log in a "
        "directory (a dataLogDir or its version-2). The last line reports the end: "
        "clean, a torn tail, or corruption (exit code 1).")
    p_log.add_argument("path", help="a log file, or a directory of log files")
    p_log.add_argument("--json", action="store_true", help="one JSON object per line")
    p_log.add_argument("--from-zxid", type=_parse_zxid, metavar="ZXID",
                       help="skip txns before ZXID (decimal or 0x hex)")
    p_snap = sub.add_parser(
        "snapshot", help="print a snapshot (SnapshotFormatter)",
        description="Print a snapshot's znodes, sessions, ACL cache and digest. A directory "
        "(dataDir or its version-2) means its newest valid snapshot.")
    p_snap.add_argument("path", help="a snapshot file, or a directory")
    p_snap.add_argument("--json", action="store_true", help="print one JSON document")
    p_snap.add_argument("--data", action="store_true", help="include each znode's data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    if args.cmd == "server":
        return _run_server(args.config, props)
    if args.cmd == "version":
        print(__version__)
        return 0
    try:
        if args.cmd == "purge":
            return _run_purge(args.data_dir, args.data_log_dir, args.count, args.dry_run)
        if args.cmd == "txnlog":
            return _run_txnlog(args.path, args.json, args.from_zxid)
        if args.cmd == "snapshot":
            return _run_snapshot(args.path, args.json, args.data)
    except BrokenPipeError:  # `zookapter txnlog ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())

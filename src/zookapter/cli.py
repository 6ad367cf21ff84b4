"""Command line: `zookapter server [CONFIG] [-Dname=value ...]`, `zookapter version`."""

from __future__ import annotations

import argparse
import asyncio
import logging
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

    async def main() -> None:
        server = StandaloneServer(cfg)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stopped.set)
        await server.stopped.wait()
        logging.getLogger("zookapter").info("shutting down")
        await server.stop()

    _install_uvloop()
    _tune_gc()
    asyncio.run(main())
    return 0


def _tune_gc() -> None:
    """Znodes never form reference cycles; the default gen-0 threshold (700) makes the
    collector walk the young generation thousands of times a second under write load."""
    import gc
    gc.set_threshold(100_000, 50, 1000)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, props = _split_defines(argv)
    parser = argparse.ArgumentParser(prog="zookapter", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="cmd")
    p_server = sub.add_parser("server", help="run a standalone server",
                              description="Run a server. CONFIG is a ZooKeeper zoo.cfg; "
                              "-Dname=value sets Java-style system properties.")
    p_server.add_argument("config", nargs="?", help="zoo.cfg path")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    if args.cmd == "server":
        return _run_server(args.config, props)
    if args.cmd == "version":
        print(__version__)
        return 0
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""The shell's ZooKeeper commands, one function each, as zkCli's CliCommand classes do them.

Every command gets its words (its own name first) and a `Context`; it parses them with the
command's commons-cli grammar (shell_options.py), checks arguments in the order zkCli does —
some checks happen while parsing, some only when executing, which decides which message wins —
then makes its requests and prints. Failures raise `CliError`, whose message the shell prints
on stderr; zkCli's own oddities (deprecated positional `watch` arguments, a `-s` ignored
under `-R`) are kept, because scripts written against zkCli see them.

The quota commands live in shell_quota.py; history, redo, connect and friends belong to the
shell itself (shell.py).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

from .. import __version__
from ..client.aio import AsyncZooKeeper
from ..client.errors import (
    AuthFailedError,
    EphemeralOnLocalSessionError,
    InvalidACLError,
    NoNodeError,
    ZookeeperError,
)
from ..protocol.consts import MAX_TTL_MS, CreateMode, WatcherType
from ..protocol.records import ACL, OPEN_ACL_UNSAFE, Stat
from .shell_format import (
    error_message,
    id_text,
    java_list,
    keeper_message,
    parse_acl,
    path_error,
    perm_string,
    stat_lines,
)
from .shell_options import Grammar, Parsed, ParseError, parse_words
from .shell_session import Console, ShellSession

T = TypeVar("T")

INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
_JAVA_INTEGER = re.compile(r"^[+-]?\d+$")
DELETEALL_BATCH_DEFAULT = 1000


class CliError(Exception):
    """zkCli's CliException: the message goes to stderr, `exit_code` becomes the exit status
    (of a one-shot command, or of the shell if it is the last command)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Context:
    """What a command works with: the session and the console."""
    session: ShellSession
    console: Console

    def out(self, line: str) -> None:
        self.console.out(line)

    def err(self, line: str) -> None:
        self.console.err(line)

    @property
    def zk(self) -> AsyncZooKeeper:
        return self.session.client

    def call(self, request: Awaitable[T], path: str | None = None) -> T:
        """Wait for one request (a coroutine of `self.zk`); a ZooKeeper error becomes zkCli's
        message for it, naming `path` when the error itself does not (a request that failed
        before it reached a server)."""
        try:
            return self.session.run(request)
        except ZookeeperError as e:
            if e.path is None:
                e.path = path
            raise CliError(error_message(e)) from None

    @property
    def watcher(self) -> Callable[[Any], None]:
        return self.session.watcher


@dataclass(frozen=True)
class Command:
    """A command's name, its usage text after the name, its grammar and its body."""
    name: str
    usage: str
    grammar: Grammar
    run: Callable[[Context, list[str], Command], None]

    @property
    def usage_line(self) -> str:
        return f"{self.name} {self.usage}"

    def parse(self, words: list[str]) -> Parsed:
        try:
            return parse_words(self.grammar, words)
        except ParseError as e:
            raise CliError(str(e)) from None


# -- argument helpers -----------------------------------------------------------------------

def valid_path(path: str, sequential: bool = False) -> str:
    """The path, or zkCli's MalformedPathException with Java's validation message."""
    problem = path_error(path, sequential)
    if problem is not None:
        raise CliError(problem)
    return path


def java_int(text: str, low: int = INT_MIN, high: int = INT_MAX) -> int | None:
    """Integer.parseInt / Long.parseLong: None where Java throws NumberFormatException."""
    if not _JAVA_INTEGER.match(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def version_arg(cl: Parsed) -> int:
    """The `-v` value (-1 if absent). zkCli dies of an uncaught NumberFormatException on a
    bad one; the shell reports it and goes on."""
    text = cl.value("v")
    if text is None:
        return -1
    value = java_int(text)
    if value is None:
        raise CliError(f'java.lang.NumberFormatException: For input string: "{text}"')
    return value


def need_args(cl: Parsed, count: int, cmd: Command) -> None:
    if len(cl.args) < count:
        raise CliError(cmd.usage_line)


def deprecated_watch_arg(ctx: Context, cmd: Command, words: list[str], cl: Parsed,
                         modern: str) -> Parsed:
    """zkCli's retainCompatibility for `get|ls|stat path watch`: a third word turns the word
    at index 2 of the original line into -w (whatever it was) and the line is parsed again."""
    if len(cl.args) <= 2:
        return cl
    words = list(words)
    words[2] = "-w"
    ctx.err(f"'{cmd.name} path [watch]' has been deprecated. Please use '{modern}' instead.")
    return cmd.parse(words)


def print_stat(ctx: Context, stat: Stat) -> None:
    for line in stat_lines(stat):
        ctx.out(line)


def decode_data(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", "replace")


def acl_arg(ctx: Context, text: str) -> list[ACL]:
    warnings: list[str] = []
    acl = parse_acl(text, warnings)
    for w in warnings:
        ctx.err(w)
    return acl


# -- tree walks (ZKUtil) --------------------------------------------------------------------

def walk_dfs(session: ShellSession, path: str, watch: Any = None) -> Iterator[str]:
    """ZKUtil.visitSubTreeDFS's order: the node (which must exist; read with `watch`), then
    each node's children, sorted, before descending into them one by one. ZooKeeper errors
    propagate, except a child vanishing meanwhile."""
    session.run(session.client.get(path, watch=watch))
    yield path
    yield from _walk_children(session, path, watch)


def _walk_children(session: ShellSession, path: str, watch: Any) -> Iterator[str]:
    try:
        children = sorted(cast(list[str], session.run(
            session.client.get_children(path, watch=watch))))
    except NoNodeError:
        return
    base = "" if path == "/" else path
    yield from (f"{base}/{child}" for child in children)
    for child in children:
        yield from _walk_children(session, f"{base}/{child}", watch)


def visit_dfs(ctx: Context, path: str, watch: bool, visit: Callable[[str], None]) -> None:
    """`visit` each node of the subtree (walk_dfs), with zkCli's message for an error."""
    try:
        for node in walk_dfs(ctx.session, path, ctx.watcher if watch else None):
            visit(node)
    except ZookeeperError as e:
        if e.path is None:
            e.path = path
        raise CliError(error_message(e)) from None


def list_subtree_bfs(ctx: Context, root: str) -> list[str]:
    """ZKUtil.listSubTreeBFS: the root, then every descendant, level by level."""
    tree, queue = [root], [root]
    while queue:
        node = queue.pop(0)
        children = ctx.call(ctx.zk.get_children(node), node)
        base = "" if node == "/" else node
        for child in children:
            tree.append(f"{base}/{child}")
            queue.append(f"{base}/{child}")
    return tree


# -- commands -------------------------------------------------------------------------------

LS_HELP = ("usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch")


def cmd_ls(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    if cl.has("?"):
        ctx.out(LS_HELP)
    cl = deprecated_watch_arg(ctx, cmd, words, cl, "ls [-w] path")
    if len(cl.args) < 2:
        raise CliError(cmd.usage_line)
    path = valid_path(cl.args[1])
    watch = cl.has("w")
    if cl.has("R"):
        visit_dfs(ctx, path, watch, ctx.out)
        return
    w = ctx.watcher if watch else None
    children, stat = cast(tuple[list[str], Stat], ctx.call(
        ctx.zk.get_children(path, watch=w, include_stat=True), path))
    ctx.out(java_list(sorted(children)))
    if cl.has("s"):
        print_stat(ctx, stat)


def cmd_get(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    cl = deprecated_watch_arg(ctx, cmd, words, cl, "get [-s] [-w] path")
    path = valid_path(cl.args[1])
    w = ctx.watcher if cl.has("w") else None
    data, stat = ctx.call(ctx.zk.get(path, watch=w), path)
    ctx.out(decode_data(data))
    if cl.has("s"):
        print_stat(ctx, stat)


def cmd_stat(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    cl = deprecated_watch_arg(ctx, cmd, words, cl, "stat [-w] path")
    path = valid_path(cl.args[1])
    w = ctx.watcher if cl.has("w") else None
    stat = ctx.call(ctx.zk.exists(path, watch=w), path)
    if stat is None:
        raise CliError(f"Node does not exist: {path}")
    print_stat(ctx, stat)


def _create_mode(cl: Parsed) -> tuple[CreateMode, int | None]:
    e, s, c, t = cl.has("e"), cl.has("s"), cl.has("c"), cl.has("t")
    if c and (e or s):
        raise CliError("-c cannot be combined with -s or -e. Containers cannot be ephemeral "
                       "or sequential.")
    ttl = java_int(cl.value("t") or "", LONG_MIN, LONG_MAX) if t else None
    if t and ttl is None:
        raise CliError("-t argument must be a long value")
    if t and e:
        raise CliError("TTLs cannot be used with Ephemeral znodes")
    if t and c:
        raise CliError("TTLs cannot be used with Container znodes")
    if e:
        mode = CreateMode.EPHEMERAL_SEQUENTIAL if s else CreateMode.EPHEMERAL
    elif s:
        mode = CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL if t else CreateMode.PERSISTENT_SEQUENTIAL
    elif c:
        mode = CreateMode.CONTAINER
    else:
        mode = CreateMode.PERSISTENT_WITH_TTL if t else CreateMode.PERSISTENT
    if ttl is not None and not 0 < ttl <= MAX_TTL_MS:
        raise CliError(f"ttl must be positive and cannot be larger than: {MAX_TTL_MS}")
    return mode, ttl


def cmd_create(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    mode, ttl = _create_mode(cl)
    data = cl.args[2].encode() if len(cl.args) > 2 else None
    acl = acl_arg(ctx, cl.args[3]) if len(cl.args) > 3 else list(OPEN_ACL_UNSAFE)
    path = valid_path(cl.args[1], mode.sequential)
    if not acl:  # refused by the Java client itself, with no path
        _create_failed(ctx, InvalidACLError())
    try:
        created = ctx.session.run(
            ctx.zk.create(path, data, acl, mode, ttl))  # type: ignore[arg-type]
    except ZookeeperError as e:
        if e.path is None:
            e.path = path
        _create_failed(ctx, e)
    ctx.err(f"Created {created}")


def _create_failed(ctx: Context, e: ZookeeperError) -> NoReturn:
    """CreateCommand's extra lines before the usual message."""
    if isinstance(e, EphemeralOnLocalSessionError):
        ctx.err("Unable to create ephemeral node on a local session")
    elif isinstance(e, InvalidACLError):
        ctx.err(keeper_message(int(e.code), e.path))
    raise CliError(error_message(e))


def cmd_set(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 3, cmd)
    path, data = cl.args[1], cl.args[2].encode()
    version = version_arg(cl)
    valid_path(path)
    stat = ctx.call(ctx.zk.set(path, data, version), path)
    if cl.has("s"):
        print_stat(ctx, stat)


def cmd_delete(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    if len(cl.args) > 2:
        ctx.err("'delete path [version]' has been deprecated. Please use 'delete [-v version] "
                "path' instead.")
    path = cl.args[1]
    version = version_arg(cl)
    valid_path(path)
    ctx.call(ctx.zk.delete(path, version), path)


def cmd_deleteall(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    batch = DELETEALL_BATCH_DEFAULT
    if cl.has("b"):
        value = java_int(cl.value("b") or "")
        if value is None:
            raise CliError("-b argument must be an int value")
        batch = value
    path = valid_path(cl.args[1])
    tree = list_subtree_bfs(ctx, path)
    if not _delete_in_batches(ctx, tree, batch):
        ctx.err("Failed to delete some node(s) in the subtree!")


def _delete_in_batches(ctx: Context, tree: list[str], batch: int) -> bool:
    """ZKUtil.deleteInBatch: leaves first, `batch` deletes per multi; stop at a failure."""
    ops: list[str] = []
    for i in range(len(tree) - 1, -1, -1):
        ops.append(tree[i])
        if len(ops) == batch or i == 0:
            tx = ctx.zk.transaction()
            for p in ops:
                tx.delete(p)
            ops = []
            try:
                results = ctx.session.run(tx.commit(raise_on_error=False))
            except ZookeeperError:
                return False
            if any(isinstance(r, ZookeeperError) for r in results):
                return False
    return True


def cmd_get_acl(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    path = valid_path(cl.args[1])
    acl, stat = ctx.call(ctx.zk.get_acl(path), path)
    for entry in acl:
        ctx.out(f"{id_text(entry.id)}: {perm_string(entry.perms)}")
    if cl.has("s"):
        print_stat(ctx, stat)


def cmd_set_acl(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 3, cmd)
    path = cl.args[1]
    acl = acl_arg(ctx, cl.args[2])
    version = version_arg(cl)
    valid_path(path)
    if cl.has("R"):
        def set_one(p: str) -> None:
            try:
                if not acl:
                    raise InvalidACLError()
                ctx.session.run(ctx.zk.set_acl(p, acl, version))
            except ZookeeperError as e:  # printed without a newline, as zkCli does
                ctx.console.write(keeper_message(int(e.code), e.path))
        visit_dfs(ctx, path, False, set_one)
        return
    if not acl:
        raise CliError("Acl is not valid : null")
    stat = ctx.call(ctx.zk.set_acl(path, acl, version), path)
    if cl.has("s"):
        print_stat(ctx, stat)


def cmd_sync(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    path = valid_path(cl.args[1])
    try:
        ctx.session.run(ctx.zk.sync(path))
    except ZookeeperError as e:
        ctx.out(f"Sync has failed. rc={int(e.code)}")
        return
    ctx.out("Sync is OK")


def cmd_addauth(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    credential = cl.args[2].encode() if len(cl.args) >= 3 else b""
    # zkCli queues the auth packet; this client sends it only on a live connection.
    ctx.session.wait_connected(ctx.zk.timeout)
    try:
        ctx.session.run(ctx.zk.add_auth(cl.args[1], credential))
    except AuthFailedError:
        ctx.session.auth_failed()
    except ZookeeperError as e:
        raise CliError(error_message(e)) from None


def cmd_whoami(ctx: Context, words: list[str], cmd: Command) -> None:
    infos = ctx.call(ctx.zk.who_am_i())
    ctx.out("Auth scheme: User")
    for info in infos:
        ctx.out(f"{info.auth_scheme}: {info.user}")


WATCH_MODES = {"PERSISTENT": False, "PERSISTENT_RECURSIVE": True}


def cmd_add_watch(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    if len(cl.args) != 2:
        raise CliError(cmd.usage_line)
    recursive = True
    if cl.has("m"):
        mode = (cl.value("m") or "").upper()
        if mode not in WATCH_MODES:
            raise CliError(cmd.usage_line)
        recursive = WATCH_MODES[mode]
    path = valid_path(cl.args[1])
    ctx.call(ctx.zk.add_watch(path, ctx.watcher, recursive), path)


def cmd_remove_watches(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    wtype = WatcherType.ANY
    if cl.has("c"):
        wtype = WatcherType.CHILDREN
    elif cl.has("d"):
        wtype = WatcherType.DATA
    path = valid_path(cl.args[1])
    local = cl.has("l")
    ctx.call(ctx.zk.remove_watches(path, wtype, None, local), path)


def cmd_config(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    w = ctx.watcher if cl.has("w") else None
    data, stat = ctx.call(ctx.zk.get_config(watch=w))
    text = decode_data(data)
    ctx.out(client_config(text) if cl.has("c") else text)
    if cl.has("s"):
        print_stat(ctx, stat)


def client_config(config: str) -> str:
    """ConfigUtils.getClientConfigStr: `<version> host:port,...` from the servers' client
    addresses (the part after `;` of each server.N line; a bare port binds 0.0.0.0)."""
    version, addrs = "", []
    servers: list[tuple[int, str]] = []
    for line in config.splitlines():
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key == "version":
            version = value
        elif key.startswith("server."):
            sid = java_int(key[len("server."):], LONG_MIN, LONG_MAX)
            servers.append((sid if sid is not None else 0, value))
    for _, value in sorted(servers):
        _, semi, client = value.partition(";")
        if not semi:
            addrs.append("")
            continue
        host, colon, port = client.rpartition(":")
        addrs.append(f"{host if colon else '0.0.0.0'}:{port}")
    return f"{version} {','.join(addrs)}"


def cmd_get_ephemerals(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    path = valid_path(cl.args[1]) if len(cl.args) >= 2 else "/"
    ctx.out(java_list(ctx.call(ctx.zk.get_ephemerals(path), path)))


def cmd_all_children(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    path = valid_path(cl.args[1])
    ctx.out(str(ctx.call(ctx.zk.get_all_children_number(path), path)))


def cmd_version(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    if len(cl.args) > 1:
        raise CliError(cmd.usage_line)
    ctx.out(f"ZooKeeper CLI version: zookapter {__version__}")


def cmd_close(ctx: Context, words: list[str], cmd: Command) -> None:
    ctx.session.close()


def cmd_reconfig(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    modes = [m for m in ("file", "members", "add", "remove") if cl.has(m)]
    if not modes:
        raise CliError(cmd.usage_line)
    version = -1
    if cl.has("v"):
        try:
            version = int(cl.value("v") or "", 16)
        except ValueError:
            raise CliError("-v must be followed by a long (configuration version)") from None
    bulk = cl.has("file") or cl.has("members")
    if bulk and (cl.has("add") or cl.has("remove")):
        raise CliError("Can't use -file or -members together with -add or -remove (mixing "
                       "incremental and non-incremental modes is not allowed)")
    if cl.has("file") and cl.has("members"):
        raise CliError("Can't use -file and -members together (conflicting non-incremental "
                       "modes)")
    joining = (cl.value("add") or "").lower() or None
    leaving = (cl.value("remove") or "").lower() or None
    members = (cl.value("members") or "").lower() or None
    if cl.has("file"):
        members = _members_from_file(cl.value("file") or "")
    data, stat = ctx.call(ctx.zk.reconfig(joining, leaving, members, version))
    ctx.out("Committed new configuration:\n" + decode_data(data))
    if cl.has("s"):
        print_stat(ctx, stat)


def _members_from_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh]
    except OSError as e:
        raise CliError(f"Error processing {path}{e}") from None
    return ",".join(ln.replace(" ", "") for ln in lines if ln.startswith("server."))

"""setquota, listquota and delquota: quotas kept as znodes, written by the client as zkCli
does (SetQuotaCommand, ListQuotaCommand, DelQuotaCommand).

A quota on /a/b is the node /zookeeper/quota/a/b/zookeeper_limits holding a StatsTrack text
(`count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1`) next to zookeeper_stats, which the
servers keep up to date themselves once it exists. Setting one first refuses a path whose
ancestor or descendant already has a quota; deleting all of a path's limits removes its quota
nodes and then every quota directory left empty above them.
"""

from __future__ import annotations

from ..client.errors import NodeExistsError, NoNodeError, ZookeeperError
from ..protocol.consts import QUOTA_PATH, ZOOKEEPER_PATH
from .shell_commands import (
    INT_MAX,
    INT_MIN,
    LONG_MAX,
    LONG_MIN,
    CliError,
    Command,
    Context,
    java_int,
    need_args,
    walk_dfs,
)
from .shell_format import error_message, path_error

LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
# option letter -> StatsTrack key
QUOTA_KEYS = {"n": "count", "b": "bytes", "N": "countHardLimit", "B": "byteHardLimit"}


class _BadArgument(Exception):
    """Java's IllegalArgumentException inside the quota helpers (zkCli prints the message)."""


# -- StatsTrack -----------------------------------------------------------------------------

def parse_stats(data: bytes | None) -> dict[str, int]:
    """StatsTrack(String): `key=value` pairs split on runs of `,` and `;`; an empty value is
    -1 and a trailing `=` (the marker after bytes) is ignored."""
    out: dict[str, int] = {}
    text = (data or b"").decode("utf-8", "replace")
    for pair in filter(None, text.replace(";", ",").split(",")):
        parts = pair.split("=")
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()
        if len(parts) < 2:
            continue
        value = java_int(parts[1] or "-1", LONG_MIN, LONG_MAX)
        out[parts[0]] = -1 if value is None else value
    return out


def format_stats(stats: dict[str, int]) -> str:
    """StatsTrack.toString: count and bytes first (-1 when unset); other keys sorted after a
    `=` that old parsers stop at."""
    text = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        text += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return text


def quota_path(path: str) -> str:
    return QUOTA_PATH + path


def limit_path(path: str) -> str:
    return f"{QUOTA_PATH}{path}/{LIMIT_NODE}"


def stat_path(path: str) -> str:
    return f"{QUOTA_PATH}{path}/{STAT_NODE}"


def _checked(path: str) -> str:
    """`path`, or Java's IllegalArgumentException for it."""
    problem = path_error(path)
    if problem is not None:
        raise _BadArgument(problem)
    return path


# -- listquota ------------------------------------------------------------------------------

def cmd_listquota(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    path = cl.args[1]
    ctx.err(f"absolute path is {limit_path(path)}")
    try:
        limits, _ = ctx.session.run(ctx.zk.get(_checked(limit_path(path))))
        stats, _ = ctx.session.run(ctx.zk.get(_checked(stat_path(path))))
    except _BadArgument as e:
        raise CliError(str(e)) from None
    except NoNodeError:
        ctx.err(f"quota for {path} does not exist.")
        return
    except ZookeeperError as e:
        raise CliError(error_message(e)) from None
    ctx.out(f"Output quota for {path} {format_stats(parse_stats(limits))}")
    ctx.out(f"Output stat for {path} {format_stats(parse_stats(stats))}")


# -- setquota -------------------------------------------------------------------------------

def cmd_setquota(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    path = cl.args[1]
    if path.startswith(QUOTA_PATH):
        ctx.err(f"cannot set a quota under the path: {QUOTA_PATH}")
        return
    quota = _requested_quota(ctx, cl.values)
    if quota is None:
        return
    try:
        _create_quota(ctx, path, quota)
    except _BadArgument as e:
        raise CliError(str(e)) from None
    except ZookeeperError as e:
        raise CliError(error_message(e)) from None


def _requested_quota(ctx: Context, values: dict[str, str | None]) -> dict[str, int] | None:
    """The limits asked for (unset ones -1), or None after printing why a value is refused
    (zkCli then ends the command without an error status)."""
    quota = {key: -1 for key in QUOTA_KEYS.values()}
    for letter, key in QUOTA_KEYS.items():
        if letter not in values:
            continue
        is_count = key.startswith("count")
        value = java_int(values[letter] or "", *((INT_MIN, INT_MAX) if is_count
                                                  else (LONG_MIN, LONG_MAX)))
        if value is None:
            ctx.err("NumberFormatException happens when parsing the option value")
            return None
        if is_count and value <= 0:
            ctx.err("the num quota must be greater than zero")
            return None
        if not is_count and value < 0:
            ctx.err("the bytes quota must be greater than or equal to zero")
            return None
        quota[key] = value
    return quota


def _create_quota(ctx: Context, path: str, quota: dict[str, int]) -> None:
    run, zk = ctx.session.run, ctx.zk
    if run(zk.exists(_checked(path))) is None:
        raise _BadArgument(f"{path} does not exist.")
    _refuse_child_quota(ctx, path)
    _refuse_parent_quota(ctx, path)
    for node in _quota_dirs(path):
        if run(zk.exists(node)) is None:
            try:
                run(zk.create(node, None))  # type: ignore[arg-type]
            except NodeExistsError:
                pass
    limits_node, stats_node = limit_path(path), stat_path(path)
    if run(zk.exists(limits_node)) is None:
        run(zk.create(limits_node, format_stats(quota).encode()))
        run(zk.create(stats_node, format_stats({"count": 0, "bytes": 0}).encode()))
        limits = parse_stats(run(zk.get(limits_node))[0])
        _warn_if_exceeded(ctx, limits, parse_stats(run(zk.get(stats_node))[0]))
        return
    limits = parse_stats(run(zk.get(limits_node))[0])
    limits.update({k: v for k, v in quota.items() if v > -1})
    _warn_if_exceeded(ctx, limits, parse_stats(run(zk.get(stats_node))[0]))
    run(zk.set(limits_node, format_stats(limits).encode()))


def _quota_dirs(path: str) -> list[str]:
    """/zookeeper, /zookeeper/quota and the quota directory of each prefix of `path`."""
    dirs, node = [ZOOKEEPER_PATH, QUOTA_PATH], QUOTA_PATH
    for part in path.split("/")[1:]:
        node = f"{node}/{part}"
        dirs.append(node)
    return dirs


def _refuse_child_quota(ctx: Context, path: str) -> None:
    """No quota may be set on an ancestor of a node that has one."""
    root = _checked(quota_path(path))
    try:
        for node in walk_dfs(ctx.session, root):
            try:
                children = ctx.session.run(ctx.zk.get_children(node))
            except NoNodeError:
                continue
            if node != root and LIMIT_NODE in children:
                raise _BadArgument(f"{path} has a child {node[len(QUOTA_PATH):]} which has a "
                                   "quota")
    except NoNodeError:
        return  # no quota directory under this path: fine


def _refuse_parent_quota(ctx: Context, path: str) -> None:
    """Nor on a descendant of a node that has one."""
    node = QUOTA_PATH
    for part in path.split("/")[1:-1]:
        node = f"{node}/{part}"
        try:
            children = ctx.session.run(ctx.zk.get_children(node))
        except NoNodeError:
            return
        if not children:
            return
        if node != quota_path(path) and LIMIT_NODE in children:
            raise _BadArgument(f"{path} has a parent {node[len(QUOTA_PATH):]} which has a "
                               "quota")


def _warn_if_exceeded(ctx: Context, limits: dict[str, int], stats: dict[str, int]) -> None:
    count, nbytes = stats.get("count", -1), stats.get("bytes", -1)
    if any(-1 < limits.get(k, -1) < count for k in ("count", "countHardLimit")):
        ctx.out(f"[Warning]: the count quota you create is less than the existing count:{count}")
    if any(-1 < limits.get(k, -1) < nbytes for k in ("bytes", "byteHardLimit")):
        ctx.out(f"[Warning]: the bytes quota you create is less than the existing bytes:"
                f"{nbytes}")


# -- delquota -------------------------------------------------------------------------------

def cmd_delquota(ctx: Context, words: list[str], cmd: Command) -> None:
    cl = cmd.parse(words)
    need_args(cl, 2, cmd)
    path = cl.args[1]
    chosen = [QUOTA_KEYS[letter] for letter in QUOTA_KEYS if cl.has(letter)]
    try:
        _delete_quota(ctx, path, chosen)
    except _BadArgument as e:
        raise CliError(str(e)) from None
    except NoNodeError:
        ctx.err(f"quota for {path} does not exist.")
    except ZookeeperError as e:
        raise CliError(error_message(e)) from None


def _delete_quota(ctx: Context, path: str, keys: list[str]) -> None:
    """Unset the chosen limits, or with none chosen remove the quota altogether."""
    run, zk = ctx.session.run, ctx.zk
    limits_node = _checked(limit_path(path))
    if run(zk.exists(limits_node)) is None:
        ctx.out(f"Quota does not exist for {path}")
        return
    limits = parse_stats(run(zk.get(limits_node))[0])
    if keys:
        limits.update({k: -1 for k in keys})
        run(zk.set(limits_node, format_stats(limits).encode()))
        return
    parent = quota_path(path)
    for child in run(zk.get_children(parent)):
        run(zk.delete(f"{parent}/{child}"))
    _trim_empty(ctx, parent)


def _trim_empty(ctx: Context, node: str) -> None:
    while node != QUOTA_PATH:
        if ctx.session.run(ctx.zk.get_children(node)):
            return
        ctx.session.run(ctx.zk.delete(node))
        node = node[:node.rfind("/")]

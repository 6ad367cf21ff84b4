"""Typed configuration in ZooKeeper: `ConfigWatcher` keeps live values, `ConfigWriter` changes
them with versioned compare-and-set.

    keys = [Key("workers", int, 4), Key("ratio", float, 0.5), Key("debug", bool, False),
            Key("greeting", str, "hi"), Key("limits", JSON, {})]
    async with ConfigWatcher(zk, "/config/app", keys) as cfg:
        cfg.on_change(lambda key, old, new: print(key, old, "->", new))
        cfg.value("workers")                                    # 4 until someone sets it
    await ConfigWriter(zk, "/config/app", keys).set("workers", 8)

Two layouts:

- NODE (default): one znode whose data is a JSON object, {"workers": 8, "debug": true, ...}.
  Several keys change atomically; every write rewrites the object (compare-and-set on the
  znode's version, retried when another writer got in first).
- TREE: one child znode per key, `/config/app/workers` holding UTF-8 text ("8", "true",
  "0.5", a JSON document for JSON keys). Writers of different keys never conflict; `update`
  of several keys is one multi.

Values are parsed by their key's type (int, float, bool, str, JSON, or a custom parser); a
missing key, or one that does not parse (logged), reads as its default — a typo in the
configuration must not take the readers down. The watcher sits on a TreeCache, so it follows
reconnects and session expiry: changes made meanwhile are reported once it has caught up.
Callbacks get (key, old, new) for each key whose typed value changed.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..client.aio import AsyncZooKeeper
from ..client.errors import (
    BadVersionError,
    ConnectionLossError,
    NodeExistsError,
    NoNodeError,
)
from ..client.sync import ZooKeeperClient
from ..protocol.records import Stat
from ._sync import SyncRecipe
from .treecache import TreeCache, TreeEvent, TreeEventType

log = logging.getLogger("zookapter.recipes.config")

JSON = "json"  # the key type of values stored as JSON documents
NODE = "node"  # layout: one znode holding a JSON object
TREE = "tree"  # layout: one child znode per key
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_MISSING = object()

ChangeCallback = Callable[[str, Any, Any], Any]


# -- typed keys ------------------------------------------------------------------------------

def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise TypeError(f"not an int: {raw!r}")
    return int(raw)


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise TypeError(f"not a float: {raw!r}")
    return float(raw)


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a bool: {raw!r}")


def _parse_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"not a string: {raw!r}")
    return raw


_PARSERS: dict[Any, Callable[[Any], Any]] = {
    int: _parse_int, float: _parse_float, bool: _parse_bool, str: _parse_str}


@dataclass(frozen=True)
class Key:
    """A declared configuration key. `type` is int, float, bool, str or JSON; `parser`
    (raw value -> typed value; raw is the text of a TREE znode or the JSON value of a NODE
    entry) and `dumper` (typed value -> str or JSON value) override it for custom types."""
    name: str
    type: Any = str
    default: Any = None
    parser: Callable[[Any], Any] | None = None
    dumper: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"bad key name {self.name!r}")
        if self.parser is None and self.type not in _PARSERS and self.type != JSON:
            raise ValueError(f"key {self.name!r}: unknown type {self.type!r}; give a parser")

    def parse(self, raw: Any, from_text: bool) -> Any:
        """The typed value of `raw` (raises ValueError/TypeError if it does not parse)."""
        if self.parser is not None:
            return self.parser(raw)
        if self.type == JSON:
            return json.loads(raw) if from_text else raw
        return _PARSERS[self.type](raw)

    def to_json(self, value: Any) -> Any:
        """`value` as stored in a NODE layout's JSON object."""
        if self.dumper is not None:
            return self.dumper(value)
        return value

    def to_text(self, value: Any) -> str:
        """`value` as stored in a TREE layout's znode."""
        if self.dumper is not None:
            out = self.dumper(value)
            return out if isinstance(out, str) else json.dumps(out)
        if self.type == JSON:
            return json.dumps(value, sort_keys=True)
        if self.type is bool:
            return "true" if value else "false"
        if self.type is float:
            return repr(float(value))
        return str(value)

    def check(self, value: Any, layout: str) -> None:
        """Raise ValueError unless `value` would read back as itself."""
        try:
            if layout == TREE:
                back = self.parse(self.to_text(value), True)
            else:
                back = self.parse(json.loads(json.dumps(self.to_json(value))), False)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{value!r} is not a valid {self.name!r} value: {e}") from None
        if back != value:
            raise ValueError(f"{value!r} does not round-trip as {self.name!r} (reads {back!r})")


def _key_table(keys: Iterable[Key] | Mapping[str, Key]) -> dict[str, Key]:
    items = keys.values() if isinstance(keys, Mapping) else keys
    table = {k.name: k for k in items}
    if not table:
        raise ValueError("declare at least one key")
    return table


def _check_layout(layout: str) -> str:
    if layout not in (NODE, TREE):
        raise ValueError(f"layout must be {NODE!r} or {TREE!r}, not {layout!r}")
    return layout


def _decode_object(data: bytes, path: str) -> dict[str, Any]:
    """A NODE layout's JSON object ({} if empty; {} and a warning if not an object)."""
    if not data:
        return {}
    try:
        obj = json.loads(data)
    except ValueError as e:
        log.warning("config %s is not valid JSON (%s); using defaults", path, e)
        return {}
    if not isinstance(obj, dict):
        log.warning("config %s is not a JSON object; using defaults", path)
        return {}
    return obj


def _typed(key: Key, raw: Any, from_text: bool, where: str) -> Any:
    if raw is _MISSING:
        return key.default
    try:
        return key.parse(raw, from_text)
    except (ValueError, TypeError) as e:
        log.warning("config %s: bad value for %r (%s); using the default", where, key.name, e)
        return key.default


# -- the watcher ----------------------------------------------------------------------------

class ConfigWatcher:
    """Live typed values of the configuration at `path` (see the module docstring)."""

    def __init__(self, zk: AsyncZooKeeper, path: str,
                 keys: Iterable[Key] | Mapping[str, Key], layout: str = NODE) -> None:
        self.zk = zk
        self.path = path
        self.layout = _check_layout(layout)
        self.keys = _key_table(keys)
        self._cache = TreeCache(zk, path, max_depth=0 if layout == NODE else 1)
        self._values = {name: k.default for name, k in self.keys.items()}
        self._callbacks: list[tuple[ChangeCallback, str | None]] = []
        self._ready = False

    async def start(self, timeout: float | None = None) -> None:
        """Load the configuration; callbacks fire for changes after this returns."""
        self._cache.listen(self._on_tree_event)
        await self._cache.start(timeout)
        self._values = self._read_values()
        self._ready = True

    async def close(self) -> None:
        await self._cache.close()

    async def __aenter__(self) -> ConfigWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def value(self, key: str) -> Any:
        """The current typed value of a declared key (its default if unset or invalid)."""
        if key not in self.keys:
            raise KeyError(f"undeclared config key {key!r}")
        return self._values[key]

    __getitem__ = value

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def on_change(self, callback: ChangeCallback, key: str | None = None) -> None:
        """Call `callback(key, old, new)` when a key's value changes (only `key`'s, if
        given). Coroutine functions are awaited; callbacks run one at a time, in order."""
        if key is not None and key not in self.keys:
            raise KeyError(f"undeclared config key {key!r}")
        self._callbacks.append((callback, key))

    def remove_callback(self, callback: ChangeCallback) -> None:
        self._callbacks = [(cb, k) for cb, k in self._callbacks if cb != callback]

    # -- internals --------------------------------------------------------------------------

    def _raw_values(self) -> tuple[dict[str, Any], bool]:
        """Each key's stored raw value (or _MISSING), and whether raws are text."""
        if self.layout == NODE:
            node = self._cache.get_data(self.path)
            obj = {} if node is None else _decode_object(node.data, self.path)
            return {name: obj.get(name, _MISSING) for name in self.keys}, False
        raws: dict[str, Any] = {}
        for name in self.keys:
            node = self._cache.get_data(f"{self.path.rstrip('/')}/{name}")
            raws[name] = _MISSING if node is None else node.data.decode("utf-8", "replace")
        return raws, True

    def _read_values(self) -> dict[str, Any]:
        raws, from_text = self._raw_values()
        return {name: _typed(self.keys[name], raw, from_text, self.path)
                for name, raw in raws.items()}

    async def _on_tree_event(self, event: TreeEvent) -> None:
        if not self._ready or event.type not in (
                TreeEventType.NODE_ADDED, TreeEventType.NODE_UPDATED,
                TreeEventType.NODE_REMOVED, TreeEventType.INITIALIZED):
            return
        new = self._read_values()
        old, self._values = self._values, new
        for name, value in new.items():
            if value != old[name] or type(value) is not type(old[name]):
                await self._fire(name, old[name], value)

    async def _fire(self, name: str, old: Any, new: Any) -> None:
        for callback, only in list(self._callbacks):
            if only is not None and only != name:
                continue
            try:
                result = callback(name, old, new)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("config callback %r failed", callback)


# -- the writer -----------------------------------------------------------------------------

class ConfigWriter:
    """Changes the configuration at `path` with optimistic concurrency: every write names the
    znode version it read, and is redone on a fresh read when another writer got there first.
    Writes lost to a dropped connection are retried the same way (idempotent: a write whose
    outcome is unknown is recognised by reading it back)."""

    def __init__(self, zk: AsyncZooKeeper, path: str,
                 keys: Iterable[Key] | Mapping[str, Key], layout: str = NODE,
                 max_attempts: int = 100) -> None:
        self.zk = zk
        self.path = path
        self.layout = _check_layout(layout)
        self.keys = _key_table(keys)
        self.max_attempts = max_attempts

    async def get(self) -> dict[str, Any]:
        """The current typed values, read from the server (defaults for unset keys)."""
        return (await self.zk.retry(self._read)).values

    async def set(self, key: str, value: Any) -> None:
        """Set one key."""
        await self.update({key: value})

    async def update(self, values: Mapping[str, Any]) -> None:
        """Set several keys at once (atomically in both layouts)."""
        for name, value in values.items():
            self._key(name).check(value, self.layout)
        await self._cas_loop(lambda current: dict(values))

    async def delete(self, key: str) -> None:
        """Remove a key's stored value: readers fall back to its default."""
        self._key(key)
        await self._cas_loop(lambda current: {key: _MISSING})

    async def compare_and_set(self, key: str, expected: Any, new: Any) -> bool:
        """Set `key` to `new` only if its current typed value is `expected`; False if not."""
        self._key(key).check(new, self.layout)

        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            return {key: new} if current[key] == expected else None

        return await self._cas_loop(change)

    # -- internals --------------------------------------------------------------------------

    def _key(self, name: str) -> Key:
        if name not in self.keys:
            raise KeyError(f"undeclared config key {name!r}")
        return self.keys[name]

    def _child(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    async def _cas_loop(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]
                        ) -> bool:
        """Read, compute the changes, write them naming the versions read; again on conflict.
        After a connection loss the outcome is unknown: the next read tells whether the
        write landed. False if `change` declined (returned None)."""
        unsure: dict[str, Any] | None = None
        for _ in range(self.max_attempts):
            snap = await self.zk.retry(self._read)
            if unsure is not None and snap.holds(unsure):
                return True  # the write whose reply was lost did land
            changes = change(snap.values)
            if changes is None:
                return False
            if snap.holds(changes):
                return True  # nothing to change
            try:
                await self._write(changes, snap)
                return True
            except (BadVersionError, NodeExistsError, NoNodeError):
                unsure = None
            except ConnectionLossError:
                unsure = changes
        raise BadVersionError(f"config {self.path}: gave up after {self.max_attempts} "
                              "conflicting writes", self.path)

    async def _read(self) -> _Snapshot:
        if self.layout == NODE:
            try:
                data, stat = await self.zk.get(self.path)
            except NoNodeError:
                data, stat = b"", None
            obj = _decode_object(data, self.path)
            raws = {n: obj.get(n, _MISSING) for n in self.keys}
            return _Snapshot(self.keys, raws, False, {self.path: stat}, obj, self.path)
        raws, stats = {}, {}
        for name in self.keys:
            try:
                data, stat = await self.zk.get(self._child(name))
                raws[name] = data.decode("utf-8", "replace")
            except NoNodeError:
                raws[name], stat = _MISSING, None
            stats[self._child(name)] = stat
        return _Snapshot(self.keys, raws, True, stats, {}, self.path)

    async def _write(self, changes: dict[str, Any], snap: _Snapshot) -> None:
        if self.layout == NODE:
            await self._write_node(changes, snap)
        else:
            await self._write_tree(changes, snap)

    async def _write_node(self, changes: dict[str, Any], snap: _Snapshot) -> None:
        obj = dict(snap.raw_object)
        for name, value in changes.items():
            if value is _MISSING:
                obj.pop(name, None)
            else:
                obj[name] = self.keys[name].to_json(value)
        data = json.dumps(obj, sort_keys=True).encode()
        stat = snap.stats[self.path]
        if stat is None:
            await self.zk.create(self.path, data, makepath=True)
        else:
            await self.zk.set(self.path, data, version=stat.version)

    async def _write_tree(self, changes: dict[str, Any], snap: _Snapshot) -> None:
        await self.zk.retry(self.zk.ensure_path, self.path)
        tx = self.zk.transaction()
        for name, value in changes.items():
            path = self._child(name)
            stat = snap.stats[path]
            if value is _MISSING:
                if stat is not None:
                    tx.delete(path, version=stat.version)
            elif stat is None:
                tx.create(path, self.keys[name].to_text(value).encode())
            else:
                tx.set_data(path, self.keys[name].to_text(value).encode(), version=stat.version)
        await tx.commit()


class _Snapshot:
    """What a writer read: raw and typed values, and the znode stats to write against."""

    def __init__(self, keys: dict[str, Key], raws: dict[str, Any], from_text: bool,
                 stats: dict[str, Stat | None], raw_object: dict[str, Any], where: str
                 ) -> None:
        self.raws = raws
        self.stats = stats
        self.raw_object = raw_object
        self.values = {n: _typed(k, raws[n], from_text, where) for n, k in keys.items()}
        self._valid = {n: raws[n] is not _MISSING and _parses(k, raws[n], from_text)
                       for n, k in keys.items()}

    def holds(self, changes: dict[str, Any]) -> bool:
        """True if the stored values already are `changes` (_MISSING: not stored)."""
        for name, value in changes.items():
            if value is _MISSING:
                if self.raws[name] is not _MISSING:
                    return False
            elif not (self._valid[name] and self.values[name] == value
                      and type(self.values[name]) is type(value)):
                return False
        return True


def _parses(key: Key, raw: Any, from_text: bool) -> bool:
    try:
        key.parse(raw, from_text)
    except (ValueError, TypeError):
        return False
    return True


# -- blocking twins --------------------------------------------------------------------------

class SyncConfigWatcher(SyncRecipe[ConfigWatcher]):
    """Blocking ConfigWatcher on a `ZooKeeperClient`; callbacks run on its callback thread."""

    def __init__(self, client: ZooKeeperClient, path: str,
                 keys: Iterable[Key] | Mapping[str, Key], layout: str = NODE) -> None:
        super().__init__(client, lambda zk: ConfigWatcher(zk, path, keys, layout))

    def start(self, timeout: float | None = None) -> None:
        self._run(self._inner.start(timeout))

    def close(self) -> None:
        self._run(self._inner.close())

    def __enter__(self) -> SyncConfigWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def value(self, key: str) -> Any:
        return self._inner.value(key)

    __getitem__ = value

    def values(self) -> dict[str, Any]:
        return self._inner.values()

    def on_change(self, callback: ChangeCallback, key: str | None = None) -> None:
        self._inner.on_change(_ChangeOnThread(self, callback), key)

    def remove_callback(self, callback: ChangeCallback) -> None:
        self._inner._callbacks = [(cb, k) for cb, k in self._inner._callbacks
                                  if not (isinstance(cb, _ChangeOnThread)
                                          and cb.callback == callback)]


class _ChangeOnThread:
    """A (key, old, new) callback moved to the client's callback thread."""

    def __init__(self, recipe: SyncRecipe[Any], callback: ChangeCallback) -> None:
        self.callback = callback
        self._call = recipe.wrap_callback(lambda args: callback(*args))

    def __call__(self, key: str, old: Any, new: Any) -> None:
        assert self._call is not None
        self._call((key, old, new))


class SyncConfigWriter(SyncRecipe[ConfigWriter]):
    """Blocking ConfigWriter on a `ZooKeeperClient`."""

    def __init__(self, client: ZooKeeperClient, path: str,
                 keys: Iterable[Key] | Mapping[str, Key], layout: str = NODE,
                 max_attempts: int = 100) -> None:
        super().__init__(client, lambda zk: ConfigWriter(zk, path, keys, layout, max_attempts))

    def get(self) -> dict[str, Any]:
        return self._run(self._inner.get())

    def set(self, key: str, value: Any) -> None:
        self._run(self._inner.set(key, value))

    def update(self, values: Mapping[str, Any]) -> None:
        self._run(self._inner.update(values))

    def delete(self, key: str) -> None:
        self._run(self._inner.delete(key))

    def compare_and_set(self, key: str, expected: Any, new: Any) -> bool:
        return self._run(self._inner.compare_and_set(key, expected, new))

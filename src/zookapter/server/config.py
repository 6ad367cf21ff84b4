"""zoo.cfg and Java system properties, read as Apache ZooKeeper reads them.

zoo.cfg is a Java properties file. Keys ZooKeeper's QuorumPeerConfig knows are read into
`ServerConfig`; any other key becomes the system property `zookeeper.<key>` (so
`4lw.commands.whitelist` and `zookeeper.4lw.commands.whitelist` are the same setting).
`-Dname=value` flags (SERVER_JVMFLAGS) are system properties. Keys and properties we do not
implement, and Java class names (serverCnxnFactory, authProvider.N, ...), are logged as
ignored — never fatal, so an existing ZooKeeper config starts unchanged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from .sessions import timeout_bounds

log = logging.getLogger("zookapter.config")

MIN_SNAP_RETAIN_COUNT = 3  # = storage.purge.MIN_SNAP_RETAIN_COUNT
DEFAULT_DATA_DIR = os.path.join(os.path.expanduser("~"), ".zookapter", "data")


class ConfigError(ValueError):
    pass


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties subset: key=value or key:value or key value, # and ! comments,
    backslash line continuations, surrounding whitespace trimmed."""
    props: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        key, value = _split_kv(line)
        props[key] = value
    return props


def _split_kv(line: str) -> tuple[str, str]:
    for j, ch in enumerate(line):
        if ch in "=:":
            return line[:j].strip(), line[j + 1:].strip()
        if ch in " \t":
            rest = line[j:].strip()
            if rest[:1] in ("=", ":"):
                rest = rest[1:].strip()
            return line[:j].strip(), rest
    return line.strip(), ""


def _bool(v: str | None, default: bool = False) -> bool:
    if v is None:
        return default
    return v.strip().lower() in ("true", "yes", "1")


# zoo.cfg keys consumed directly (QuorumPeerConfig.parseProperties) and implemented here
KNOWN_KEYS = {
    "tickTime", "dataDir", "dataLogDir", "clientPort", "clientPortAddress",
    "secureClientPort", "secureClientPortAddress", "maxClientCnxns", "minSessionTimeout",
    "maxSessionTimeout", "clientPortListenBacklog", "initLimit", "syncLimit",
    "autopurge.snapRetainCount", "autopurge.purgeInterval", "standaloneEnabled",
    "reconfigEnabled", "electionAlg", "peerType", "localSessionsEnabled",
    "localSessionsUpgradingEnabled", "syncEnabled", "quorumListenOnAllIPs",
    "dynamicConfigFile", "metricsProvider.className", "multiAddress.enabled",
}
# zoo.cfg keys under this prefix configure the metrics provider (QuorumPeerConfig strips it:
# metricsProvider.httpPort -> httpPort); see ops/prometheus.py.
METRICS_PROVIDER_PREFIX = "metricsProvider."
# Keys that name Java classes or Java-only features: accepted and ignored.
IGNORED_PREFIXES = ("serverCnxnFactory", "authProvider.",
                    "ssl.quorum.", "sslQuorum", "portUnification", "quorum.auth.",
                    "kerberos.", "jaasLoginRenew", "zookeeper.serverCnxnFactory")
# System properties (after the `zookeeper.` prefix is added) we implement.
SUPPORTED_PROPS = {
    "zookeeper.DigestAuthenticationProvider.superDigest",
    "zookeeper.DigestAuthenticationProvider.digestAlg",
    "zookeeper.DigestAuthenticationProvider.enabled",
    "readonlymode.enabled", "zookeeper.extendedTypesEnabled", "zookeeper.enforceQuota",
    "jute.maxbuffer", "zookeeper.skipACL", "zookeeper.4lw.commands.whitelist",
    "zookeeper.admin.enableServer", "zookeeper.admin.serverAddress",
    "zookeeper.admin.serverPort", "zookeeper.admin.commandURL", "zookeeper.admin.idleTimeout",
    "znode.container.checkIntervalMs", "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs", "zookeeper.snapCount", "zookeeper.forceSync",
    "zookeeper.preAllocSize", "zookeeper.digest.enabled",
    "zookeeper.X509AuthenticationProvider.superUser",
    "zookeeper.maxCnxns", "zookeeper.globalOutstandingLimit", "zookapter.snapshot.chunkNodes",
    "java.security.auth.login.config", "zookeeper.sasl.serverconfig", "zookeeper.superUser",
    "zookeeper.SASLAuthenticationProvider.superPassword", "zookeeper.allowSaslFailedClients",
    "zookeeper.sessionRequireClientSASLAuth", "zookeeper.letAnySaslUserDoX",
    "zookeeper.kerberos.removeHostFromPrincipal", "zookeeper.kerberos.removeRealmFromPrincipal",
    # test-only: autopurge every N milliseconds instead of autopurge.purgeInterval hours
    "zookapter.autopurge.intervalMs",
}
SSL_PREFIXES = ("zookeeper.ssl.", "ssl.")


@dataclass
class ServerConfig:
    tick_time: int = 3000
    data_dir: str = DEFAULT_DATA_DIR
    data_log_dir: str | None = None
    client_port: int | None = 2181
    client_port_address: str = "127.0.0.1"
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None
    max_client_cnxns: int = 60
    min_session_timeout: int = -1
    max_session_timeout: int = -1
    listen_backlog: int = -1
    server_id: int = 0
    props: dict[str, str] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    config_path: str | None = None
    # metricsProvider.className and the other metricsProvider.* keys (prefix removed)
    metrics_provider_class: str | None = None
    metrics_provider_config: dict[str, str] = field(default_factory=dict)

    # --- derived settings -------------------------------------------------------------------

    def prop(self, name: str, default: str | None = None) -> str | None:
        return self.props.get(name, default)

    @property
    def min_timeout(self) -> int:
        return timeout_bounds(self.tick_time, self.min_session_timeout,
                              self.max_session_timeout)[0]

    @property
    def max_timeout(self) -> int:
        return timeout_bounds(self.tick_time, self.min_session_timeout,
                              self.max_session_timeout)[1]

    @property
    def super_digest(self) -> str | None:
        return self.prop("zookeeper.DigestAuthenticationProvider.superDigest")

    @property
    def extended_types(self) -> bool:
        return _bool(self.prop("zookeeper.extendedTypesEnabled"))

    @property
    def enforce_quota(self) -> bool:
        return _bool(self.prop("zookeeper.enforceQuota"))

    @property
    def skip_acl(self) -> bool:
        return _bool(self.prop("zookeeper.skipACL"))

    @property
    def readonly_mode(self) -> bool:
        return _bool(self.prop("readonlymode.enabled"))

    @property
    def jute_maxbuffer(self) -> int:
        v = self.prop("jute.maxbuffer")
        return int(v, 0) if v else 0xFFFFF

    @property
    def fourlw_whitelist(self) -> set[str]:
        """As FourLetterCommands.isEnabled: the listed words, plus srvr always and isro in
        read-only mode (ZooKeeper itself relies on both)."""
        v = self.prop("zookeeper.4lw.commands.whitelist") or ""
        items = {x.strip() for x in v.split(",") if x.strip()}
        if "*" in items:
            return {"*"}
        items.add("srvr")
        if self.readonly_mode:
            items.add("isro")
        return items

    # --- AdminServer (JettyAdminServer's system properties) ----------------------------------

    @property
    def admin_enabled(self) -> bool:
        """On unless exactly "false", as ZooKeeper's AdminServerFactory decides."""
        return self.prop("zookeeper.admin.enableServer") != "false"

    @property
    def admin_address(self) -> str:
        return self.prop("zookeeper.admin.serverAddress") or "0.0.0.0"

    @property
    def admin_port(self) -> int:
        return _java_integer(self.prop("zookeeper.admin.serverPort"), 8080)

    @property
    def admin_command_url(self) -> str:
        return self.prop("zookeeper.admin.commandURL") or "/commands"

    @property
    def admin_idle_timeout_ms(self) -> int:
        return _java_integer(self.prop("zookeeper.admin.idleTimeout"), 30000)

    @property
    def container_check_interval_ms(self) -> int:
        return int(self.prop("znode.container.checkIntervalMs", "60000") or 60000)

    @property
    def container_max_per_minute(self) -> int:
        return int(self.prop("znode.container.maxPerMinute", "10000") or 10000)

    @property
    def snap_count(self) -> int:
        return int(self.prop("zookeeper.snapCount", "100000") or 100000)

    @property
    def force_sync(self) -> bool:
        return (self.prop("zookeeper.forceSync", "yes") or "yes").strip().lower() != "no"

    @property
    def prealloc_size_kb(self) -> int:
        return int(self.prop("zookeeper.preAllocSize", "65536") or 65536)

    @property
    def snap_retain_count(self) -> int:
        """autopurge.snapRetainCount (default 3; smaller values mean 3, as in ZooKeeper)."""
        return max(_int(self.raw, "autopurge.snapRetainCount", MIN_SNAP_RETAIN_COUNT),
                   MIN_SNAP_RETAIN_COUNT)

    @property
    def purge_interval(self) -> int:
        """autopurge.purgeInterval in hours (0, the default, or less: no autopurge)."""
        return _int(self.raw, "autopurge.purgeInterval", 0)

    @property
    def autopurge_interval_ms(self) -> int:
        """The autopurge period in ms, 0 when disabled. The system property
        `zookapter.autopurge.intervalMs` overrides purgeInterval; it exists for tests only
        (ZooKeeper has no sub-hour interval)."""
        override = self.prop("zookapter.autopurge.intervalMs")
        if override:
            return max(int(override), 0)
        hours = self.purge_interval
        return hours * 3_600_000 if hours > 0 else 0

    @property
    def ssl_props(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self.props.items():
            if k.startswith("zookeeper.ssl."):
                out[k[len("zookeeper."):]] = v
        return out


def _java_integer(value: str | None, default: int) -> int:
    """Integer.getInteger: the default when the property is missing or not a number."""
    try:
        return int(value.strip()) if value is not None else default
    except ValueError:
        return default


def _int(raw: dict[str, str], key: str, default: int) -> int:
    v = raw.get(key)
    if v is None or v.strip() == "":
        return default
    try:
        return int(v.strip())
    except ValueError:
        raise ConfigError(f"{key}: not a number: {v!r}") from None


def apply_system_property(cfg: ServerConfig, name: str, value: str) -> None:
    if name not in SUPPORTED_PROPS and not name.startswith(SSL_PREFIXES):
        log.info("ignoring unsupported system property %s", name)
    if name.startswith("ssl."):
        name = "zookeeper." + name
    cfg.props[name] = value


def load_config(path: str | None, system_props: dict[str, str] | None = None
                ) -> ServerConfig:
    """Build a ServerConfig from an optional zoo.cfg path and -D system properties."""
    cfg = ServerConfig()
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                raw = parse_properties(f.read())
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
        cfg.config_path = os.path.abspath(path)
        _apply_cfg(cfg, raw)
    for k, v in (system_props or {}).items():
        apply_system_property(cfg, k, v)
    if cfg.min_session_timeout > 0 and cfg.max_session_timeout > 0 \
            and cfg.min_session_timeout > cfg.max_session_timeout:
        raise ConfigError("minSessionTimeout must not be larger than maxSessionTimeout")
    return cfg


def _apply_cfg(cfg: ServerConfig, raw: dict[str, str]) -> None:
    cfg.raw = dict(raw)
    cfg.tick_time = _int(raw, "tickTime", 3000)
    if "dataDir" in raw:
        cfg.data_dir = raw["dataDir"]
    cfg.data_log_dir = raw.get("dataLogDir") or None
    cfg.client_port = _int(raw, "clientPort", -1) if "clientPort" in raw else None
    if cfg.client_port == -1:
        cfg.client_port = None
    cfg.client_port_address = raw.get("clientPortAddress") or "0.0.0.0"
    if "secureClientPort" in raw:
        cfg.secure_client_port = _int(raw, "secureClientPort", 0)
    cfg.secure_client_port_address = raw.get("secureClientPortAddress") or None
    cfg.max_client_cnxns = _int(raw, "maxClientCnxns", 60)
    cfg.min_session_timeout = _int(raw, "minSessionTimeout", -1)
    cfg.max_session_timeout = _int(raw, "maxSessionTimeout", -1)
    cfg.listen_backlog = _int(raw, "clientPortListenBacklog", -1)
    retain = _int(raw, "autopurge.snapRetainCount", MIN_SNAP_RETAIN_COUNT)
    if retain < MIN_SNAP_RETAIN_COUNT:
        log.warning("Invalid autopurge.snapRetainCount: %d. Defaulting to %d", retain,
                    MIN_SNAP_RETAIN_COUNT)
    _int(raw, "autopurge.purgeInterval", 0)  # fail early on a non-number
    cfg.metrics_provider_class = raw.get("metricsProvider.className") or None
    for key, value in raw.items():
        if key.startswith(METRICS_PROVIDER_PREFIX):
            if key != "metricsProvider.className":
                cfg.metrics_provider_config[key[len(METRICS_PROVIDER_PREFIX):]] = value
            continue
        if key in KNOWN_KEYS:
            continue
        if key.startswith("server.") or key.startswith("group.") or key.startswith("weight."):
            continue  # the ensemble's: read by quorum.config (quorum.shell.quorum_config_for)
        if key.startswith(IGNORED_PREFIXES):
            log.info("ignoring Java-specific key %s=%s", key, value)
            continue
        # QuorumPeerConfig turns any other key into the system property zookeeper.<key>
        name = key if key.startswith("zookeeper.") else "zookeeper." + key
        apply_system_property(cfg, name, value)

"""Server-side TLS: build an `ssl.SSLContext` from ZooKeeper's TLS configuration keys.

ZooKeeper (``org.apache.zookeeper.common.X509Util`` / ``ClientX509Util``) reads its client-port
TLS settings from system properties named ``zookeeper.ssl.<name>``; a zoo.cfg line
``ssl.<name>=v`` is turned into that system property by ``QuorumPeerConfig`` (every unknown
zoo.cfg key ``k`` becomes ``zookeeper.k``, overriding a ``-D`` of the same name). This module
accepts both spellings in one ``dict[str, str]``; when both are present the zoo.cfg spelling
(``ssl.<name>``) wins, as it does in ZooKeeper. With ``quorum=True`` the quorum prefix
(``ssl.quorum.`` / ``zookeeper.ssl.quorum.``, ``QuorumX509Util``) is read instead.

Keys (``<p>`` = ``ssl.`` or ``ssl.quorum.``, each optionally prefixed with ``zookeeper.``):

``<p>keyStore.location``        required; the server's private key + certificate chain
``<p>keyStore.password``        store (and key) password, default empty
``<p>keyStore.passwordPath``    file holding the password (overrides ``keyStore.password``)
``<p>keyStore.type``            JKS | PKCS12 | PEM; inferred from the extension when absent
``<p>trustStore.location``      CA certificates for client verification; when absent the
                                system default CAs are used (Java uses the JVM's cacerts)
``<p>trustStore.password``      / ``trustStore.passwordPath`` / ``trustStore.type`` likewise
``<p>clientAuth``               none | want | need (case-insensitive, default need)
``<p>protocol``                 e.g. TLSv1.2, TLSv1.3, TLS
``<p>enabledProtocols``         comma list, e.g. ``TLSv1.2,TLSv1.3``
``<p>ciphersuites``             comma list of IANA/Java names (OpenSSL names also accepted)
``<p>hostnameVerification``     ignored: ZooKeeper never verifies client hostnames on a
                                client port, and a server context has no peer name to check

Type inference follows ``KeyStoreFileType.fromFilename``: ``.jks`` -> JKS, ``.pem`` -> PEM,
``.p12`` -> PKCS12; ``.pfx`` (PKCS12) and ``.jceks`` (read by the JKS loader) are also accepted.
Because the JDK's JKS and PKCS12 keystores each read the other format ("keystore.type.compat"),
a JKS/PKCS12 store is loaded according to its content (magic bytes), not its declared type.

Protocols: with ``enabledProtocols`` the context accepts the range spanned by the listed
versions; otherwise a specific ``protocol`` (e.g. ``TLSv1.2``) is the only accepted version,
as in ZooKeeper (enabled = [protocol]). With neither, TLSv1.2 and TLSv1.3 are accepted
(ZooKeeper 3.8 defaults to TLSv1.2 only, later releases to TLSv1.3; accepting both serves
clients of either).

Cipher suites (best effort): Java/IANA names are translated to OpenSSL names for TLS <= 1.2;
TLS 1.3 suites cannot be selected individually through Python's ``ssl`` module, so a list naming
only TLS 1.3 suites restricts the context to TLS 1.3 and a list naming only TLS <= 1.2 suites
restricts it to TLS 1.2 (what the JDK does when no suite of a version is enabled). Unknown
names are ignored with a warning; a list of which nothing is usable is an error.

Not supported (warned about and ignored): ``crl``, ``ocsp``, ``clientHostnameVerification``,
``sslProvider``; ``context.supplier.class`` names a Java class and is rejected.

`client_x509_id` returns the identity ZooKeeper's ``X509AuthenticationProvider`` assigns to a
TLS client: its certificate's subject as ``X500Principal.getName()`` prints it (RFC 2253,
most-specific RDN first, Java's escaping and ``#hex`` form for attributes without a keyword).

Store loading lives in `zookapter.server.keystores`, the Java DN formatting in
`zookapter.server.x509name`; their public names are re-exported here.
"""

from __future__ import annotations

import enum
import logging
import os
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .keystores import (
    StoreConfig,
    StoreType,
    TLSConfigError,
    infer_store_type,
    load_key_store,
    load_trust_store,
    read_password_file,
)
from .x509name import java_rfc2253_name

__all__ = [
    "ClientAuth",
    "StoreConfig",
    "StoreType",
    "TLSConfig",
    "TLSConfigError",
    "build_server_context",
    "client_x509_id",
    "java_rfc2253_name",
    "load_key_store",
    "load_trust_store",
    "parse_tls_config",
]

log = logging.getLogger(__name__)


class ClientAuth(enum.Enum):
    NONE = "none"
    WANT = "want"
    NEED = "need"


_TLS_VERSIONS = {
    "SSLV3": ssl.TLSVersion.SSLv3,
    "TLSV1": ssl.TLSVersion.TLSv1,
    "TLSV1.1": ssl.TLSVersion.TLSv1_1,
    "TLSV1.2": ssl.TLSVersion.TLSv1_2,
    "TLSV1.3": ssl.TLSVersion.TLSv1_3,
}
# Java SSLContext algorithm names that do not pin a version.
_GENERIC_PROTOCOLS = {"TLS", "SSL", "DEFAULT", "TLSV1+", "SSLV2HELLO"}

# IANA (= Java) cipher-suite name -> OpenSSL name, TLS <= 1.2 (checked with `openssl ciphers
# -stdname`). TLS 1.3 suites have the same name in both.
_IANA_TO_OPENSSL = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "DHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256": "DHE-RSA-AES128-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256": "DHE-RSA-AES256-SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA": "DHE-RSA-AES128-SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA": "DHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256": "AES256-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
_TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
}
# Java pseudo cipher suite, never a real suite.
_IGNORED_SUITES = {"TLS_EMPTY_RENEGOTIATION_INFO_SCSV"}


# --------------------------------------------------------------------------------------------
# Configuration parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSConfig:
    """The parsed TLS settings (see the module docstring for the keys)."""

    key_store: StoreConfig | None
    trust_store: StoreConfig | None
    client_auth: ClientAuth
    minimum_version: ssl.TLSVersion
    maximum_version: ssl.TLSVersion
    ciphersuites: tuple[str, ...] | None
    prefix: str


class _Props:
    """Looks `<prefix><name>` up in both spellings; the zoo.cfg one (no `zookeeper.`) wins."""

    def __init__(self, props: Mapping[str, str], prefix: str) -> None:
        self._props = props
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The key under which `name` was given (for messages), or its zoo.cfg spelling."""
        plain = self.prefix + name
        if plain not in self._props and "zookeeper." + plain in self._props:
            return "zookeeper." + plain
        return plain

    def get(self, name: str) -> str | None:
        """The value, or None when absent or empty (ZooKeeper treats "" as unset)."""
        value = self._props.get(self.key(name))
        if value is None:
            return None
        value = value.strip()
        return value or None


def _read_password(p: _Props, store: str) -> tuple[str, str]:
    """`<store>.password`, overridden by the contents of `<store>.passwordPath`."""
    path = p.get(store + ".passwordPath")
    if path is not None:
        key = p.key(store + ".passwordPath")
        return read_password_file(path, key), key
    raw = p._props.get(p.key(store + ".password"))  # passwords are not stripped
    return raw or "", p.key(store + ".password")


def _parse_store(p: _Props, store: str) -> StoreConfig | None:
    location = p.get(store + ".location")
    if location is None:
        return None
    location_key = p.key(store + ".location")
    type_key = p.key(store + ".type")
    password, password_key = _read_password(p, store)
    return StoreConfig(
        location=location,
        password=password,
        type=infer_store_type(location, p.get(store + ".type"), type_key, location_key),
        location_key=location_key,
        password_key=password_key,
        type_key=type_key,
    )


def _tls_version(name: str, key: str) -> ssl.TLSVersion | None:
    """A Java protocol name as an `ssl.TLSVersion`; None for names that pin no version."""
    upper = name.strip().upper()
    if upper in _GENERIC_PROTOCOLS:
        return None
    try:
        return _TLS_VERSIONS[upper]
    except KeyError:
        raise TLSConfigError(key, f"unknown protocol {name.strip()!r}") from None


def _parse_versions(p: _Props) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    enabled = p.get("enabledProtocols")
    if enabled is not None:
        key = p.key("enabledProtocols")
        names = [n for n in enabled.split(",") if n.strip()]
        versions = [v for v in (_tls_version(n, key) for n in names) if v is not None]
        if versions:
            return min(versions), max(versions)
    else:
        protocol = p.get("protocol")
        if protocol is not None:
            version = _tls_version(protocol, p.key("protocol"))
            if version is not None:
                return version, version
    return ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED


def parse_tls_config(props: Mapping[str, str], *, quorum: bool = False) -> TLSConfig:
    """Parse the TLS keys of `props` (no file is read except password files)."""
    p = _Props(props, "ssl.quorum." if quorum else "ssl.")
    if p.get("context.supplier.class") is not None:
        raise TLSConfigError(
            p.key("context.supplier.class"),
            "an SSLContext supplier is a Java class and cannot be used here",
        )
    for name in ("crl", "ocsp"):
        value = p.get(name)
        if value is not None and value.lower() == "true":
            log.warning("%s=true: revocation checking is not supported; ignored", p.key(name))
    for name in ("clientHostnameVerification", "sslProvider"):
        if p.get(name) is not None:
            log.info("%s is not supported by this server; ignored", p.key(name))

    raw_auth = p.get("clientAuth")
    try:
        client_auth = ClientAuth(raw_auth.lower()) if raw_auth else ClientAuth.NEED
    except ValueError:
        raise TLSConfigError(
            p.key("clientAuth"), f"expected none, want or need, got {raw_auth!r}"
        ) from None

    low, high = _parse_versions(p)
    suites_raw = p.get("ciphersuites")
    suites = tuple(s.strip() for s in suites_raw.split(",") if s.strip()) if suites_raw else None
    return TLSConfig(
        key_store=_parse_store(p, "keyStore"),
        trust_store=_parse_store(p, "trustStore"),
        client_auth=client_auth,
        minimum_version=low,
        maximum_version=high,
        ciphersuites=suites,
        prefix=p.prefix,
    )


# --------------------------------------------------------------------------------------------
# SSLContext
# --------------------------------------------------------------------------------------------


def _write_private(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _load_identity(
    ctx: ssl.SSLContext, key: PrivateKeyTypes, chain: list[x509.Certificate], store: StoreConfig
) -> None:
    """Loads key + chain; `ssl` only reads files, so they go to a private temporary directory
    (0700, files 0600, key encrypted with a one-time password) that is removed right after."""
    one_time = secrets.token_urlsafe(32)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time.encode("ascii")),
    )
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    directory = tempfile.mkdtemp(prefix="zookapter-tls-")
    try:
        cert_file = _write_private(directory, "chain.pem", chain_pem)
        key_file = _write_private(directory, "key.pem", key_pem)
        ctx.load_cert_chain(cert_file, key_file, password=one_time)
    except ssl.SSLError as e:
        raise TLSConfigError(
            store.location_key, f"OpenSSL rejected the key/certificates of {store.location!r}: {e}"
        ) from e
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _apply_ciphers(ctx: ssl.SSLContext, cfg: TLSConfig) -> None:
    assert cfg.ciphersuites is not None
    key = cfg.prefix + "ciphersuites"
    tls12: list[str] = []
    tls13: list[str] = []
    unknown: list[str] = []
    for name in cfg.ciphersuites:
        upper = name.upper()
        if upper in _IGNORED_SUITES:
            continue
        if upper in _TLS13_SUITES:
            tls13.append(upper)
        elif upper in _IANA_TO_OPENSSL:
            tls12.append(_IANA_TO_OPENSSL[upper])
        elif not upper.startswith(("TLS_", "SSL_")):
            tls12.append(name)  # an OpenSSL name; validated by set_ciphers below
        else:
            unknown.append(name)
    if unknown:
        log.warning("%s: ignoring unsupported cipher suites %s", key, ", ".join(unknown))
    usable12 = []
    for name in tls12:
        try:
            ctx.set_ciphers(name)
            usable12.append(name)
        except ssl.SSLError:
            log.warning("%s: ignoring cipher suite %s unknown to OpenSSL", key, name)
    if not usable12 and not tls13:
        raise TLSConfigError(key, "none of the configured cipher suites is supported")
    low, high = ctx.minimum_version, ctx.maximum_version
    if usable12:
        ctx.set_ciphers(":".join(usable12))
    if not tls13:  # no TLS 1.3 suite enabled: the JDK would not negotiate TLS 1.3
        high = ssl.TLSVersion.TLSv1_2 if _at_least_13(high) else high
    if not usable12:  # only TLS 1.3 suites
        low = ssl.TLSVersion.TLSv1_3
    if _rank(low) > _rank(high):
        raise TLSConfigError(key, "the configured cipher suites fit none of the enabled protocols")
    ctx.minimum_version, ctx.maximum_version = low, high


def _rank(v: ssl.TLSVersion) -> int:
    if v is ssl.TLSVersion.MAXIMUM_SUPPORTED:
        return 1 << 20
    if v is ssl.TLSVersion.MINIMUM_SUPPORTED:
        return -1
    return int(v)


def _at_least_13(v: ssl.TLSVersion) -> bool:
    return _rank(v) >= int(ssl.TLSVersion.TLSv1_3)


def build_server_context(props: Mapping[str, str], *, quorum: bool = False) -> ssl.SSLContext:
    """A server-side SSLContext configured from ZooKeeper TLS keys (client-port keys, or the
    ``ssl.quorum.*`` keys with `quorum`). Raises `TLSConfigError` naming the key at fault."""
    cfg = parse_tls_config(props, quorum=quorum)
    if cfg.key_store is None:
        raise TLSConfigError(
            cfg.prefix + "keyStore.location", "a key store is required for a TLS server"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.options |= ssl.OP_NO_COMPRESSION
    # ZooKeeper sets jdk.tls.rejectClientInitiatedRenegotiation=true.
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        ctx.minimum_version = cfg.minimum_version
        ctx.maximum_version = cfg.maximum_version
    except (ValueError, ssl.SSLError) as e:
        raise TLSConfigError(cfg.prefix + "enabledProtocols", f"protocol range refused: {e}") from e

    key, chain = load_key_store(cfg.key_store)
    _load_identity(ctx, key, chain, cfg.key_store)

    if cfg.trust_store is not None:
        cas = load_trust_store(cfg.trust_store)
        cadata = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in cas)
        try:
            ctx.load_verify_locations(cadata=cadata)
        except ssl.SSLError as e:
            raise TLSConfigError(
                cfg.trust_store.location_key, f"OpenSSL rejected a trusted certificate: {e}"
            ) from e
    elif cfg.client_auth is not ClientAuth.NONE:
        log.warning(
            "%strustStore.location not specified; verifying clients against the system CAs",
            cfg.prefix,
        )
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)

    ctx.verify_mode = {
        ClientAuth.NONE: ssl.CERT_NONE,
        ClientAuth.WANT: ssl.CERT_OPTIONAL,
        ClientAuth.NEED: ssl.CERT_REQUIRED,
    }[cfg.client_auth]

    if cfg.ciphersuites is not None:
        _apply_ciphers(ctx, cfg)
    return ctx


# --------------------------------------------------------------------------------------------
# x509 identity
# --------------------------------------------------------------------------------------------


def client_x509_id(ssl_object: Any) -> str | None:
    """The x509 auth id of a TLS peer: its certificate subject as Java's
    ``X500Principal.getName()`` prints it, or None when the peer sent no certificate.

    Accepts an `ssl.SSLObject` / `ssl.SSLSocket`, or anything with ``get_extra_info``
    (an asyncio transport or StreamWriter), from which the SSL object is taken."""
    if not hasattr(ssl_object, "getpeercert") and hasattr(ssl_object, "get_extra_info"):
        ssl_object = ssl_object.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    return java_rfc2253_name(cert.subject)

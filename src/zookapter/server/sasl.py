"""Server-side SASL (DIGEST-MD5) as ZooKeeper 3.8 does it, without any I/O on sockets.

Pieces, in the order the server uses them:

* The JAAS login configuration file (the one named by the system property
  ``java.security.auth.login.config``) is read by `zookapter.server.jaas` (``parse_jaas`` /
  ``load_jaas_file``), which also collects a section's DIGEST-MD5 user database
  (``section_credentials``); those names are re-exported here.
* ``DigestMD5Server`` is one connection's SASL server: the JDK's DIGEST-MD5 ``SaslServer``
  created as ZooKeeper creates it (protocol ``zookeeper``, server name ``zk-sasl-md5``, no
  properties, so the only realm is ``zk-sasl-md5``, qop ``auth``, charset ``utf-8``,
  algorithm ``md5-sess``).
* ``SaslServerFactory`` turns the server's system properties into the above, or reports SASL
  disabled (no JAAS file, or no such section in it), and answers the post-authentication
  questions: which ``Id``s the connection gains (``sasl:<authorizationID>``, plus ``super:``
  when that id is named by ``zookeeper.superUser``), and which error a failure replies with.

Wire exchange with a DIGEST-MD5 client (kazoo/puresasl, or ZooKeeper's own Java client):
opcode 102 requests carry ``GetSASLRequest{buffer token}``; the first token is empty and is
answered with the challenge; the second carries the digest-response and is answered with
``rspauth=<hex>``; see ``DigestMD5Server.step``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import struct
from collections.abc import Callable, Mapping

from ..protocol.records import Id
from .jaas import (
    CONTROL_FLAGS,
    DEFAULT_SERVER_SECTION,
    USER_PREFIX,
    JaasError,
    LoginModuleEntry,
    expand_properties,
    load_jaas_file,
    parse_jaas,
    section_credentials,
    server_credentials,
)

log = logging.getLogger(__name__)

# --- constants -----------------------------------------------------------------------------------

JAAS_CONFIG_PROPERTY = "java.security.auth.login.config"
SERVER_SECTION_PROPERTY = "zookeeper.sasl.serverconfig"
SUPER_USER_PROPERTY = "zookeeper.superUser"
SUPER_PASSWORD_PROPERTY = "zookeeper.SASLAuthenticationProvider.superPassword"
REMOVE_HOST_PROPERTY = "zookeeper.kerberos.removeHostFromPrincipal"
REMOVE_REALM_PROPERTY = "zookeeper.kerberos.removeRealmFromPrincipal"
ALLOW_FAILED_CLIENTS_PROPERTY = "zookeeper.allowSaslFailedClients"
SESSION_REQUIRE_SASL_PROPERTY = "zookeeper.sessionRequireClientSASLAuth"
ENFORCE_AUTH_ENABLED_PROPERTY = "zookeeper.enforce.auth.enabled"
ENFORCE_AUTH_SCHEMES_PROPERTY = "zookeeper.enforce.auth.schemes"
LET_ANY_SASL_USER_PROPERTY = "zookeeper.letAnySaslUserDoX"
KRB5_REALM_PROPERTY = "java.security.krb5.realm"

DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"

PROTOCOL = "zookeeper"
SERVER_NAME = "zk-sasl-md5"

ERR_AUTH_FAILED = -115
ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH = -124

MAX_RESPONSE_LENGTH = 4096  # the JDK's DIGEST-MD5 server refuses longer responses
_RAW_NONCE_BYTES = 30  # the JDK's nonce: 30 random bytes, base64 (40 characters)


class SaslError(Exception):
    """A failed SASL negotiation (Java's ``SaslException``).

    ``reply`` is False where the JDK fails with an unchecked exception instead (a number that
    does not parse, a malformed Kerberos-style user name): ZooKeeper then closes the
    connection without replying at all. Otherwise it replies AuthFailed and closes.
    """

    def __init__(self, message: str, *, reply: bool = True) -> None:
        super().__init__(message)
        self.reply = reply


class SaslConfigError(Exception):
    """SASL is configured but unusable: ZooKeeper refuses to start (``IOException``)."""


# --- Kerberos-style name canonicalisation (SaslServerCallbackHandler) ----------------------------

_KRB_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def canonical_authorization_id(authentication_id: str, requested: str, *,
                               remove_host: bool = False, remove_realm: bool = False,
                               default_realm: str = "") -> str:
    """The authorized id ZooKeeper derives from the authenticated user name.

    ``name`` (no ``/``, no ``@``) stays ``name``; ``svc/host@REALM`` maps (by the DEFAULT
    auth_to_local rule, only when REALM is the default realm) to ``svc`` plus ``/host`` and
    ``@REALM`` unless removed by the zookeeper.kerberos.remove* properties; when no rule
    applies the requested authorization id stands. A name with ``@`` that is not of that
    form makes the JDK throw, which closes the connection without a reply."""
    m = _KRB_NAME.fullmatch(authentication_id)
    if m is None:
        if "@" in authentication_id:
            raise SaslError(f"Malformed Kerberos name: {authentication_id}", reply=False)
        return authentication_id
    service, host, realm = m.group(1), m.group(3), m.group(4)
    if realm != default_realm:
        return requested  # NoMatchingRule: the authorized id is left as requested
    out = service
    if host is not None and not remove_host:
        out += "/" + host
    if not remove_realm:
        out += "@" + realm
    return out


# --- DIGEST-MD5 (RFC 2831) server ----------------------------------------------------------------

_LWS = b" \t\r\n"
_RESPONSE_KEYS = ("username", "realm", "nonce", "cnonce", "nonce-count", "qop", "digest-uri",
                  "response", "maxbuf", "charset", "cipher", "authzid")
_INT_HEX = re.compile(rb"[+-]?[0-9a-fA-F]+")
_INT_DEC = re.compile(rb"[+-]?[0-9]+")


def _skip_lws(buf: bytes, i: int) -> int:
    while i < len(buf) and buf[i] in _LWS:
        i += 1
    return i


def parse_directives(buf: bytes) -> dict[str, bytes]:
    """Parse a digest-response into ``{lower-case directive: raw value}``.

    Accepts what the JDK's DIGEST-MD5 accepts: comma/whitespace separated ``key=value`` or
    ``key="quoted \\"value\\""``, empty list elements, unknown directives (ignored). Rejects
    a key without ``=``, an empty key, a value-less key at the end, an unterminated quote,
    text glued to a closing quote, and a known directive given twice."""
    found: dict[str, bytes] = {}

    def store(key: bytearray, value: bytearray) -> None:
        k = key.decode("latin-1").lower()
        if k in _RESPONSE_KEYS:
            if k in found:
                raise SaslError(f"DIGEST-MD5: peer sent more than one {k} directive")
            found[k] = bytes(value)

    key, value = bytearray(), bytearray()
    in_key, quoted, after_quote = True, False, False
    i = _skip_lws(buf, 0)
    n = len(buf)
    while i < n:
        b = buf[i]
        if in_key:
            if b == 0x2C:  # ','
                if key:
                    raise SaslError("DIGEST-MD5: directive key contains a ','")
                i = _skip_lws(buf, i + 1)
            elif b == 0x3D:  # '='
                if not key:
                    raise SaslError("DIGEST-MD5: empty directive key")
                in_key = False
                i = _skip_lws(buf, i + 1)
                if i >= n:
                    raise SaslError(f"DIGEST-MD5: valueless directive found: {key!r}")
                if buf[i] == 0x22:
                    quoted = True
                    i += 1
            elif b in _LWS:
                i = _skip_lws(buf, i + 1)
                if i >= n or buf[i] != 0x3D:
                    raise SaslError(f"DIGEST-MD5: '=' expected after key: {key!r}")
            else:
                key.append(b)
                i += 1
        elif quoted:
            if b == 0x5C:  # backslash: quoted-pair
                i += 1
                if i >= n:
                    raise SaslError(f"DIGEST-MD5: unmatched quote for directive {key!r}")
                value.append(buf[i])
                i += 1
            elif b == 0x22:
                quoted, after_quote = False, True
                i += 1
            else:
                value.append(b)
                i += 1
        elif b in _LWS or b == 0x2C:
            store(key, value)
            key, value = bytearray(), bytearray()
            in_key, after_quote = True, False
            i = _skip_lws(buf, i + 1)
        elif after_quote:
            raise SaslError("DIGEST-MD5: expecting comma or linear whitespace after "
                            "quoted string")
        else:
            value.append(b)
            i += 1
    if quoted:
        raise SaslError(f"DIGEST-MD5: unmatched quote for directive {key!r}")
    if key:
        store(key, value)
    return found


def _java_str(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _digest_bytes(s: str) -> bytes:
    """The JDK's string-to-bytes for digest input (server with utf-8 on): ISO-8859-1 when
    every character fits, UTF-8 otherwise (RFC 2831 section 2.1.2.1)."""
    if all(ord(c) <= 0xFF for c in s):
        return s.encode("latin-1")
    return s.encode("utf-8", "replace")


def _quote_value(s: str) -> bytes:
    return s.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")


def _random_nonce() -> bytes:
    return base64.b64encode(os.urandom(_RAW_NONCE_BYTES))


def digest_response_value(*, method: str, digest_uri: str, qop: str, username: str, realm: str,
                          password: str, nonce: bytes, cnonce: bytes,
                          authzid: bytes | None = None, nonce_count: int = 1) -> bytes:
    """RFC 2831 response-value (lower-case hex) for ``method`` "AUTHENTICATE" (the client's
    ``response=``) or "" (the server's ``rspauth=``)."""
    a2 = (method + ":" + digest_uri).encode("utf-8")
    if qop in ("auth-int", "auth-conf"):
        a2 += b":00000000000000000000000000000000"
    secret = hashlib.md5(_digest_bytes(username) + b":" + _digest_bytes(realm) + b":"
                         + _digest_bytes(password)).digest()
    a1 = secret + b":" + nonce + b":" + cnonce
    if authzid is not None:
        a1 += b":" + authzid
    kd = b":".join((hashlib.md5(a1).hexdigest().encode("ascii"), nonce,
                    b"%08x" % nonce_count, cnonce, qop.encode("utf-8"),
                    hashlib.md5(a2).hexdigest().encode("ascii")))
    return hashlib.md5(kd).hexdigest().encode("ascii")


class DigestMD5Server:
    """One connection's DIGEST-MD5 server, step for step like the JDK's.

    Drive it with every opcode-102 token in turn: the first ``step`` (normally
    ``step(b"")``, or ``start()``) gives the challenge; the next, ``step(digest_response)``,
    verifies it and gives ``rspauth=...``; afterwards ``complete`` is True and
    ``authorization_id`` is the id to add as ``sasl:<id>``. Failures raise ``SaslError``; once
    the response step has run (success or not) every later step fails, as the JDK's server
    is then in its terminal state.
    """

    def __init__(self, credentials: Mapping[str, str], *, protocol: str = PROTOCOL,
                 server_name: str = SERVER_NAME, realms: list[str] | None = None,
                 super_password: str | None = None, remove_host: bool = False,
                 remove_realm: bool = False, default_realm: str = "",
                 nonce_factory: Callable[[], bytes] = _random_nonce) -> None:
        self.credentials = dict(credentials)
        self.digest_uri = f"{protocol}/{server_name}"
        self.realms = list(realms) if realms else [server_name]
        self.super_password = super_password
        self.remove_host = remove_host
        self.remove_realm = remove_realm
        self.default_realm = default_realm
        self._nonce_factory = nonce_factory
        self._state = "initial"  # initial -> challenged -> (done | failed)
        self.nonce: bytes | None = None
        self.complete = False
        self.authentication_id: str | None = None
        self._authorization_id: str | None = None

    @property
    def authorization_id(self) -> str:
        if not self.complete or self._authorization_id is None:
            raise RuntimeError("DIGEST-MD5 server negotiation not complete")
        return self._authorization_id

    def start(self) -> bytes:
        """The digest-challenge (same as ``step(b"")`` on a fresh server)."""
        done, token = self.step(b"")
        assert not done and token is not None
        return token

    def step(self, response: bytes | None) -> tuple[bool, bytes | None]:
        """Consume one client token; return ``(complete, token to send back)``."""
        if response is None:  # a null GetSASLRequest buffer: ZooKeeper hits a NullPointer
            self._state = "failed"
            raise SaslError("null client SASL token", reply=False)
        if len(response) > MAX_RESPONSE_LENGTH:
            raise SaslError(f"DIGEST-MD5: Invalid digest response length. Got: "
                            f"{len(response)} Expected < {MAX_RESPONSE_LENGTH}")
        if self._state == "initial":
            # The JDK (17, as Debian's ZooKeeper runs on) logs and ignores an initial
            # response: a client that opens with a non-empty token still gets the challenge.
            self._state = "challenged"
            return False, self._challenge()
        if self._state == "challenged":
            self._state = "failed"
            token = self._validate(response)
            self._state = "done"
            self.complete = True
            return True, token
        raise SaslError("DIGEST-MD5: Server at illegal state")

    # -- internals --------------------------------------------------------------------------

    def _challenge(self) -> bytes:
        self.nonce = self._nonce_factory()
        parts = [b'realm="' + _quote_value(r) + b'"' for r in self.realms]
        parts.append(b'nonce="' + self.nonce.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
                     + b'"')
        parts.append(b"charset=utf-8")
        parts.append(b"algorithm=md5-sess")
        return b",".join(parts)

    def _validate(self, response: bytes) -> bytes:
        d = parse_directives(response)
        charset = d.get("charset")
        if charset is not None and _java_str(charset) != "utf-8":
            raise SaslError("DIGEST-MD5: digest response format violation. Incompatible "
                            f"charset value: {_java_str(charset)}")
        maxbuf = d.get("maxbuf")
        if maxbuf is not None and (not _INT_DEC.fullmatch(maxbuf)
                                   or not -2**31 <= int(maxbuf) < 2**31):
            raise SaslError(f"For input string: {_java_str(maxbuf)!r}", reply=False)
        if "username" not in d:
            raise SaslError("DIGEST-MD5: digest response format violation. Missing username.")
        username = _java_str(d["username"])
        realm = _java_str(d["realm"]) if "realm" in d else ""
        if realm not in self.realms:
            raise SaslError("DIGEST-MD5: digest response format violation. Nonexistent "
                            f"realm: {realm}")
        if "nonce" not in d:
            raise SaslError("DIGEST-MD5: digest response format violation. Missing nonce.")
        if d["nonce"] != self.nonce:
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched nonce.")
        if "cnonce" not in d:
            raise SaslError("DIGEST-MD5: digest response format violation. Missing cnonce.")
        cnonce = d["cnonce"]
        # The JDK reads the count from a "nonce-count" directive (not RFC 2831's "nc", which
        # it ignores) and always hashes with count 1.
        nc = d.get("nonce-count")
        if nc is not None:
            if not _INT_HEX.fullmatch(nc) or not -2**31 <= int(nc, 16) < 2**31:
                raise SaslError(f"For input string: {_java_str(nc)!r}", reply=False)
            if int(nc, 16) != 1:
                raise SaslError("DIGEST-MD5: digest response format violation. Nonce count "
                                f"does not match: {_java_str(nc)}")
        qop = _java_str(d["qop"]) if "qop" in d else "auth"
        if qop in ("auth-int", "auth-conf"):
            raise SaslError(f"DIGEST-MD5: server does not support  qop: {qop}")
        if qop != "auth":
            raise SaslError("DIGEST-MD5: digest response format violation. Invalid QOP: "
                            f"{qop}")
        uri = _java_str(d["digest-uri"]) if "digest-uri" in d else None
        if uri is None or uri.lower() != self.digest_uri.lower():
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched URI: "
                            f"{uri}; expecting: {self.digest_uri}")
        if "response" not in d:
            raise SaslError("DIGEST-MD5: digest response format  violation. Missing response.")
        authzid = d.get("authzid")
        requested = _java_str(authzid) if authzid is not None else username
        password = self._password(username)
        if password is None:
            raise SaslError(f"DIGEST-MD5: cannot acquire password for {username} in realm : "
                            f"{realm}")
        assert self.nonce is not None

        def value(method: str) -> bytes:
            assert uri is not None and self.nonce is not None
            return digest_response_value(method=method, digest_uri=uri, qop=qop,
                                         username=username, realm=realm, password=password,
                                         nonce=self.nonce, cnonce=cnonce, authzid=authzid)

        if d["response"] != value("AUTHENTICATE"):
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched "
                            "response.")
        self.authentication_id = username
        self._authorization_id = canonical_authorization_id(
            username, requested, remove_host=self.remove_host, remove_realm=self.remove_realm,
            default_realm=self.default_realm)
        return b"rspauth=" + value("")

    def _password(self, username: str) -> str | None:
        if username not in self.credentials:
            return None
        if username == "super" and self.super_password is not None:
            return self.super_password
        return self.credentials[username]


# --- ACL provider "sasl" (SASLAuthenticationProvider) --------------------------------------------

def sasl_acl_matches(auth_id: str, acl_expr: str, let_any_user_do: str | None = None) -> bool:
    """Does the connection's ``sasl:<auth_id>`` satisfy the ACL id ``sasl:<acl_expr>``?

    A SASL user literally named ``super`` matches every sasl ACL; with the property
    zookeeper.letAnySaslUserDoX set, any SASL user matches the ACL id equal to its value."""
    if auth_id == "super" or auth_id == acl_expr:
        return True
    return let_any_user_do is not None and acl_expr == let_any_user_do


def sasl_acl_id_valid(acl_id: str) -> bool:
    """Valid ``sasl`` ACL id: a Kerberos-style name (no ``@``, or ``a[/b]@c``)."""
    return "@" not in acl_id or _KRB_NAME.fullmatch(acl_id) is not None


# --- wire helpers --------------------------------------------------------------------------------

_REPLY_HEADER = struct.Struct(">iiqi")  # frame length, xid, zxid, err


def sasl_reply_frame(xid: int, err: int, token: bytes | None) -> bytes:
    """A length-prefixed reply: ReplyHeader{xid, zxid=0, err} + SetSASLResponse{token}.

    ZooKeeper always sends the SetSASLResponse body, zxid 0, and a null token (the failure
    reply, or no SASL server) as buffer length -1."""
    body = b"\xff\xff\xff\xff" if token is None else struct.pack(">i", len(token)) + token
    return _REPLY_HEADER.pack(16 + len(body), xid, 0, err) + body


# --- factory -------------------------------------------------------------------------------------

def _true(v: str | None) -> bool:
    return v is not None and v.strip().lower() == "true"


class SaslServerFactory:
    """The server-wide SASL set-up built from system properties at start-up.

    ``enabled`` is False when ``java.security.auth.login.config`` is unset, or its file has
    no (non-empty) section named by ``zookeeper.sasl.serverconfig`` (default ``Server``):
    ZooKeeper then runs without SASL. A JAAS file that is named but cannot be read or parsed
    raises ``SaslConfigError`` (ZooKeeper refuses to start)."""

    def __init__(self, props: Mapping[str, str] | None = None) -> None:
        self.props: dict[str, str] = dict(props or {})
        p = self.props
        self.jaas_location = p.get(JAAS_CONFIG_PROPERTY)
        self.section = p.get(SERVER_SECTION_PROPERTY, DEFAULT_SERVER_SECTION)
        self.jaas: dict[str, list[LoginModuleEntry]] = {}
        self.credentials: dict[str, str] = {}
        self.enabled = False
        self.entries: list[LoginModuleEntry] = []
        if self.jaas_location:
            try:
                self.jaas = load_jaas_file(self.jaas_location, p)
            except JaasError as e:
                msg = (f"No JAAS configuration section named '{self.section}' was found in "
                       f"'{self.jaas_location}'.")
                if SERVER_SECTION_PROPERTY in p:
                    msg += f" But {SERVER_SECTION_PROPERTY} was set."
                raise SaslConfigError(f"{msg} ({e})") from e
            entries = self.jaas.get(self.section)
            if entries:
                self.enabled = True
                self.entries = entries
                self.credentials = section_credentials(entries)
                others = [e.module for e in entries if e.module != DIGEST_LOGIN_MODULE]
                if others:
                    log.warning("JAAS section %s: login modules %s are not supported; only "
                                "DIGEST-MD5 with its user_* options is offered", self.section,
                                ", ".join(others))
        self.super_password = p.get(SUPER_PASSWORD_PROPERTY)
        self.remove_host = _true(p.get(REMOVE_HOST_PROPERTY))
        self.remove_realm = _true(p.get(REMOVE_REALM_PROPERTY))
        self.default_realm = p.get(KRB5_REALM_PROPERTY, "")
        self.allow_failed_clients = _true(p.get(ALLOW_FAILED_CLIENTS_PROPERTY))
        self.let_any_user_do = p.get(LET_ANY_SASL_USER_PROPERTY)
        if _true(p.get(SESSION_REQUIRE_SASL_PROPERTY)):
            self.sasl_auth_required = True
        else:
            schemes = [s.strip() for s in (p.get(ENFORCE_AUTH_SCHEMES_PROPERTY) or "")
                       .split(",")]
            self.sasl_auth_required = _true(p.get(ENFORCE_AUTH_ENABLED_PROPERTY)) \
                and "sasl" in schemes

    def create(self) -> DigestMD5Server | None:
        """A fresh per-connection server, or None when SASL is disabled."""
        if not self.enabled:
            return None
        return DigestMD5Server(self.credentials, super_password=self.super_password,
                               remove_host=self.remove_host, remove_realm=self.remove_realm,
                               default_realm=self.default_realm)

    def is_super_user(self, authorization_id: str) -> bool:
        """Is the id named by ``zookeeper.superUser`` or any ``zookeeper.superUser.<x>``?"""
        if not authorization_id:
            return False
        for key, value in self.props.items():
            if (key == SUPER_USER_PROPERTY or key.startswith(SUPER_USER_PROPERTY + ".")) \
                    and value == authorization_id:
                return True
        return False

    def auth_ids(self, authorization_id: str) -> list[Id]:
        """The ids a connection gains on success, in ZooKeeper's order."""
        ids = [Id("sasl", authorization_id)]
        if self.is_super_user(authorization_id):
            ids.append(Id("super", ""))
        return ids

    @property
    def failure_error(self) -> int:
        """The reply error for a failed negotiation: -124 when SASL is enforced, else -115."""
        return ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH if self.sasl_auth_required \
            else ERR_AUTH_FAILED

    @property
    def keep_failed_clients(self) -> bool:
        """zookeeper.allowSaslFailedClients (ignored when SASL is enforced): a failure then
        replies OK with a null token and keeps the connection open."""
        return self.allow_failed_clients and not self.sasl_auth_required

    def acl_matches(self, auth_id: str, acl_expr: str) -> bool:
        return sasl_acl_matches(auth_id, acl_expr, self.let_any_user_do)


__all__ = [
    "CONTROL_FLAGS",
    "DEFAULT_SERVER_SECTION",
    "ERR_AUTH_FAILED",
    "ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH",
    "JAAS_CONFIG_PROPERTY",
    "SERVER_SECTION_PROPERTY",
    "SUPER_USER_PROPERTY",
    "USER_PREFIX",
    "DigestMD5Server",
    "JaasError",
    "LoginModuleEntry",
    "SaslConfigError",
    "SaslError",
    "SaslServerFactory",
    "canonical_authorization_id",
    "digest_response_value",
    "expand_properties",
    "load_jaas_file",
    "parse_directives",
    "parse_jaas",
    "sasl_acl_id_valid",
    "sasl_acl_matches",
    "sasl_reply_frame",
    "section_credentials",
    "server_credentials",
]

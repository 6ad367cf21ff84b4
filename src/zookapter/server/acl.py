"""ACL checks, ACL fix-up and the built-in authentication providers.

Mirrors ZooKeeper's checkACL / fixupACL and its digest, ip, x509 and super providers. A
connection's identity is a list of `Id`s (its "authInfo"): `ip:<addr>` from the socket,
`digest:user:hash` per successful digest auth, `x509:<DN>` on the TLS port, and `super:` when
a digest matches superDigest or an x509 DN matches the configured super user.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress

from ..protocol.consts import Err, Perm
from ..protocol.records import ACL, Id

SUPER = Id("super", "")


class ACLError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def digest_of(user_password: str, alg: str = "SHA1") -> str:
    """`user:BASE64(SHA1("user:password"))` as DigestAuthenticationProvider.generateDigest."""
    user = user_password.split(":", 1)[0]
    h = hashlib.new(alg.replace("-", "").lower(), user_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(h).decode('ascii')}"


def _ip_matches(auth_addr: str, acl_id: str) -> bool:
    try:
        if "/" in acl_id:
            net = ipaddress.ip_network(acl_id, strict=False)
            return ipaddress.ip_address(auth_addr) in net
        return ipaddress.ip_address(auth_addr) == ipaddress.ip_address(acl_id)
    except ValueError:
        return False


def _ip_valid(acl_id: str) -> bool:
    try:
        if "/" in acl_id:
            addr, bits = acl_id.split("/", 1)
            ip = ipaddress.ip_address(addr)
            b = int(bits)
            return 0 <= b <= ip.max_prefixlen
        ipaddress.ip_address(acl_id)
        return True
    except ValueError:
        return False


def _digest_valid(acl_id: str) -> bool:
    return len(acl_id.split(":")) == 2


# scheme -> is the id valid in an ACL
_VALIDATORS = {
    "world": lambda i: i == "anyone",
    "digest": _digest_valid,
    "ip": _ip_valid,
    "x509": lambda i: True,
    "sasl": lambda i: True,
}

# schemes whose ids count as "authenticated" for the `auth` ACL expansion (not ip)
AUTHENTICATED_SCHEMES = frozenset({"digest", "x509", "sasl"})


def matches(auth: Id, acl_id: Id) -> bool:
    if auth.scheme != acl_id.scheme:
        return False
    if auth.scheme == "ip":
        return _ip_matches(auth.id, acl_id.id)
    return auth.id == acl_id.id


def check_acl(acl: tuple[ACL, ...] | None, perm: int, auth_ids: list[Id],
              skip_acl: bool = False) -> bool:
    """checkACL: True if one of `auth_ids` holds `perm` on a node with `acl`."""
    if skip_acl or not acl:
        return True
    for a in auth_ids:
        if a.scheme == "super":
            return True
    for entry in acl:
        if entry.perms & perm:
            eid = entry.id
            if eid.scheme == "world" and eid.id == "anyone":
                return True
            for a in auth_ids:
                if matches(a, eid):
                    return True
    return False


_FIXUP_CACHE: dict[tuple[ACL, ...], tuple[ACL, ...]] = {}


def fixup_acl(path: str, auth_ids: list[Id], acls: tuple[ACL, ...] | None) -> tuple[ACL, ...]:
    """Validate and expand an ACL list as PrepRequestProcessor.fixupACL; raise -114.

    Lists without an `auth` entry do not depend on the connection, so their (valid) fixed-up
    form is cached."""
    if not acls:
        raise ACLError(Err.INVALID_ACL)
    cached = _FIXUP_CACHE.get(acls)
    if cached is not None:
        return cached
    fixed = _fixup(auth_ids, acls)
    if not any(a.id.scheme == "auth" for a in acls):
        if len(_FIXUP_CACHE) > 4096:
            _FIXUP_CACHE.clear()
        _FIXUP_CACHE[acls] = fixed
    return fixed


def _fixup(auth_ids: list[Id], acls: tuple[ACL, ...]) -> tuple[ACL, ...]:
    out: list[ACL] = []
    seen: set[ACL] = set()

    def add(a: ACL) -> None:
        if a not in seen:
            seen.add(a)
            out.append(a)

    for a in acls:
        scheme = a.id.scheme
        if scheme == "world" and a.id.id == "anyone":
            add(a)
        elif scheme == "auth":
            got = False
            for ident in auth_ids:
                if ident.scheme in AUTHENTICATED_SCHEMES:
                    add(ACL(a.perms, ident))
                    got = True
            if not got:
                raise ACLError(Err.INVALID_ACL)
        else:
            valid = _VALIDATORS.get(scheme)
            if valid is None or a.id.id is None or not valid(a.id.id):
                raise ACLError(Err.INVALID_ACL)
            add(a)
    return tuple(out)


def mask_digests(acl: tuple[ACL, ...]) -> tuple[ACL, ...]:
    """getACL without ADMIN permission shows digest ids as `user:x` (ZOOKEEPER-1392)."""
    return tuple(ACL(a.perms, Id("digest", a.id.id.split(":", 1)[0] + ":x"))
                 if a.id.scheme == "digest" else a for a in acl)


class AuthProviders:
    """The server's auth providers for AuthPackets (digest; others by configuration)."""

    def __init__(self, super_digest: str | None = None, digest_alg: str = "SHA1",
                 digest_enabled: bool = True) -> None:
        self.super_digest = super_digest
        self.digest_alg = digest_alg
        self.digest_enabled = digest_enabled

    def authenticate(self, scheme: str, auth: bytes) -> list[Id] | None:
        """Ids gained from an AuthPacket, or None for AuthFailed (-115)."""
        if scheme == "digest" and self.digest_enabled:
            try:
                text = auth.decode("utf-8")
            except UnicodeDecodeError:
                return None
            d = digest_of(text, self.digest_alg)
            ids = [Id("digest", d)]
            if self.super_digest and d == self.super_digest:
                ids.append(SUPER)
            return ids
        return None


READ_OR_ADMIN = Perm.READ | Perm.ADMIN

"""ACL helpers: the predefined lists and digest ids (user:base64(sha1(user:password)))."""

from __future__ import annotations

import base64
import hashlib

from ..protocol.consts import Perm
from ..protocol.records import (
    ACL,
    ANYONE_ID,
    AUTH_IDS,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
)

__all__ = ["ACL", "Id", "Perm", "ANYONE_ID", "AUTH_IDS", "OPEN_ACL_UNSAFE", "CREATOR_ALL_ACL",
           "READ_ACL_UNSAFE", "make_acl", "make_digest_acl", "make_digest_acl_credential"]


def make_digest_acl_credential(username: str, password: str) -> str:
    """The id a digest ACL names: "user:" + base64(SHA-1("user:password"))."""
    raw = f"{username}:{password}".encode()
    return f"{username}:{base64.b64encode(hashlib.sha1(raw).digest()).decode()}"


def make_acl(scheme: str, credential: str, *, read: bool = False, write: bool = False,
             create: bool = False, delete: bool = False, admin: bool = False,
             all: bool = False) -> ACL:
    perms = Perm.ALL if all else (
        (Perm.READ if read else 0) | (Perm.WRITE if write else 0)
        | (Perm.CREATE if create else 0) | (Perm.DELETE if delete else 0)
        | (Perm.ADMIN if admin else 0))
    return ACL(perms, Id(scheme, credential))


def make_digest_acl(username: str, password: str, **perms: bool) -> ACL:
    return make_acl("digest", make_digest_acl_credential(username, password), **perms)

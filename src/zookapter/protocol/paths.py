"""Znode path validation, as ZooKeeper's PathUtils.validatePath."""

from __future__ import annotations

import re

# Characters ZooKeeper rejects: NUL, C0 and C1 controls, DEL, surrogates and the private-use
# area, and U+FFF0-U+FFFF.
_BAD_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]")


class BadPath(ValueError):
    pass


def validate_path(path: str | None, sequential: bool = False) -> None:
    """Raise BadPath unless `path` is a valid absolute znode path.

    With `sequential`, the path is checked with a trailing digit appended, as ZooKeeper does
    before the sequence suffix exists (so "/a/" is valid as a sequential prefix)."""
    if path is None:
        raise BadPath("Path cannot be null")
    if sequential:
        path = path + "1"
    if not path:
        raise BadPath("Path length must be > 0")
    if path[0] != "/":
        raise BadPath("Path must start with / character")
    if len(path) == 1:
        return
    if path[-1] == "/":
        raise BadPath("Path must not end with / character")
    if "//" in path:
        raise BadPath("empty node name specified")
    for comp in path.split("/")[1:]:
        if comp == "." or comp == "..":
            raise BadPath("relative paths not allowed")
    if _BAD_CHARS.search(path):
        raise BadPath("invalid character")

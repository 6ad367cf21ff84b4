"""Connect strings: "host1:2181,host2:2182,[::1]:2183/chroot/path" -> hosts and chroot."""

from __future__ import annotations

from ..protocol.paths import BadPath, validate_path

DEFAULT_PORT = 2181


def parse_hosts(hosts: str | list[str] | tuple[str, ...]) -> tuple[list[tuple[str, int]],
                                                                  str | None]:
    """Split a ZooKeeper connect string into [(host, port)] and an optional chroot."""
    if isinstance(hosts, (list, tuple)):
        hosts = ",".join(hosts)
    chroot: str | None = None
    slash = hosts.find("/")
    if slash >= 0:
        chroot = hosts[slash:]
        hosts = hosts[:slash]
        if chroot == "/":
            chroot = None
        else:
            try:
                validate_path(chroot)
            except BadPath as e:
                raise ValueError(f"invalid chroot {chroot!r}: {e}") from None
    out: list[tuple[str, int]] = []
    for part in hosts.split(","):
        part = part.strip()
        if not part:
            continue
        out.append(_host_port(part))
    if not out:
        raise ValueError("no hosts in connect string")
    return out, chroot


def _host_port(part: str) -> tuple[str, int]:
    if part.startswith("["):  # [ipv6]:port
        end = part.find("]")
        if end < 0:
            raise ValueError(f"bad host {part!r}")
        host, rest = part[1:end], part[end + 1:]
        port = int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
        return host, port
    if part.count(":") == 1:
        host, _, port_s = part.partition(":")
        return host, int(port_s)
    return part, DEFAULT_PORT

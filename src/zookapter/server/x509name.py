"""X.509 distinguished names printed the way Java prints them.

`java_rfc2253_name` mirrors ``javax.security.auth.x500.X500Principal.getName()`` (RFC 2253
format, as implemented by the JDK's ``sun.security.x509.X500Name``/``AVA``): RDNs most
specific first, multi-valued RDNs joined with ``+``, Java's escaping, and ``OID=#hex`` for
attributes without an RFC 2253 keyword. ZooKeeper's ``X509AuthenticationProvider`` uses that
string as a TLS client's ``x509`` auth id (see `zookapter.server.tls.client_x509_id`).
"""

from __future__ import annotations

from cryptography import x509

__all__ = ["java_rfc2253_name"]

# X500Principal.getName() (RFC 2253) keywords; every other attribute prints as OID=#hex.
_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# DER string tags the JDK prints as text (AVA.isDerString, non-canonical): PrintableString,
# T61String, IA5String, GeneralString, BMPString, UTF8String.
_TEXT_TAGS = {0x13, 0x14, 0x16, 0x1B, 0x1E, 0x0C}
_ESCAPED = ',=+<>#;"\\'


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end) of the DER item at `pos`."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def _oid(content: bytes) -> str:
    parts: list[int] = []
    value = 0
    for b in content:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    first = parts[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(n) for n in head + parts[1:])


def _ava(oid: str, value_tlv: bytes) -> str:
    keyword = _RFC2253_KEYWORDS.get(oid, oid)
    tag, start, end = _der_item(value_tlv, 0)
    if keyword[0].isdigit() or tag not in _TEXT_TAGS:
        return f"{keyword}=#{value_tlv.hex()}"
    # The JDK decodes the contents as UTF-8 whatever the string type.
    text = value_tlv[start:end].decode("utf-8", errors="replace")
    out = []
    for c in text:
        if c in _ESCAPED:
            out.append("\\" + c)
        elif c == "\x00":
            out.append("\\00")
        else:
            out.append(c)
    escaped = "".join(out)
    lead = 0
    while lead < len(escaped) and escaped[lead] in " \r":
        lead += 1
    trail = len(escaped) - 1
    while trail >= 0 and escaped[trail] in " \r":
        trail -= 1
    value = "".join(("\\" + c) if (i < lead or i > trail) else c for i, c in enumerate(escaped))
    return f"{keyword}={value}"


def java_rfc2253_name(name: x509.Name | bytes) -> str:
    """`name` (or its DER encoding) as Java's ``X500Principal.getName()`` prints it: RDNs in
    reverse order of the encoding (most specific first), multi-valued RDNs joined with ``+`` in
    encoded order, Java's escaping, ``OID=#hex`` for attributes without an RFC 2253 keyword."""
    der = name if isinstance(name, bytes) else name.public_bytes()
    tag, pos, end = _der_item(der, 0)
    if tag != 0x30:
        raise ValueError("not a DER Name")
    rdns: list[str] = []
    while pos < end:
        set_tag, set_pos, set_end = _der_item(der, pos)
        if set_tag != 0x31:
            raise ValueError("malformed RDN")
        avas = []
        while set_pos < set_end:
            seq_tag, seq_pos, seq_end = _der_item(der, set_pos)
            oid_tag, oid_start, oid_end = _der_item(der, seq_pos)
            if seq_tag != 0x30 or oid_tag != 0x06:
                raise ValueError("malformed AttributeTypeAndValue")
            avas.append(_ava(_oid(der[oid_start:oid_end]), der[oid_end:seq_end]))
            set_pos = seq_end
        rdns.append("+".join(avas))
        pos = set_end
    return ",".join(reversed(rdns))

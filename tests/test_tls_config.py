"""zookapter.server.tls: SSLContext from ZooKeeper TLS keys, real handshakes, x509 ids."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import shutil
import ssl
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

jks = pytest.importorskip("jks")

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from zookapter.server import tls
from zookapter.server.tls import (
    TLSConfigError,
    build_server_context,
    client_x509_id,
    java_rfc2253_name,
    parse_tls_config,
)

CLIENT_DN = "CN=client,OU=Eng,O=Org,C=US"
KS_PASS = "ks-secret"
TS_PASS = "ts-secret"

# --------------------------------------------------------------------------------------------
# PKI fixture
# --------------------------------------------------------------------------------------------


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _cert(subject, issuer, public_key, signing_key, *, ca=False, san=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class PKI:
    dir: Path
    ca: x509.Certificate
    client_cert: Path
    client_key: Path
    ca_pem: Path
    stores: dict[str, Path]  # "ks.jks", "ts.p12", ...
    other_ca_pem: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "Zookapter"),
        (NameOID.COMMON_NAME, "Test CA"),
    )
    ca = _cert(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)

    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = _cert(
        _name((NameOID.COMMON_NAME, "localhost")),
        ca_name,
        server_key.public_key(),
        ca_key,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert(
        _name(
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.ORGANIZATION_NAME, "Org"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "Eng"),
            (NameOID.COMMON_NAME, "client"),
        ),
        ca_name,
        client_key.public_key(),
        ca_key,
    )
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = _name((NameOID.COMMON_NAME, "Other CA"))
    other_ca = _cert(other_name, other_name, other_key.public_key(), other_key, ca=True)

    stores: dict[str, Path] = {}
    # PEM key store: CA certificate first, leaf second, encrypted PKCS#8 key last.
    enc_key = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KS_PASS.encode()),
    )
    stores["ks.pem"] = d / "server.pem"
    stores["ks.pem"].write_bytes(_pem(ca) + _pem(server) + enc_key)
    stores["ts.pem"] = d / "trust.pem"
    stores["ts.pem"].write_bytes(_pem(ca))

    stores["ks.p12"] = d / "server.p12"
    stores["ks.p12"].write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"server",
            server_key,
            server,
            [ca],
            serialization.BestAvailableEncryption(KS_PASS.encode()),
        )
    )
    stores["ts.p12"] = d / "trust.p12"
    stores["ts.p12"].write_bytes(
        pkcs12.serialize_key_and_certificates(
            None, None, None, [ca], serialization.BestAvailableEncryption(TS_PASS.encode())
        )
    )

    pkcs8 = server_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    entry = jks.PrivateKeyEntry.new("server", [_der(server), _der(ca)], pkcs8, "pkcs8")
    stores["ks.jks"] = d / "server.jks"
    jks.KeyStore.new("jks", [entry]).save(str(stores["ks.jks"]), KS_PASS)
    stores["ts.jks"] = d / "trust.jks"
    jks.KeyStore.new("jks", [jks.TrustedCertEntry.new("ca", _der(ca))]).save(
        str(stores["ts.jks"]), TS_PASS
    )

    client_cert = d / "client.crt"
    client_cert.write_bytes(_pem(client))
    client_key_path = d / "client.key"
    client_key_path.write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_pem = d / "ca.crt"
    ca_pem.write_bytes(_pem(ca))
    other_ca_pem = d / "other-ca.crt"
    other_ca_pem.write_bytes(_pem(other_ca))
    return PKI(d, ca, client_cert, client_key_path, ca_pem, stores, other_ca_pem)


def _props(pki: PKI, ks: str = "jks", ts: str | None = "jks", **extra: str) -> dict[str, str]:
    props = {
        "ssl.keyStore.location": str(pki.stores[f"ks.{ks}"]),
        "ssl.keyStore.password": KS_PASS,
    }
    if ts is not None:
        props["ssl.trustStore.location"] = str(pki.stores[f"ts.{ts}"])
        props["ssl.trustStore.password"] = TS_PASS
    props.update(extra)
    return props


# --------------------------------------------------------------------------------------------
# Handshake harness
# --------------------------------------------------------------------------------------------


def _client_ctx(pki: PKI, *, with_cert: bool = True, max_version=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_pem))
    if with_cert:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


@dataclass
class Outcome:
    ok: bool
    server_saw: str | None = None  # client_x509_id seen by the server
    reply: str | None = None  # what the client read back
    version: str | None = None
    cipher: str | None = None


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> Outcome:
    async def run() -> Outcome:
        seen: list[str | None] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            ident = client_x509_id(writer)  # asyncio transport form
            assert ident == client_x509_id(writer.get_extra_info("ssl_object"))
            seen.append(ident)
            writer.write(((ident or "<none>") + "\n").encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
                ),
                5,
            )
            sslobj = writer.get_extra_info("ssl_object")
            try:
                line = await asyncio.wait_for(reader.readline(), 5)
            finally:
                writer.close()
            if not line:
                return Outcome(False)
            return Outcome(
                True,
                seen[0] if seen else None,
                line.decode().strip(),
                sslobj.version(),
                sslobj.cipher()[0],
            )
        except (ssl.SSLError, ConnectionError, OSError):
            return Outcome(False)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(run())


# --------------------------------------------------------------------------------------------
# Handshakes per store format
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ks,ts", [("jks", "jks"), ("p12", "p12"), ("pem", "pem"), ("jks", "pem"), ("pem", "p12")]
)
def test_handshake_with_client_cert(pki: PKI, ks: str, ts: str) -> None:
    ctx = build_server_context(_props(pki, ks, ts))
    assert ctx.verify_mode == ssl.CERT_REQUIRED  # ZooKeeper's default clientAuth is need
    out = _handshake(ctx, _client_ctx(pki))
    assert out.ok
    assert out.server_saw == CLIENT_DN
    assert out.reply == CLIENT_DN


def test_explicit_types_and_zookeeper_prefixed_keys(pki: PKI, tmp_path: Path) -> None:
    # Extension-less copies: the type must come from *.type.
    ks = tmp_path / "keystore"
    ts = tmp_path / "truststore"
    shutil.copy(pki.stores["ks.p12"], ks)
    shutil.copy(pki.stores["ts.jks"], ts)
    props = {
        "zookeeper.ssl.keyStore.location": str(ks),
        "zookeeper.ssl.keyStore.password": KS_PASS,
        "zookeeper.ssl.keyStore.type": "pkcs12",
        "zookeeper.ssl.trustStore.location": str(ts),
        "zookeeper.ssl.trustStore.password": TS_PASS,
        "zookeeper.ssl.trustStore.type": "JKS",
        "zookeeper.ssl.clientAuth": "NEED",
        "zookeeper.ssl.hostnameVerification": "true",
    }
    out = _handshake(build_server_context(props), _client_ctx(pki))
    assert out.ok and out.server_saw == CLIENT_DN


def test_zoo_cfg_spelling_wins_over_system_property(pki: PKI) -> None:
    props = _props(pki, "jks", "jks")
    props["zookeeper.ssl.keyStore.location"] = "/nonexistent/elsewhere.jks"
    props["zookeeper.ssl.clientAuth"] = "want"
    props["ssl.clientAuth"] = "none"
    ctx = build_server_context(props)
    assert ctx.verify_mode == ssl.CERT_NONE


def test_client_auth_none_without_client_cert(pki: PKI) -> None:
    ctx = build_server_context(_props(pki, "p12", None, **{"ssl.clientAuth": "none"}))
    assert ctx.verify_mode == ssl.CERT_NONE
    out = _handshake(ctx, _client_ctx(pki, with_cert=False))
    assert out.ok
    assert out.server_saw is None and out.reply == "<none>"


def test_client_auth_want(pki: PKI) -> None:
    ctx = build_server_context(_props(pki, "pem", "pem", **{"ssl.clientAuth": "want"}))
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    anonymous = _handshake(ctx, _client_ctx(pki, with_cert=False))
    assert anonymous.ok and anonymous.server_saw is None
    named = _handshake(ctx, _client_ctx(pki))
    assert named.ok and named.server_saw == CLIENT_DN


def test_client_auth_need_rejects_anonymous_client(pki: PKI) -> None:
    ctx = build_server_context(_props(pki, "jks", "jks", **{"ssl.clientAuth": "need"}))
    out = _handshake(ctx, _client_ctx(pki, with_cert=False))
    assert not out.ok


def test_untrusted_client_cert_rejected(pki: PKI) -> None:
    props = _props(pki, "jks", None)
    props["ssl.trustStore.location"] = str(pki.other_ca_pem)  # .crt: type must be explicit
    props["ssl.trustStore.type"] = "PEM"
    out = _handshake(build_server_context(props), _client_ctx(pki))
    assert not out.ok


# --------------------------------------------------------------------------------------------
# Protocols and cipher suites
# --------------------------------------------------------------------------------------------


def test_protocol_defaults_accept_tls12_and_tls13(pki: PKI) -> None:
    ctx = build_server_context(_props(pki))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    out12 = _handshake(ctx, _client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2))
    assert out12.ok and out12.version == "TLSv1.2" and out12.server_saw == CLIENT_DN
    out13 = _handshake(ctx, _client_ctx(pki))
    assert out13.ok and out13.version == "TLSv1.3"


def test_protocol_pins_one_version(pki: PKI) -> None:
    ctx = build_server_context(_props(pki, **{"ssl.protocol": "TLSv1.3"}))
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert not _handshake(ctx, _client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)).ok
    generic = parse_tls_config({"ssl.protocol": "TLS"})
    assert generic.minimum_version == ssl.TLSVersion.TLSv1_2


def test_enabled_protocols_override_protocol() -> None:
    cfg = parse_tls_config({"ssl.protocol": "TLSv1.3", "ssl.enabledProtocols": "TLSv1.3, TLSv1.2"})
    assert (cfg.minimum_version, cfg.maximum_version) == (
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_3,
    )
    with pytest.raises(TLSConfigError) as e:
        parse_tls_config({"ssl.enabledProtocols": "TLSv1.2,TLSv9"})
    assert e.value.key == "ssl.enabledProtocols"
    with pytest.raises(TLSConfigError) as e:
        parse_tls_config({"zookeeper.ssl.protocol": "SSLv9"})
    assert e.value.key == "zookeeper.ssl.protocol"


def test_tls12_cipher_suites(pki: PKI) -> None:
    ctx = build_server_context(
        _props(
            pki,
            **{
                "ssl.ciphersuites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_BOGUS_SUITE",
            },
        )
    )
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2  # no TLS 1.3 suite enabled
    out = _handshake(ctx, _client_ctx(pki))
    assert out.ok and out.version == "TLSv1.2"
    assert out.cipher == "ECDHE-RSA-AES128-GCM-SHA256"


def test_tls13_only_cipher_suites(pki: PKI) -> None:
    ctx = build_server_context(_props(pki, **{"ssl.ciphersuites": "TLS_AES_128_GCM_SHA256"}))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    out = _handshake(ctx, _client_ctx(pki))
    assert out.ok and out.version == "TLSv1.3"


def test_unusable_cipher_suites(pki: PKI) -> None:
    with pytest.raises(TLSConfigError) as e:
        build_server_context(_props(pki, **{"ssl.ciphersuites": "TLS_FOO,TLS_BAR"}))
    assert e.value.key == "ssl.ciphersuites"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _error_key(props: dict[str, str]) -> str:
    with pytest.raises(TLSConfigError) as e:
        build_server_context(props)
    assert e.value.key in str(e.value)
    return e.value.key


def test_missing_key_store(pki: PKI) -> None:
    assert _error_key({"ssl.clientAuth": "none"}) == "ssl.keyStore.location"
    assert _error_key({"zookeeper.ssl.keyStore.location": str(pki.dir / "nope.jks")}) == (
        "zookeeper.ssl.keyStore.location"
    )


@pytest.mark.parametrize("ks", ["jks", "p12", "pem"])
def test_wrong_key_store_password(pki: PKI, ks: str) -> None:
    props = _props(pki, ks, "pem")
    props["ssl.keyStore.password"] = "wrong"
    assert _error_key(props) == "ssl.keyStore.password"


@pytest.mark.parametrize("ts", ["jks", "p12"])
def test_wrong_trust_store_password(pki: PKI, ts: str) -> None:
    props = _props(pki, "pem", ts)
    props["ssl.trustStore.password"] = "wrong"
    assert _error_key(props) == "ssl.trustStore.password"


def test_bad_types(pki: PKI, tmp_path: Path) -> None:
    assert _error_key(_props(pki, **{"ssl.keyStore.type": "BCFKS"})) == "ssl.keyStore.type"
    assert _error_key(_props(pki, **{"ssl.trustStore.type": "WHAT"})) == "ssl.trustStore.type"
    odd = tmp_path / "server.keys"
    shutil.copy(pki.stores["ks.jks"], odd)
    props = _props(pki)
    props["ssl.keyStore.location"] = str(odd)
    assert _error_key(props) == "ssl.keyStore.location"  # cannot infer from ".keys"
    # PEM content declared as JKS
    props = _props(pki, "pem")
    props["ssl.keyStore.type"] = "JKS"
    assert _error_key(props) == "ssl.keyStore.location"


def test_bad_client_auth(pki: PKI) -> None:
    assert _error_key(_props(pki, **{"ssl.clientAuth": "sometimes"})) == "ssl.clientAuth"


def test_password_path(pki: PKI, tmp_path: Path) -> None:
    secret = tmp_path / "ks-password"
    secret.write_text(KS_PASS + "\n")
    props = _props(pki, "p12", "p12")
    props["ssl.keyStore.password"] = "overridden"
    props["ssl.keyStore.passwordPath"] = str(secret)
    assert _handshake(build_server_context(props), _client_ctx(pki)).server_saw == CLIENT_DN
    props["ssl.keyStore.passwordPath"] = str(tmp_path / "missing")
    assert _error_key(props) == "ssl.keyStore.passwordPath"


def test_quorum_prefix(pki: PKI) -> None:
    props = {k.replace("ssl.", "ssl.quorum."): v for k, v in _props(pki, "pem", "pem").items()}
    props["ssl.quorum.clientAuth"] = "want"
    ctx = build_server_context(props, quorum=True)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert _error_key(props) == "ssl.keyStore.location"  # client-port keys absent


def test_temporary_key_files_are_private_and_removed(pki: PKI, monkeypatch) -> None:
    made: list[tuple[str, int]] = []
    real_mkdtemp = tempfile.mkdtemp
    real_write = tls._write_private

    def mkdtemp(*a, **kw):
        d = real_mkdtemp(*a, **kw)
        made.append((d, stat.S_IMODE(os.stat(d).st_mode)))
        return d

    modes: list[int] = []

    def write_private(directory: str, name: str, data: bytes) -> str:
        path = real_write(directory, name, data)
        modes.append(stat.S_IMODE(os.stat(path).st_mode))
        assert b"BEGIN PRIVATE KEY" not in data  # the key is written encrypted
        return path

    monkeypatch.setattr(tls.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(tls, "_write_private", write_private)
    build_server_context(_props(pki, "jks", "jks"))
    assert len(made) == 1 and made[0][1] == 0o700
    assert modes == [0o600, 0o600]
    assert not os.path.exists(made[0][0])


# --------------------------------------------------------------------------------------------
# x509 ids (X500Principal.getName() format)
# --------------------------------------------------------------------------------------------

_EMAIL = x509.ObjectIdentifier("1.2.840.113549.1.9.1")


def _tricky_names() -> list[tuple[x509.Name, str]]:
    multi = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops"),
                    x509.NameAttribute(NameOID.USER_ID, "u1"),
                ]
            ),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "multi")]),
        ]
    )
    return [
        (
            _name(
                (NameOID.COUNTRY_NAME, "US"),
                (NameOID.ORGANIZATION_NAME, "Org"),
                (NameOID.COMMON_NAME, "client"),
            ),
            "CN=client,O=Org,C=US",
        ),
        (
            _name(
                (NameOID.DOMAIN_COMPONENT, "org"),
                (NameOID.DOMAIN_COMPONENT, "example"),
                (NameOID.STATE_OR_PROVINCE_NAME, "CA"),
                (NameOID.LOCALITY_NAME, "SF"),
                (NameOID.STREET_ADDRESS, "1 Main St"),
                (NameOID.COMMON_NAME, "dc"),
            ),
            "CN=dc,STREET=1 Main St,L=SF,ST=CA,DC=example,DC=org",
        ),
        (
            _name(
                (NameOID.ORGANIZATION_NAME, 'A, "B" + <C>; #1=2\\'),
                (NameOID.COMMON_NAME, " padded "),
            ),
            'CN=\\ padded\\ ,O=A\\, \\"B\\" \\+ \\<C\\>\\; \\#1\\=2\\\\',
        ),
        (
            _name((NameOID.COMMON_NAME, "#hash"), (_EMAIL, "a@b.c")),
            "1.2.840.113549.1.9.1=#1605614062" + "2e63" + ",CN=\\#hash",
        ),
        (_name((NameOID.COMMON_NAME, "Zürich ünïcode")), "CN=Zürich ünïcode"),
        (
            _name((NameOID.SERIAL_NUMBER, "1234"), (NameOID.COMMON_NAME, "sn")),
            "CN=sn,2.5.4.5=#130431323334",
        ),
        (multi, "CN=multi,OU=Ops+UID=u1,C=DE"),
    ]


def test_java_rfc2253_name_examples() -> None:
    for name, expected in _tricky_names():
        assert java_rfc2253_name(name) == expected
        assert java_rfc2253_name(name.public_bytes()) == expected


def test_rfc4514_string_matches_for_plain_names() -> None:
    # cryptography's rfc4514_string() also lists the most specific RDN first; for plain
    # values it agrees with Java (they differ on '=', inner '#' and keyword-less attributes).
    name = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "Org"),
        (NameOID.COMMON_NAME, "client"),
    )
    assert name.rfc4514_string() == java_rfc2253_name(name) == "CN=client,O=Org,C=US"


# Short-lived JVMs: skip the optimising JIT and the parallel GC set-up.
_FAST_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

_JAVA_DN_DUMP = """
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;

public class DnDump {
    public static void main(String[] args) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        for (String path : args) {
            try (FileInputStream in = new FileInputStream(path)) {
                X509Certificate c = (X509Certificate) cf.generateCertificate(in);
                System.out.println(c.getSubjectX500Principal().getName());
            }
        }
    }
}
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="no java to compare with")
def test_java_rfc2253_name_matches_the_jdk(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    paths, expected = [], []
    for i, (name, _) in enumerate(_tricky_names()):
        cert = _cert(name, name, key.public_key(), key)
        path = tmp_path / f"c{i}.der"
        path.write_bytes(_der(cert))
        paths.append(str(path))
        expected.append(java_rfc2253_name(cert.subject))
    src = tmp_path / "DnDump.java"
    src.write_text(_JAVA_DN_DUMP)
    res = subprocess.run(
        ["java", *_FAST_JVM, "-Dfile.encoding=UTF-8", "-Dstdout.encoding=UTF-8", str(src), *paths],
        check=False,
        capture_output=True,
        timeout=60,
    )
    if res.returncode != 0:
        pytest.skip(f"java could not run the comparison: {res.stderr.decode()[-300:]}")
    assert res.stdout.decode("utf-8").splitlines() == expected


@pytest.mark.skipif(shutil.which("keytool") is None, reason="no keytool")
def test_keytool_written_jks_and_pkcs12(pki: PKI, tmp_path: Path) -> None:
    """Stores written by the JDK itself (what ZooKeeper deployments use)."""
    ks = tmp_path / "server.jks"
    ts = tmp_path / "truststore.p12"
    for cmd in (
        [
            "keytool",
            *(f"-J{flag}" for flag in _FAST_JVM),
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            str(pki.stores["ks.p12"]),
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            KS_PASS,
            "-destkeystore",
            str(ks),
            "-deststoretype",
            "JKS",
            "-deststorepass",
            KS_PASS,
            "-destkeypass",
            KS_PASS,
        ],
        [
            "keytool",
            *(f"-J{flag}" for flag in _FAST_JVM),
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            str(pki.ca_pem),
            "-keystore",
            str(ts),
            "-storetype",
            "PKCS12",
            "-storepass",
            TS_PASS,
        ],
    ):
        res = subprocess.run(cmd, check=False, capture_output=True, timeout=60)
        if res.returncode != 0:
            pytest.skip(f"keytool failed: {res.stderr.decode()[-300:]}")
    props = {
        "ssl.keyStore.location": str(ks),
        "ssl.keyStore.password": KS_PASS,
        "ssl.trustStore.location": str(ts),
        "ssl.trustStore.password": TS_PASS,
    }
    out = _handshake(build_server_context(props), _client_ctx(pki))
    assert out.ok and out.server_saw == CLIENT_DN

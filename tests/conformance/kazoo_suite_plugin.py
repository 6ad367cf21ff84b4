"""pytest plugin loaded by scripts/kazoo-suite (``-p kazoo_suite_plugin``).

It only affects kazoo's own test modules:

* tests from kazoo's eventlet / gevent modules are skipped up front when the
  optional library is not importable (kazoo mostly self-skips, this makes it
  certain and gives one clear reason);
* tests listed in KAZOO_SUITE_DESELECT (a file, one id or id prefix per
  line) are deselected: not run, not counted (the CI subset uses this for
  tests that need a multi-server ensemble);
* tests listed in KAZOO_SUITE_SKIP_FILE (one id per line, ``#`` comments) are
  skipped with the reason given after `` # `` on the line, which lets a run
  quarantine known-hanging tests without editing kazoo;
* when the installed pyOpenSSL no longer has ``X509Extension`` (removed in
  pyOpenSSL 26.2), kazoo.testing's certificate generation is replaced by an
  equivalent one written against ``cryptography`` (same CA / server / client
  layout, same keystore and truststore contents), so the harness keeps
  working without pinning pyOpenSSL (and with it cryptography) to old versions.
"""

from __future__ import annotations

import datetime
import importlib.util
import os

import pytest

OPTIONAL_LIBS = {
    "test_eventlet_handler": "eventlet",
    "test_gevent_handler": "gevent",
}


def _lib_missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def dotted_id(item: pytest.Item) -> str:
    """kazoo.tests.test_mod::Class::test_name (the id scripts/kazoo-suite uses)."""
    mod = getattr(item, "module", None)
    modname = mod.__name__ if mod is not None else item.nodeid.split("::", 1)[0]
    rest = item.nodeid.split("::")[1:]
    return "::".join([modname, *rest])


def _matches(ident: str, key: str) -> bool:
    return ident == key or ident.startswith(key + "::")


def _load_skip_file(var: str = "KAZOO_SUITE_SKIP_FILE") -> dict[str, str]:
    path = os.environ.get(var)
    out: dict[str, str] = {}
    if not path or not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line, _, reason = raw.partition("#")
            line = line.strip()
            if line:
                out[line] = reason.strip() or "listed in KAZOO_SUITE_SKIP_FILE"
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = {mod: lib for mod, lib in OPTIONAL_LIBS.items() if _lib_missing(lib)}
    skips = _load_skip_file()
    deselect = list(_load_skip_file("KAZOO_SUITE_DESELECT"))
    if deselect:
        keep, dropped = [], []
        for item in items:
            ident = dotted_id(item)
            (dropped if any(_matches(ident, k) for k in deselect) else keep).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
    for item in items:
        ident = dotted_id(item)
        modname = ident.split("::", 1)[0].rsplit(".", 1)[-1]
        if modname in missing:
            item.add_marker(
                pytest.mark.skip(reason=f"optional library {missing[modname]} not installed")
            )
            continue
        for key, reason in skips.items():
            if _matches(ident, key):
                item.add_marker(pytest.mark.skip(reason=f"quarantined: {reason}"))
                break


# --------------------------------------------------------------------------
# certificate generation fallback for pyOpenSSL >= 26.2


def _generate_ssl_material() -> dict:
    import jks
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from OpenSSL import crypto

    now = datetime.datetime.now(datetime.timezone.utc)
    not_after = now + datetime.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    ca_key = key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("ca.kazoo.org"))
        .issuer_name(name("ca.kazoo.org"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, serial: int):
        k = key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(k.public_key())
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .sign(ca_key, hashes.SHA256())
        )
        return k, cert

    server_key, server_cert = leaf("localhost", 2)
    client_key, client_cert = leaf("client", 3)

    der = serialization.Encoding.DER
    pem = serialization.Encoding.PEM

    def key_bytes(k, enc, fmt):
        return k.private_bytes(enc, fmt, serialization.NoEncryption())

    truststore = jks.KeyStore.new(
        "jks", [jks.TrustedCertEntry.new("kazoo ca", ca_cert.public_bytes(der))]
    )
    # "rsa_raw" = PKCS#1 RSAPrivateKey DER, what pyOpenSSL's ASN1 dump gives
    server_pke = jks.PrivateKeyEntry.new(
        "server cert",
        [server_cert.public_bytes(der)],
        key_bytes(server_key, der, serialization.PrivateFormat.TraditionalOpenSSL),
        "rsa_raw",
    )
    keystore = jks.KeyStore.new("jks", [server_pke])

    return {
        "ca_cert": crypto.X509.from_cryptography(ca_cert),
        "ca_key": crypto.PKey.from_cryptography_key(ca_key),
        "ca_cert_pem": ca_cert.public_bytes(pem),
        "server_cert": crypto.X509.from_cryptography(server_cert),
        "server_key": crypto.PKey.from_cryptography_key(server_key),
        "client_cert": crypto.X509.from_cryptography(client_cert),
        "client_key": crypto.PKey.from_cryptography_key(client_key),
        "client_cert_pem": client_cert.public_bytes(pem),
        "client_key_pem": key_bytes(
            client_key, pem, serialization.PrivateFormat.TraditionalOpenSSL
        ),
        "truststore": truststore,
        "keystore": keystore,
    }


def _patch_cert_generation() -> None:
    try:
        from OpenSSL import crypto
    except ImportError:
        return
    if hasattr(crypto, "X509Extension") and hasattr(crypto.X509, "add_extensions"):
        return  # kazoo's own code works with this pyOpenSSL
    from kazoo.testing import common

    def perform_ssl_certs_generation(self):
        if self._ssl_configuration:
            return
        self._ssl_configuration = _generate_ssl_material()

    common.ZookeeperCluster.perform_ssl_certs_generation = perform_ssl_certs_generation


def pytest_configure(config: pytest.Config) -> None:
    _patch_cert_generation()


# --------------------------------------------------------------------------
# server log tail in failure reports
#
# kazoo's conftest logs the cluster's zookeeper.log from
# pytest_exception_interact, which runs after the report is built, so the
# lines never reach the report. Attach the tail to the report instead.

SERVER_LOG_LINES = int(os.environ.get("KAZOO_SUITE_SERVER_LOG_LINES", "60"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or SERVER_LOG_LINES <= 0:
        return
    try:
        from kazoo.testing import harness

        cluster = harness.CLUSTER  # no side effects, unlike get_global_cluster()
        if cluster is None:
            return
        for server in cluster:
            lines = server.get_logs(num_lines=SERVER_LOG_LINES)
            if lines:
                report.sections.append(
                    (f"server {server.server_info.server_id} log tail ({report.when})",
                     "".join(lines))
                )
    except Exception:  # never let diagnostics break a run
        return

"""Key and trust stores for the TLS server: read the files ZooKeeper's TLS keys point at.

Mirrors ZooKeeper's ``org.apache.zookeeper.common`` store loaders (``KeyStoreFileType``,
``JKSFileLoader``, ``PKCS12FileLoader``, ``PEMFileLoader``/``PemReader``, ``SecretUtils``) on
top of the JDK's ``KeyStore``: JKS/JCEKS stores (via pyjks), PKCS12 and PEM files, the store
type inferred from the file extension (``KeyStoreFileType.fromFilename``), and password files
(``*.passwordPath``). As with the JDK's compat keystores, a JKS/PKCS12 store is loaded
according to its content (magic bytes), not its declared type.

`load_key_store` gives the private key and its chain (leaf first); `load_trust_store` the
trusted certificates. Errors are `TLSConfigError`, naming the configuration key at fault.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

__all__ = [
    "StoreConfig",
    "StoreType",
    "TLSConfigError",
    "infer_store_type",
    "load_key_store",
    "load_trust_store",
    "read_password_file",
]

log = logging.getLogger(__name__)


class TLSConfigError(ValueError):
    """A TLS configuration problem; `key` is the configuration key at fault.

    Defined here, below `tls` (which re-exports it), so that store loading needs no import
    of `tls`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


# --------------------------------------------------------------------------------------------
# Store configuration
# --------------------------------------------------------------------------------------------


class StoreType(enum.Enum):
    JKS = "JKS"
    PKCS12 = "PKCS12"
    PEM = "PEM"


_EXTENSIONS = {
    ".jks": StoreType.JKS,
    ".jceks": StoreType.JKS,
    ".pem": StoreType.PEM,
    ".p12": StoreType.PKCS12,
    ".pfx": StoreType.PKCS12,
}


@dataclass(frozen=True)
class StoreConfig:
    """One key or trust store: where, how to open it, and the keys it came from."""

    location: str
    password: str
    type: StoreType
    location_key: str  # the key names, as the user spelled them, for error messages
    password_key: str
    type_key: str


def read_password_file(path: str, key: str) -> str:
    """The password in the file `path` (given by the key `key`), as ZooKeeper's
    SecretUtils.readSecret reads it: the whole file minus one trailing line separator."""
    try:
        with open(path, "rb") as f:
            secret = f.read().decode("utf-8")
    except OSError as e:
        raise TLSConfigError(key, f"cannot read password file {path!r}: {e}") from e
    except UnicodeDecodeError as e:
        raise TLSConfigError(key, f"password file {path!r} is not UTF-8") from e
    for sep in ("\r\n", "\n"):
        if secret.endswith(sep):
            secret = secret[: -len(sep)]
            break
    return secret


def infer_store_type(
    location: str, declared: str | None, type_key: str, location_key: str
) -> StoreType:
    """The declared store type, else the one `location`'s extension implies."""
    if declared is not None:
        name = declared.upper()
        if name == "PKCS#12":
            name = "PKCS12"
        if name == "JCEKS":
            name = "JKS"
        try:
            return StoreType(name)
        except ValueError:
            raise TLSConfigError(
                type_key,
                f"unsupported store type {declared!r} (expected JKS, PKCS12 or PEM)",
            ) from None
    ext = os.path.splitext(location)[1].lower()
    try:
        return _EXTENSIONS[ext]
    except KeyError:
        raise TLSConfigError(
            location_key,
            f"cannot infer the store type of {location!r} from its extension "
            f"(.jks, .p12, .pfx, .pem); set {type_key}",
        ) from None


# --------------------------------------------------------------------------------------------
# Key and trust store loading
# --------------------------------------------------------------------------------------------

_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"


def _read_store_file(store: StoreConfig) -> bytes:
    try:
        with open(store.location, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(store.location_key, f"cannot read {store.location!r}: {e}") from e


def _binary_format(data: bytes, store: StoreConfig) -> StoreType:
    """JKS and PKCS12 stores are told apart by content, as the JDK's compat keystores do."""
    if data[:4] in (_JKS_MAGIC, _JCEKS_MAGIC):
        return StoreType.JKS
    if data[:1] == b"\x30":
        return StoreType.PKCS12
    raise TLSConfigError(
        store.location_key,
        f"{store.location!r} is neither a JKS nor a PKCS12 store"
        + (" (it looks like PEM)" if b"-----BEGIN" in data[:4096] else ""),
    )


def _jks(store: StoreConfig) -> Any:
    try:
        import jks  # pyjks
    except ImportError as e:  # pragma: no cover - pyjks is a dependency
        raise TLSConfigError(store.type_key, "JKS stores need the 'pyjks' package") from e
    return jks


def _load_jks(data: bytes, store: StoreConfig) -> tuple[list[Any], list[Any]]:
    """(private key entries, trusted cert entries) of a JKS/JCEKS store, keys decrypted."""
    jks = _jks(store)
    try:
        ks = jks.KeyStore.loads(data, store.password)
    except jks.util.KeystoreSignatureException as e:
        raise TLSConfigError(
            store.password_key, f"wrong password for {store.location!r} (integrity check failed)"
        ) from e
    except Exception as e:  # BadKeystoreFormatException, UnsupportedKeystoreVersion, ...
        raise TLSConfigError(
            store.location_key, f"cannot parse JKS store {store.location!r}: {e}"
        ) from e
    keys = []
    for alias, entry in sorted(ks.private_keys.items()):
        if not entry.is_decrypted():
            try:
                entry.decrypt(store.password)
            except Exception as e:
                raise TLSConfigError(
                    store.password_key,
                    f"cannot decrypt private key {alias!r} in {store.location!r} "
                    "with the store password",
                ) from e
        keys.append(entry)
    certs = [entry for _, entry in sorted(ks.certs.items())]
    return keys, certs


def _load_pkcs12(
    data: bytes, store: StoreConfig
) -> tuple[PrivateKeyTypes | None, list[x509.Certificate]]:
    """(private key or None, certificates with the key's certificate first)."""
    candidates: list[bytes | None] = [store.password.encode("utf-8")]
    if not store.password:
        candidates.insert(0, None)
    error: Exception | None = None
    for password in candidates:
        try:
            bundle = pkcs12.load_pkcs12(data, password)
        except ValueError as e:
            error = e
            continue
        certs = [c.certificate for c in ([bundle.cert] if bundle.cert else [])]
        certs += [c.certificate for c in bundle.additional_certs]
        return bundle.key, certs
    raise TLSConfigError(
        store.password_key,
        f"cannot open PKCS12 store {store.location!r} (wrong password or corrupt file: {error})",
    )


def _pem_blocks(text: str, kinds: tuple[str, ...]) -> list[bytes]:
    blocks: list[bytes] = []
    pos = 0
    while True:
        start = text.find("-----BEGIN ", pos)
        if start < 0:
            return blocks
        label_end = text.find("-----", start + 11)
        if label_end < 0:
            return blocks
        label = text[start + 11 : label_end]
        end_marker = f"-----END {label}-----"
        end = text.find(end_marker, label_end)
        if end < 0:
            return blocks
        pos = end + len(end_marker)
        if label in kinds:
            blocks.append(text[start:pos].encode("ascii"))


_PEM_KEY_LABELS = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def _pem_text(data: bytes, store: StoreConfig) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise TLSConfigError(
            store.location_key, f"{store.location!r} is not a PEM file; set {store.type_key}"
        ) from None


def _pem_certs(text: str, store: StoreConfig) -> list[x509.Certificate]:
    certs = []
    for block in _pem_blocks(text, ("CERTIFICATE",)):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as e:
            raise TLSConfigError(
                store.location_key, f"bad certificate in {store.location!r}: {e}"
            ) from e
    return certs


def _pem_key(text: str, store: StoreConfig) -> PrivateKeyTypes:
    blocks = _pem_blocks(text, _PEM_KEY_LABELS)
    if not blocks:
        raise TLSConfigError(store.location_key, f"no private key in {store.location!r}")
    if len(blocks) > 1:
        log.warning("%s: %d private keys, using the first", store.location_key, len(blocks))
    password = store.password.encode("utf-8") if store.password else None
    try:
        return serialization.load_pem_private_key(blocks[0], password)
    except TypeError:
        # "Password was given but private key is not encrypted" (ZooKeeper's PemReader
        # ignores a password for a plain key) or "Password was not given but key is encrypted".
        if password is None:
            raise TLSConfigError(
                store.password_key, f"the private key in {store.location!r} is encrypted"
            ) from None
        try:
            return serialization.load_pem_private_key(blocks[0], None)
        except (TypeError, ValueError) as e:
            raise TLSConfigError(
                store.location_key, f"cannot load the private key in {store.location!r}: {e}"
            ) from e
    except ValueError as e:
        key = store.password_key if password is not None else store.location_key
        raise TLSConfigError(
            key, f"cannot load the private key in {store.location!r} (wrong password?): {e}"
        ) from e
    except Exception as e:  # unsupported key algorithm and the like
        raise TLSConfigError(
            store.location_key, f"cannot load the private key in {store.location!r}: {e}"
        ) from e


def _spki(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _order_chain(
    key: PrivateKeyTypes, certs: list[x509.Certificate], store: StoreConfig
) -> list[x509.Certificate]:
    """Puts the certificate of `key` first; errors when there is none."""
    want = _spki(key.public_key())
    for i, cert in enumerate(certs):
        if _spki(cert.public_key()) == want:
            return [cert] + certs[:i] + certs[i + 1 :]
    raise TLSConfigError(
        store.location_key, f"no certificate in {store.location!r} matches its private key"
    )


def load_key_store(store: StoreConfig) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    """The private key and its certificate chain (leaf first) from a key store."""
    data = _read_store_file(store)
    if store.type is StoreType.PEM:
        text = _pem_text(data, store)
        key = _pem_key(text, store)
        certs = _pem_certs(text, store)
        return key, _order_chain(key, certs, store)
    if _binary_format(data, store) is StoreType.JKS:
        entries, _ = _load_jks(data, store)
        if not entries:
            raise TLSConfigError(store.location_key, f"no private key entry in {store.location!r}")
        if len(entries) > 1:
            log.warning(
                "%s: %d private key entries, using %r",
                store.location_key,
                len(entries),
                entries[0].alias,
            )
        entry = entries[0]
        try:
            jkey = serialization.load_der_private_key(entry.pkey_pkcs8, None)
            chain = [x509.load_der_x509_certificate(der) for _, der in entry.cert_chain]
        except Exception as e:
            raise TLSConfigError(
                store.location_key,
                f"cannot decode private key entry {entry.alias!r} of {store.location!r}: {e}",
            ) from e
        return jkey, _order_chain(jkey, chain, store)
    pkey, certs = _load_pkcs12(data, store)
    if pkey is None:
        raise TLSConfigError(store.location_key, f"no private key in {store.location!r}")
    return pkey, _order_chain(pkey, certs, store)


def load_trust_store(store: StoreConfig) -> list[x509.Certificate]:
    """The trusted certificates of a trust store. As in the JDK (TrustStoreUtil), a JKS private
    key entry contributes its own certificate."""
    data = _read_store_file(store)
    if store.type is StoreType.PEM:
        certs = _pem_certs(_pem_text(data, store), store)
    elif _binary_format(data, store) is StoreType.JKS:
        keys, trusted = _load_jks_trust(data, store)
        certs = [x509.load_der_x509_certificate(e.cert) for e in trusted]
        certs += [x509.load_der_x509_certificate(k.cert_chain[0][1]) for k in keys if k.cert_chain]
    else:
        _, certs = _load_pkcs12(data, store)
    if not certs:
        raise TLSConfigError(store.location_key, f"no certificates in {store.location!r}")
    return certs


def _load_jks_trust(data: bytes, store: StoreConfig) -> tuple[list[Any], list[Any]]:
    # Key entries of a trust store need not be decryptable: only their certificates are used.
    jks = _jks(store)
    try:
        ks = jks.KeyStore.loads(data, store.password, try_decrypt_keys=False)
    except jks.util.KeystoreSignatureException as e:
        raise TLSConfigError(
            store.password_key, f"wrong password for {store.location!r} (integrity check failed)"
        ) from e
    except Exception as e:
        raise TLSConfigError(
            store.location_key, f"cannot parse JKS store {store.location!r}: {e}"
        ) from e
    keys = [entry for _, entry in sorted(ks.private_keys.items())]
    certs = [entry for _, entry in sorted(ks.certs.items())]
    return keys, certs

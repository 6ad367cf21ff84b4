"""The secure client port end to end: kazoo over TLS with a client certificate, and the
x509 auth scheme (the certificate's DN as an ACL id)."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id

from zookapter.testing import ZookapterServer

from test_tls_config import PKI, _props, pki  # noqa: F401  (module-scoped fixture)

CLIENT_DN = "CN=client,OU=Eng,O=Org,C=US"


@pytest.mark.parametrize("store", ["jks", "p12", "pem"])
def test_kazoo_over_tls_with_x509_acl(pki: PKI, store: str) -> None:  # noqa: F811
    props = {"zookeeper." + k: v for k, v in _props(pki, store, store).items()}
    with ZookapterServer(secure_client_port=0, props=props) as server:
        port = server.server.secure_port
        tls = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                          certfile=str(pki.client_cert), keyfile=str(pki.client_key),
                          ca=str(pki.ca_pem))
        tls.start(timeout=10)
        tls.create("/secret", b"s", acl=[ACL(31, Id("x509", CLIENT_DN))])
        assert tls.get("/secret")[0] == b"s"
        plain = KazooClient(hosts=server.hosts)
        plain.start(timeout=10)
        with pytest.raises(NoAuthError):
            plain.get("/secret")
        # the `auth` scheme expands to the x509 id on the TLS connection
        tls.create("/mine", acl=[ACL(31, Id("auth", ""))])
        assert tls.get_acls("/mine")[0] == [ACL(31, Id("x509", CLIENT_DN))]
        plain.stop()
        tls.stop()

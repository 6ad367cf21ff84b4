"""The asyncio client over TLS (`ssl=` an SSLContext) with a client certificate, against the
secure client port of zookapter and of Apache ZooKeeper (Netty connection factory); the
certificate's DN becomes an x509 identity."""

# Fixtures are imported from other test modules and then named as test parameters:
# ruff: noqa: F811
from __future__ import annotations

import os
import ssl
from unittest import mock

import pytest
from test_client_support import aiotest, free_port, unique_path

from zookapter.client import ACL, AsyncZooKeeper, ClientInfo, Id
from zookapter.client import errors as e
from zookapter.testing import ZookapterServer

import oracle
from oracle import ApacheZooKeeper, apache_zookeeper_available
from test_tls_config import KS_PASS, PKI, TS_PASS, _client_ctx, _props, pki  # noqa: F401

CLIENT_DN = "CN=client,OU=Eng,O=Org,C=US"
NETTY_JARS = ("netty-codec.jar", "netty-handler.jar", "netty-transport.jar",
              "netty-buffer.jar", "netty-common.jar", "netty-resolver.jar",
              "netty-transport-native-unix-common.jar", "netty-transport-native-epoll.jar")


@pytest.fixture(scope="module", params=["zookapter", "apache"])
def tls_server(request, pki):
    """(plain hosts, TLS hosts) of a server with a secure client port."""
    if request.param == "zookapter":
        props = {"zookeeper." + k: v for k, v in _props(pki, "jks", "jks").items()}
        with ZookapterServer(secure_client_port=0, props=props) as server:
            yield server.hosts, f"127.0.0.1:{server.server.secure_port}"
        return
    if not apache_zookeeper_available():
        pytest.skip("Apache ZooKeeper oracle unavailable")
    port = free_port()
    jvm = {"zookeeper.serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
           "zookeeper.ssl.keyStore.location": str(pki.stores["ks.jks"]),
           "zookeeper.ssl.keyStore.password": KS_PASS,
           "zookeeper.ssl.trustStore.location": str(pki.stores["ts.jks"]),
           "zookeeper.ssl.trustStore.password": TS_PASS}
    server = ApacheZooKeeper(extra_config={"secureClientPort": str(port)},
                             extra_jvm_props=jvm)
    # The Debian zookeeper.jar's manifest leaves netty's codec jar off the classpath, which
    # the Netty connection factory (the only one that speaks TLS) needs.
    base_classpath = oracle._classpath
    extra = [str(oracle.JAVA_DIR / j) for j in NETTY_JARS if (oracle.JAVA_DIR / j).exists()]
    with mock.patch.object(oracle, "_classpath",
                           lambda: os.pathsep.join([base_classpath(), *extra])):
        server.start()
    try:
        yield server.hosts, f"127.0.0.1:{port}"
    finally:
        server.stop()


@aiotest
async def test_tls_client_with_x509_identity(tls_server, pki):
    plain_hosts, tls_hosts = tls_server
    base = unique_path()
    async with AsyncZooKeeper(tls_hosts, ssl=_client_ctx(pki)) as zk:
        assert ClientInfo("x509", CLIENT_DN) in await zk.who_am_i()
        await zk.create(base, b"s", acl=[ACL(31, Id("x509", CLIENT_DN))])
        assert (await zk.get(base))[0] == b"s"
        async with AsyncZooKeeper(plain_hosts) as plain:
            with pytest.raises(e.NoAuthError):
                await plain.get(base)
        await zk.delete(base)


@aiotest
async def test_tls_untrusted_server_fails_to_connect(tls_server, pki):
    _, tls_hosts = tls_server
    ctx = ssl.create_default_context(cafile=str(pki.other_ca_pem))
    with pytest.raises(e.OperationTimeoutError):
        await AsyncZooKeeper(tls_hosts, ssl=ctx, timeout=1.0).start()

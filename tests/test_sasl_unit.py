"""Unit tests for zookapter.server.sasl: JAAS parsing, the DIGEST-MD5 server, the factory.

The DIGEST-MD5 server is driven by puresasl's client (what kazoo uses). When a JDK is on the
machine, a small Java probe also runs the JDK's own DIGEST-MD5 SaslServer/SaslClient
(the implementation ZooKeeper uses) as an oracle for the same exchanges.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

import pytest

from zookapter.protocol.records import Id
from zookapter.server.sasl import (
    DIGEST_LOGIN_MODULE,
    ERR_AUTH_FAILED,
    ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH,
    DigestMD5Server,
    JaasError,
    LoginModuleEntry,
    SaslConfigError,
    SaslError,
    SaslServerFactory,
    canonical_authorization_id,
    digest_response_value,
    expand_properties,
    load_jaas_file,
    parse_directives,
    parse_jaas,
    sasl_acl_id_valid,
    sasl_acl_matches,
    sasl_reply_frame,
    section_credentials,
    server_credentials,
)

puresasl_client = pytest.importorskip("puresasl.client")

KAZOO_JAAS = """
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};"""

CREDS = {"super": "super_secret", "jaasuser": "jaas_password"}
NONCE = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def client(username: str = "jaasuser", password: str = "jaas_password"):
    # exactly what kazoo's ConnectionHandler._authenticate_with_sasl builds for DIGEST-MD5
    return puresasl_client.SASLClient(host="zk-sasl-md5", service="zookeeper",
                                      mechanism="DIGEST-MD5", username=username,
                                      password=password)


def server(**kw) -> DigestMD5Server:
    kw.setdefault("nonce_factory", lambda: NONCE)
    return DigestMD5Server(CREDS, **kw)


def kazoo_exchange(srv: DigestMD5Server, cli) -> int:
    """kazoo's SASL loop (one opcode-102 request per iteration); returns the request count."""
    challenge = None
    requests = 0
    while not cli.complete:
        response = cli.process(challenge=challenge)
        if cli.complete and not response:
            break
        if response is None:
            response = b""
        requests += 1
        _, challenge = srv.step(response)
    return requests


def response_for(challenge: bytes, username: str = "jaasuser",
                 password: str = "jaas_password") -> bytes:
    cli = client(username, password)
    assert cli.process(None) is None
    return cli.process(challenge)


def directives(token: bytes) -> dict[str, bytes]:
    return parse_directives(token)


def build(d: dict[str, str | bytes], quoted: set[str] | None = None) -> bytes:
    quoted = quoted if quoted is not None else {"username", "realm", "nonce", "cnonce",
                                                "digest-uri", "authzid"}
    parts = []
    for k, v in d.items():
        vb = v.encode() if isinstance(v, str) else v
        parts.append(k.encode() + b"=" + (b'"' + vb + b'"' if k in quoted else vb))
    return b",".join(parts)


def good_fields(username="jaasuser", password="jaas_password", nonce=NONCE, cnonce=b"cn0nce",
                uri="zookeeper/zk-sasl-md5", authzid: bytes | None = None, qop="auth",
                realm="zk-sasl-md5") -> dict[str, str | bytes]:
    resp = digest_response_value(method="AUTHENTICATE", digest_uri=uri, qop=qop,
                                 username=username, realm=realm, password=password,
                                 nonce=nonce, cnonce=cnonce, authzid=authzid)
    d: dict[str, str | bytes] = {"username": username, "realm": realm, "nonce": nonce,
                                 "cnonce": cnonce, "nc": "00000001", "qop": qop,
                                 "digest-uri": uri, "response": resp}
    if authzid is not None:
        d["authzid"] = authzid
    return d


# --- DIGEST-MD5 with puresasl ----------------------------------------------------------------

def test_challenge_matches_jdk_format():
    srv = server()
    assert srv.start() == (b'realm="zk-sasl-md5",nonce="' + NONCE
                           + b'",charset=utf-8,algorithm=md5-sess')
    assert not srv.complete


def test_random_nonce_is_40_base64_chars():
    srv = DigestMD5Server(CREDS)
    ch = srv.start()
    m = re.search(rb'nonce="([^"]*)"', ch)
    assert m and len(m.group(1)) == 40
    assert DigestMD5Server(CREDS).start() != ch


def test_good_password_kazoo_flow():
    srv, cli = server(), client()
    assert kazoo_exchange(srv, cli) == 2  # empty token -> challenge; response -> rspauth
    assert cli.complete  # puresasl verified rspauth
    assert srv.complete
    assert srv.authorization_id == "jaasuser"
    assert srv.authentication_id == "jaasuser"


def test_good_password_steps():
    srv, cli = server(), client()
    assert cli.process(None) is None
    done, challenge = srv.step(b"")
    assert not done
    done, token = srv.step(cli.process(challenge))
    assert done and token.startswith(b"rspauth=") and len(token) == 8 + 32
    assert cli.process(token) is None and cli.complete


def test_random_nonce_kazoo_flow():
    srv, cli = DigestMD5Server(CREDS), client("super", "super_secret")
    kazoo_exchange(srv, cli)
    assert srv.authorization_id == "super"


def test_bad_password():
    srv = server()
    with pytest.raises(SaslError, match="Mismatched response") as ei:
        kazoo_exchange(srv, client("jaasuser", "wrong"))
    assert ei.value.reply
    assert not srv.complete
    with pytest.raises(RuntimeError):
        _ = srv.authorization_id
    with pytest.raises(SaslError, match="illegal state"):
        srv.step(b"")


def test_unknown_user():
    srv = server()
    with pytest.raises(SaslError, match="cannot acquire password for baduser"):
        kazoo_exchange(srv, client("baduser", "badpassword"))


def test_super_password_property_overrides_jaas_password():
    srv = server(super_password="other")
    with pytest.raises(SaslError):
        kazoo_exchange(srv, client("super", "super_secret"))
    srv = server(super_password="other")
    kazoo_exchange(srv, client("super", "other"))
    assert srv.authorization_id == "super"
    # only for a user "super" that the JAAS section knows
    srv = DigestMD5Server({"jaasuser": "p"}, super_password="other", nonce_factory=lambda: NONCE)
    with pytest.raises(SaslError, match="cannot acquire password"):
        kazoo_exchange(srv, client("super", "other"))


def test_initial_response_ignored():
    # the JDK (9 and later) logs and ignores an initial response, then challenges
    srv = server()
    done, challenge = srv.step(b"username=x")
    assert not done and challenge == server().start()
    _, token = srv.step(response_for(challenge))
    assert token.startswith(b"rspauth=") and srv.authorization_id == "jaasuser"


def test_null_token_closes_without_reply():
    with pytest.raises(SaslError) as ei:
        server().step(None)
    assert not ei.value.reply


def test_too_long_response():
    srv = server()
    srv.start()
    with pytest.raises(SaslError, match="length"):
        srv.step(b"x" * 4097)


def test_step_after_success_fails():
    srv = server()
    kazoo_exchange(srv, client())
    with pytest.raises(SaslError, match="illegal state"):
        srv.step(b"")
    assert srv.authorization_id == "jaasuser"


def challenged() -> DigestMD5Server:
    srv = server()
    srv.start()
    return srv


def test_handbuilt_good_response_and_rspauth():
    srv = challenged()
    d = good_fields()
    done, token = srv.step(build(d))
    assert done
    expected = digest_response_value(method="", digest_uri="zookeeper/zk-sasl-md5", qop="auth",
                                     username="jaasuser", realm="zk-sasl-md5",
                                     password="jaas_password", nonce=NONCE, cnonce=b"cn0nce")
    assert token == b"rspauth=" + expected


@pytest.mark.parametrize("token", [
    b"",                                   # empty second token: no username
    b"garbage",                            # a key with no '='
    b"username",                           # likewise
    b'username="jaasuser',                 # unterminated quote
    b"=x",                                 # empty key
    b"username=",                          # valueless at the end
    b'username="a"b',                      # text glued to a closing quote
    b"user name=x",                        # '=' expected after key
    b"a,b=c",                              # ',' inside a key
    b'username="a\\',                      # trailing escape
    b"\xff\xfe\x00",
])
def test_malformed_tokens(token):
    with pytest.raises(SaslError) as ei:
        challenged().step(token)
    assert ei.value.reply


@pytest.mark.parametrize("field_name", ["username", "nonce", "cnonce", "digest-uri",
                                        "response", "realm"])
def test_missing_field(field_name):
    d = good_fields()
    del d[field_name]
    with pytest.raises(SaslError):
        challenged().step(build(d))


@pytest.mark.parametrize("change,msg", [
    ({"realm": "other"}, "Nonexistent realm"),
    ({"nonce": b"x" * 40}, "Mismatched nonce"),
    ({"digest-uri": "zookeeper/localhost"}, "Mismatched URI"),
    ({"digest-uri": "ldap/zk-sasl-md5"}, "Mismatched URI"),
    ({"qop": "auth-int"}, "does not support"),
    ({"qop": "auth-conf"}, "does not support"),
    ({"qop": "bogus"}, "Invalid QOP"),
    ({"charset": "iso-8859-1"}, "charset"),
    ({"charset": "UTF-8"}, "charset"),
    ({"nonce-count": "00000002"}, "Nonce count"),
    ({"response": "0" * 32}, "Mismatched response"),
])
def test_rejected_fields(change, msg):
    d = good_fields()
    d.update(change)
    with pytest.raises(SaslError, match=msg) as ei:
        challenged().step(build(d))
    assert ei.value.reply


def test_duplicate_directive():
    tok = build(good_fields()) + b',username="jaasuser"'
    with pytest.raises(SaslError, match="more than one"):
        challenged().step(tok)


@pytest.mark.parametrize("change", [{"nonce-count": "zz"}, {"maxbuf": "abc"},
                                    {"nonce-count": "100000000"}])
def test_unparsable_numbers_close_without_reply(change):
    d = good_fields()
    d.update(change)
    with pytest.raises(SaslError) as ei:
        challenged().step(build(d))
    assert not ei.value.reply


def test_lenient_forms_accepted():
    d = good_fields(uri="ZooKeeper/ZK-SASL-MD5")  # digest-uri compares case-insensitively
    d["charset"] = "utf-8"
    d["maxbuf"] = "65536"
    d["nonce-count"] = "1"
    d["nc"] = "00000009"  # "nc" is ignored (the JDK reads "nonce-count")
    d["unknown-directive"] = "whatever"
    tok = build(d).replace(b",", b" ,\t, \r\n")  # LWS and empty list elements
    srv = challenged()
    assert srv.step(b" " + tok.replace(b"username=", b"UserName=") + b" ,")[0]
    assert srv.authorization_id == "jaasuser"


def test_qop_defaults_to_auth_and_quoting_is_optional():
    d = good_fields()
    del d["qop"]
    assert challenged().step(build(d, quoted=set()))[0]


def test_quoted_pair_in_value():
    srv = DigestMD5Server({'we"ird\\': "pw"}, nonce_factory=lambda: NONCE)
    srv.start()
    d = good_fields(username='we"ird\\', password="pw")
    d["username"] = b'we\\"ird\\\\'
    assert srv.step(build(d))[0]
    assert srv.authorization_id == 'we"ird\\'


def test_authzid_is_hashed_but_not_granted():
    d = good_fields(authzid=b"super")
    srv = challenged()
    assert srv.step(build(d))[0]
    # ZooKeeper's callback handler authorizes the authentication id itself
    assert srv.authorization_id == "jaasuser"
    d = good_fields(authzid=b"super")
    d["authzid"] = "other"  # authzid differs from the one hashed
    with pytest.raises(SaslError, match="Mismatched response"):
        challenged().step(build(d))


def test_non_ascii_credentials_hash_latin1_when_possible():
    srv = DigestMD5Server({"josé": "pässword", "名前": "пароль"}, nonce_factory=lambda: NONCE)
    srv.start()
    d = good_fields(username="josé", password="pässword")
    d["username"] = "josé".encode()  # sent as UTF-8, hashed as ISO-8859-1
    assert srv.step(build(d))[0]
    a = digest_response_value(method="AUTHENTICATE", digest_uri="u", qop="auth",
                              username="josé", realm="r", password="p", nonce=b"n",
                              cnonce=b"c")
    b = digest_response_value(method="AUTHENTICATE", digest_uri="u", qop="auth",
                              username="jos\xe9", realm="r", password="p", nonce=b"n",
                              cnonce=b"c")
    assert a == b
    srv = DigestMD5Server({"josé": "pässword", "名前": "пароль"}, nonce_factory=lambda: NONCE)
    kazoo_exchange(srv, client("名前", "пароль"))  # beyond Latin-1: UTF-8, as puresasl hashes
    assert srv.authorization_id == "名前"


def test_puresasl_non_latin1_only_user_mismatch_with_latin1_password():
    # puresasl hashes UTF-8 bytes; the JDK hashes Latin-1 when it can: "é" differs.
    srv = DigestMD5Server({"jose": "pässword"}, nonce_factory=lambda: NONCE)
    with pytest.raises(SaslError, match="Mismatched response"):
        kazoo_exchange(srv, client("jose", "pässword"))


@pytest.mark.parametrize("name,requested,kw,expected", [
    ("jaasuser", "jaasuser", {}, "jaasuser"),
    ("jaasuser", "other", {}, "jaasuser"),
    ("svc/host@", "svc/host@", {}, "svc/host@"),
    ("svc/host@", "x", {"remove_host": True}, "svc@"),
    ("svc/host@", "x", {"remove_realm": True}, "svc/host"),
    ("svc@EXAMPLE.COM", "svc@EXAMPLE.COM", {}, "svc@EXAMPLE.COM"),
    ("svc@EXAMPLE.COM", "svc@EXAMPLE.COM", {"remove_realm": True}, "svc@EXAMPLE.COM"),
    ("svc@EXAMPLE.COM", "svc@EXAMPLE.COM", {"default_realm": "EXAMPLE.COM",
                                            "remove_realm": True}, "svc"),
    ("svc/h@EXAMPLE.COM", "authz", {}, "authz"),
])
def test_canonical_authorization_id(name, requested, kw, expected):
    assert canonical_authorization_id(name, requested, **kw) == expected


def test_malformed_kerberos_name_closes_without_reply():
    with pytest.raises(SaslError) as ei:
        canonical_authorization_id("a@b@c", "a@b@c")
    assert not ei.value.reply
    srv = DigestMD5Server({"a@b@c": "pw"}, nonce_factory=lambda: NONCE)
    with pytest.raises(SaslError) as ei:
        kazoo_exchange(srv, client("a@b@c", "pw"))
    assert not ei.value.reply


# --- ACL helpers and wire framing -------------------------------------------------------------

def test_sasl_acl_helpers():
    assert sasl_acl_matches("jaasuser", "jaasuser")
    assert not sasl_acl_matches("jaasuser", "other")
    assert sasl_acl_matches("super", "anyone-at-all")
    assert sasl_acl_matches("jaasuser", "anyone", "anyone")
    assert not sasl_acl_matches("jaasuser", "other", "anyone")
    assert sasl_acl_id_valid("jaasuser")
    assert sasl_acl_id_valid("svc/host@REALM")
    assert sasl_acl_id_valid("svc@REALM")
    assert not sasl_acl_id_valid("a@b@c")
    assert not sasl_acl_id_valid("a/b/c@R")


def test_reply_frame_parses_like_kazoo():
    ser = pytest.importorskip("kazoo.protocol.serialization")
    frame = sasl_reply_frame(1, 0, b"rspauth=abc")
    (length,) = struct.unpack_from(">i", frame)
    assert length == len(frame) - 4
    header, offset = ser.ReplyHeader.deserialize(frame[4:], 0)
    assert (header.xid, header.zxid, header.err) == (1, 0, 0)
    token, _ = ser.SASL.deserialize(frame[4:], offset)
    assert token == b"rspauth=abc"
    fail = sasl_reply_frame(2, ERR_AUTH_FAILED, None)
    assert fail == struct.pack(">iiqii", 20, 2, 0, -115, -1)


# --- JAAS parsing -------------------------------------------------------------------------------

def test_kazoo_harness_jaas():
    jaas = parse_jaas(KAZOO_JAAS)
    assert list(jaas) == ["Server"]
    [entry] = jaas["Server"]
    assert entry == LoginModuleEntry(DIGEST_LOGIN_MODULE, "required",
                                     {"user_super": "super_secret",
                                      "user_jaasuser": "jaas_password"})
    assert server_credentials(jaas) == CREDS


def test_empty_and_comment_only_files():
    assert parse_jaas("") == {}
    assert parse_jaas("  // nothing\n/* still\nnothing */\n") == {}


def test_comments_multiple_sections_and_quoting():
    text = r"""
    // the server side
    Server {
        /* digest users */ org.apache.zookeeper.server.auth.DigestLoginModule REQUIRED
            user_bob='bob\'s "pw"'   // single quotes, escapes
            user_alice="a;b}c{d=e"
            user_tab="x\ty\101\0"
            debug=true;
        com.example.Other Optional user_carol="c" keyTab="/etc/k.keytab";
    };
    Client{org.apache.zookeeper.server.auth.DigestLoginModule sufficient username="bob"
    password="x";};
    "Quoted Name" { a.B requisite; };
    Empty { };
    """
    jaas = parse_jaas(text)
    assert list(jaas) == ["Server", "Client", "Quoted Name", "Empty"]
    digest, other = jaas["Server"]
    assert digest.flag == "required" and other.flag == "optional"
    assert digest.options == {"user_bob": "bob's \"pw\"", "user_alice": "a;b}c{d=e",
                              "user_tab": "x\tyA\x00", "debug": "true"}
    assert other.module == "com.example.Other"
    assert jaas["Client"][0].options == {"username": "bob", "password": "x"}
    assert jaas["Quoted Name"] == [LoginModuleEntry("a.B", "requisite", {})]
    assert jaas["Empty"] == []
    creds = server_credentials(jaas)
    assert creds == {"bob": "bob's \"pw\"", "alice": "a;b}c{d=e", "tab": "x\tyA\x00",
                     "carol": "c"}
    assert server_credentials(jaas, "Empty") is None
    assert server_credentials(jaas, "Missing") is None
    assert server_credentials(jaas, "Client") == {}


def test_lone_slash_is_a_line_comment():
    assert parse_jaas("S { m.M required / a=b c=d\n e=f; };")["S"][0].options == {"e": "f"}


def test_later_modules_override_credentials():
    creds = section_credentials([
        LoginModuleEntry("a", "required", {"user_x": "1", "user_y": "2", "other": "z"}),
        LoginModuleEntry("b", "required", {"user_x": "3", "user_": "empty-name"}),
    ])
    assert creds == {"x": "3", "y": "2", "": "empty-name"}


def test_property_expansion():
    props = {"pw": "secret", "dir": "/d"}
    jaas = parse_jaas('S { m.M required user_a="${pw}" k="${dir}${/}f" '
                      'lit="$${{x}}y" open="${unterminated"; };', props)
    assert jaas["S"][0].options == {"user_a": "secret", "k": "/d/f", "lit": "$${{x}}y",
                                    "open": "${unterminated"}
    with pytest.raises(JaasError, match="unable to expand"):
        parse_jaas('S { m.M required a="${nope}"; };')
    assert parse_jaas('S { m.M required a="${nope}"; };', expand=False)["S"][0].options == {
        "a": "${nope}"}
    assert expand_properties("${user.home}") == os.path.expanduser("~")
    assert parse_jaas('S { m.M required a=""; };')["S"][0].options == {"a": ""}


@pytest.mark.parametrize("text,msg", [
    ("Server { m.M required a=b }", "option key"),   # missing ';' after the options
    ("Server { m.M required a=b; }", r"\;"),         # missing ';' after '}'
    ("Server { m.M mandatory; };", "control flag"),
    ("Server { m.M required a; };", "="),
    ("Server { m.M required a=1234; };", "option value"),  # an unquoted number
    ("Server { m.M required -a=b; };", "option key"),
    ("Server m.M required; };", r"\{"),
    ("Server { m.M", "end of file"),
    ("{ };", "application name"),
    ("S { }; S { };", "multiple entries"),
    ('S { m.M required a="${x}"; };', "expand"),
])
def test_jaas_errors(text, msg):
    with pytest.raises(JaasError, match=msg):
        parse_jaas(text)


def test_words_may_contain_digits_dots_dashes():
    jaas = parse_jaas("Se-rv_er$1 { org.x.Y-2 required user_a.b-c=v1.0-x*; };")
    assert jaas["Se-rv_er$1"][0].options == {"user_a.b-c": "v1.0-x*"}


# --- factory ---------------------------------------------------------------------------------

@pytest.fixture
def jaas_file(tmp_path):
    p = tmp_path / "jaas.conf"
    p.write_text(KAZOO_JAAS + '\nOther { m.M required user_o="o"; };\n')
    return p


def test_load_jaas_file_path_forms(jaas_file, tmp_path):
    assert server_credentials(load_jaas_file(str(jaas_file))) == CREDS
    assert server_credentials(load_jaas_file(jaas_file.as_uri())) == CREDS
    assert server_credentials(load_jaas_file("=" + str(jaas_file))) == CREDS
    via_prop = load_jaas_file("${d}/jaas.conf", {"d": str(jaas_file.parent)})
    assert via_prop["Other"][0].options == {"user_o": "o"}
    with pytest.raises(JaasError, match="cannot read"):
        load_jaas_file(str(tmp_path / "nope.conf"))


def test_factory_disabled_without_property():
    f = SaslServerFactory({})
    assert not f.enabled and f.create() is None


def test_factory_disabled_for_empty_file_or_missing_section(tmp_path, jaas_file):
    empty = tmp_path / "empty.conf"
    empty.write_text("")  # what kazoo's harness writes when no JAAS auth is wanted
    assert not SaslServerFactory({"java.security.auth.login.config": str(empty)}).enabled
    f = SaslServerFactory({"java.security.auth.login.config": str(jaas_file),
                           "zookeeper.sasl.serverconfig": "Nope"})
    assert not f.enabled and f.create() is None


def test_factory_errors_on_unreadable_or_bad_file(tmp_path):
    with pytest.raises(SaslConfigError, match="No JAAS configuration section named 'Server'"):
        SaslServerFactory({"java.security.auth.login.config": str(tmp_path / "missing")})
    bad = tmp_path / "bad.conf"
    bad.write_text("Server {")
    with pytest.raises(SaslConfigError, match="was set"):
        SaslServerFactory({"java.security.auth.login.config": str(bad),
                           "zookeeper.sasl.serverconfig": "Server"})


def test_factory_end_to_end(jaas_file):
    f = SaslServerFactory({"java.security.auth.login.config": str(jaas_file)})
    assert f.enabled and f.section == "Server" and f.credentials == CREDS
    srv = f.create()
    kazoo_exchange(srv, client())
    assert f.auth_ids(srv.authorization_id) == [Id("sasl", "jaasuser")]
    assert f.failure_error == ERR_AUTH_FAILED and not f.keep_failed_clients
    assert f.create() is not srv


def test_factory_section_property_and_file_url(jaas_file):
    f = SaslServerFactory({"java.security.auth.login.config": jaas_file.as_uri(),
                           "zookeeper.sasl.serverconfig": "Other"})
    assert f.credentials == {"o": "o"}
    kazoo_exchange(f.create(), client("o", "o"))
    f = SaslServerFactory({"java.security.auth.login.config": "=" + str(jaas_file)})
    assert f.enabled


def test_factory_super_users(jaas_file):
    f = SaslServerFactory({"java.security.auth.login.config": str(jaas_file),
                           "zookeeper.superUser": "jaasuser",
                           "zookeeper.superUser.2": "bob",
                           "zookeeper.superUserX": "carol"})
    assert f.auth_ids("jaasuser") == [Id("sasl", "jaasuser"), Id("super", "")]
    assert f.is_super_user("bob")
    assert not f.is_super_user("carol") and not f.is_super_user("")
    assert f.auth_ids("super") == [Id("sasl", "super")]


def test_factory_properties(jaas_file):
    base = {"java.security.auth.login.config": str(jaas_file)}
    f = SaslServerFactory({**base, "zookeeper.allowSaslFailedClients": "true",
                           "zookeeper.SASLAuthenticationProvider.superPassword": "sp",
                           "zookeeper.letAnySaslUserDoX": "anyone"})
    assert f.keep_failed_clients and f.failure_error == ERR_AUTH_FAILED
    kazoo_exchange(f.create(), client("super", "sp"))
    assert f.acl_matches("jaasuser", "anyone")
    f = SaslServerFactory({**base, "zookeeper.sessionRequireClientSASLAuth": "true",
                           "zookeeper.allowSaslFailedClients": "true"})
    assert f.failure_error == ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH
    assert not f.keep_failed_clients
    f = SaslServerFactory({**base, "zookeeper.enforce.auth.enabled": "true",
                           "zookeeper.enforce.auth.schemes": "digest, sasl"})
    assert f.failure_error == ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH


# --- the JDK's DIGEST-MD5 as an oracle ---------------------------------------------------------

JAVA_PROBE = r"""
import javax.security.auth.callback.*;
import javax.security.sasl.*;
import java.io.*;
import java.util.*;

public class SaslProbe {
    static String hex(byte[] b) {
        if (b == null) return "NULL";
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x));
        return sb.length() == 0 ? "-" : sb.toString();
    }
    static byte[] unhex(String s) {
        if (s.equals("-")) return new byte[0];
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++)
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return out;
    }
    static String arg(String s) { return new String(unhex(s), java.nio.charset.StandardCharsets.UTF_8); }
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        if (args[0].equals("server")) {
            Map<String, String> creds = new HashMap<>();
            for (int i = 1; i + 1 < args.length; i += 2) creds.put(arg(args[i]), arg(args[i + 1]));
            CallbackHandler cbh = cbs -> {
                String user = null;
                for (Callback cb : cbs) {
                    if (cb instanceof NameCallback) {
                        NameCallback nc = (NameCallback) cb;
                        if (creds.containsKey(nc.getDefaultName())) {
                            nc.setName(nc.getDefaultName()); user = nc.getDefaultName();
                        }
                    } else if (cb instanceof PasswordCallback) {
                        if (user != null) ((PasswordCallback) cb).setPassword(creds.get(user).toCharArray());
                    } else if (cb instanceof RealmCallback) {
                        RealmCallback rc = (RealmCallback) cb; rc.setText(rc.getDefaultText());
                    } else if (cb instanceof AuthorizeCallback) {
                        AuthorizeCallback ac = (AuthorizeCallback) cb;
                        ac.setAuthorized(true);
                        if (!ac.getAuthenticationID().contains("@") && !ac.getAuthenticationID().contains("/"))
                            ac.setAuthorizedID(ac.getAuthenticationID());
                    }
                }
            };
            SaslServer s = null;
            String line;
            while ((line = in.readLine()) != null) {
                if (line.trim().equals("NEW")) {
                    s = Sasl.createSaslServer("DIGEST-MD5", "zookeeper", "zk-sasl-md5", null, cbh);
                    System.out.println("READY");
                    System.out.flush();
                    continue;
                }
                try {
                    byte[] r = s.evaluateResponse(unhex(line.trim()));
                    System.out.println("OK " + hex(r) + " " + s.isComplete()
                        + (s.isComplete() ? " " + hex(s.getAuthorizationID().getBytes("UTF-8")) : ""));
                } catch (SaslException e) {
                    System.out.println("SASLERR");
                } catch (RuntimeException e) {
                    System.out.println("RUNTIME");
                }
                System.out.flush();
            }
        } else {
            String user = arg(args[1]), pass = arg(args[2]);
            CallbackHandler cbh = cbs -> {
                for (Callback cb : cbs) {
                    if (cb instanceof NameCallback) ((NameCallback) cb).setName(user);
                    else if (cb instanceof PasswordCallback) ((PasswordCallback) cb).setPassword(pass.toCharArray());
                    else if (cb instanceof RealmCallback) {
                        RealmCallback rc = (RealmCallback) cb; rc.setText(rc.getDefaultText());
                    }
                }
            };
            SaslClient c = Sasl.createSaslClient(new String[]{"DIGEST-MD5"}, null, "zookeeper",
                                                 "zk-sasl-md5", null, cbh);
            System.out.println("INIT " + (c.hasInitialResponse() ? hex(c.evaluateChallenge(new byte[0])) : "-"));
            System.out.flush();
            String line;
            while ((line = in.readLine()) != null) {
                try {
                    byte[] r = c.evaluateChallenge(unhex(line.trim()));
                    System.out.println("OK " + hex(r) + " " + c.isComplete());
                } catch (SaslException e) {
                    System.out.println("SASLERR");
                }
                System.out.flush();
            }
        }
    }
}
"""


class JavaProbe:
    def __init__(self, classdir, *args: str) -> None:
        hexargs = [a.encode().hex() or "-" for a in args[1:]]
        self.proc = subprocess.Popen(["java", "-cp", str(classdir), "SaslProbe", args[0],
                                      *hexargs], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def send(self, token: bytes) -> list[str]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((token.hex() or "-") + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def command(self, line: str) -> list[str]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def first_line(self) -> list[str]:
        assert self.proc.stdout
        return self.proc.stdout.readline().split()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def jdk(tmp_path_factory):
    if not (shutil.which("java") and shutil.which("javac")):
        pytest.skip("no JDK (java + javac) for the DIGEST-MD5 oracle")
    d = tmp_path_factory.mktemp("saslprobe")
    (d / "SaslProbe.java").write_text(JAVA_PROBE)
    res = subprocess.run(["javac", "SaslProbe.java"], cwd=d, capture_output=True, timeout=120,
                         check=False)
    if res.returncode != 0:
        pytest.skip(f"javac failed: {res.stderr.decode(errors='replace')[:200]}")
    return d


ORACLE_CREDS = {"jaasuser": "jaas_password", "super": "super_secret", "josé": "pässword",
                "名前": "пароль"}


def _mutations(good: bytes) -> list[bytes]:
    d = directives(good)
    return [good, b"", b"garbage", b'username="x', good + b',username="x"', good + b",,, ",
            good.replace(b"qop=auth", b"qop=auth-int"), good.replace(b"qop=auth,", b""),
            good + b",charset=utf-8", good + b",charset=UTF-8", good + b",maxbuf=1234",
            good + b",maxbuf=12x", good + b",nonce-count=1", good + b",nonce-count=2",
            good + b",nonce-count=q", good + b',authzid="super"',
            good.replace(b"digest-uri=", b"Digest-URI="),
            good.replace(d["digest-uri"], d["digest-uri"].upper()),
            good.replace(d["digest-uri"], b"zookeeper/other"),
            good.replace(b'realm="zk-sasl-md5"', b'realm="zk"'),
            good.replace(b'realm="zk-sasl-md5",', b""),
            good.replace(d["response"], d["response"].upper()),
            good.replace(d["cnonce"], d["cnonce"] + b"x"),
            good.replace(b",", b" , "), good.replace(b'"', b""),
            good.replace(b'username="', b'username= "'),
            good.replace(b'username="', b'username ="'),
            good.replace(b'"zk-sasl-md5"', b'"zk-sasl-md5"x'),
            b"x" * 5000]


def _mine(creds, nonce: bytes, token: bytes) -> list[str]:
    srv = DigestMD5Server(creds, nonce_factory=lambda: nonce)
    srv.start()
    try:
        done, out = srv.step(token)
    except SaslError as e:
        return ["SASLERR"] if e.reply else ["RUNTIME"]
    res = ["OK", out.hex() if out else "-", str(done).lower()]
    if done:
        res.append(srv.authorization_id.encode().hex())
    return res


@pytest.fixture(scope="module")
def jdk_server(jdk):
    probe = JavaProbe(jdk, "server", *[x for kv in ORACLE_CREDS.items() for x in kv])
    yield probe
    probe.close()


def _jdk_challenge(probe: JavaProbe) -> tuple[bytes, bytes]:
    assert probe.command("NEW") == ["READY"]
    line = probe.send(b"")
    assert line[0] == "OK" and line[2] == "false"
    challenge = bytes.fromhex(line[1])
    m = re.search(rb'nonce="([^"]*)"', challenge)
    assert m
    return challenge, m.group(1)


def test_jdk_server_challenge_matches(jdk_server):
    challenge, nonce = _jdk_challenge(jdk_server)
    assert DigestMD5Server(ORACLE_CREDS, nonce_factory=lambda: nonce).start() == challenge
    assert jdk_server.send(b"") == ["SASLERR"]  # second token empty: missing username


@pytest.mark.parametrize("user,password", [("jaasuser", "jaas_password"),
                                           ("jaasuser", "wrong"), ("nobody", "x"),
                                           ("super", "super_secret"), ("名前", "пароль"),
                                           ("josé", "pässword")])
def test_jdk_server_agrees(jdk_server, user, password):
    """Same verdict, rspauth and authorization id for puresasl's response and its mutants."""
    challenge, nonce = _jdk_challenge(jdk_server)
    good = response_for(challenge, user, password)
    for token in _mutations(good):
        challenge, fresh = _jdk_challenge(jdk_server)
        token = token.replace(nonce, fresh)
        assert _mine(ORACLE_CREDS, fresh, token) == jdk_server.send(token), token
        nonce = fresh


def test_jdk_server_initial_response_ignored(jdk_server):
    assert jdk_server.command("NEW") == ["READY"]
    line = jdk_server.send(b"username=x")
    assert line[0] == "OK" and line[2] == "false"
    challenge = bytes.fromhex(line[1])
    nonce = re.search(rb'nonce="([^"]*)"', challenge).group(1)
    srv = DigestMD5Server(ORACLE_CREDS, nonce_factory=lambda: nonce)
    assert srv.step(b"username=x") == (False, challenge)


def test_jdk_client_against_our_server(jdk):
    for user, password, ok in [("jaasuser", "jaas_password", True), ("josé", "pässword", True),
                               ("名前", "пароль", True), ("jaasuser", "nope", False)]:
        java = JavaProbe(jdk, "client", user, password)
        try:
            assert java.first_line() == ["INIT", "-"]  # no initial response: empty token
            srv = DigestMD5Server(ORACLE_CREDS)
            _, challenge = srv.step(b"")
            line = java.send(challenge)
            assert line[0] == "OK" and line[2] == "false"
            if not ok:
                with pytest.raises(SaslError):
                    srv.step(bytes.fromhex(line[1]))
                continue
            done, rspauth = srv.step(bytes.fromhex(line[1]))
            assert done and srv.authorization_id == user
            assert java.send(rspauth)[::2] == ["OK", "true"]
        finally:
            java.close()

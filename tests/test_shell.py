"""`zookapter shell` against Apache's zkCli (ZooKeeperMain 3.8, run from the Debian jars).

Differential: the same command script is fed on stdin to the real zkCli and to `zookapter
shell`, one after the other against the same server (zookapter's, and Apache's), each under
its own root znode (`{R}` in the scripts). Their stdout, stderr and exit status must match
after normalising what differs between two runs anyway: the root name, zxids, times and
session ids in stats, and the Java client's logging. Watch events are compared as their own
sequence, and connection-state events (`type:None`) are left out, because zkCli prints events
from its event thread, racing its main thread under load.

Also: one-shot mode (`shell -server h:p cmd args`), the interactive mode on a pseudo-terminal
(prompt, tab completion of commands and znode paths), and the pure helpers.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from zookapter.client import ZooKeeperClient
from zookapter.ops.shell import Shell, ShellOptions, java_decode, parse_options, usage_lines
from zookapter.ops.shell_commands import client_config
from zookapter.ops.shell_complete import ShellCompleter
from zookapter.ops.shell_format import java_date, path_error
from zookapter.ops.shell_options import Grammar, Opt, ParseError, parse_words, split_line
from zookapter.ops.shell_quota import format_stats, parse_stats
from zookapter.testing import ZookapterServer

from oracle import _classpath, _java_binary, apache_zookeeper_available

SRC = Path(__file__).resolve().parent.parent / "src"
RUN_TIMEOUT_S = 90.0
JAVA_MAIN = "org.apache.zookeeper.ZooKeeperMain"
JVM_FLAGS = ["-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData",
             "-Xshare:auto", "-Dorg.slf4j.simpleLogger.defaultLogLevel=off"]

needs_zkcli = pytest.mark.skipif(not apache_zookeeper_available(),
                                 reason="java or the Apache ZooKeeper jars are missing")

# -- scripts --------------------------------------------------------------------------------

BASICS = """\
create {R} hello
create {R} again
get {R}
get -s {R}
ls -s {R}
stat {R}/nope
set {R} v2
set -s {R} v3
set -v 0 {R} v4
getAcl {R}
create -e {R}/e
create -s {R}/s data
create -s {R}/s more
create "{R}/sp ace" "hello world"
get "{R}/sp ace"
create {R}/q1 'it is'
get {R}/q1
ls {R}
ls -R {R}
getAllChildrenNumber {R}
getEphemerals {R}
delete {R}
delete {R}/q1 3
delete -v 7 {R}/s0000000001
deleteall {R} -b 2
ls {R}
whoami
sync /
redo 2
redo 99
redo 28
foo bar
history
"""

# zkCli prints events from its event thread: the requests between `set {R} e` and
# `printwatches on` give that thread time to see the event while printing is still off.
WATCHES = """\
create {R} a
get -w {R}
set {R} b
ls -w {R}
create {R}/c
stat -w {R}
delete {R}/c
set {R} c
addWatch {R}
create {R}/d
set {R}/d x
addWatch -m PERSISTENT {R}/d
set {R}/d y
removewatches {R}/d
removewatches {R}/d
printwatches
printwatches off
printwatches
set {R} e
sync {R}
get {R}
ls {R}
printwatches on
stat -w {R}/later
create {R}/later
ls -R -w {R}
get {R} watch
stat {R} w
removewatches {R} -d
removewatches {R}/x -l
deleteall {R}
config -s
config -c
"""

ERRORS = """\
create {R} x
create -t 1000 {R}/ttl
create -c {R}/cont
create -c -e {R}/x
create -t abc {R}/x
create -t 0 {R}/x
create -e -t 5 {R}/x
create -s {R}/
ls
get
ls -x /
ls -? {R}
set {R}/nope
set -v
set -v -s {R} d
set {R} -1
get foo
get /a//b
create /a/.
getAllChildrenNumber
sync
addauth
version x
addWatch -m foo {R}
addWatch
removewatches
reconfig
reconfig -add 1=x -members 2=y
reconfig -remove 3
get "{R}
deleteall {R}
"""

QUOTAS_ACLS = """\
create {R}
create {R}/q
setquota {R}/q
setquota -n 1 -b 2 {R}/q
setquota -n 0 {R}/q
setquota -n x {R}/q
setquota -n 3 {R}/nope
setquota -n 5 {R}/q
listquota {R}/q
setquota -B 100 {R}/q
listquota {R}/q
create {R}/q/a
create {R}/q/a/b
setquota -n 1 {R}/q/a
setquota -n 1 {R}
delquota -n {R}/q
listquota {R}/q
delquota {R}/q
listquota {R}/q
ls /zookeeper/quota{R}
delquota {R}/q
setquota -n 1 /zookeeper/quota/x
create {R}/acl x digest:u:HASH:r,world:anyone:cdrwa
getAcl -s {R}/acl
setAcl {R}/acl world:anyone:r
set {R}/acl y
setAcl {R}/acl bogus
setAcl {R}/acl x:y:rwq
create {R}/bad x bogus
addauth digest u:p
whoami
create {R}/acl2 x auth::cdrwa
getAcl {R}/acl2
setAcl -s -v 0 {R}/acl2 auth::cdrwa
setAcl -v 7 {R}/acl2 world:anyone:cdrwa
setAcl -R {R} world:anyone:cdrwa
getAcl {R}/acl
deleteall {R}
close
ls /
connect
ls /zookeeper
"""

SCRIPTS = {"basics": BASICS, "watches": WATCHES, "errors": ERRORS,
           "quotas_acls": QUOTAS_ACLS}


# -- running both shells --------------------------------------------------------------------

def zkcli_command(hosts: str) -> list[str]:
    java = _java_binary()
    assert java is not None
    return [java, *JVM_FLAGS, "-cp", _classpath(), JAVA_MAIN, "-server", hosts]


def zookapter_command(hosts: str) -> list[str]:
    return [sys.executable, "-m", "zookapter.cli", "shell", "-server", hosts]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env.pop("ZOOKAPTER_SHELL_LOG_LEVEL", None)
    return env


def run(argv: list[str], stdin: str = "") -> tuple[str, str, int]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, env=_env())
    return proc.stdout, proc.stderr, proc.returncode


_EVENT = re.compile(r"\nWATCHER::\n\n(WatchedEvent [^\n]*)\n")
_JAVA_NOISE = re.compile(r"^(SLF4J: .*|\[[^\]]*\] (INFO|WARN|ERROR|DEBUG) .*|\s+at .*)\n",
                         re.M)


def normalise(text: str, root: str) -> str:
    text = _JAVA_NOISE.sub("", text.replace(root, "{R}"))
    text = re.sub(r"^([cm]time = ).*$", r"\1<time>", text, flags=re.M)
    text = re.sub(r"^([cmp]Zxid = 0x)[0-9a-f]+$", r"\1<zxid>", text, flags=re.M)
    return re.sub(r"^(ephemeralOwner = 0x)(?!0$)[0-9a-f]+$", r"\1<session>", text,
                  flags=re.M)


def split_events(stdout: str) -> tuple[str, list[str]]:
    """(stdout without watch events, the events other than connection-state ones)."""
    events = [e for e in _EVENT.findall(stdout) if " type:None " not in e]
    return _EVENT.sub("", stdout), events


def compare(hosts: str, script: str) -> None:
    tag = uuid.uuid4().hex[:8]
    results = []
    for name, argv in (("zkcli", zkcli_command(hosts)), ("zookapter", zookapter_command(hosts))):
        root = f"/shell-{name}-{tag}"
        out, err, code = run(argv, script.replace("{R}", root))
        text, events = split_events(normalise(out, root))
        results.append((text, events, normalise(err, root), code))
    (j_out, j_events, j_err, j_code), (p_out, p_events, p_err, p_code) = results
    assert "Welcome to ZooKeeper!" in j_out, j_err  # zkCli itself ran
    assert p_out == j_out
    assert p_events == j_events
    assert p_err == j_err
    assert p_code == j_code


@pytest.fixture(scope="module")
def zookapter_server():
    with ZookapterServer() as server:
        yield server


@pytest.fixture(params=["zookapter", "apache"])
def server_hosts(request) -> str:
    if request.param == "zookapter":
        return request.getfixturevalue("zookapter_server").hosts
    return request.getfixturevalue("apache_zk").hosts


@needs_zkcli
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_scripts_match_zkcli(server_hosts, script):
    compare(server_hosts, SCRIPTS[script])


ONE_SHOT = [
    ["create", "{R}", "one shot"],
    ["get", "-s", "{R}"],
    ["ls", "{R}"],
    ["get", "{R}/nope"],
    ["foo"],
    ["ls"],
    ["create", "-t", "x", "{R}/y"],
]


@needs_zkcli
def test_one_shot_commands_match_zkcli(zookapter_server):
    tag = uuid.uuid4().hex[:8]
    for words in ONE_SHOT:
        seen = []
        for name, base in (("zkcli", zkcli_command), ("zookapter", zookapter_command)):
            root = f"/one-{name}-{tag}"
            out, err, code = run(base(zookapter_server.hosts)
                                 + [w.replace("{R}", root) for w in words])
            seen.append((split_events(normalise(out, root)), normalise(err, root), code))
        assert seen[1] == seen[0], words


def test_prints_connection_event_and_welcome(zookapter_server):
    out, err, code = run(zookapter_command(zookapter_server.hosts), "ls /zookeeper\n")
    assert code == 0, err
    assert out == (f"Connecting to {zookapter_server.hosts}\nWelcome to ZooKeeper!\n"
                   "JLine support is disabled\n\nWATCHER::\n\nWatchedEvent "
                   "state:SyncConnected type:None path:null\n[config, quota]\n")


def test_chroot_and_wait_for_connection(zookapter_server):
    hosts = zookapter_server.hosts
    base = f"/chroot-{uuid.uuid4().hex[:8]}"
    with ZooKeeperClient(hosts) as zk:
        zk.create(base, b"")
    out, err, code = run(zookapter_command(f"{hosts}{base}") + ["-waitforconnection"],
                         "create /a 1\nls /\nget /a\n")
    assert (err, code) == ("Created /a\n", 0)
    assert out.endswith("[a]\n1\n")
    with ZooKeeperClient(hosts) as zk:
        assert zk.get(f"{base}/a")[0] == b"1"


def test_unreachable_server_fails_cleanly():
    argv = [sys.executable, "-m", "zookapter.cli", "shell", "-server", "127.0.0.1:1",
            "-timeout", "1000", "-waitforconnection", "ls", "/"]
    out, err, code = run(argv)
    assert code == 1
    assert err == "KeeperErrorCode = ConnectionLoss\n"


# -- interactive, on a pseudo-terminal ------------------------------------------------------

class Terminal:
    """`zookapter shell` on a pty, read until patterns appear."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execve(argv[0], argv, env)
        self.seen = b""

    def expect(self, pattern: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, _plain(self.seen)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in {_plain(self.seen)!r}")
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:  # the child is gone
                    break

    def send(self, text: bytes) -> None:
        os.write(self.fd, text)

    def wait(self, timeout: float = 20.0) -> int:
        """The exit status, once the shell has exited by itself."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.seen += os.read(self.fd, 65536)
            except OSError:
                time.sleep(0.05)
        raise AssertionError("shell did not exit")

    def close(self) -> None:
        """Kill the shell if it is still running; release the pty."""
        if self.pid:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            self.pid = 0
        os.close(self.fd)


def _plain(data: bytes) -> bytes:
    """Terminal output without escape sequences."""
    return re.sub(rb"\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>])", b"", data)


def test_interactive_prompt_and_completion(zookapter_server, tmp_path):
    base = f"/complete-{uuid.uuid4().hex[:8]}"
    with ZooKeeperClient(zookapter_server.hosts) as zk:
        zk.create(base, b"")
        zk.create(f"{base}/alpha-node", b"hello")
    history = tmp_path / "history"
    env = {**_env(), "TERM": "xterm", "ZOOKAPTER_SHELL_HISTORY": str(history),
           "PROMPT_TOOLKIT_NO_CPR": "1"}
    term = Terminal(zookapter_command(zookapter_server.hosts), env)
    try:
        term.expect(rb"JLine support is enabled")
        term.expect(rb"\[zk: [^\]]*\(CONNECTED\) 0\]")
        term.send(b"ge\t")  # command names: completes the common part, lists the rest
        term.expect(rb"getEphemerals")
        term.send(f" {base}/al\t".encode())  # a znode path
        term.expect(rb"node")  # redrawn in pieces: "al", then "pha-node"
        term.send(b"\r")
        term.expect(rb"hello\r?\n")
        term.expect(rb"\(CONNECTED\) 1\]")
        term.send(f"stat -w {base}/alpha-node\r".encode())
        term.expect(rb"\(CONNECTED\) 2\]")
        with ZooKeeperClient(zookapter_server.hosts) as zk:  # an event while at the prompt
            zk.set(f"{base}/alpha-node", b"changed")
        term.expect(rb"WatchedEvent state:SyncConnected type:NodeDataChanged path:"
                    + f"{base}/alpha-node".encode())
        term.send(b"quit\r")
        assert term.wait() == 0
    finally:
        term.close()
    assert f"get {base}/alpha-node" in history.read_text()


def test_completer_offers_children_and_commands(zookapter_server):
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document
    base = f"/completer-{uuid.uuid4().hex[:8]}"
    with ZooKeeperClient(zookapter_server.hosts) as zk:
        for name in ("b", "a1", "a2"):
            zk.create(f"{base}/{name}", b"", makepath=True)
    shell = Shell(ShellOptions(server=zookapter_server.hosts))
    try:
        shell.connect(zookapter_server.hosts)
        assert shell.session.wait_connected(20)
        completer = ShellCompleter(shell.session, ["get", "getAcl", "ls"])

        def offers(text: str) -> list[tuple[str, int]]:
            doc = Document(text, len(text))
            return [(c.text, c.start_position)
                    for c in completer.get_completions(doc, CompleteEvent(True))]
        assert offers(f"ls {base}/a") == [("a1", -1), ("a2", -1)]
        assert offers(f"ls {base}/") == [("a1", 0), ("a2", 0), ("b", 0)]
        assert ("zookeeper", -3) in offers("ls /zoo")
        assert offers("ge") == [("get", -2), ("getAcl", -2)]
        assert offers("ls ge") == []
        assert offers("ls /no/such/") == []
    finally:
        shell.session.shutdown()


# -- pure helpers ---------------------------------------------------------------------------

def test_split_line_like_zkcli():
    assert split_line('create "/a b" "c d"  ') == ["create", "/a b", "c d"]
    assert split_line("create /q 'it is'") == ["create", "/q", "it is"]
    assert split_line('set /x a"b') == ["set", "/x", 'a"b']


def test_commons_cli_rules():
    g = Grammar((Opt("s"), Opt("v", True), Opt("R")))
    assert parse_words(g, ["set", "-sv3", "/x", "d"]).values == {"s": None, "v": "3"}
    assert parse_words(g, ["set", "-v", "-1", "/x"]).values == {"v": "-1"}
    assert parse_words(g, ["ls", "/x", "-R"]).args == ["ls", "/x"]
    for words, message in ((["set", "/x", "-1"], "Unrecognized option: -1"),
                           (["set", "-v"], "Missing argument for option: v")):
        with pytest.raises(ParseError, match=message):
            parse_words(g, words)


def test_java_formats():
    assert path_error("a") == "Path must start with / character"
    assert path_error("/a/../b") == 'Invalid path string "/a/../b" caused by relative paths ' \
                                    "not allowed @4"
    assert path_error("/a/", sequential=True) is None
    assert java_decode("0x10") == 16 and java_decode("010") == 8 and java_decode("x") is None
    stats = parse_stats(b"count=5,bytes=-1=;byteHardLimit=100;countHardLimit=-1")
    assert stats == {"count": 5, "bytes": -1, "byteHardLimit": 100, "countHardLimit": -1}
    assert format_stats(stats) == "count=5,bytes=-1=;byteHardLimit=100;countHardLimit=-1"
    assert client_config("server.2=b:1:2;0.0.0.0:2182\nserver.1=a:1:2;2181\nversion=100") \
        == "100 0.0.0.0:2181,0.0.0.0:2182"
    if time.localtime(0).tm_zone == "UTC":
        assert java_date(0) == "Thu Jan 01 00:00:00 UTC 1970"


def test_command_line_options():
    opts = parse_options(["-server", "h:1/x", "-timeout", "5000", "-r", "-bogus", "get", "-s",
                          "/a"])
    assert (opts.server, opts.timeout, opts.read_only) == ("h:1/x", "5000", True)
    assert opts.command == ["get", "-s", "/a"]
    assert usage_lines()[1].startswith("\taddWatch [-m mode] path")

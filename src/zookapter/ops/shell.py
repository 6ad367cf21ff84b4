"""`zookapter shell`: a ZooKeeper shell that behaves like Apache's zkCli.sh (ZooKeeperMain).

    zookapter shell -server 127.0.0.1:2181/app            # interactive
    zookapter shell -server 127.0.0.1:2181 get -s /a      # one command, then exit
    printf 'ls /\\nget /a\\n' | zookapter shell -server h:p  # commands from stdin

Same options (`-server host:port[,host:port][/chroot]`, `-timeout ms`, `-r`,
`-waitforconnection`; `-client-configuration` is accepted and ignored), same commands,
outputs and messages, same exit status (that of the last command: 1 for a failed one, 127 for
an unknown command). On a terminal, prompt-toolkit gives line editing, history (in
~/.zookapter_shell_history, or $ZOOKAPTER_SHELL_HISTORY) and tab completion of command names
and znode paths; otherwise lines are read plainly from stdin, without a prompt, as zkCli does
without JLine.

How a line runs (ZooKeeperMain.processZKCmd): it is split into words (shell_options.py); the
shell's own commands (history, redo, printwatches, connect, quit) are handled here, then —
unless the session is closed, which prints `Not connected` — the ZooKeeper command's function
(shell_commands.py, shell_quota.py) parses its options and runs. Differences from zkCli:
a one-shot command closes its session before exiting (zkCli leaves it to expire), and bad
numbers in `delete -v`/`redo` are reported instead of killing the shell.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass, field

from .shell_commands import (
    CliError,
    Command,
    Context,
    cmd_add_watch,
    cmd_addauth,
    cmd_all_children,
    cmd_close,
    cmd_config,
    cmd_create,
    cmd_delete,
    cmd_deleteall,
    cmd_get,
    cmd_get_acl,
    cmd_get_ephemerals,
    cmd_ls,
    cmd_reconfig,
    cmd_remove_watches,
    cmd_set,
    cmd_set_acl,
    cmd_stat,
    cmd_sync,
    cmd_version,
    cmd_whoami,
)
from .shell_options import Grammar, Opt, split_line
from .shell_quota import cmd_delquota, cmd_listquota, cmd_setquota
from .shell_session import Console, ShellSession

DEFAULT_SERVER = "localhost:2181"
DEFAULT_TIMEOUT_MS = 30000
HISTORY_SHOWN = 10
USAGE_HEAD = "ZooKeeper -server host:port -client-configuration properties-file cmd args"

_QUOTA_OPTS = (("n", "num soft quota"), ("b", "bytes soft quota"), ("N", "num hard quota"),
               ("B", "bytes hard quota"))
_RECONFIG_USAGE = ("[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3"
                   "[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId"
                   "[,...]*]")


def _flags(*names: str) -> tuple[Opt, ...]:
    return tuple(Opt(n) for n in names)


def _command_table() -> dict[str, Command]:
    """zkCli's CliCommands: name, usage after the name, options, implementation."""
    table = [
        Command("close", "", Grammar(), cmd_close),
        Command("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]",
                Grammar(_flags("e", "s", "c") + (Opt("t", True),)), cmd_create),
        Command("delete", "[-v version] path", Grammar((Opt("v", True),)), cmd_delete),
        Command("deleteall", "path [-b batch size]", Grammar((Opt("b", True),)),
                cmd_deleteall),
        Command("set", "[-s] [-v version] path data", Grammar((Opt("s"), Opt("v", True))),
                cmd_set),
        Command("get", "[-s] [-w] path", Grammar(_flags("s", "w")), cmd_get),
        Command("ls", "[-s] [-w] [-R] path", Grammar(_flags("?", "s", "w", "R")), cmd_ls),
        Command("getAcl", "[-s] path", Grammar(_flags("s")), cmd_get_acl),
        Command("setAcl", "[-s] [-v version] [-R] path acl",
                Grammar((Opt("s"), Opt("v", True), Opt("R"))), cmd_set_acl),
        Command("stat", "[-w] path", Grammar(_flags("w")), cmd_stat),
        Command("sync", "path", Grammar(), cmd_sync),
        Command("setquota", "-n|-b|-N|-B val path",
                Grammar(tuple(Opt(n, True, d) for n, d in _QUOTA_OPTS),
                        tuple(n for n, _ in _QUOTA_OPTS), True), cmd_setquota),
        Command("listquota", "path", Grammar(), cmd_listquota),
        Command("delquota", "[-n|-b|-N|-B] path",
                Grammar(tuple(Opt(n, False, d) for n, d in _QUOTA_OPTS),
                        tuple(n for n, _ in _QUOTA_OPTS)), cmd_delquota),
        Command("addauth", "scheme auth", Grammar(), cmd_addauth),
        Command("reconfig", _RECONFIG_USAGE,
                Grammar((Opt("s"), Opt("v", True), Opt("file", True), Opt("members", True),
                         Opt("add", True), Opt("remove", True))), cmd_reconfig),
        Command("config", "[-c] [-w] [-s]", Grammar(_flags("s", "w", "c")), cmd_config),
        Command("removewatches", "path [-c|-d|-a] [-l]", Grammar(_flags("c", "d", "a", "l")),
                cmd_remove_watches),
        Command("getEphemerals", "path", Grammar(), cmd_get_ephemerals),
        Command("getAllChildrenNumber", "path", Grammar(), cmd_all_children),
        Command("version", "", Grammar(), cmd_version),
        Command("addWatch", "[-m mode] path # optional mode is one of [PERSISTENT, "
                "PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
                Grammar((Opt("m", True),)), cmd_add_watch),
        Command("whoami", "", Grammar(), cmd_whoami),
    ]
    return {c.name: c for c in table}


COMMANDS = _command_table()
SHELL_COMMANDS = {"connect": "host:port", "history": "", "redo": "cmdno",
                  "printwatches": "on|off", "quit": ""}


def command_names() -> list[str]:
    """Every command, sorted as zkCli lists them (by code point: `addWatch` < `addauth`)."""
    return sorted([*COMMANDS, *SHELL_COMMANDS])


def usage_lines() -> list[str]:
    lines = [USAGE_HEAD]
    for name in command_names():
        opts = SHELL_COMMANDS[name] if name in SHELL_COMMANDS else COMMANDS[name].usage
        lines.append(f"\t{name} {opts}")
    return lines


# -- command line ---------------------------------------------------------------------------

@dataclass
class ShellOptions:
    """ZooKeeperMain.MyCommandOptions: flags, then an optional command and its words."""
    server: str = DEFAULT_SERVER
    timeout: str = str(DEFAULT_TIMEOUT_MS)
    read_only: bool = False
    wait_for_connection: bool = False
    client_configuration: str | None = None
    command: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_VALUED = {"-server": "server", "-timeout": "timeout",
           "-client-configuration": "client_configuration"}


def parse_options(argv: list[str]) -> ShellOptions:
    """Flags until the first word not starting with `-`, which starts the command; unknown
    flags are skipped, as zkCli does."""
    opts = ShellOptions()
    it = iter(argv)
    for word in it:
        if word in _VALUED:
            value = next(it, None)
            if value is None:
                opts.errors.append(f"Error: no argument found for option {word}")
                break
            setattr(opts, _VALUED[word], value)
        elif word == "-r":
            opts.read_only = True
        elif word == "-waitforconnection":
            opts.wait_for_connection = True
        elif not word.startswith("-"):
            opts.command = [word, *it]
            break
    return opts


def java_decode(text: str) -> int | None:
    """Integer.decode: decimal, 0x/0X/# hex, leading-0 octal, optional sign."""
    m = re.fullmatch(r"([+-]?)(0[xX]|#|0(?=[0-7]))?([0-9a-fA-F]+)", text)
    if m is None:
        return None
    base = {None: 10, "#": 16}.get(m.group(2), 8 if m.group(2) == "0" else 16)
    try:
        value = int(m.group(3), base)
    except ValueError:
        return None
    value = -value if m.group(1) == "-" else value
    return value if -(1 << 31) <= value < (1 << 31) else None


# -- the shell ------------------------------------------------------------------------------

class _Quit(Exception):
    """`quit`: leave with the status of the previous command."""


class Shell:
    def __init__(self, options: ShellOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console()
        self.print_watches = True
        self.session = ShellSession(self.console, lambda: self.print_watches)
        self.ctx = Context(self.session, self.console)
        self.history: dict[int, str] = {}
        self.count = 0
        self.exit_code = 0
        self.host = ""

    # -- connection -----------------------------------------------------------------------

    def connect(self, host: str) -> None:
        timeout_ms = int(self.options.timeout)
        self.host = host
        try:
            self.session.connect(host, timeout_ms, self.options.read_only)
        except ValueError as e:
            raise CliError(str(e)) from None
        if self.options.wait_for_connection and not self.session.wait_connected(
                timeout_ms / 1000.0):
            self.session.close()
            raise CliError("KeeperErrorCode = ConnectionLoss")

    def prompt(self) -> str:
        return f"[zk: {self.host}({self.session.state_name}) {self.count}] "

    # -- lines ----------------------------------------------------------------------------

    def execute_line(self, line: str) -> None:
        """ZooKeeperMain.executeLine: numbered in the history, even when it fails."""
        if line == "":
            return
        self.history[self.count] = line
        self.process(split_line(line))
        self.count += 1

    def process(self, words: list[str]) -> None:
        """Run one command; its failure is printed and sets the exit status."""
        try:
            self._dispatch(words)
            self.exit_code = 0
        except CliError as e:
            self.exit_code = e.exit_code
            self.console.err(str(e))
        finally:
            self.session.settle()

    def _dispatch(self, words: list[str]) -> None:
        if not words:
            self._usage()
            raise CliError("No command entered")
        cmd = words[0]
        if cmd not in COMMANDS and cmd not in SHELL_COMMANDS:
            self._usage()
            raise CliError(f"Command not found: Command not found {cmd}", 127)
        if cmd == "quit":
            self.session.close()
            raise _Quit()
        self._shell_command(cmd, words)
        if not self.session.alive:
            self.console.out("Not connected")
            return
        command = COMMANDS.get(cmd)
        if command is not None:
            command.run(self.ctx, words, command)

    def _shell_command(self, cmd: str, words: list[str]) -> None:
        """The commands zkCli handles itself; like zkCli, they then fall through to the
        `Not connected` check."""
        if cmd == "redo" and len(words) >= 2:
            self._redo(words[1])
        elif cmd == "history":
            for i in range(max(self.count - HISTORY_SHOWN, 0), self.count + 1):
                self.console.out(f"{i} - {self.history.get(i, 'null')}")
        elif cmd == "printwatches":
            if len(words) == 1:
                self.console.out(f"printwatches is {'on' if self.print_watches else 'off'}")
            else:
                self.print_watches = words[1] == "on"
        elif cmd == "connect":
            self.connect(words[1] if len(words) >= 2 else self.host)

    def _redo(self, arg: str) -> None:
        index = java_decode(arg)
        if index is None:
            raise CliError(f'java.lang.NumberFormatException: For input string: "{arg}"')
        if index >= self.count or index < 0:
            raise CliError("Command index out of range")
        line = self.history.get(index, "")
        words = split_line(line)
        if words and words[0] == "redo":
            raise CliError("No redoing redos")
        self.history[self.count] = line
        self.process(words)

    def _usage(self) -> None:
        for line in usage_lines():
            self.console.err(line)

    # -- modes ----------------------------------------------------------------------------

    def run_command(self, words: list[str]) -> int:
        """One-shot mode: the command from the command line (not in the history)."""
        try:
            self.process(words)
        except _Quit:
            pass
        return self.exit_code

    def run_lines(self, lines: object) -> int:
        """Commands from an iterable of lines (stdin without a terminal)."""
        try:
            for line in lines:  # type: ignore[attr-defined]
                self.execute_line(line.rstrip("\r\n"))
        except _Quit:
            pass
        return self.exit_code

    def run_interactive(self) -> int:
        from prompt_toolkit.patch_stdout import patch_stdout

        from .shell_complete import make_prompt_session
        prompt = make_prompt_session(self)
        with patch_stdout(raw=True):
            while True:
                try:
                    line = prompt.prompt(self.prompt)
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    break
                try:
                    self.execute_line(line)
                except KeyboardInterrupt:
                    self.console.err("Interrupted")
                except _Quit:
                    break
        return self.exit_code


def main(argv: list[str] | None = None) -> int:
    """`zookapter shell [-server ...] [-timeout ms] [-r] [-waitforconnection] [cmd args...]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except BrokenPipeError:  # `zookapter shell ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "-help", "--help"):
        print("usage: zookapter shell [-server host:port[,host:port...][/chroot]] "
              "[-timeout ms] [-r] [-waitforconnection] [cmd args...]")
        print("\n".join(usage_lines()[1:]))
        return 0
    _quiet_logging()
    options = parse_options(argv)
    console = Console()
    for problem in options.errors:
        console.err(problem)
    if options.client_configuration is not None:
        console.err("note: -client-configuration is ignored by zookapter shell")
    if not re.fullmatch(r"[+-]?\d+", options.timeout):
        console.err(f'java.lang.NumberFormatException: For input string: "{options.timeout}"')
        return 1
    console.out(f"Connecting to {options.server}")
    shell = Shell(options, console)
    try:
        return _run(shell, options)
    finally:
        shell.session.shutdown()


def _run(shell: Shell, options: ShellOptions) -> int:
    try:
        shell.connect(options.server)
    except CliError as e:
        shell.console.err(str(e))
        return 1
    if options.command:
        return shell.run_command(options.command)
    shell.console.out("Welcome to ZooKeeper!")
    if sys.stdin.isatty() and sys.stdout.isatty():
        shell.console.out("JLine support is enabled")
        return shell.run_interactive()
    shell.console.out("JLine support is disabled")
    try:
        return shell.run_lines(sys.stdin)
    except KeyboardInterrupt:
        return 130


def _quiet_logging() -> None:
    """The client's log lines (reconnects and such) would mix with command output; zkCli
    sends its own to a log file. Shown only when ZOOKAPTER_SHELL_LOG_LEVEL asks for them."""
    level = os.environ.get("ZOOKAPTER_SHELL_LOG_LEVEL")
    if level:
        logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                            format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    else:
        logging.getLogger("zookapter").setLevel(logging.CRITICAL + 1)

"""Line editing for the interactive shell: a prompt-toolkit session with history and tab
completion.

Completion follows zkCli's JLineZNodeCompleter: the word under the cursor is completed as a
znode path when it starts with `/` (the children of its parent directory, read from the
server, whose names start with what follows the last `/`), and as a command name otherwise —
here only for the first word of the line, where a command can stand. Completing a path is
one getChildren; when the server does not answer within COMPLETION_TIMEOUT_S, or the session
is not connected, nothing is offered rather than the prompt hanging.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

if TYPE_CHECKING:
    from .shell import Shell
    from .shell_session import ShellSession

COMPLETION_TIMEOUT_S = 2.0
HISTORY_ENV = "ZOOKAPTER_SHELL_HISTORY"
HISTORY_FILE = "~/.zookapter_shell_history"


class ShellCompleter(Completer):
    """Command names and znode paths, as described in the module docstring."""

    def __init__(self, session: ShellSession, commands: list[str]) -> None:
        self.session = session
        self.commands = commands

    def get_completions(self, document: Document, complete_event: CompleteEvent
                        ) -> Iterable[Completion]:
        before = document.text_before_cursor
        word = "" if before.endswith((" ", "\t")) else (before.split() or [""])[-1]
        if word.startswith("/"):
            yield from self._paths(word)
        elif not before[:len(before) - len(word)].strip():
            yield from (Completion(c, -len(word)) for c in self.commands if c.startswith(word))

    def _paths(self, word: str) -> Iterable[Completion]:
        cut = word.rfind("/")
        parent, prefix = (word[:cut] or "/"), word[cut + 1:]
        for child in sorted(self.children(parent)):
            if child.startswith(prefix):
                yield Completion(child, -len(prefix))

    def children(self, parent: str) -> list[str]:
        """The children of `parent`, or [] if they cannot be had quickly."""
        zk = self.session.zk
        if zk is None or not self.session.connected:
            return []
        try:
            return list(self.session.run(zk.get_children(parent),  # type: ignore[arg-type]
                                         timeout=COMPLETION_TIMEOUT_S))
        except Exception:  # noqa: BLE001 - a failed completion offers nothing
            return []


def history_store() -> History:
    """The history file ($ZOOKAPTER_SHELL_HISTORY or ~/.zookapter_shell_history), or an
    in-memory history where it cannot be written."""
    path = os.path.expanduser(os.environ.get(HISTORY_ENV) or HISTORY_FILE)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(path)


def make_prompt_session(shell: Shell, **kwargs: Any) -> PromptSession[str]:
    """The prompt of `shell`; `kwargs` go to PromptSession (tests pass input and output)."""
    from .shell import command_names
    kwargs.setdefault("history", history_store())
    return PromptSession(completer=ShellCompleter(shell.session, command_names()),
                         complete_while_typing=False, **kwargs)

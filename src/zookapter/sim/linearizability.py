"""Linearizability checking: the Wing-Gong algorithm with Lowe's memoisation, as in
porcupine and Knossos' "linear" checker.

The history is split by key (P-compositionality: a history of independent objects is
linearizable iff each object's sub-history is), then each key is searched on its own.
The search keeps the calls and returns of that key's operations in one doubly linked list
ordered by real time. It repeatedly tries to *linearize* the earliest pending call: apply it
to the model state; if the model's output matches the recorded one, remove the call and its
return from the list and continue from the front. Meeting a return whose call has not been
linearized means an operation that must already have taken effect has not: backtrack to the
last choice and try the next call instead. Lowe's improvement caches every (set of
linearized operations, model state) pair already explored, which turns the exponential
search into something usually close to linear for histories with modest concurrency.

Operations with unknown outcome (INFO) have a call but no return: they may be linearized
anywhere after their call with whatever output the model gives, or never; the search
succeeds once every OK operation is linearized. INFO operations the model calls read-only
are dropped up front, since taking effect or not cannot matter.

The search is bounded by `steps_max` per key; past it the key's verdict is "unknown"
(ok=None), reported as such rather than passed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import znode_model
from .history import INFO, OK, Operation

STEPS_MAX_DEFAULT = 1_000_000
_UNKNOWN = object()  # the output of an INFO operation: any output matches


@dataclass(frozen=True)
class Model:
    """A deterministic sequential specification: `apply(state, input) -> (output, state)`.
    States must be hashable (they are memoised)."""
    apply: Callable[[Any, Any], tuple[Any, Any]]
    init: Callable[[Any], Any]  # key -> initial state
    key: Callable[[Any], Hashable] = lambda _input: None
    read_only: Callable[[Any], bool] = lambda _input: False


ZNODE_MODEL = Model(apply=znode_model.apply, init=znode_model.initial_state,
                    key=znode_model.key_of, read_only=lambda op: op.f == "get")


@dataclass
class KeyResult:
    key: Hashable
    ok: bool | None
    ops: list[Operation]
    steps: int
    longest: list[Operation] = field(default_factory=list)  # a linearizable prefix
    stuck: Operation | None = None  # had to take effect before some point, and could not
    state: Any = None  # model state after `longest`

    def explain(self, context: int = 12) -> str:
        if self.ok:
            return f"key {self.key!r}: linearizable ({len(self.ops)} ops, {self.steps} steps)"
        if self.ok is None:
            return (f"key {self.key!r}: gave up after {self.steps} steps "
                    f"({len(self.ops)} ops); treat as unchecked")
        lines = [f"key {self.key!r}: NOT linearizable ({len(self.ops)} ops)",
                 f"  longest linearizable prefix: {len(self.longest)} ops, ending with:"]
        lines += [f"    {op}" for op in self.longest[-context:]]
        lines.append(f"  model state then: {self.state!r}")
        if self.stuck is not None:
            lines.append(f"  cannot linearize: {self.stuck}")
            done = {op.id for op in self.longest}
            deadline = self.stuck.ret if self.stuck.ret is not None else self.stuck.call
            others = [op for op in self.ops if op.id not in done and op.id != self.stuck.id
                      and op.call < deadline]
            lines.append("  not linearized, invoked before it returned: "
                         + ("none" if not others else ""))
            lines += [f"    {op}" for op in others[:context]]
        return "\n".join(lines)


@dataclass
class Result:
    ok: bool | None  # None: no violation found, but some key was not fully checked
    keys: list[KeyResult]

    @property
    def failures(self) -> list[KeyResult]:
        return [k for k in self.keys if k.ok is False]

    @property
    def unknown(self) -> list[KeyResult]:
        return [k for k in self.keys if k.ok is None]

    @property
    def steps(self) -> int:
        return sum(k.steps for k in self.keys)

    def explain(self) -> str:
        if self.ok:
            return f"linearizable: {len(self.keys)} keys, {self.steps} search steps"
        return "\n".join(k.explain() for k in self.failures + self.unknown)


def check(ops: Iterable[Operation], model: Model = ZNODE_MODEL,
          steps_max: int = STEPS_MAX_DEFAULT) -> Result:
    """Check a whole history; FAIL operations are ignored (they never happened)."""
    by_key: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in ops:
        if op.status == OK or (op.status == INFO and not model.read_only(op.input)):
            by_key[model.key(op.input)].append(op)
    results = [check_key(key, key_ops, model, steps_max)
               for key, key_ops in sorted(by_key.items(), key=lambda kv: repr(kv[0]))]
    verdict: bool | None = True
    if any(r.ok is False for r in results):
        verdict = False
    elif any(r.ok is None for r in results):
        verdict = None
    return Result(verdict, results)


def check_key(key: Hashable, ops: Sequence[Operation], model: Model,
              steps_max: int = STEPS_MAX_DEFAULT) -> KeyResult:
    """Wing-Gong-Lowe search over one key's operations (see the module docstring)."""
    search = _Search(ops, model.apply, model.init(key))
    verdict = search.run(steps_max)
    result = KeyResult(key, verdict, list(ops), search.steps)
    if verdict is False:
        result.longest = [ops[i] for i in search.best]
        result.stuck = None if search.stuck < 0 else ops[search.stuck]
        result.state = search.best_state
    return result


class _Search:
    """The linked list of call/return entries and the backtracking search over it.
    Entry 0 is the head sentinel, entry n+1 the tail sentinel."""

    def __init__(self, ops: Sequence[Operation], apply: Callable[[Any, Any], tuple[Any, Any]],
                 init: Any) -> None:
        events: list[tuple[int, int, bool]] = []
        for i, op in enumerate(ops):
            events.append((op.call, i, True))
            if op.status == OK:
                if op.ret is None or op.ret <= op.call:
                    raise AssertionError(f"operation returns before it is called: {op}")
                events.append((op.ret, i, False))
        events.sort()
        size = len(events)
        self.tail = size + 1
        self.next = list(range(1, size + 2)) + [0]
        self.prev = [0] + list(range(0, size + 1))
        self.op_of = [-1] * (size + 2)
        self.is_call = [False] * (size + 2)
        self.match = [-1] * (size + 2)  # a call's return entry (-1 for INFO operations)
        call_entry: dict[int, int] = {}
        for entry, (_, i, is_call) in enumerate(events, start=1):
            self.op_of[entry] = i
            self.is_call[entry] = is_call
            if is_call:
                call_entry[i] = entry
            else:
                self.match[call_entry[i]] = entry
        self.inputs = [op.input for op in ops]
        self.outputs = [op.output if op.status == OK else _UNKNOWN for op in ops]
        self.pending_ok = sum(1 for op in ops if op.status == OK)
        self.apply = apply
        self.init = init
        self.steps = 0
        self.best: list[int] = []
        self.best_state: Any = init
        self.stuck = -1

    def _lift(self, entry: int) -> None:
        nxt, prv = self.next, self.prev
        nxt[prv[entry]] = nxt[entry]
        prv[nxt[entry]] = prv[entry]
        ret = self.match[entry]
        if ret >= 0:
            nxt[prv[ret]] = nxt[ret]
            prv[nxt[ret]] = prv[ret]

    def _unlift(self, entry: int) -> None:
        nxt, prv = self.next, self.prev
        ret = self.match[entry]
        if ret >= 0:
            nxt[prv[ret]] = ret
            prv[nxt[ret]] = ret
        nxt[prv[entry]] = entry
        prv[nxt[entry]] = entry

    def run(self, steps_max: int) -> bool | None:
        nxt, op_of, is_call, match = self.next, self.op_of, self.is_call, self.match
        inputs, outputs, apply = self.inputs, self.outputs, self.apply
        state, linearized, remaining = self.init, 0, self.pending_ok
        stack: list[tuple[int, Any, int]] = []
        seen: set[tuple[int, Any]] = set()
        entry = nxt[0]
        steps = 0
        while remaining:
            steps += 1
            if steps > steps_max:
                self.steps = steps
                return None
            if entry == self.tail:
                raise AssertionError("ran off the end with OK operations pending")
            op = op_of[entry]
            if is_call[entry]:
                output, new_state = apply(state, inputs[op])
                expected = outputs[op]
                if expected is _UNKNOWN or output == expected:
                    marked = linearized | (1 << op)
                    memo = (marked, new_state)
                    if memo not in seen:
                        seen.add(memo)
                        stack.append((entry, state, linearized))
                        state, linearized = new_state, marked
                        if match[entry] >= 0:
                            remaining -= 1
                        self._lift(entry)
                        entry = nxt[0]
                        continue
                entry = nxt[entry]
                continue
            # A return whose call is not linearized yet: this branch is dead.
            if len(stack) >= len(self.best):
                self.best = [op_of[e] for e, _, _ in stack]
                self.best_state = state
                self.stuck = op
            if not stack:
                self.steps = steps
                return False
            entry, state, linearized = stack.pop()
            self._unlift(entry)
            if match[entry] >= 0:
                remaining += 1
            entry = nxt[entry]
        self.steps = steps
        return True

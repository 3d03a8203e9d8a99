"""The document log's write model: a short shared text as a history of small operations.

Each edit is an insert or a delete made by a tab against the document version it last saw (`base_version`).

The rule for concurrent edits: the later operation is rebased over the earlier ones (operational transform on a
plain string), so every edit a tab made survives where it still can, and two tabs editing the same version end
with the same text whatever order their edits arrive in:
- an insert after an earlier insert or delete shifts by what that one added or removed; two inserts at the same
  place go in the order of (tab, text), so both arrival orders put them the same way round;
- a delete shrinks by whatever an earlier delete already removed, and grows over text inserted strictly inside it;
- delete wins: an insert strictly inside a range deleted concurrently, or a delete whose whole range is already
  gone, is rejected with that reason (`edit-already-gone`): the text it was about no longer exists.
An edit may lag at most WINDOW versions behind; an older one is rejected (reload and edit again).

The event records the operation as applied to the text at that version (rebased), so folding never transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from lab.engine.messages import Rejected

MAX_TEXT = 500
MAX_INSERT = 50
WINDOW = 16  # operations kept in the state to rebase a lagging edit over

RULE_TAB = "tab-name"
RULE_BASE = "base-version"
RULE_RANGE = "edit-range"
RULE_TEXT = "edit-text"
RULE_LONG = "document-full"
RULE_GONE = "edit-already-gone"

RULE_MESSAGES = {
    RULE_TAB: "a tab is named by 1-20 letters or digits",
    RULE_BASE: f"the edit must be based on the current version or one at most {WINDOW} versions older",
    RULE_RANGE: "the edit must fall inside the text of the version it was based on",
    RULE_TEXT: f"an insert is 1-{MAX_INSERT} printable characters",
    RULE_LONG: f"the document holds at most {MAX_TEXT} characters",
    RULE_GONE: "a concurrent edit already deleted the text this edit was about",
}


@dataclass(frozen=True)
class Insert:
    tab: str
    base_version: int
    position: int
    text: str


@dataclass(frozen=True)
class Delete:
    tab: str
    base_version: int
    position: int
    length: int


Command = Insert | Delete


@dataclass(frozen=True)
class Inserted:
    tab: str
    base_version: int
    position: int  # where it went in the text of the version before it (after rebasing)
    text: str


@dataclass(frozen=True)
class Deleted:
    tab: str
    base_version: int
    position: int
    length: int


Event = Inserted | Deleted


@dataclass(frozen=True)
class DocumentState:
    version: int = 0
    text: str = ""
    recent: tuple[Inserted | Deleted, ...] = ()  # the last WINDOW operations, oldest first

    def since(self, base_version: int) -> tuple[Inserted | Deleted, ...]:
        """The operations applied after `base_version` (all kept when base_version >= version - WINDOW)."""
        return self.recent[len(self.recent) - (self.version - base_version) :] if base_version < self.version else ()


def initial_state() -> DocumentState:
    return DocumentState()


def decide(state: DocumentState, command: Command) -> Sequence[Event] | Rejected:
    """The rebased operation, or the rule that refuses it."""
    problem = _check(state, command)
    if problem:
        return _reject(problem)
    op: Event | None = (
        Inserted(command.tab, command.base_version, command.position, command.text)
        if isinstance(command, Insert)
        else Deleted(command.tab, command.base_version, command.position, command.length)
    )
    for earlier in state.since(command.base_version):
        op = transform(op, earlier) if op is not None else None
    if op is None:
        return _reject(RULE_GONE)
    if isinstance(op, Inserted) and len(state.text) + len(op.text) > MAX_TEXT:
        return _reject(RULE_LONG)
    return [op]


def _check(state: DocumentState, command: Command) -> str | None:
    if not (command.tab.isascii() and command.tab.isalnum() and len(command.tab) <= 20):
        return RULE_TAB
    if type(command.base_version) is not int or not state.version - WINDOW <= command.base_version <= state.version:
        return RULE_BASE
    if command.base_version < 0:
        return RULE_BASE
    if isinstance(command, Insert) and not (0 < len(command.text) <= MAX_INSERT and command.text.isprintable()):
        return RULE_TEXT
    base_length = len(state.text) - sum(_growth(op) for op in state.since(command.base_version))
    end = command.position + (command.length if isinstance(command, Delete) else 0)
    if command.position < 0 or end > base_length or (isinstance(command, Delete) and command.length < 1):
        return RULE_RANGE
    return None


def _growth(op: Event) -> int:
    return len(op.text) if isinstance(op, Inserted) else -op.length


def transform(op: Event, earlier: Event) -> Event | None:
    """`op` rebased over `earlier` (both made against the same text), or None when nothing of it is left."""
    if isinstance(op, Inserted):
        if isinstance(earlier, Inserted):
            goes_after = (earlier.position, earlier.tab, earlier.text) <= (op.position, op.tab, op.text)
            return replace(op, position=op.position + len(earlier.text)) if goes_after else op
        if op.position <= earlier.position:
            return op
        if op.position >= earlier.position + earlier.length:
            return replace(op, position=op.position - earlier.length)
        return None  # inside a range deleted concurrently: delete wins
    if isinstance(earlier, Inserted):
        if earlier.position <= op.position:
            return replace(op, position=op.position + len(earlier.text))
        if earlier.position >= op.position + op.length:
            return op
        return replace(op, length=op.length + len(earlier.text))  # swallow text inserted strictly inside
    start, end = op.position, op.position + op.length
    overlap = max(0, min(end, earlier.position + earlier.length) - max(start, earlier.position))
    before = max(0, min(earlier.position + earlier.length, start) - earlier.position)
    return replace(op, position=start - before, length=op.length - overlap) if op.length > overlap else None


def apply(text: str, op: Event) -> str:
    """The text after one operation."""
    if isinstance(op, Inserted):
        return text[: op.position] + op.text + text[op.position :]
    return text[: op.position] + text[op.position + op.length :]


def evolve(state: DocumentState, event: Event) -> DocumentState:
    """The state after one event. Total: every event a store holds must fold."""
    recent = (*state.recent, event)[-WINDOW:]
    return DocumentState(version=state.version + 1, text=apply(state.text, event), recent=recent)


def _reject(rule: str) -> Rejected:
    return Rejected(rule=rule, message=RULE_MESSAGES[rule])

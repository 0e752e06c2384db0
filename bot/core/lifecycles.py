"""Lifecycles of the stored statuses: dossiers, reminders, hand-offs and their replies, deliveries
and their attempts, drafts.

Each lifecycle is one `str` enum (its values are the strings stored in the database) and one
transition table (from → allowed next states). The enum is the single source of the values:
the models' and the migration's CHECK constraints are built from it (`Lifecycle.check_sql`), and
the named sets below are what the other modules filter on, instead of retyping lists of strings.

The tables describe what the code does today: the console's status changes, the citizen's
cancellation and submission, the scheduler's dispatch, the outbox's claims and the hand-off
queue. Moves made by bulk UPDATEs (the outbox, stale-claim resets) are listed as well, so the
table is the whole lifecycle even where no Python object changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar


class StrEnum(str, Enum):
    """A stored string: str(), f-strings and templates give the value (3.10 has no StrEnum)."""

    def __str__(self) -> str:
        return str(self.value)


class Actor(StrEnum):
    """Who makes a move, for the moves only one side may make."""

    CITIZEN = "citizen"
    OFFICER = "officer"


class DossierStatus(StrEnum):
    PREPARED = "prepared"  # level 2: waits for the citizen to file in person
    RECEIVED = "received"  # submitted: in the officers' queue
    PROCESSING = "processing"  # an officer works on it
    NEEDS_INFO = "needs_info"  # the officer asked the citizen for more
    COMPLETED = "completed"  # the result is ready
    REJECTED = "rejected"  # refused, with the officer's reason
    CANCELLED = "cancelled"  # withdrawn by the citizen


class ReminderState(StrEnum):
    PENDING = "pending"  # due, not yet sent
    ATTEMPTING = "attempting"  # handed to the delivery pipeline
    SENT = "sent"  # a channel accepted it
    DELIVERED = "delivered"  # counted by bot/governance/reports.py; no code writes it today
    CONVERTED = "converted"  # the citizen started the service from it
    FAILED = "failed"  # no recipient, or no channel took it
    SKIPPED = "skipped"  # the citizen stopped or postponed these reminders


class HandoffStatus(StrEnum):
    OPEN = "open"  # waiting for an officer; the bot is silent
    TAKEN = "taken"  # an officer answers
    CLOSED = "closed"  # the bot speaks again


class HandoffReplyStatus(StrEnum):
    SENDING = "sending"  # on its way to the citizen's channel
    SENT = "sent"  # the channel accepted it
    FAILED = "failed"  # the channel refused it; the officer sees why


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # queued, or waiting for its next retry
    SENDING = "sending"  # claimed by one worker
    SENT = "sent"  # a channel accepted it
    FAILED = "failed"  # retries and fallbacks spent


class AttemptOutcome(StrEnum):
    """A delivery attempt: started, then sent or the failed send's kind
    (bot.delivery.sending.Kind)."""

    STARTED = "started"
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"
    FALLBACK = "fallback"


class DraftState(StrEnum):
    OPEN = "open"  # being filled in the conversation
    SUBMITTED = "submitted"  # became a dossier
    ABANDONED = "abandoned"  # replaced or given up


class PaymentStatus(StrEnum):
    REQUESTED = "requested"  # the citizen was asked to pay; not yet confirmed
    PAID = "paid"  # a signed callback confirmed the amount for this reference
    VOID = "void"  # the dossier was withdrawn or refused before payment


class CallbackOutcome(StrEnum):
    APPLIED = "applied"  # it marked its payment paid
    MISMATCH = "mismatch"  # amount, reference or state did not fit: kept for an officer
    RESOLVED = "resolved"  # an officer dealt with the mismatch (refund, manual match…)


class ForbiddenTransition(ValueError):
    """A move the lifecycle does not allow (or not for this actor)."""

    def __init__(self, lifecycle: str, current: str, target: str, by: Actor | None) -> None:
        who = f" by the {by}" if by else ""
        super().__init__(
            f"{lifecycle}: moving from {str(current)!r} to {str(target)!r}{who} is not allowed"
        )
        self.lifecycle, self.current, self.target, self.by = lifecycle, current, target, by


S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class Lifecycle(Generic[S]):
    """States, where each may go, and which moves only one actor may make.

    `attribute` is the model's column (`status` or `state`), used by `move` and `check_sql`;
    `reserved` maps a move to the only actor allowed to make it (a move not listed there is
    open to anyone, including code acting for no one in particular).
    """

    name: str
    states: type[S]
    attribute: str
    initial: tuple[S, ...]
    transitions: Mapping[S, tuple[S, ...]]
    reserved: Mapping[tuple[S, S], Actor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        members = set(self.states)
        moves = {(a, b) for a, targets in self.transitions.items() for b in targets}
        listed = {s for move in moves for s in move} | set(self.initial) | set(self.transitions)
        if not listed <= members:
            raise TypeError(f"{self.name}: states outside {self.states.__name__}")
        if not set(self.reserved) <= moves:
            raise TypeError(f"{self.name}: a reserved move is not in the transition table")

    def parse(self, value: str) -> S | None:
        """The state named by a stored or submitted string, or None if there is no such state."""
        try:
            return self.states(value)
        except ValueError:
            return None

    def can_move(self, current: str, target: str, by: Actor | None = None) -> bool:
        source, goal = self.parse(current), self.parse(target)
        if source is None or goal is None or goal not in self.transitions.get(source, ()):
            return False
        only = self.reserved.get((source, goal))
        return only is None or only == by

    def check(self, current: str, target: str, by: Actor | None = None) -> S:
        """The target state, or ForbiddenTransition."""
        if not self.can_move(current, target, by):
            raise ForbiddenTransition(self.name, current, target, by)
        return self.states(target)

    def move(self, obj: object, target: str, by: Actor | None = None) -> S:
        """Set `obj`'s status to `target` if the table allows it; returns the previous state."""
        current = getattr(obj, self.attribute)
        setattr(obj, self.attribute, self.check(current, target, by))
        return self.states(current)

    def targets(self, current: str, by: Actor | None = None) -> tuple[S, ...]:
        """Where `current` may go (for `by`), in the table's order."""
        source = self.parse(current)
        found = self.transitions.get(source, ()) if source is not None else ()
        return tuple(t for t in found if self.can_move(current, t, by))

    def sources(self, target: str, by: Actor | None = None) -> tuple[S, ...]:
        """The states from which `target` may be reached (for `by`), in the enum's order."""
        return tuple(s for s in self.states if self.can_move(s, target, by))

    @property
    def moves(self) -> tuple[tuple[S, S], ...]:
        return tuple((a, b) for a, targets in self.transitions.items() for b in targets)

    @property
    def active(self) -> tuple[S, ...]:
        """States with somewhere to go, in the enum's order."""
        return tuple(s for s in self.states if self.transitions.get(s))

    @property
    def final(self) -> tuple[S, ...]:
        return tuple(s for s in self.states if not self.transitions.get(s))

    def check_sql(self, column: str | None = None) -> str:
        """The CHECK constraint's condition, e.g. `status IN ('open', 'taken', 'closed')`."""
        values = ", ".join(f"'{s.value}'" for s in self.states)
        return f"{column or self.attribute} IN ({values})"


# Each table maps a state to the states it may move to; the Lifecycle line under it names the
# stored column and the states a new row may start in.
_D = DossierStatus
_DOSSIER_MOVES = {
    _D.PREPARED: (_D.RECEIVED, _D.CANCELLED),
    _D.RECEIVED: (_D.PROCESSING, _D.NEEDS_INFO, _D.REJECTED, _D.CANCELLED),
    _D.PROCESSING: (_D.NEEDS_INFO, _D.COMPLETED, _D.REJECTED),
    _D.NEEDS_INFO: (_D.PROCESSING, _D.COMPLETED, _D.REJECTED),
}
# An officer rejects a received dossier; only its owner withdraws it.
_ONLY_OWNER_WITHDRAWS = {(_D.RECEIVED, _D.CANCELLED): Actor.CITIZEN}
# Level 2 starts prepared; level 3 and joined services start received.
DOSSIER = Lifecycle(
    "dossier", _D, "status", (_D.PREPARED, _D.RECEIVED), _DOSSIER_MOVES, _ONLY_OWNER_WITHDRAWS
)
# The citizen has one going: no reminder for that service (the scan).
DOSSIER_IN_PROGRESS = DOSSIER.active
# The console's "open" queue: a prepared dossier waits for the citizen, not for an officer.
DOSSIER_AWAITING_OFFICER = tuple(s for s in DOSSIER_IN_PROGRESS if s is not _D.PREPARED)
# No officer has started on it: the citizen may still withdraw it.
DOSSIER_CANCELLABLE = DOSSIER.sources(_D.CANCELLED, by=Actor.CITIZEN)
DOSSIER_FINISHED = DOSSIER.final

_R = ReminderState
_REMINDER_MOVES = {
    # Dispatch claims it, or finds no recipient, or the citizen silenced the service; a
    # submission for the service converts it.
    _R.PENDING: (_R.ATTEMPTING, _R.SKIPPED, _R.FAILED, _R.CONVERTED),
    # Back to pending: a retry, our service down, or a stale claim reset.
    _R.ATTEMPTING: (_R.PENDING, _R.SENT, _R.FAILED, _R.CONVERTED),
    _R.SENT: (_R.CONVERTED,),
}
REMINDER = Lifecycle("reminder", _R, "state", (_R.PENDING,), _REMINDER_MOVES)
# The reminders that led to a submission: counted as converted, sent no more.
REMINDER_CONVERTIBLE = REMINDER.sources(_R.CONVERTED)

_H = HandoffStatus
_HANDOFF_MOVES = {
    _H.OPEN: (_H.TAKEN, _H.CLOSED),
    _H.TAKEN: (_H.TAKEN, _H.CLOSED),  # taking one's own request again changes nothing
}
HANDOFF = Lifecycle("hand-off", _H, "status", (_H.OPEN,), _HANDOFF_MOVES)
# The bot stays silent while one of these is active; the console's queue lists them.
HANDOFF_ACTIVE = HANDOFF.active

_HR = HandoffReplyStatus
_HANDOFF_REPLY_MOVES = {_HR.SENDING: (_HR.SENT, _HR.FAILED)}
HANDOFF_REPLY = Lifecycle("hand-off reply", _HR, "status", (_HR.SENDING,), _HANDOFF_REPLY_MOVES)

_V = DeliveryStatus
_DELIVERY_MOVES = {
    _V.PENDING: (_V.SENDING,),
    # Staying `sending`: an attempt to be retried, or a dead worker's stale claim taken over.
    _V.SENDING: (_V.SENDING, _V.SENT, _V.FAILED),
    _V.FAILED: (_V.SENDING,),  # a later delivery of the same key tries the channel again
}
DELIVERY = Lifecycle("delivery", _V, "status", (_V.PENDING, _V.SENDING), _DELIVERY_MOVES)
# Claimable at once; a `sending` row only when its claim is stale (bot.delivery.outbox.claim).
DELIVERY_CLAIMABLE = tuple(s for s in DELIVERY.sources(_V.SENDING) if s is not _V.SENDING)

_A = AttemptOutcome
_ATTEMPT_MOVES = {_A.STARTED: (_A.SENT, _A.RETRY, _A.PERMANENT, _A.FALLBACK)}
ATTEMPT = Lifecycle("delivery attempt", _A, "outcome", (_A.STARTED,), _ATTEMPT_MOVES)

_DRAFT_MOVES = {DraftState.OPEN: (DraftState.SUBMITTED, DraftState.ABANDONED)}
DRAFT = Lifecycle("draft", DraftState, "state", (DraftState.OPEN,), _DRAFT_MOVES)

_P = PaymentStatus
_PAYMENT_MOVES = {_P.REQUESTED: (_P.PAID, _P.VOID)}
PAYMENT = Lifecycle("payment", _P, "status", (_P.REQUESTED,), _PAYMENT_MOVES)

_C = CallbackOutcome
_CALLBACK_MOVES = {_C.MISMATCH: (_C.RESOLVED,)}
PAYMENT_CALLBACK = Lifecycle(
    "payment callback", _C, "outcome", (_C.APPLIED, _C.MISMATCH), _CALLBACK_MOVES
)

LIFECYCLES: tuple[Lifecycle[Any], ...] = (
    DOSSIER,
    REMINDER,
    HANDOFF,
    HANDOFF_REPLY,
    DELIVERY,
    ATTEMPT,
    DRAFT,
    PAYMENT,
    PAYMENT_CALLBACK,
)

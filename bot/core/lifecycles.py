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


_D = DossierStatus
DOSSIER: Lifecycle[DossierStatus] = Lifecycle(
    "dossier",
    DossierStatus,
    "status",
    initial=(_D.PREPARED, _D.RECEIVED),  # level 2 / level 3 and joined services
    transitions={
        _D.PREPARED: (_D.RECEIVED, _D.CANCELLED),
        _D.RECEIVED: (_D.PROCESSING, _D.NEEDS_INFO, _D.REJECTED, _D.CANCELLED),
        _D.PROCESSING: (_D.NEEDS_INFO, _D.COMPLETED, _D.REJECTED),
        _D.NEEDS_INFO: (_D.PROCESSING, _D.COMPLETED, _D.REJECTED),
    },
    # An officer rejects a received dossier; only its owner withdraws it.
    reserved={(_D.RECEIVED, _D.CANCELLED): Actor.CITIZEN},
)
# The citizen has one going: no reminder for that service (the scan).
DOSSIER_IN_PROGRESS = DOSSIER.active
# The console's "open" queue: a prepared dossier waits for the citizen, not for an officer.
DOSSIER_AWAITING_OFFICER = tuple(s for s in DOSSIER_IN_PROGRESS if s is not _D.PREPARED)
# No officer has started on it: the citizen may still withdraw it.
DOSSIER_CANCELLABLE = DOSSIER.sources(_D.CANCELLED, by=Actor.CITIZEN)
DOSSIER_FINISHED = DOSSIER.final

_R = ReminderState
REMINDER: Lifecycle[ReminderState] = Lifecycle(
    "reminder",
    ReminderState,
    "state",
    initial=(_R.PENDING,),
    transitions={
        # Dispatch claims it, or finds no recipient, or the citizen silenced the service; a
        # submission for the service converts it.
        _R.PENDING: (_R.ATTEMPTING, _R.SKIPPED, _R.FAILED, _R.CONVERTED),
        # Back to pending: a retry, our service down, or a stale claim reset.
        _R.ATTEMPTING: (_R.PENDING, _R.SENT, _R.FAILED, _R.CONVERTED),
        _R.SENT: (_R.CONVERTED,),
    },
)
# The reminders that led to a submission: counted as converted, sent no more.
REMINDER_CONVERTIBLE = REMINDER.sources(_R.CONVERTED)

_H = HandoffStatus
HANDOFF: Lifecycle[HandoffStatus] = Lifecycle(
    "hand-off",
    HandoffStatus,
    "status",
    initial=(_H.OPEN,),
    transitions={
        _H.OPEN: (_H.TAKEN, _H.CLOSED),
        _H.TAKEN: (_H.TAKEN, _H.CLOSED),  # taking one's own request again changes nothing
    },
)
# The bot stays silent while one of these is active; the console's queue lists them.
HANDOFF_ACTIVE = HANDOFF.active

HANDOFF_REPLY: Lifecycle[HandoffReplyStatus] = Lifecycle(
    "hand-off reply",
    HandoffReplyStatus,
    "status",
    initial=(HandoffReplyStatus.SENDING,),
    transitions={
        HandoffReplyStatus.SENDING: (HandoffReplyStatus.SENT, HandoffReplyStatus.FAILED),
    },
)

_V = DeliveryStatus
DELIVERY: Lifecycle[DeliveryStatus] = Lifecycle(
    "delivery",
    DeliveryStatus,
    "status",
    initial=(_V.PENDING, _V.SENDING),
    transitions={
        _V.PENDING: (_V.SENDING,),
        # Staying `sending`: an attempt to be retried, or a dead worker's stale claim taken over.
        _V.SENDING: (_V.SENDING, _V.SENT, _V.FAILED),
        _V.FAILED: (_V.SENDING,),  # a later delivery of the same key tries the channel again
    },
)
# Claimable at once; a `sending` row only when its claim is stale (bot.delivery.outbox.claim).
DELIVERY_CLAIMABLE = tuple(s for s in DELIVERY.sources(_V.SENDING) if s is not _V.SENDING)

ATTEMPT: Lifecycle[AttemptOutcome] = Lifecycle(
    "delivery attempt",
    AttemptOutcome,
    "outcome",
    initial=(AttemptOutcome.STARTED,),
    transitions={
        AttemptOutcome.STARTED: (
            AttemptOutcome.SENT,
            AttemptOutcome.RETRY,
            AttemptOutcome.PERMANENT,
            AttemptOutcome.FALLBACK,
        ),
    },
)

DRAFT: Lifecycle[DraftState] = Lifecycle(
    "draft",
    DraftState,
    "state",
    initial=(DraftState.OPEN,),
    transitions={DraftState.OPEN: (DraftState.SUBMITTED, DraftState.ABANDONED)},
)

LIFECYCLES: tuple[Lifecycle[Any], ...] = (
    DOSSIER,
    REMINDER,
    HANDOFF,
    HANDOFF_REPLY,
    DELIVERY,
    ATTEMPT,
    DRAFT,
)

"""Conversation list (filters, search, keyset paging) and transcript, masked by default."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

from sqlalchemy import and_, exists, false, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue
from bot.core.models import (
    ChannelBinding,
    Citizen,
    ConversationComment,
    ConversationLabel,
    ConversationSummary,
    ConversationTag,
    Handoff,
    MessageFlag,
)
from bot.identity.speaker import REST, VERIFIED_CHANNELS
from console.indexer import query_words
from console.masking import Masker, conversation_masker
from console.timefmt import day_start_utc, parse_day
from console.tracker import HIDDEN_ACTIONS, Entry, load_transcript

CHANNELS = (*VERIFIED_CHANNELS, REST)
RATINGS = ("1", "2", "3", "4", "5", "low", "high")
MATERIALIZE_UP_TO = 5000


@dataclass(frozen=True)
class ConversationFilter:
    channel: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    linked: str = ""  # linked | anonymous
    service: str = ""
    intent: str = ""
    low_confidence: bool = False
    handoff: bool = False
    rating: str = ""
    label: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> ConversationFilter:
        """Unknown or malformed values are ignored rather than rejected."""

        def pick(name: str, allowed: tuple[str, ...]) -> str:
            value = params.get(name, "")
            return value if value in allowed else ""

        return cls(
            channel=pick("channel", CHANNELS),
            date_from=parse_day(params.get("from")),
            date_to=parse_day(params.get("to")),
            linked=pick("linked", ("linked", "anonymous")),
            service=params.get("service", "")[:40],
            intent=params.get("intent", "")[:80],
            low_confidence=params.get("low") == "1",
            handoff=params.get("handoff") == "1",
            rating=pick("rating", RATINGS),
            label=params.get("label", "")[:40],
            q=" ".join(params.get("q", "").split())[:200],
        )

    def params(self) -> dict[str, str]:
        raw = asdict(self)
        out = {
            "channel": raw["channel"],
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "linked": self.linked,
            "service": self.service,
            "intent": self.intent,
            "low": "1" if self.low_confidence else "",
            "handoff": "1" if self.handoff else "",
            "rating": self.rating,
            "label": self.label,
            "q": self.q,
        }
        return {k: v for k, v in out.items() if v}

    def query_string(self, **extra: str) -> str:
        return urlencode({**self.params(), **{k: v for k, v in extra.items() if v}})


def filter_clauses(flt: ConversationFilter) -> list:
    S = ConversationSummary
    clauses: list = []
    if flt.channel:
        clauses.append(S.channel == flt.channel)
    if flt.date_from:
        clauses.append(S.last_at >= day_start_utc(flt.date_from))
    if flt.date_to:
        clauses.append(S.first_at < day_start_utc(flt.date_to + dt.timedelta(days=1)))
    if flt.linked == "linked":  # the list outer-joins the binding (for the name)
        clauses.append(ChannelBinding.id.is_not(None))
    elif flt.linked == "anonymous":
        clauses.append(ChannelBinding.id.is_(None))
    if flt.low_confidence:
        clauses.append(S.low_confidence > 0)
    if flt.handoff:
        clauses.append(S.handoff.is_(True))
    if flt.rating == "low":
        clauses.append(S.rating.between(1, 3))
    elif flt.rating == "high":
        clauses.append(S.rating.between(4, 5))
    elif flt.rating:
        clauses.append(S.rating == int(flt.rating))
    if flt.label:
        clauses.append(
            S.sender_id.in_(
                select(ConversationLabel.sender_id).where(ConversationLabel.label == flt.label)
            )
        )
    return clauses


def wanted_tags(flt: ConversationFilter) -> list[str] | None:
    """Tags every listed conversation must have; None when the search can match nothing."""
    tags = [f"w:{word}" for word in query_words(flt.q)]
    if flt.q and not tags:
        return None  # only ID/phone numbers: not searchable, by design
    if flt.service:
        tags.append(f"s:{flt.service}"[:64])
    if flt.intent:
        tags.append(f"i:{flt.intent}"[:64])
    return tags


def tag_clauses(session: Session, tags: list[str]) -> list:
    """Conditions for conversations having all `tags`, planned from their counts.

    The rarest tag's conversations are fetched first when they are few (then the page is a
    handful of primary-key lookups); common tags are checked row by row along the list's order,
    which stops as soon as a page is full. Either way no plan hashes 100,000 tag rows.
    """
    if not tags:
        return []
    T = ConversationTag
    counts = dict(
        session.execute(select(T.tag, func.count()).where(T.tag.in_(tags)).group_by(T.tag)).all()
    )
    if len(counts) < len(set(tags)):
        return [false()]
    ordered = sorted(set(tags), key=lambda t: counts[t])
    clauses: list = []
    if counts[ordered[0]] <= MATERIALIZE_UP_TO:
        ids = session.scalars(select(T.conversation_id).where(T.tag == ordered[0])).all()
        clauses.append(ConversationSummary.id.in_(ids))
        ordered = ordered[1:]
    clauses.extend(
        exists()
        .where(T.conversation_id == ConversationSummary.id, T.tag == tag)
        .correlate(ConversationSummary)
        for tag in ordered
    )
    return clauses


@dataclass(frozen=True)
class ListRow:
    id: int
    sender: str
    channel: str
    first_at: dt.datetime
    last_at: dt.datetime
    user_messages: int
    low_confidence: int
    fallbacks: int
    handoff: bool
    rating: int | None
    linked: bool
    citizen: str
    preview: str
    last_intent: str | None


def encode_cursor(at: dt.datetime, row_id: int) -> str:
    return f"{at.isoformat()}_{row_id}"


def decode_cursor(cursor: str | None) -> tuple[dt.datetime, int] | None:
    try:
        at, _, row_id = (cursor or "").rpartition("_")
        return dt.datetime.fromisoformat(at), int(row_id)
    except ValueError:
        return None


def list_conversations(
    session: Session, flt: ConversationFilter, cursor: str | None = None, page_size: int = 50
) -> tuple[list[ListRow], str | None]:
    """One page, newest activity first; the cursor (not an offset) keeps deep pages fast."""
    S = ConversationSummary
    tags = wanted_tags(flt)
    if tags is None:
        return [], None
    query = (
        select(S, Citizen.full_name, ChannelBinding.id)
        .outerjoin(
            ChannelBinding,
            and_(
                ChannelBinding.channel == S.channel, ChannelBinding.channel_user_id == S.sender_id
            ),
        )
        .outerjoin(Citizen, Citizen.id == ChannelBinding.citizen_id)
        .where(*filter_clauses(flt), *tag_clauses(session, tags))
        .order_by(S.last_at.desc(), S.id.desc())
        .limit(page_size + 1)
    )
    after = decode_cursor(cursor)
    if after:
        query = query.where(or_(S.last_at < after[0], and_(S.last_at == after[0], S.id < after[1])))
    found = session.execute(query).all()
    masker = Masker()
    rows = [
        ListRow(
            s.id,
            masker.sender(s.sender_id),
            s.channel,
            s.first_at,
            s.last_at,
            s.user_messages,
            s.low_confidence,
            s.fallbacks,
            s.handoff,
            s.rating,
            binding_id is not None,
            masker.name(name),
            s.preview or "",
            s.last_intent,
        )
        for s, name, binding_id in found[:page_size]
    ]
    more = len(found) > page_size
    last = found[page_size - 1][0] if more else None
    return rows, encode_cursor(last.last_at, last.id) if last else None


@dataclass
class Turn:
    """A transcript line, already masked for the viewer."""

    entry: Entry
    text: str = ""
    low: bool = False
    details: list[str] = field(default_factory=list)
    flag: MessageFlag | None = None


@dataclass
class Transcript:
    summary: ConversationSummary
    sender: str
    citizen: str | None
    revealed: bool
    turns: list[Turn]
    labels: list[ConversationLabel]
    comments: list[tuple[ConversationComment, str]]
    handoffs: list[Handoff]


def transcript(
    session: Session,
    tracker: Engine,
    catalogue: Catalogue,
    summary: ConversationSummary,
    revealed: bool,
    threshold: float,
) -> Transcript:
    masker = conversation_masker(session, catalogue, summary.channel, summary.sender_id, revealed)
    flags = {
        f.event_id: f
        for f in session.scalars(
            select(MessageFlag).where(MessageFlag.sender_id == summary.sender_id)
        )
    }
    turns: list[Turn] = []
    for entry in load_transcript(tracker, summary.sender_id):
        if entry.kind == "action" and entry.name in HIDDEN_ACTIONS:
            continue
        if entry.kind == "other":
            continue
        turn = Turn(entry, masker.text(entry.text))
        if entry.kind == "user":
            turn.low = entry.low_confidence(threshold)
            turn.details = [f"{name}={masker.text(value)}" for name, value in entry.entities]
            turn.flag = flags.get(entry.event_id)
        elif entry.kind == "slot":
            turn.text = f"{entry.name} = {masker.text(entry.value) if entry.value else '∅'}"
        elif entry.kind == "bot":
            turn.details = [masker.text(b) for b in entry.buttons]
        turns.append(turn)
    binding = session.scalar(
        select(Citizen)
        .join(ChannelBinding, ChannelBinding.citizen_id == Citizen.id)
        .where(
            ChannelBinding.channel == summary.channel,
            ChannelBinding.channel_user_id == summary.sender_id,
        )
    )
    citizen = None
    if binding is not None:
        citizen = f"{masker.name(binding.full_name)} — {masker.text(binding.cccd)}"
    labels = list(
        session.scalars(
            select(ConversationLabel)
            .where(ConversationLabel.sender_id == summary.sender_id)
            .order_by(ConversationLabel.label)
        )
    )
    comments = [
        (c, masker.text(c.text))
        for c in session.scalars(
            select(ConversationComment)
            .where(ConversationComment.sender_id == summary.sender_id)
            .order_by(ConversationComment.id)
        )
    ]
    handoffs = list(
        session.scalars(
            select(Handoff).where(Handoff.sender_id == summary.sender_id).order_by(Handoff.id)
        )
    )
    return Transcript(
        summary,
        masker.sender(summary.sender_id),
        citizen,
        revealed,
        turns,
        labels,
        comments,
        handoffs,
    )

"""Database schema (SQLAlchemy 1.4, 2.0 style). Changes go through Alembic migrations."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, registry, relationship

from bot.core.clock import utcnow
from bot.core.lifecycles import (
    ATTEMPT,
    DELIVERY,
    DOSSIER,
    DRAFT,
    HANDOFF,
    HANDOFF_REPLY,
    PAYMENT,
    PAYMENT_CALLBACK,
    REMINDER,
    AttemptOutcome,
    DeliveryStatus,
    DraftState,
    HandoffReplyStatus,
    HandoffStatus,
    ReminderState,
)

if TYPE_CHECKING:

    class DeclarativeMeta(type):
        """SQLAlchemy 1.4 ships no type information, so its metaclass is `Any` to mypy, which
        refuses an `Any` metaclass; a `type` subclass is what mypy needs to know of it."""

else:
    from sqlalchemy.orm import DeclarativeMeta

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

mapper_registry = registry(metadata=MetaData(naming_convention=NAMING))


class Base(metaclass=DeclarativeMeta):
    """Declarative base spelled out as a class (SQLAlchemy 1.4's typed form), so type checkers
    see the models as classes."""

    __abstract__ = True
    registry = mapper_registry
    metadata = mapper_registry.metadata
    if TYPE_CHECKING:
        # Set up by the metaclass on each mapped class.
        __table__: ClassVar[Table]

        # The registry's constructor sets mapped attributes from keyword arguments.
        def __init__(self, **kwargs: Any) -> None: ...

    else:
        __init__ = mapper_registry.constructor


class KeyedBase(Base):
    """A table whose rows are known by a surrogate integer key."""

    __abstract__ = True
    id: Mapped[int] = Column(Integer, primary_key=True)


def _created() -> Column:
    return Column(DateTime, nullable=False, default=utcnow)


def _updated() -> Column:
    return Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)


class Timestamped:
    """When a row was created and last changed (SQLAlchemy copies mixin columns per table)."""

    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Citizen(Timestamped, KeyedBase):
    """Mirror of what the national population database returns for one person."""

    __tablename__ = "citizens"
    cccd: Mapped[str] = Column(String(12), nullable=False, unique=True)
    full_name: Mapped[str] = Column(String(120), nullable=False)
    date_of_birth: Mapped[dt.date] = Column(Date, nullable=False, index=True)
    sex: Mapped[str] = Column(String(1), nullable=False)
    phone: Mapped[str | None] = Column(String(15), index=True)
    email: Mapped[str | None] = Column(String(254))
    permanent_address: Mapped[str | None] = Column(String(255))
    temporary_address: Mapped[str | None] = Column(String(255))
    commune: Mapped[str | None] = Column(String(120), index=True)
    __table_args__ = (CheckConstraint("sex IN ('M', 'F')", name="sex"),)


class Business(Timestamped, KeyedBase):
    __tablename__ = "businesses"
    tax_code: Mapped[str] = Column(String(14), nullable=False, unique=True)
    name: Mapped[str] = Column(String(255), nullable=False)
    address: Mapped[str | None] = Column(String(255))
    commune: Mapped[str | None] = Column(String(120), index=True)
    phone: Mapped[str | None] = Column(String(15))
    email: Mapped[str | None] = Column(String(254))
    representative_id: Mapped[int | None] = Column(
        ForeignKey("citizens.id", ondelete="SET NULL"), index=True
    )
    representative = relationship(Citizen)


class Record(Timestamped, KeyedBase):
    """Any document or event the state holds about a person or business.

    One generic table (kind + number + dates + attributes) instead of a table per kind: the
    catalogue says which kind triggers which service, and scans filter by (kind, date).
    """

    __tablename__ = "records"
    kind: Mapped[str] = Column(String(40), nullable=False)
    number: Mapped[str] = Column(String(60), nullable=False)
    citizen_id: Mapped[int | None] = Column(
        ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )
    business_id: Mapped[int | None] = Column(
        ForeignKey("businesses.id", ondelete="CASCADE"), index=True
    )
    issued_on: Mapped[dt.date | None] = Column(Date)
    valid_until: Mapped[dt.date | None] = Column(Date)
    event_date: Mapped[dt.date | None] = Column(Date)
    attributes: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    source: Mapped[str] = Column(String(40), nullable=False, default="import")
    __table_args__ = (
        UniqueConstraint("kind", "number", name="uq_records_kind_number"),
        CheckConstraint("citizen_id IS NOT NULL OR business_id IS NOT NULL", name="has_subject"),
        Index("ix_records_kind_valid_until", "kind", "valid_until"),
        Index("ix_records_kind_event_date", "kind", "event_date"),
    )


class ChannelSender:
    """The key of a channel sender (channel, conversation id), shared by the rows that belong
    to one: bindings, link challenges and guards, drafts."""

    channel: Mapped[str] = Column(String(20), nullable=False)
    channel_user_id: Mapped[str] = Column(String(128), nullable=False)


class ChannelBinding(Timestamped, ChannelSender, KeyedBase):
    """Proof that a channel user is a given citizen; the only source of identity in actions."""

    __tablename__ = "channel_bindings"
    citizen_id: Mapped[int] = Column(
        ForeignKey("citizens.id", ondelete="CASCADE"), nullable=False, index=True
    )
    method: Mapped[str] = Column(String(20), nullable=False, default="otp")
    __table_args__ = (
        UniqueConstraint("channel", "channel_user_id", name="uq_channel_bindings_user"),
    )


class Dossier(Timestamped, KeyedBase):
    """An application the citizen consented to: submitted (level 3) or prepared for the office
    (level 2); `code` is what the citizen quotes, `status` follows `lifecycles.DOSSIER`."""

    __tablename__ = "dossiers"
    code: Mapped[str] = Column(String(24), nullable=False, unique=True)
    service_code: Mapped[str] = Column(String(40), nullable=False, index=True)
    citizen_id: Mapped[int | None] = Column(
        ForeignKey("citizens.id", ondelete="SET NULL"), index=True
    )
    business_id: Mapped[int | None] = Column(
        ForeignKey("businesses.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = Column(String(20), nullable=False, index=True)
    fields: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    channel: Mapped[str | None] = Column(String(20))
    idempotency_key: Mapped[str | None] = Column(String(80), unique=True)
    submitted_at: Mapped[dt.datetime | None] = Column(DateTime, index=True)
    expected_on: Mapped[dt.date | None] = Column(Date)
    history = relationship(
        "DossierStatusChange", order_by="DossierStatusChange.id", back_populates="dossier"
    )
    __table_args__ = (CheckConstraint(DOSSIER.check_sql(), name="status"),)


class DossierStatusChange(KeyedBase):
    __tablename__ = "dossier_status_history"
    dossier_id: Mapped[int] = Column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = Column(String(20), nullable=False)
    note: Mapped[str | None] = Column(Text)
    changed_by: Mapped[str] = Column(String(80), nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    dossier = relationship(Dossier, back_populates="history")
    __table_args__ = (CheckConstraint(DOSSIER.check_sql(), name="status"),)


class Consent(KeyedBase):
    """What the citizen saw and agreed to, kept even when their chat history is erased."""

    __tablename__ = "consents"
    citizen_id: Mapped[int | None] = Column(
        ForeignKey("citizens.id", ondelete="SET NULL"), index=True
    )
    service_code: Mapped[str] = Column(String(40), nullable=False)
    dossier_id: Mapped[int | None] = Column(
        ForeignKey("dossiers.id", ondelete="SET NULL"), index=True
    )
    shown: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    channel: Mapped[str] = Column(String(20), nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    # The minor the consenting parent acted for (the dossier's citizen); None for one's own.
    acting_for_citizen_id: Mapped[int | None] = Column(
        ForeignKey("citizens.id", ondelete="SET NULL"), index=True
    )


class Reminder(Timestamped, KeyedBase):
    """Outbox of proactive reminders; the unique key makes scans idempotent."""

    __tablename__ = "reminders"
    subject_type: Mapped[str] = Column(String(10), nullable=False)
    subject_id: Mapped[int] = Column(Integer, nullable=False)
    service_code: Mapped[str] = Column(String(40), nullable=False)
    event_key: Mapped[str] = Column(String(80), nullable=False)
    stage: Mapped[int] = Column(SmallInteger, nullable=False)
    record_id: Mapped[int | None] = Column(ForeignKey("records.id", ondelete="SET NULL"))
    due_on: Mapped[dt.date] = Column(Date, nullable=False)
    state: Mapped[str] = Column(String(16), nullable=False, default=ReminderState.PENDING)
    send_after: Mapped[dt.datetime | None] = Column(DateTime)
    attempts: Mapped[int] = Column(SmallInteger, nullable=False, default=0)
    last_error: Mapped[str | None] = Column(Text)
    __table_args__ = (
        UniqueConstraint(
            "subject_type",
            "subject_id",
            "service_code",
            "event_key",
            "stage",
            name="uq_reminders_event_stage",
        ),
        CheckConstraint("subject_type IN ('citizen', 'business')", name="subject_type"),
        CheckConstraint(REMINDER.check_sql(), name="state"),
        Index("ix_reminders_state_send_after", "state", "send_after"),
        Index("ix_reminders_subject", "subject_type", "subject_id"),
    )


class SatisfactionRating(KeyedBase):
    __tablename__ = "satisfaction_ratings"
    dossier_id: Mapped[int | None] = Column(
        ForeignKey("dossiers.id", ondelete="SET NULL"), index=True
    )
    citizen_id: Mapped[int | None] = Column(
        ForeignKey("citizens.id", ondelete="SET NULL"), index=True
    )
    service_code: Mapped[str | None] = Column(String(40), index=True)
    rating: Mapped[int] = Column(SmallInteger, nullable=False)
    comment: Mapped[str | None] = Column(Text)
    channel: Mapped[str | None] = Column(String(20))
    created_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow, index=True)
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)


class Officer(Timestamped, KeyedBase):
    __tablename__ = "officers"
    username: Mapped[str] = Column(String(64), nullable=False, unique=True)
    password_hash: Mapped[str] = Column(String(255), nullable=False)
    role: Mapped[str] = Column(String(16), nullable=False)
    active: Mapped[bool] = Column(Boolean, nullable=False, default=True)
    last_login_at: Mapped[dt.datetime | None] = Column(DateTime)
    __table_args__ = (CheckConstraint("role IN ('officer', 'supervisor', 'admin')", name="role"),)


class AuditEntry(KeyedBase):
    """Who touched which personal data or privileged function, and why."""

    __tablename__ = "audit_log"
    actor: Mapped[str] = Column(String(80), nullable=False, index=True)
    action: Mapped[str] = Column(String(60), nullable=False, index=True)
    target_type: Mapped[str | None] = Column(String(40))
    target_id: Mapped[str | None] = Column(String(80))
    detail: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow, index=True)


class LinkChallenge(ChannelSender, KeyedBase):
    """A one-time code sent to the registry phone of an ID number, for one channel sender.

    Unknown ID numbers get a row too (without a citizen and without an SMS), so the per-ID rate
    limit and the answers are the same whether or not the number exists.
    """

    __tablename__ = "link_challenges"
    id_digest: Mapped[str] = Column(String(64), nullable=False)
    citizen_id: Mapped[int | None] = Column(ForeignKey("citizens.id", ondelete="CASCADE"))
    code_digest: Mapped[str] = Column(String(64), nullable=False)
    expires_at: Mapped[dt.datetime] = Column(DateTime, nullable=False)
    consumed_at: Mapped[dt.datetime | None] = Column(DateTime)
    created_at: Mapped[dt.datetime] = _created()
    __table_args__ = (
        Index("ix_link_challenges_sender", "channel", "channel_user_id", "created_at"),
        Index("ix_link_challenges_id_digest", "id_digest", "created_at"),
    )


class LinkGuard(ChannelSender, KeyedBase):
    """Wrong-code counter and lock per channel sender (brute-force protection)."""

    __tablename__ = "link_guards"
    failures: Mapped[int] = Column(SmallInteger, nullable=False, default=0)
    locked_until: Mapped[dt.datetime | None] = Column(DateTime)
    updated_at: Mapped[dt.datetime] = _updated()
    __table_args__ = (UniqueConstraint("channel", "channel_user_id", name="uq_link_guards_user"),)


class DossierDraft(Timestamped, ChannelSender, KeyedBase):
    """A pre-filled dossier being completed in a conversation, before consent."""

    __tablename__ = "dossier_drafts"
    citizen_id: Mapped[int] = Column(
        ForeignKey("citizens.id", ondelete="CASCADE"), nullable=False, index=True
    )
    business_id: Mapped[int | None] = Column(ForeignKey("businesses.id", ondelete="CASCADE"))
    record_id: Mapped[int | None] = Column(ForeignKey("records.id", ondelete="SET NULL"))
    service_code: Mapped[str] = Column(String(40), nullable=False)
    values: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    typed: Mapped[list[str]] = Column(JSON, nullable=False, default=list)
    state: Mapped[str] = Column(String(12), nullable=False, default=DraftState.OPEN)
    dossier_id: Mapped[int | None] = Column(ForeignKey("dossiers.id", ondelete="SET NULL"))
    __table_args__ = (
        Index("ix_dossier_drafts_sender", "channel", "channel_user_id", "state"),
        CheckConstraint(DRAFT.check_sql(), name="state"),
    )


class DossierCounter(Base):
    """Per-day sequence behind dossier codes (PREFIX-YYMMDD-NNNNN)."""

    __tablename__ = "dossier_counters"
    day: Mapped[dt.date] = Column(Date, primary_key=True)
    last: Mapped[int] = Column(Integer, nullable=False, default=0)


class ReminderPreference(KeyedBase):
    """A citizen's 'stop' or 'remind me later', for one service or all (service_code '*')."""

    __tablename__ = "reminder_preferences"
    citizen_id: Mapped[int] = Column(ForeignKey("citizens.id", ondelete="CASCADE"), nullable=False)
    service_code: Mapped[str] = Column(String(40), nullable=False)
    stopped: Mapped[bool] = Column(Boolean, nullable=False, default=False)
    postponed_until: Mapped[dt.date | None] = Column(Date)
    updated_at: Mapped[dt.datetime] = _updated()
    __table_args__ = (
        UniqueConstraint("citizen_id", "service_code", name="uq_reminder_preferences_service"),
    )


class Handoff(KeyedBase):
    """A request to talk to an officer; while open, the bot stays silent in that conversation."""

    __tablename__ = "handoffs"
    sender_id: Mapped[str] = Column(String(160), nullable=False, index=True)
    channel: Mapped[str] = Column(String(20), nullable=False)
    citizen_id: Mapped[int | None] = Column(ForeignKey("citizens.id", ondelete="SET NULL"))
    status: Mapped[str] = Column(String(10), nullable=False, default=HandoffStatus.OPEN, index=True)
    reason: Mapped[str | None] = Column(Text)
    officer: Mapped[str | None] = Column(String(64))
    created_at: Mapped[dt.datetime] = _created()
    taken_at: Mapped[dt.datetime | None] = Column(DateTime)
    closed_at: Mapped[dt.datetime | None] = Column(DateTime)
    __table_args__ = (CheckConstraint(HANDOFF.check_sql(), name="status"),)


class WebhookEvent(KeyedBase):
    """Ids of inbound webhook events already accepted, so a provider's retry is handled once."""

    __tablename__ = "webhook_events"
    channel: Mapped[str] = Column(String(20), nullable=False)
    event_id: Mapped[str] = Column(String(128), nullable=False)
    created_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow, index=True)
    __table_args__ = (UniqueConstraint("channel", "event_id", name="uq_webhook_events_event"),)


class ButtonPayload(Base):
    """Short id → Rasa payload, for channels that cannot carry the payload itself (Telegram's
    64-byte callback_data, Zalo button payloads)."""

    __tablename__ = "button_payloads"
    id: Mapped[str] = Column(String(24), primary_key=True)
    payload: Mapped[str] = Column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = _created()


class ConversationButtons(Base):
    """The last buttons offered in a text-only conversation (SMS), so a reply "1" maps back."""

    __tablename__ = "conversation_buttons"
    sender_id: Mapped[str] = Column(String(160), primary_key=True)
    payloads: Mapped[list[str]] = Column(JSON, nullable=False, default=list)
    updated_at: Mapped[dt.datetime] = _updated()


class ChannelActivity(Base):
    """When a channel user last wrote to us: decides whether Zalo's free reply window is open."""

    __tablename__ = "channel_activity"
    sender_id: Mapped[str] = Column(String(160), primary_key=True)
    channel: Mapped[str] = Column(String(20), nullable=False)
    last_inbound_at: Mapped[dt.datetime] = Column(DateTime, nullable=False)


class ZaloToken(Base):
    """The OA access token and its single-use refresh token; refreshed under a row lock."""

    __tablename__ = "zalo_tokens"
    name: Mapped[str] = Column(String(40), primary_key=True)
    access_token: Mapped[str] = Column(Text, nullable=False)
    refresh_token: Mapped[str] = Column(Text, nullable=False)
    expires_at: Mapped[dt.datetime] = Column(DateTime, nullable=False)
    refreshes: Mapped[int] = Column(Integer, nullable=False, default=0)
    updated_at: Mapped[dt.datetime] = _updated()


class Delivery(Timestamped, KeyedBase):
    """One proactive message on one channel; unique per (idempotency key, channel)."""

    __tablename__ = "deliveries"
    idempotency_key: Mapped[str] = Column(String(80), nullable=False)
    channel: Mapped[str] = Column(String(20), nullable=False)
    citizen_id: Mapped[int | None] = Column(
        ForeignKey("citizens.id", ondelete="SET NULL"), index=True
    )
    recipient: Mapped[str] = Column(String(254), nullable=False)
    kind: Mapped[str] = Column(String(60), nullable=False)
    status: Mapped[str] = Column(String(10), nullable=False, default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = Column(SmallInteger, nullable=False, default=0)
    provider_message_id: Mapped[str | None] = Column(String(120))
    last_error: Mapped[str | None] = Column(Text)
    sent_at: Mapped[dt.datetime | None] = Column(DateTime)
    __table_args__ = (
        UniqueConstraint("idempotency_key", "channel", name="uq_deliveries_key_channel"),
        CheckConstraint(DELIVERY.check_sql(), name="status"),
    )


class DeliveryAttempt(KeyedBase):
    """Every send attempt, written before the request leaves and completed after."""

    __tablename__ = "delivery_attempts"
    delivery_id: Mapped[int] = Column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: Mapped[int] = Column(SmallInteger, nullable=False)
    outcome: Mapped[str] = Column(String(10), nullable=False, default=AttemptOutcome.STARTED)
    status_code: Mapped[int | None] = Column(Integer)
    error: Mapped[str | None] = Column(Text)
    started_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = Column(DateTime)
    __table_args__ = (CheckConstraint(ATTEMPT.check_sql(), name="outcome"),)


# --- Officer console (issue 7) -------------------------------------------------------------


class ConversationSummary(KeyedBase):
    """One row per Rasa conversation, derived from the tracker store by `console.indexer`.

    The console lists and filters these instead of aggregating the raw `events` table on every
    request; rebuilt from the events at any time, so it never holds anything the store lacks.
    """

    __tablename__ = "console_conversations"
    sender_id: Mapped[str] = Column(String(255), nullable=False, unique=True)
    channel: Mapped[str] = Column(String(20), nullable=False, index=True)
    first_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, index=True)
    last_at: Mapped[dt.datetime] = Column(DateTime, nullable=False)
    user_messages: Mapped[int] = Column(Integer, nullable=False, default=0)
    low_confidence: Mapped[int] = Column(Integer, nullable=False, default=0)
    fallbacks: Mapped[int] = Column(Integer, nullable=False, default=0)
    handoff: Mapped[bool] = Column(Boolean, nullable=False, default=False)
    rating: Mapped[int | None] = Column(SmallInteger)
    last_intent: Mapped[str | None] = Column(String(80))
    preview: Mapped[str | None] = Column(String(200))
    max_event_id: Mapped[int] = Column(Integer, nullable=False, default=0)
    updated_at: Mapped[dt.datetime] = _updated()
    __table_args__ = (Index("ix_console_conversations_last", "last_at", "id"),)


class ConversationTag(Base):
    """Search terms, intents and services of a conversation (`w:`, `i:`, `s:` prefixes)."""

    __tablename__ = "console_conversation_tags"
    tag: Mapped[str] = Column(String(64), primary_key=True)
    conversation_id: Mapped[int] = Column(
        ForeignKey("console_conversations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ConsoleSyncState(Base):
    """How far the indexer has read the tracker store's events."""

    __tablename__ = "console_sync_state"
    name: Mapped[str] = Column(String(40), primary_key=True)
    last_event_id: Mapped[int] = Column(Integer, nullable=False, default=0)
    updated_at: Mapped[dt.datetime] = _updated()


class ScanRun(Base):
    """One completed due-event scan of a local day: the scheduler's progress (catch-up after
    downtime starts the day after the newest), with how many reminders each service got."""

    __tablename__ = "scan_runs"
    day: Mapped[dt.date] = Column(Date, primary_key=True)
    created: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    finished_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow)


class ConsoleSession(Base):
    """A signed-in officer; the id is a keyed digest of the cookie, never the cookie itself."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = Column(String(64), primary_key=True)
    officer_id: Mapped[int] = Column(
        ForeignKey("officers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    reveals: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    ip: Mapped[str | None] = Column(String(45))
    created_at: Mapped[dt.datetime] = _created()
    last_seen_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, index=True)


class ConversationLabel(KeyedBase):
    """An officer's label on a conversation; the label `keep` exempts it from retention."""

    __tablename__ = "conversation_labels"
    sender_id: Mapped[str] = Column(String(255), nullable=False)
    label: Mapped[str] = Column(String(40), nullable=False, index=True)
    created_by: Mapped[str] = Column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    __table_args__ = (UniqueConstraint("sender_id", "label", name="uq_conversation_labels_label"),)


class ConversationComment(KeyedBase):
    __tablename__ = "conversation_comments"
    sender_id: Mapped[str] = Column(String(255), nullable=False, index=True)
    officer: Mapped[str] = Column(String(64), nullable=False)
    text: Mapped[str] = Column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = _created()


class MessageFlag(KeyedBase):
    """A citizen message the model misunderstood, with the intent an officer says is right.

    The text is stored already masked: it outlives the conversation and goes into `nlu/`.
    """

    __tablename__ = "message_flags"
    sender_id: Mapped[str] = Column(String(255), nullable=False)
    event_id: Mapped[int] = Column(Integer, nullable=False)
    text: Mapped[str] = Column(Text, nullable=False)
    predicted_intent: Mapped[str | None] = Column(String(80))
    confidence_pct: Mapped[int | None] = Column(SmallInteger)
    correct_intent: Mapped[str] = Column(String(80), nullable=False)
    officer: Mapped[str] = Column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    exported_at: Mapped[dt.datetime | None] = Column(DateTime)
    __table_args__ = (UniqueConstraint("sender_id", "event_id", name="uq_message_flags_event"),)


class HandoffReply(KeyedBase):
    """An officer's reply in a hand-off; the form's key makes a double submit send once."""

    __tablename__ = "handoff_replies"
    handoff_id: Mapped[int] = Column(
        ForeignKey("handoffs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str] = Column(String(40), nullable=False, unique=True)
    officer: Mapped[str] = Column(String(64), nullable=False)
    text: Mapped[str | None] = Column(Text)
    status: Mapped[str] = Column(String(10), nullable=False, default=HandoffReplyStatus.SENDING)
    error: Mapped[str | None] = Column(Text)
    created_at: Mapped[dt.datetime] = _created()
    __table_args__ = (CheckConstraint(HANDOFF_REPLY.check_sql(), name="status"),)


class Payment(Timestamped, KeyedBase):
    """The fee of one submitted dossier: what is owed, by when, and whether it was paid.
    `reference` is the dossier code, the transfer content a bank statement carries."""

    __tablename__ = "payments"
    dossier_id: Mapped[int] = Column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    reference: Mapped[str] = Column(String(24), nullable=False, unique=True)
    amount: Mapped[int] = Column(BigInteger, nullable=False)
    status: Mapped[str] = Column(String(10), nullable=False, index=True)
    due_at: Mapped[dt.datetime] = Column(DateTime, nullable=False)
    pay_url: Mapped[str | None] = Column(String(500))
    paid_at: Mapped[dt.datetime | None] = Column(DateTime, index=True)
    transaction_id: Mapped[str | None] = Column(String(64), unique=True)
    receipt_no: Mapped[str | None] = Column(String(24), unique=True)
    dossier = relationship(Dossier)
    __table_args__ = (
        CheckConstraint(PAYMENT.check_sql(), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )


class PaymentCallback(KeyedBase):
    """Every authenticated payment callback, once per transaction id: applied, or kept as a
    mismatch (wrong amount, unknown reference, a dossier no longer payable) for an officer."""

    __tablename__ = "payment_callbacks"
    transaction_id: Mapped[str] = Column(String(64), nullable=False, unique=True)
    reference: Mapped[str] = Column(String(40), nullable=False, index=True)
    amount: Mapped[int] = Column(BigInteger, nullable=False)
    payment_id: Mapped[int | None] = Column(ForeignKey("payments.id", ondelete="SET NULL"))
    outcome: Mapped[str] = Column(String(10), nullable=False, index=True)
    reason: Mapped[str | None] = Column(String(200))
    body: Mapped[dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    received_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow)
    resolved_by: Mapped[str | None] = Column(String(64))
    resolution: Mapped[str | None] = Column(Text)
    resolved_at: Mapped[dt.datetime | None] = Column(DateTime)
    __table_args__ = (CheckConstraint(PAYMENT_CALLBACK.check_sql(), name="outcome"),)


# Composite indexes for the console's filtered lists (filter column, then the list's order).
_S = ConversationSummary
Index("ix_console_conversations_channel_last", _S.channel, _S.last_at)
Index("ix_console_conversations_handoff_last", _S.handoff, _S.last_at)
Index("ix_console_conversations_rating_last", _S.rating, _S.last_at)


class LookupAttempt(KeyedBase):
    """A failed status lookup by dossier code from a sender who is not linked (wrong last four
    digits, or an unknown code: the same thing to the sender). Only failures are kept, keyed by
    a keyed digest of the sender id and by the code as typed, never the digits; the per-sender
    and per-code limits of `bot.dossiers.lookup` count these rows, which expire with the longer
    of the two windows."""

    __tablename__ = "lookup_attempts"
    sender_digest: Mapped[str] = Column(String(64), nullable=False)
    code: Mapped[str] = Column(String(24), nullable=False)
    created_at: Mapped[dt.datetime] = Column(DateTime, nullable=False, default=utcnow, index=True)
    __table_args__ = (
        Index("ix_lookup_attempts_sender", "sender_digest", "created_at"),
        Index("ix_lookup_attempts_code", "code", "created_at"),
    )


class ParentChild(Timestamped, KeyedBase):
    """A parent or guardian of a child as the population data names them (import kind
    `parent_child`): the only source of who may see and act for a minor
    (`bot.identity.family`), never what a sender types. `ended_on` closes a guardianship or a
    corrected relation; rows are never deleted by an import."""

    __tablename__ = "parent_child"
    parent_id: Mapped[int] = Column(
        ForeignKey("citizens.id", ondelete="CASCADE"), nullable=False, index=True
    )
    child_id: Mapped[int] = Column(
        ForeignKey("citizens.id", ondelete="CASCADE"), nullable=False, index=True
    )
    relation: Mapped[str] = Column(String(10), nullable=False)
    ended_on: Mapped[dt.date | None] = Column(Date)
    __table_args__ = (
        UniqueConstraint("parent_id", "child_id", name="uq_parent_child_pair"),
        CheckConstraint("parent_id <> child_id", name="not_self"),
        CheckConstraint("relation IN ('cha', 'me', 'giam_ho')", name="relation"),
    )

"""Officer console logic without HTTP: indexing Rasa's tracker store, retention, reports,
masking."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.models import (
    AuditEntry,
    ChannelBinding,
    ConversationLabel,
    ConversationSummary,
    ConversationTag,
    Delivery,
    Dossier,
    DossierDraft,
    Handoff,
    Reminder,
)
from bot.core.tracker_store import events
from bot.governance.reports import OVERALL, build_report, session_start
from console.indexer import summarize, sync, sync_all, words
from console.masking import Masker, mask_sender
from console.retention import purge_expired
from console.tracker import parse_event
from tests import factories
from tests.console_support import Conversation, tracker_engine


def summary(engine: Engine, sender: str) -> ConversationSummary | None:
    with unit_of_work(engine) as session:
        return session.scalar(
            select(ConversationSummary).where(ConversationSummary.sender_id == sender)
        )


def test_words_fold_accents_and_skip_id_numbers() -> None:
    assert words("Gia HẠN tạm trú, số 066190001234 mã DLK-261123-00001") == {
        "gia",
        "han",
        "tam",
        "tru",
        "so",
        "ma",
        "dlk",
        "261123",
        "00001",
    }


async def test_the_index_reads_what_rasas_own_tracker_store_writes(
    engine: Engine, tmp_path: Path
) -> None:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "rasa.db"))
    tracker = DialogueStateTracker.from_events(
        "zalo:123456789",
        [
            ActionExecuted("action_listen"),
            UserUttered(
                "đổi bằng lái hết bao nhiêu",
                intent={"name": "ask_fee", "confidence": 0.42},
                entities=[{"entity": "service", "value": "gplx_doi", "start": 0, "end": 8}],
                input_channel="zalo",
            ),
            ActionExecuted("action_answer_procedure"),
            BotUttered("Lệ phí đổi giấy phép lái xe là 135.000 đồng."),
        ],
    )
    await store.save(tracker)
    rasa_engine = store.engine
    assert sync_all(engine, rasa_engine) == 4
    row = summary(engine, "zalo:123456789")
    assert row is not None and row.channel == "zalo" and row.user_messages == 1
    assert row.low_confidence == 1 and row.fallbacks == 0 and row.last_intent == "ask_fee"
    with unit_of_work(engine) as session:
        tags = set(session.scalars(select(ConversationTag.tag)))
    assert {"i:ask_fee", "s:gplx_doi", "w:bang", "w:lai", "w:135"} <= tags


def test_sync_is_incremental_and_catches_late_commits(engine: Engine, tmp_path: Path) -> None:
    tracker = tracker_engine(tmp_path)
    talk = Conversation(tracker, "telegram:1", "telegram")
    talk.user("alo", "greet")
    assert sync(engine, tracker) == 2  # the user event and action_listen
    assert sync(engine, tracker) == 0
    talk.user("hồ sơ của tôi", "check_status")
    sync(engine, tracker)
    assert summary(engine, "telegram:1").user_messages == 2

    # A transaction that took id 40 commits after another one's id 50 was indexed
    # (PostgreSQL assigns ids at insert, not at commit): the look-back still finds it.
    def insert(event_id: int, sender: str) -> None:
        with tracker.begin() as conn:
            conn.execute(
                events.insert().values(
                    id=event_id,
                    sender_id=sender,
                    type_name="user",
                    timestamp=utcnow().timestamp(),
                    data='{"event": "user", "text": "alo"}',
                )
            )

    insert(50, "telegram:3")
    sync(engine, tracker)
    insert(40, "telegram:2")
    assert sync(engine, tracker) == 0  # nothing new above the watermark…
    assert summary(engine, "telegram:2") is not None  # …but the late event is indexed
    with unit_of_work(engine) as session:
        assert session.scalar(select(func.count()).select_from(ConversationSummary)) == 3
    tracker.dispose()


def test_summarize_flags_handoff_rating_and_external_intents() -> None:
    now = utcnow().timestamp()
    rows = [
        (
            1,
            "user",
            now,
            '{"text": "5 sao", "input_channel": "sms", "parse_data": '
            '{"intent": {"name": "rate_service", "confidence": 0.99}, "entities": '
            '[{"entity": "rating", "value": "5"}]}}',
        ),
        (
            2,
            "user",
            now + 1,
            '{"text": null, "parse_data": {"intent": '
            '{"name": "EXTERNAL_reminder", "confidence": 1.0}}}',
        ),
        (3, "action", now + 2, '{"name": "action_handoff"}'),
        (4, "pause", now + 3, "{}"),
        (5, "weird", now + 4, "not json"),
    ]
    entries = [parse_event(*row) for row in rows]
    digest = summarize("sms:0905123456", entries, 0.6)
    assert digest.values["rating"] == 5 and digest.values["handoff"] is True
    assert digest.values["user_messages"] == 1  # the reminder is not a citizen message
    assert digest.values["channel"] == "sms"


def test_retention_purges_by_period_keeps_labelled_and_audits(
    engine: Engine, tmp_path: Path
) -> None:
    tracker = tracker_engine(tmp_path)
    old = utcnow().timestamp() - 200 * 86400
    for sender, channel in (
        ("telegram:anon", "telegram"),
        ("zalo:linked", "zalo"),
        ("zalo:kept", "zalo"),
    ):
        talk = Conversation(tracker, sender, channel, start=old)
        talk.user("xin chào", "greet")
        talk.clock = utcnow().timestamp() - 60
        talk.user("tôi cần hỗ trợ", "help")
    with unit_of_work(engine) as session:
        citizen = factories.citizen(session)
        session.add(
            ChannelBinding(channel="zalo", channel_user_id="zalo:linked", citizen_id=citizen.id)
        )
        session.add(ConversationLabel(sender_id="zalo:kept", label="keep", created_by="canbo"))
        session.add(
            Handoff(
                sender_id="telegram:anon",
                channel="telegram",
                reason="số 0905123456",
                created_at=utcnow() - dt.timedelta(days=199),
            )
        )
    sync_all(engine, tracker)
    dry = purge_expired(engine, tracker, anonymous_days=90, linked_days=365, dry_run=True)
    assert (dry.conversations, dry.events, dry.kept) == (1, 2, 1)
    report = purge_expired(engine, tracker, anonymous_days=90, linked_days=365)
    assert (report.conversations, report.events) == (1, 2)
    with tracker.connect() as conn:
        left = dict(
            conn.execute(
                select(events.c.sender_id, func.count()).group_by(events.c.sender_id)
            ).all()
        )
    assert left == {"telegram:anon": 2, "zalo:linked": 4, "zalo:kept": 4}
    assert summary(engine, "telegram:anon").user_messages == 1
    with unit_of_work(engine) as session:
        assert session.scalar(select(Handoff.reason)) is None
        audits = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "retention.purge")
        ).all()
    assert len(audits) == 2 and audits[-1].detail["events"] == 2
    report = purge_expired(engine, tracker, anonymous_days=90, linked_days=30)
    assert report.conversations == 1  # now the linked one is past its period too
    tracker.dispose()


def test_session_start_is_the_first_message_without_a_long_gap() -> None:
    stamps = [0.0, 100.0, 5000.0, 5100.0, 5200.0]
    assert session_start(stamps, 5250.0) == 5000.0
    assert session_start(stamps, 150.0) == 0.0
    assert session_start([], 10.0) is None


def test_report_reminders_and_submission_times(engine: Engine, tmp_path: Path) -> None:
    tracker = tracker_engine(tmp_path)
    now = utcnow()
    with unit_of_work(engine) as session:
        citizen = factories.citizen(session)
        reminder = Reminder(
            subject_type="citizen",
            subject_id=citizen.id,
            service_code="gplx_doi",
            event_key="k",
            stage=1,
            due_on=now.date(),
            state="sent",
            created_at=now - dt.timedelta(hours=5),
        )
        session.add(reminder)
        session.flush()
        session.add(
            Delivery(
                idempotency_key=f"reminder:{reminder.id}",
                channel="sms",
                recipient="sms:0905123456",
                kind="EXTERNAL_reminder",
                status="sent",
                sent_at=now - dt.timedelta(hours=4),
            )
        )
        dossier = Dossier(
            code="DLK-261123-00009",
            service_code="gplx_doi",
            citizen_id=citizen.id,
            status="received",
            fields={},
            submitted_at=now - dt.timedelta(hours=1),
        )
        session.add(dossier)
        session.flush()
        session.add(
            DossierDraft(
                channel="zalo",
                channel_user_id="zalo:5",
                citizen_id=citizen.id,
                service_code="gplx_doi",
                state="submitted",
                dossier_id=dossier.id,
            )
        )
    talk = Conversation(
        tracker, "zalo:5", "zalo", start=(now - dt.timedelta(hours=1, minutes=4)).timestamp()
    )
    talk.user("tôi muốn đổi bằng lái", "request_service")
    with unit_of_work(engine) as session:
        report = build_report(session, now - dt.timedelta(days=1), now, tracker)
    ind = report[OVERALL]
    assert (ind.reminders_sent, ind.reminders_delivered, ind.reminders_converted) == (1, 1, 1)
    assert ind.median_reminder_to_dossier == dt.timedelta(hours=3)
    assert (
        dt.timedelta(minutes=3) < ind.median_first_message_to_submission < dt.timedelta(minutes=5)
    )
    assert report["gplx_doi"].dossiers == {"received": 1}
    tracker.dispose()


def test_masker_masks_known_values_and_numbers() -> None:
    masker = Masker([("Nguyễn Văn An", "N. V. A***")])
    assert masker.text("Chào NGUYỄN VĂN AN, số 0905123456") == "Chào N. V. A***, số 09******56"
    assert Masker(revealed=True).text("0905123456") == "0905123456"
    assert mask_sender("sms:0905123456") == "sms:09******56"
    assert mask_sender("telegram:123456789") == "telegram:******789"
    assert mask_sender("abc") == "***"

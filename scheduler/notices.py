"""Status and payment notices: each officer or gateway status change, each receipt and each
unpaid-fee reminder is told to the citizen once (the delivery key)."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.lifecycles import DossierStatus
from bot.core.models import Dossier, DossierStatusChange
from bot.delivery.deliverer import Notice
from bot.dossiers.messages import RATING_QUESTION
from bot.dossiers.notices import status_text
from bot.dossiers.ownership import addressee
from bot.dossiers.submission import STATUS_LABELS
from bot.payments.notices import PaymentMessage, receipts_to_send, reminders_to_send
from bot.payments.settings import PaymentSettings
from bot.service.satisfaction import survey_after, survey_key
from scheduler.dispatch import Deliver, DispatchConfig, local

log = logging.getLogger(__name__)
LOOKBACK = dt.timedelta(days=2)


async def send_status_notices(
    engine: Engine, deliver: Deliver, now: dt.datetime | None = None
) -> int:
    """Deliver notices for recent status changes not made by the citizen (idempotent per change)."""
    now = now or utcnow()
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(
                DossierStatusChange.id,
                DossierStatusChange.status,
                DossierStatusChange.note,
                Dossier.code,
                addressee(),
            )
            .join(Dossier, Dossier.id == DossierStatusChange.dossier_id)
            .where(
                DossierStatusChange.created_at >= now - LOOKBACK,
                DossierStatusChange.changed_by != "citizen",
                Dossier.citizen_id.is_not(None),
            )
            .order_by(DossierStatusChange.id)
        ).all()
    sent = 0
    for change_id, status, note, code, citizen_id in rows:
        notice = Notice(
            text=status_text(code, status, note),
            intent="EXTERNAL_dossier_status",
            entities={"dossier_code": code, "status": status},
            kind="dossier_status",
            values={"dossier_code": code, "status": STATUS_LABELS.get(status, status)},
            subject=f"Hồ sơ {code}: {STATUS_LABELS.get(status, status)}",
        )
        result = await deliver(citizen_id, notice, f"status:{change_id}")
        sent += result.status == "sent"
        if result.status == "deferred":
            break  # our own service is down; the next round asks again (idempotent per change)
        if result.channel == "zns" and status == DossierStatus.COMPLETED:
            await _survey_by_template(deliver, citizen_id, code)
    return sent


async def _survey_by_template(deliver: Deliver, citizen_id: int, code: str) -> None:
    """A completion told by a Zalo template reached no conversation, so no one asked the
    rating there: the OA's 1–5 star template asks it (connectors/zalo.py records the answer),
    and nothing else does (a bare "5" by SMS, out of any conversation, would be misread)."""
    if survey_after() != "completion":
        return
    survey = Notice(
        text=RATING_QUESTION,
        kind="satisfaction",
        values={"dossier_code": code},
        subject=f"Đánh giá hồ sơ {code}",
        only_channels=("zns",),
    )
    await deliver(citizen_id, survey, survey_key(code))


async def send_payment_notices(
    engine: Engine, deliver: Deliver, now: dt.datetime | None = None
) -> int:
    """Receipts at any hour; reminders of unpaid fees only in the reminder hours."""
    now, hours = now or utcnow(), DispatchConfig.from_env()
    with unit_of_work(engine) as session:
        messages = receipts_to_send(session, now)
        if hours.start <= local(now).time() < hours.end:
            messages += reminders_to_send(session, PaymentSettings.from_env(), now)
    return await _deliver_all(deliver, messages)


async def _deliver_all(deliver: Deliver, messages: list[PaymentMessage]) -> int:
    sent = 0
    for message in messages:
        result = await deliver(message.citizen_id, message.notice, message.key)
        sent += result.status == "sent"
        if result.status == "deferred":
            break  # our own service is down; the next round asks again (idempotent per key)
    return sent

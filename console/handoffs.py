"""Hand-off queue: take a request, reply through the citizen's channel, close it (which hands
the conversation back to the bot through Rasa's API)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.lifecycles import (
    HANDOFF,
    HANDOFF_ACTIVE,
    HANDOFF_REPLY,
    HandoffReplyStatus,
    HandoffStatus,
)
from bot.core.models import ConversationSummary, Handoff, HandoffReply
from bot.governance import audit
from bot.service.handoffs import close_handoff
from console.auth import CurrentOfficer
from console.channels import ChannelError, RasaApi, ReplySender
from console.masking import Masker
from console.timefmt import waited

log = logging.getLogger(__name__)
MAX_REPLY = 2000


@dataclass(frozen=True)
class QueueRow:
    id: int
    sender: str
    channel: str
    status: str
    officer: str | None
    created_at: dt.datetime
    waited: str
    reason: str
    conversation_id: int | None


def queue(session: Session, now: dt.datetime | None = None) -> list[QueueRow]:
    """Open and taken requests, oldest first, with how long the citizen has been waiting."""
    now = now or utcnow()
    masker = Masker()
    found = session.execute(
        select(Handoff, ConversationSummary.id)
        .outerjoin(ConversationSummary, ConversationSummary.sender_id == Handoff.sender_id)
        .where(Handoff.status.in_(HANDOFF_ACTIVE))
        .order_by(Handoff.created_at, Handoff.id)
        .limit(500)
    ).all()
    return [
        QueueRow(
            h.id,
            masker.sender(h.sender_id),
            h.channel,
            h.status,
            h.officer,
            h.created_at,
            waited(h.created_at, now),
            masker.text(h.reason),
            conversation_id,
        )
        for h, conversation_id in found
    ]


def _audit(session: Session, officer: str, action: str, handoff: Handoff, **detail: object) -> None:
    audit.record(
        session, officer, action, target_type="handoff", target_id=str(handoff.id), detail=detail
    )


def take(session: Session, handoff_id: int, officer: CurrentOfficer) -> str | None:
    """Claim an open request; returns an error message, or None."""
    handoff = session.get(Handoff, handoff_id, with_for_update=True)
    if handoff is None or handoff.status == HandoffStatus.CLOSED:
        return "Yêu cầu không còn mở."
    if handoff.status == HandoffStatus.TAKEN and handoff.officer != officer.username:
        return f"Yêu cầu đã được cán bộ {handoff.officer} nhận."
    HANDOFF.move(handoff, HandoffStatus.TAKEN)
    handoff.officer = officer.username
    handoff.taken_at = handoff.taken_at or utcnow()
    _audit(session, officer.username, "handoff.take", handoff)
    return None


def replies(session: Session, handoff_id: int) -> list[HandoffReply]:
    return list(
        session.scalars(
            select(HandoffReply)
            .where(HandoffReply.handoff_id == handoff_id)
            .order_by(HandoffReply.id)
        )
    )


def _start_reply(
    engine: Engine, handoff_id: int, officer: CurrentOfficer, text: str, key: str
) -> tuple[Handoff | None, str | None]:
    with unit_of_work(engine) as session:
        handoff = session.get(Handoff, handoff_id)
        if (
            handoff is None
            or handoff.status != HandoffStatus.TAKEN
            or handoff.officer != officer.username
        ):
            return None, "Hãy nhận yêu cầu này trước khi trả lời."
        if session.scalar(select(HandoffReply.id).where(HandoffReply.key == key)) is not None:
            return None, None  # the same form submitted twice: sent once already
        session.add(
            HandoffReply(handoff_id=handoff.id, key=key, officer=officer.username, text=text)
        )
        session.expunge(handoff)
        return handoff, None


def _finish_reply(engine: Engine, key: str, error: str | None, officer: str) -> None:
    with unit_of_work(engine) as session:
        reply = session.scalar(select(HandoffReply).where(HandoffReply.key == key))
        if reply is None:
            return
        HANDOFF_REPLY.move(reply, HandoffReplyStatus.FAILED if error else HandoffReplyStatus.SENT)
        reply.error = error or None
        handoff = session.get(Handoff, reply.handoff_id)
        if handoff is not None:
            _audit(session, officer, "handoff.reply", handoff, status=reply.status)


async def reply(
    engine: Engine,
    sender: ReplySender,
    rasa: RasaApi,
    handoff_id: int,
    officer: CurrentOfficer,
    text: str,
    key: str,
) -> str | None:
    """Send the officer's text to the citizen; returns an error message, or None."""
    text = text.strip()[:MAX_REPLY]
    if not text:
        return "Nội dung trả lời trống."
    if not key or len(key) > 40:
        return "Biểu mẫu không hợp lệ; vui lòng tải lại trang."
    handoff, error = await asyncio.to_thread(_start_reply, engine, handoff_id, officer, text, key)
    if handoff is None:
        return error
    try:
        await sender.send(handoff.channel, handoff.sender_id, text, f"handoff-reply:{key}")
    except ChannelError as exc:
        error = str(exc)
    await asyncio.to_thread(_finish_reply, engine, key, error, officer.username)
    if error is None:
        try:
            await rasa.append_bot(handoff.sender_id, text, officer.username)
        except ChannelError as exc:  # delivered; only the transcript misses it
            log.warning("officer reply not recorded in the tracker: %s", exc)
    return error


def _closable(engine: Engine, handoff_id: int, officer: CurrentOfficer) -> tuple[str, str | None]:
    with unit_of_work(engine) as session:
        handoff = session.get(Handoff, handoff_id)
        if handoff is None or handoff.status == HandoffStatus.CLOSED:
            return "", "Yêu cầu đã được đóng."
        mine = handoff.status != HandoffStatus.TAKEN or handoff.officer == officer.username
        if not mine and not officer.can("supervisor"):
            return "", f"Yêu cầu do cán bộ {handoff.officer} phụ trách."
        return handoff.sender_id, None


def _close(engine: Engine, handoff_id: int, officer: str) -> None:
    with unit_of_work(engine) as session:
        handoff = session.get(Handoff, handoff_id)
        if handoff is not None and handoff.status != HandoffStatus.CLOSED:
            close_handoff(session, handoff, officer)
            _audit(session, officer, "handoff.close", handoff)


async def close(
    engine: Engine, rasa: RasaApi, handoff_id: int, officer: CurrentOfficer
) -> str | None:
    """Resume the bot first, then close: the queue never shows closed what Rasa keeps paused."""
    sender_id, error = await asyncio.to_thread(_closable, engine, handoff_id, officer)
    if error:
        return error
    try:
        await rasa.resume(sender_id)
    except ChannelError as exc:
        return f"{exc} Yêu cầu chưa được đóng; vui lòng thử lại."
    await asyncio.to_thread(_close, engine, handoff_id, officer.username)
    return None

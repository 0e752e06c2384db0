"""Labels and comments on conversations, and the learning loop: misunderstood messages flagged
with the right intent, exported as Rasa NLU YAML for the next training round."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.config import PROJECT_ROOT
from bot.core.models import ConversationComment, ConversationLabel, MessageFlag
from bot.governance import audit
from bot.governance.pii import mask_text
from console.tracker import events, parse_event

KEEP = "keep"
LABEL_TITLES = {KEEP: "Giữ lại (không xóa tự động)"}
_LABEL = re.compile(r"^[\w\- ]{1,40}$")
MAX_COMMENT = 2000


class LabelError(ValueError):
    """Input an officer can correct; the message is Vietnamese."""


@lru_cache(maxsize=4)
def domain_intents(path: Path = PROJECT_ROOT / "domain.yml") -> tuple[str, ...]:
    """Intents a citizen can type (the domain's, without system EXTERNAL_ ones)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    names = [i if isinstance(i, str) else next(iter(i)) for i in data.get("intents", [])]
    return tuple(n for n in names if not n.startswith("EXTERNAL_"))


def add_label(session: Session, sender_id: str, label: str, officer: str) -> None:
    label = " ".join(label.split()).lower()
    if not _LABEL.match(label):
        raise LabelError("Nhãn gồm 1–40 ký tự chữ, số, dấu cách hoặc gạch ngang.")
    exists = session.scalar(
        select(ConversationLabel.id).where(
            ConversationLabel.sender_id == sender_id, ConversationLabel.label == label
        )
    )
    if exists is None:
        session.add(ConversationLabel(sender_id=sender_id, label=label, created_by=officer))
    if label == KEEP:
        _audit(session, officer, "conversation.keep", sender_id, {"keep": True})


def remove_label(session: Session, sender_id: str, label: str, officer: str) -> None:
    session.execute(
        delete(ConversationLabel).where(
            ConversationLabel.sender_id == sender_id, ConversationLabel.label == label
        )
    )
    if label == KEEP:
        _audit(session, officer, "conversation.keep", sender_id, {"keep": False})


def add_comment(session: Session, sender_id: str, officer: str, text: str) -> None:
    text = text.strip()
    if not text:
        raise LabelError("Nội dung ghi chú trống.")
    session.add(ConversationComment(sender_id=sender_id, officer=officer, text=text[:MAX_COMMENT]))


def _audit(session: Session, officer: str, action: str, sender_id: str, detail: dict) -> None:
    audit.record(
        session, officer, action, target_type="conversation", target_id=sender_id, detail=detail
    )


def flag_message(
    session: Session,
    tracker: Engine,
    sender_id: str,
    event_id: int,
    correct_intent: str,
    officer: str,
) -> MessageFlag:
    """Flag one citizen message of this conversation (again = change the chosen intent)."""
    if correct_intent not in domain_intents():
        raise LabelError("Ý định không có trong danh sách.")
    with tracker.connect() as conn:
        row = conn.execute(
            select(events.c.id, events.c.type_name, events.c.timestamp, events.c.data).where(
                events.c.id == event_id, events.c.sender_id == sender_id
            )
        ).first()
    entry = parse_event(row.id, row.type_name, row.timestamp, row.data) if row else None
    if entry is None or not entry.is_citizen or not entry.text:
        raise LabelError("Không tìm thấy tin nhắn của công dân này.")
    flag = session.scalar(
        select(MessageFlag).where(
            MessageFlag.sender_id == sender_id, MessageFlag.event_id == event_id
        )
    )
    if flag is None:
        flag = MessageFlag(sender_id=sender_id, event_id=event_id, officer=officer)
        session.add(flag)
    flag.text = mask_text(" ".join(entry.text.split()))[:1000]
    flag.predicted_intent = entry.intent
    flag.confidence_pct = round(entry.confidence * 100) if entry.confidence is not None else None
    flag.correct_intent = correct_intent
    flag.officer = officer
    flag.exported_at = None
    return flag


def list_flags(session: Session, include_exported: bool = False) -> list[MessageFlag]:
    query = select(MessageFlag).order_by(MessageFlag.id.desc()).limit(1000)
    if not include_exported:
        query = query.where(MessageFlag.exported_at.is_(None))
    return list(session.scalars(query))


def _example(text: str) -> str:
    """One line, without the brackets Rasa would read as an entity annotation."""
    return " ".join(text.replace("[", "(").replace("]", ")").split())


def nlu_yaml(flags: Sequence[MessageFlag]) -> str:
    """Rasa 3 NLU training data (the `nlu/` format), one block per intent."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for flag in flags:
        example = _example(flag.text)
        if example and example not in by_intent[flag.correct_intent]:
            by_intent[flag.correct_intent].append(example)
    lines = [
        "# Messages officers flagged as misunderstood, with the intent they meant.",
        "# ID and phone numbers are masked. Review before adding to nlu/.",
        'version: "3.1"',
        "nlu:",
    ]
    for intent in sorted(by_intent):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {example}" for example in by_intent[intent])
    if not by_intent:
        lines[-1] = "nlu: []"
    return "\n".join(lines) + "\n"


def export_flags(session: Session, officer: str, include_exported: bool = False) -> str:
    flags = list_flags(session, include_exported)
    now = utcnow()
    for flag in flags:
        flag.exported_at = flag.exported_at or now
    audit.record(session, officer, "flags.export", detail={"messages": len(flags)})
    return nlu_yaml(flags)

"""Who has used a citizen's data, and for what: "ai đã xem thông tin của tôi".

Told newest first, from the audit log (`bot.governance.audit.record` writes every entry):

- a draft pre-filled from the registry and the citizen's records (`note_prefill`, called by
  `bot.dossiers.drafts.start_draft`): action "draft.prefill";
- a dossier sent to an agency (level 3), prepared for the citizen to file at an agency
  (level 2), or created there by inter-agency data sharing (level 4, joined to the first):
  `note_sent`, called by `bot.dossiers.submission.submit_draft`: action "dossier.sent";
- an officer who saw the citizen's data unmasked: the console's reveals of one of the
  citizen's dossiers ("dossier.reveal") or conversations ("conversation.reveal"), and a
  supervisor's export of this very list for the citizen (`note_export`: "data_uses.export").

How a citizen's own entries are found. The entries written here name the citizen, never a
conversation or a draft: target_type "citizen" and target_id the citizen's row id (as text).
They survive the erasure of a conversation (drafts and bindings go, the log stays) and cannot
match another citizen. Their detail holds what the sentence needs, as it was at that time
(service and agency names, the kinds of records used), never an ID number, a record number or
a field value. The console's reveals name their record instead (`console.auth.grant_reveal`):
a dossier reveal (target the dossier code) is the citizen's when the dossier, kept forever, is
theirs; a conversation reveal (target the conversation id) when that conversation is bound to
the citizen now and the reveal came after the binding was made or last re-pointed
(`bot.identity.linking.bind`), so a conversation id someone else used before is never this
citizen's history. Known limit: a conversation reveal made through a channel the citizen has
since unlinked (or linked again by another method) is no longer found.

Officers are told by role only, never by user name, with their stated reason (ID and phone
numbers in it masked) and the time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, Service
from bot.core.clock import to_local
from bot.core.models import AuditEntry, ChannelBinding, Dossier, DossierDraft, Officer, Record
from bot.governance import audit
from bot.governance.pii import mask_text

CITIZEN = "citizen"  # target_type of the entries written here; target_id = str(citizen id)
PREFILL = "draft.prefill"
SENT = "dossier.sent"
EXPORT = "data_uses.export"
DOSSIER_REVEAL = "dossier.reveal"  # written by the console: target_id = the dossier code
CONVERSATION_REVEAL = "conversation.reveal"  # target_id = the conversation (sender) id
OWN_ACTIONS = (PREFILL, SENT, EXPORT)

CHAT_LIMIT = 10  # uses told in one chat message
EXPORT_LIMIT = 5000  # uses in a console export

UseKind = Literal["prefill", "sent", "viewed"]
KIND_LABELS: dict[str, str] = {
    "prefill": "Điền sẵn hồ sơ",
    "sent": "Gửi hồ sơ",
    "viewed": "Cán bộ xem dữ liệu",
}
ROLE_LABELS = {"officer": "cán bộ", "supervisor": "lãnh đạo/giám sát", "admin": "quản trị"}
UNKNOWN_ROLE = "cán bộ"
SOURCE_LABELS = {"citizen": "Dữ liệu dân cư", "business": "Dữ liệu đăng ký doanh nghiệp"}

HEADER = "Dữ liệu của Ông/Bà đã được sử dụng như sau (mới nhất trước):"
NONE_YET = (
    "Đến nay dữ liệu của Ông/Bà chưa được dùng để điền sẵn hay gửi hồ sơ, và chưa cán bộ nào "
    "xem dữ liệu đầy đủ của Ông/Bà."
)
MORE = (
    "Trên đây là {count} lần gần nhất. Để nhận danh sách đầy đủ, Ông/Bà đề nghị bộ phận một cửa "
    "(mang theo thẻ căn cước)."
)
FOOTER = "Cán bộ chỉ được xem dữ liệu đầy đủ khi ghi rõ lý do, và mỗi lần xem đều được ghi nhật ký."


@dataclass(frozen=True)
class DataUse:
    """One use of a citizen's data, as the citizen is told it (no officer's name)."""

    at: dt.datetime  # as stored: naive UTC
    kind: UseKind
    data: str  # what was used: "Dữ liệu dân cư, Đăng ký tạm trú", "Hồ sơ DLK-…"
    purpose: str  # for what, or where it went
    role: str | None = None  # the officer's role, for "viewed"
    reason: str | None = None  # the officer's stated reason, for "viewed"


# Writers: the entries that name the citizen.


def _citizen_actor(channel: str | None) -> str:
    """Uses the citizen asked for in a conversation: like erasure, "<channel>:citizen" (no
    officer's user name has a colon)."""
    return f"{channel or 'system'}:citizen"


def note_prefill(
    session: Session, catalogue: Catalogue, service: Service, draft: DossierDraft
) -> None:
    """The registry data and records that pre-filled `draft` (nothing if none was used)."""
    used: list[str] = []
    for field in service.fields:
        kind = field.source.partition(".")[0]
        if field.source == "ask" or draft.values.get(field.key) in (None, ""):
            continue
        if kind == "record":
            record = session.get(Record, draft.record_id) if draft.record_id else None
            if record is None:
                continue
            label = _record_kind_name(catalogue, record.kind)
        else:
            label = SOURCE_LABELS.get(kind, kind)
        if label not in used:
            used.append(label)
    if not used:
        return
    detail = {"draft_id": draft.id, "service": service.code, "used": used}
    _record_use(session, _citizen_actor(draft.channel), PREFILL, draft.citizen_id, service, detail)


def _record_use(
    session: Session,
    actor: str,
    action: str,
    citizen_id: int,
    service: Service,
    detail: dict[str, Any],
) -> None:
    """One use of the citizen's data, found again by `data_uses` (target: the citizen)."""
    detail = {**detail, "service": service.code, "service_name": service.name}
    audit.record(
        session, actor, action, target_type=CITIZEN, target_id=str(citizen_id), detail=detail
    )


def _record_kind_name(catalogue: Catalogue, code: str) -> str:
    try:
        return catalogue.record_kind(code).name
    except KeyError:
        return code


def note_sent(
    session: Session, catalogue: Catalogue, dossier: Dossier, joined: Sequence[Dossier] = ()
) -> None:
    """Where the citizen's new dossier went (and the level-4 dossiers created with it)."""
    actor = _citizen_actor(dossier.channel)
    level = catalogue.service(dossier.service_code).level
    first = "sent" if level >= 3 else "prepared"
    for made in (dossier, *joined):
        if made.citizen_id is None:
            continue
        service = catalogue.service(made.service_code)
        how = first if made is dossier else "joined"
        detail = {"dossier": made.code, "agency": service.agency, "how": how}
        _record_use(session, actor, SENT, made.citizen_id, service, detail)


def note_export(
    session: Session, officer: str, citizen_id: int | None, reason: str, rows: int = 0
) -> None:
    """A supervisor exported this citizen's list (`data_uses`) for the reason given; or, with
    `citizen_id` None, asked for an ID number no citizen has (kept without the number)."""
    audit.record(
        session,
        officer,
        EXPORT,
        target_type=CITIZEN,
        target_id=None if citizen_id is None else str(citizen_id),
        detail={"reason": reason, "rows": rows, "found": citizen_id is not None},
    )


# The reader.


def data_uses(session: Session, citizen_id: int, limit: int = CHAT_LIMIT) -> list[DataUse]:
    """The citizen's data uses, newest first, at most `limit`."""
    own = and_(
        AuditEntry.target_type == CITIZEN,
        AuditEntry.target_id == str(citizen_id),
        AuditEntry.action.in_(OWN_ACTIONS),
    )
    own_dossier = (
        select(Dossier.id)
        .where(Dossier.citizen_id == citizen_id, Dossier.code == AuditEntry.target_id)
        .exists()
    )
    own_conversation = (
        select(ChannelBinding.id)
        .where(
            ChannelBinding.citizen_id == citizen_id,
            ChannelBinding.channel_user_id == AuditEntry.target_id,
            ChannelBinding.updated_at <= AuditEntry.created_at,  # made or re-pointed
        )
        .exists()
    )
    found = session.execute(
        select(AuditEntry, Officer.role)
        .outerjoin(Officer, Officer.username == AuditEntry.actor)
        .where(
            or_(
                own,
                and_(AuditEntry.action == DOSSIER_REVEAL, own_dossier),
                and_(AuditEntry.action == CONVERSATION_REVEAL, own_conversation),
            )
        )
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .limit(limit)
    ).all()
    return [_use(entry, role) for entry, role in found]


def _text(detail: dict[str, Any], key: str, default: str = "") -> str:
    value = detail.get(key)
    return default if value is None else str(value)


def _use(entry: AuditEntry, role: str | None) -> DataUse:
    detail = entry.detail or {}
    if entry.action == PREFILL:
        used = detail.get("used") or []
        return DataUse(
            entry.created_at,
            "prefill",
            ", ".join(str(u) for u in used),
            f"dùng để điền sẵn hồ sơ {_text(detail, 'service_name')}",
        )
    if entry.action == SENT:
        agency = _text(detail, "agency")
        purpose = {
            "prepared": f"chuẩn bị để Ông/Bà nộp tại {agency}",
            "joined": f"lập liên thông, gửi tới {agency}",
        }.get(_text(detail, "how"), f"gửi tới {agency}")
        data = f"Hồ sơ {_text(detail, 'dossier')} ({_text(detail, 'service_name')})"
        return DataUse(entry.created_at, "sent", data, purpose)
    shown_role = ROLE_LABELS.get(role or "", UNKNOWN_ROLE)
    reason = mask_text(_text(detail, "reason")) or None
    if entry.action == DOSSIER_REVEAL:
        data, purpose = f"Hồ sơ {entry.target_id}", "xem đầy đủ, không che"
    elif entry.action == CONVERSATION_REVEAL:
        data, purpose = "Nội dung trò chuyện với trợ lý ảo", "xem đầy đủ, không che"
    else:
        data, purpose = "Danh sách sử dụng dữ liệu này", "xuất theo yêu cầu"
    return DataUse(entry.created_at, "viewed", data, purpose, shown_role, reason)


# Texts.


def when(use: DataUse) -> str:
    return to_local(use.at).strftime("%d/%m/%Y %H:%M")


def use_line(use: DataUse) -> str:
    """One line of the chat answer."""
    if use.kind == "viewed":
        text = f"{use.data}: {use.role} {use.purpose}"
        if use.reason:
            text += f"; lý do: {use.reason.rstrip('. ')}"
    else:
        text = f"{use.data}: {use.purpose}"
    return f"• {when(use)} — {text}."


def data_uses_text(uses: Sequence[DataUse], more: bool = False) -> str:
    """The chat answer; `more` when older uses were left out."""
    if not uses:
        return f"{NONE_YET}\n{FOOTER}"
    lines = [HEADER, *(use_line(u) for u in uses)]
    if more:
        lines.append(MORE.format(count=len(uses)))
    lines.append(FOOTER)
    return "\n".join(lines)


CSV_HEADER = ("Thời điểm", "Việc", "Dữ liệu", "Mục đích / nơi nhận", "Vai trò cán bộ", "Lý do")


def csv_rows(uses: Sequence[DataUse]) -> list[list[str]]:
    """The same list for a console export (columns `CSV_HEADER`)."""
    return [
        [when(u), KIND_LABELS[u.kind], u.data, u.purpose, u.role or "", u.reason or ""]
        for u in uses
    ]

"""Masking for screens and exports: ID and phone numbers anywhere, plus the names, numbers and
addresses the system knows belong to the conversation (free text cannot be trusted to reveal
names by itself, but the bound citizen's own name in a bot greeting can be recognised)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalogue.fields import validator_of
from bot.catalogue.model import Catalogue
from bot.core.models import ChannelBinding, Citizen, DossierDraft, Handoff, LinkChallenge
from bot.governance.pii import mask_cccd, mask_name, mask_phone, mask_text

SENSITIVE_VALIDATORS = {"cccd": mask_cccd, "phone": mask_phone, "name": mask_name}


def mask_email(email: str | None) -> str:
    if not email or "@" not in email:
        return mask_text(email or "")
    user, _, domain = email.partition("@")
    return f"{user[:1]}***@{domain}"


def mask_sender(sender_id: str) -> str:
    """`sms:0905123456` → `sms:09******56`; `telegram:123456789` → `telegram:******789`."""
    channel, sep, ident = sender_id.partition(":")
    if not sep:
        channel, ident = "", sender_id
    if channel == "sms":
        hidden = mask_phone(ident)
    else:  # short ids would show whole: keep 3 characters only of long ones
        hidden = "*" * (len(ident) - 3) + ident[-3:] if len(ident) >= 6 else "*" * len(ident)
    return f"{channel}:{hidden}" if channel else hidden


class Masker:
    """Masks text unless the viewer revealed this conversation (then it is the identity)."""

    def __init__(self, known: Iterable[tuple[str, str]] = (), revealed: bool = False) -> None:
        pairs = {raw: masked for raw, masked in known if raw and len(raw) >= 3}
        self.revealed = revealed
        self._pairs = sorted(pairs.items(), key=lambda p: -len(p[0]))
        self._pattern = (
            re.compile("|".join(re.escape(raw) for raw, _ in self._pairs), re.IGNORECASE)
            if self._pairs
            else None
        )
        self._lookup = {raw.lower(): masked for raw, masked in self._pairs}

    def text(self, value: str | None) -> str:
        if value is None:
            return ""
        if self.revealed:
            return value
        if self._pattern is not None:
            value = self._pattern.sub(lambda m: self._lookup[m.group(0).lower()], value)
        return mask_text(value)

    def sender(self, sender_id: str) -> str:
        return sender_id if self.revealed else mask_sender(sender_id)

    def name(self, value: str | None) -> str:
        return (value or "") if self.revealed else mask_name(value)


def citizen_pairs(citizen: Citizen) -> list[tuple[str, str]]:
    pairs = [
        (citizen.full_name, mask_name(citizen.full_name)),
        (citizen.cccd, mask_cccd(citizen.cccd)),
        (citizen.phone or "", mask_phone(citizen.phone)),
        (citizen.email or "", mask_email(citizen.email)),
        (citizen.permanent_address or "", "[địa chỉ]"),
        (citizen.temporary_address or "", "[địa chỉ]"),
    ]
    return [(raw, masked) for raw, masked in pairs if raw]


def citizens_of_conversation(session: Session, channel: str, sender_id: str) -> list[Citizen]:
    """Everyone this conversation was ever tied to: binding, drafts, hand-offs, link codes."""
    ids: set[int] = set()
    for model in (ChannelBinding, DossierDraft, LinkChallenge):
        ids.update(
            session.scalars(
                select(model.citizen_id).where(model.channel_user_id == sender_id).distinct()
            )
        )
    ids.update(session.scalars(select(Handoff.citizen_id).where(Handoff.sender_id == sender_id)))
    ids.discard(None)
    if not ids:
        return []
    return list(session.scalars(select(Citizen).where(Citizen.id.in_(ids))))


def conversation_masker(
    session: Session, catalogue: Catalogue, channel: str, sender_id: str, revealed: bool
) -> Masker:
    pairs: list[tuple[str, str]] = []
    for citizen in citizens_of_conversation(session, channel, sender_id):
        pairs.extend(citizen_pairs(citizen))
    codes = {s.code: s for s in catalogue.services}
    for draft in session.scalars(
        select(DossierDraft).where(DossierDraft.channel_user_id == sender_id)
    ):
        pairs.extend(dossier_value_pairs(catalogue, codes.get(draft.service_code), draft.values))
    return Masker(pairs, revealed)


def dossier_value_pairs(catalogue: Catalogue, service, values: dict) -> list[tuple[str, str]]:
    """(raw, masked) for the personal fields of a dossier's values."""
    if service is None:
        return []
    pairs = []
    for field in service.fields:
        mask = SENSITIVE_VALIDATORS.get(validator_of(field))
        raw = values.get(field.key)
        if mask and isinstance(raw, str) and raw:
            pairs.append((raw, mask(raw)))
        elif validator_of(field) == "email" and isinstance(raw, str) and raw:
            pairs.append((raw, mask_email(raw)))
    return pairs

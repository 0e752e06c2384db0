"""Fees: the payment request of a submission, signed callbacks, receipts and reminders, texts,
and the online-payment rate (a real database: SQLite, and PostgreSQL where it runs)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue
from bot.core.clock import to_local
from bot.core.db import unit_of_work
from bot.core.lifecycles import CallbackOutcome, DossierStatus, PaymentStatus
from bot.core.models import AuditEntry, Dossier, Payment, PaymentCallback
from bot.dossiers.drafts import set_value, start_draft
from bot.dossiers.gateway import EmbeddedGateway
from bot.dossiers.submission import cancel, submit_draft
from bot.governance.reports import TIER, build_report
from bot.payments.callbacks import (
    CallbackInvalid,
    PaymentNotice,
    apply_notice,
    parse_notice,
    resolve_mismatch,
    signature_ok,
)
from bot.payments.notices import receipts_to_send, reminders_to_send
from bot.payments.platform import PayLink, PayLinkRequest, PlatformError
from bot.payments.requests import amount_owed
from bot.payments.settings import PaymentSettings
from bot.payments.texts import request_text, sms_request_text, state_text
from bot.payments.vietqr import VietQR
from bot.reminders.due import DueItem
from bot.reminders.rules import Due
from tests import factories

NOW = dt.datetime(2026, 12, 1, 3, 0)  # Tuesday 10:00 in Đắk Lắk
SETTINGS = PaymentSettings()
SECRET = b"callback-secret"
NUMBERS = itertools.count(1)


def submitted(session: Session, catalogue: Catalogue, platform: Any = None) -> Payment | None:
    """A citizen with a driving licence submits `gplx_doi` (level 3, 135.000 đồng)."""
    person = factories.citizen(session, cccd=f"0661900{next(NUMBERS):05d}")
    factories.record(
        session,
        person,
        "gplx",
        issued_on=dt.date(2016, 12, 20),
        valid_until=dt.date(2026, 12, 20),
        attributes={"hang": "B2"},
    )
    service = catalogue.service("gplx_doi")
    draft = start_draft(session, catalogue, person, service.code, "rest", f"u{person.id}")
    set_value(service, draft, "hinh_thuc_nhan", "1")
    result = submit_draft(
        session,
        catalogue,
        draft,
        EmbeddedGateway(),
        shown="",
        now=NOW,
        platform=platform,
        payment_settings=SETTINGS,
    )
    return result.payment


def notice(payment: Payment, **changes: Any) -> PaymentNotice:
    body = {"transaction_id": "FT001", "reference": payment.reference, "amount": payment.amount}
    return parse_notice(json.dumps({**body, **changes}).encode())


def test_a_fee_bearing_submission_gets_one_request(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        payment = submitted(s, catalogue)
        assert payment is not None
        dossier = s.get(Dossier, payment.dossier_id)
        assert payment.reference == dossier.code and payment.amount == 135000
        assert payment.status == PaymentStatus.REQUESTED and payment.pay_url is None
        # Five working days from Tuesday 1 December, to the end of that local day.
        assert to_local(payment.due_at).date() == dt.date(2026, 12, 8)
        assert to_local(payment.due_at).time() == dt.time(23, 59, 59)


def test_no_request_for_free_level2_or_waived_fees(catalogue: Catalogue) -> None:
    cccd, khai_sinh = catalogue.service("cccd_doi_the"), catalogue.service("khai_sinh")
    day = dt.date(2026, 12, 1)
    due = DueItem(cccd, Due("cccd_doi_the", "age:25", day + dt.timedelta(days=30), day, None))
    late = DueItem(cccd, Due("cccd_doi_the", "age:25", day - dt.timedelta(days=1), day, None))
    assert amount_owed(cccd, due, day) == 0  # the ID card at the statutory age
    assert amount_owed(cccd, late, day) == 50000
    assert amount_owed(cccd, None, day) == 50000
    assert amount_owed(khai_sinh, None, day) == 0
    assert amount_owed(catalogue.service("gplx_doi"), None, day) == 135000


def test_a_platform_link_is_kept_and_its_failure_costs_nothing(
    engine: Engine, catalogue: Catalogue
) -> None:
    class Platform:
        def __init__(self, fail: bool) -> None:
            self.fail, self.seen = fail, []  # type: list[PayLinkRequest]

        def create_link(self, request: PayLinkRequest) -> PayLink:
            self.seen.append(request)
            if self.fail:
                raise PlatformError("down")
            return PayLink(f"https://pay.example.vn/{request.reference}", "p1")

    with unit_of_work(engine) as s:
        up, down = Platform(False), Platform(True)
        linked, unlinked = submitted(s, catalogue, up), submitted(s, catalogue, down)
        assert linked.pay_url == f"https://pay.example.vn/{linked.reference}"
        assert up.seen[0].amount == 135000 and up.seen[0].description.isascii()
        assert unlinked is not None and unlinked.pay_url is None and len(down.seen) == 1


def test_signatures_must_be_fresh_and_exact() -> None:
    body, stamp = b'{"a":1}', "1700000000"
    good = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert signature_ok(SECRET, stamp, good, body, 1700000100, 300)
    assert not signature_ok(SECRET, stamp, good, body, 1700000301, 300)  # stale: a replay
    assert not signature_ok(SECRET, stamp, good, body, 1699999600, 300)  # from the future
    assert not signature_ok(b"other", stamp, good, body, 1700000000, 300)
    assert not signature_ok(SECRET, stamp, good, body + b" ", 1700000000, 300)
    assert not signature_ok(SECRET, "17e8", good, body, 1700000000, 300)
    assert not signature_ok(SECRET, stamp, "sha256=", body, 1700000000, 300)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"reference": "DLK-261201-00001", "amount": 1000}',
        b'{"transaction_id": "T 1", "reference": "DLK-261201-00001", "amount": 1000}',
        b'{"transaction_id": "T1", "reference": "DLK-261201-00001", "amount": "1000"}',
        b'{"transaction_id": "T1", "reference": "DLK-261201-00001", "amount": -5}',
        b'{"transaction_id": "T1", "reference": "<script>", "amount": 1000}',
        b'{"transaction_id": "T1", "reference": "DLK-1", "amount": 1000, "status": "failed"}',
        b'{"transaction_id": "T1", "reference": "DLK-1", "amount": 1, "paid_at": "hom qua"}',
        b'{"transaction_id": "T1", "reference": "DLK-1", "amount": 1, "paid_at": "2026-12-01"}',
    ],
)
def test_malformed_callbacks_are_refused(body: bytes) -> None:
    with pytest.raises(CallbackInvalid):
        parse_notice(body)


def test_a_callback_pays_once_and_audits(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        payment = submitted(s, catalogue)
        paid_at = "2026-12-01T03:30:00Z"
        result = apply_notice(s, notice(payment, paid_at=paid_at), NOW)
        assert result.outcome == "applied"
        assert payment.status == PaymentStatus.PAID and payment.transaction_id == "FT001"
        assert payment.paid_at == dt.datetime(2026, 12, 1, 3, 30)
        assert payment.receipt_no == f"BL-261201-{payment.id:06d}"
        again = apply_notice(s, notice(payment, paid_at=paid_at), NOW)
        assert again.outcome == "duplicate"
        assert s.scalar(select(func.count()).select_from(PaymentCallback)) == 1
        audited = select(AuditEntry.action).where(AuditEntry.target_id == payment.reference)
        assert list(s.scalars(audited)) == ["payment.paid"]


def test_what_does_not_fit_is_kept_for_an_officer(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        payment = submitted(s, catalogue)
        wrong = apply_notice(s, notice(payment, transaction_id="FT-W", amount=13500), NOW)
        unknown = apply_notice(s, notice(payment, transaction_id="FT-U", reference="DLK-1"), NOW)
        assert (wrong.outcome, unknown.outcome) == ("mismatch", "mismatch")
        assert "13500" in wrong.reason and payment.status == PaymentStatus.REQUESTED
        assert apply_notice(s, notice(payment), NOW).outcome == "applied"
        twice = apply_notice(s, notice(payment, transaction_id="FT-2"), NOW)
        assert twice.outcome == "mismatch" and "already paid" in twice.reason
        assert payment.transaction_id == "FT001"  # the first payment stands
        kept = s.scalars(
            select(PaymentCallback).where(PaymentCallback.outcome == CallbackOutcome.MISMATCH)
        ).all()
        assert {c.transaction_id for c in kept} == {"FT-W", "FT-U", "FT-2"}
        assert resolve_mismatch(s, kept[0].id, "giamsat", "Đã hoàn tiền cho công dân", NOW)
        assert not resolve_mismatch(s, kept[0].id, "giamsat", "lần nữa", NOW)
        assert kept[0].outcome == CallbackOutcome.RESOLVED and kept[0].resolved_by == "giamsat"


def test_money_after_cancellation_is_not_applied(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        payment = submitted(s, catalogue)
        assert cancel(s, s.get(Dossier, payment.dossier_id))
        assert payment.status == PaymentStatus.VOID
        late = apply_notice(s, notice(payment), NOW)
        assert late.outcome == "mismatch" and "refund" in late.reason
        assert payment.status == PaymentStatus.VOID and payment.paid_at is None


def test_receipts_and_one_reminder_reach_the_owner(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        unpaid, paid = submitted(s, catalogue), submitted(s, catalogue)
        apply_notice(s, notice(paid), NOW)
        owner = s.get(Dossier, paid.dossier_id).citizen_id
        receipts = receipts_to_send(s, NOW)
        assert [(m.citizen_id, m.key) for m in receipts] == [(owner, f"payment-receipt:{paid.id}")]
        assert paid.receipt_no in receipts[0].notice.text
        assert reminders_to_send(s, SETTINGS, NOW) == []  # a week before the deadline
        eve = unpaid.due_at - dt.timedelta(hours=12)
        [reminder] = reminders_to_send(s, SETTINGS, eve)
        assert reminder.key == f"payment-reminder:{unpaid.id}"
        assert "135.000 đồng" in reminder.notice.text and unpaid.reference in reminder.notice.text
        assert reminders_to_send(s, SETTINGS, unpaid.due_at + dt.timedelta(minutes=1)) == []
        cancel(s, s.get(Dossier, unpaid.dossier_id))
        assert reminders_to_send(s, SETTINGS, eve) == []


def test_texts_carry_what_a_transfer_needs(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        payment = submitted(s, catalogue)
        dossier = s.get(Dossier, payment.dossier_id)
        text = request_text(catalogue.service("gplx_doi"), payment, SETTINGS)
        for part in (
            "135.000 đồng",
            "Một trăm ba mươi lăm nghìn đồng",
            payment.reference,
            SETTINGS.account,
            "08/12/2026",
        ):
            assert part in text
        sms = sms_request_text(payment, SETTINGS)
        assert sms.isascii() and len(sms) <= 160
        assert payment.reference in sms and "135000" in sms and SETTINGS.account in sms
        qr = VietQR(SETTINGS.bank_bin, SETTINGS.account, payment.amount, payment.reference)
        assert qr.amount == 135000  # the request's values make a valid code
        apply_notice(s, notice(payment), NOW)
        assert payment.receipt_no in state_text(dossier, payment)
        dossier.status = DossierStatus.PREPARED
        assert "trực tiếp" in state_text(dossier, None)


def test_the_online_payment_rate_by_service_and_level(engine: Engine, catalogue: Catalogue) -> None:
    tiers = {s.code: s.authority for s in catalogue.services}
    with unit_of_work(engine) as s:
        payments = [submitted(s, catalogue) for _ in range(3)]
        apply_notice(s, notice(payments[0]), NOW)
        cancel(s, s.get(Dossier, payments[2].dossier_id))  # void: owes nothing, not counted
        day = dt.timedelta(days=1)
        report = build_report(s, NOW - day, NOW + day, None, tiers)
    assert (report["gplx_doi"].fees_paid, report["gplx_doi"].fees_owed) == (1, 2)
    assert report[""].online_payment_rate == 0.5
    assert report[TIER + "province"].online_payment_rate == 0.5  # gplx_doi: Công an tỉnh
    assert report[TIER + "commune"].online_payment_rate is None

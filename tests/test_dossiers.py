"""Drafts, field validation, idempotent submission, codes, ownership and cancellation."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.catalogue.fields import FieldError, clean_value
from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Consent, Dossier, DossierStatusChange
from bot.dossiers.drafts import (
    find_field_to_correct,
    missing_fields,
    set_value,
    start_draft,
    summary,
)
from bot.dossiers.gateway import EmbeddedGateway
from bot.dossiers.submission import cancel, next_code, own_dossier, submit_draft
from tests import factories

NOW = dt.datetime(2026, 11, 20, 2, 0)


def _tam_tru_citizen(session):  # type: ignore[no-untyped-def]
    person = factories.citizen(session)
    factories.record(
        session,
        person,
        "tam_tru",
        issued_on=dt.date(2024, 12, 1),
        valid_until=dt.date(2026, 12, 20),
        attributes={"dia_chi_tam_tru": "45 Phan Bội Châu, Buôn Ma Thuột"},
    )
    return person


def test_level3_draft_is_complete_from_the_registry(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        draft = start_draft(s, catalogue, _tam_tru_citizen(s), "tam_tru_gia_han", "rest", "u1")
        service = catalogue.service("tam_tru_gia_han")
        assert missing_fields(service, draft) == []
        assert draft.values["dia_chi_tam_tru"] == "45 Phan Bội Châu, Buôn Ma Thuột"
        text = summary(service, draft)
    assert "066*******34" in text and "09******56" in text  # registry numbers masked
    assert "066190001234" not in text and "20/12/2026" in text


def test_missing_fields_are_asked_and_validated(engine: Engine, catalogue: Catalogue) -> None:
    service = catalogue.service("ly_lich_tu_phap")
    with unit_of_work(engine) as s:
        draft = start_draft(s, catalogue, factories.citizen(s), service.code, "rest", "u1")
        keys = [f.key for f in missing_fields(service, draft)]
        assert keys == ["loai_phieu", "muc_dich", "so_luong_phieu"]
        assert set_value(service, draft, "loai_phieu", "1") == "Phiếu lý lịch tư pháp số 1"
        with pytest.raises(FieldError, match="số nguyên"):
            set_value(service, draft, "so_luong_phieu", "vài bản")
        assert set_value(service, draft, "so_luong_phieu", "2 bản") == "2"
        assert [f.key for f in missing_fields(service, draft)] == ["muc_dich"]
        assert draft.typed == ["loai_phieu", "so_luong_phieu"]


@pytest.mark.parametrize(
    ("validator", "raw", "expected"),
    [
        ("date", "15/3/2026", "2026-03-15"),
        ("date", "ngày 5 tháng 3 năm 2026", "2026-03-05"),
        ("phone", "+84 905 123 456", "0905123456"),
        ("cccd", "066 190 001 234", "066190001234"),
        ("name", "nguyễn thị bình", "Nguyễn Thị Bình"),
        ("email", "an@gmail.com", "an@gmail.com"),
    ],
)
def test_validators_normalise(validator: str, raw: str, expected: str) -> None:
    from bot.catalogue.model import DossierField

    field = DossierField(key="x", label="Giá trị", source="ask", validate=validator, prompt="?")
    assert clean_value(field, raw, dt.date(2026, 1, 1)) == expected


@pytest.mark.parametrize(
    ("validator", "raw"),
    [("date", "hôm kia nào đó"), ("phone", "12345"), ("cccd", "0661900012"), ("name", "An1")],
)
def test_validators_explain_in_vietnamese(validator: str, raw: str) -> None:
    from bot.catalogue.model import DossierField

    field = DossierField(key="x", label="Giá trị", source="ask", validate=validator, prompt="?")
    with pytest.raises(FieldError) as error:
        clean_value(field, raw, dt.date(2026, 1, 1))
    assert "Xin" in str(error.value) or "chưa đúng" in str(error.value) or "gồm" in str(error.value)


def test_correction_finds_the_field_and_protects_identity_data(catalogue: Catalogue) -> None:
    service = catalogue.service("tam_tru_gia_han")
    assert find_field_to_correct(service, "sửa địa chỉ tạm trú").field.key == "dia_chi_tam_tru"
    assert find_field_to_correct(service, "sua so dien thoai").field.key == "so_dien_thoai"
    name = find_field_to_correct(service, "sửa họ tên")
    assert name.field.key == "ho_ten" and name.locked


def test_submission_is_idempotent_and_records_consent(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        draft = start_draft(s, catalogue, _tam_tru_citizen(s), "tam_tru_gia_han", "rest", "u1")
        first = submit_draft(s, catalogue, draft, EmbeddedGateway(), shown="tóm tắt", now=NOW)
        again = submit_draft(s, catalogue, draft, EmbeddedGateway(), shown="tóm tắt", now=NOW)
        code = first.dossier.code
    assert again.already_submitted and again.dossier.id == first.dossier.id
    assert code == "DLK-261120-00001"
    assert first.dossier.expected_on == dt.date(2026, 11, 25)  # 3 working days
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count(Dossier.id))) == 1
        consent = s.scalar(select(Consent))
        assert consent.dossier_id == first.dossier.id and consent.shown["summary"] == "tóm tắt"
        assert [h.status for h in s.scalars(select(DossierStatusChange))] == ["received"]


def test_birth_registration_creates_the_joined_residence_dossier(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        mother = factories.citizen(s, sex="F", full_name="Trần Thị Hoa")
        factories.record(
            s,
            mother,
            "birth_notice",
            event_date=dt.date(2026, 11, 1),
            attributes={"ten_tre": "Trần Gia Bảo", "gioi_tinh_tre": "M", "noi_sinh": "BV tỉnh"},
        )
        draft = start_draft(s, catalogue, mother, "khai_sinh", "rest", "u1")
        service = catalogue.service("khai_sinh")
        for field in missing_fields(service, draft):
            set_value(service, draft, field.key, "1")
        result = submit_draft(s, catalogue, draft, EmbeddedGateway(), shown="", now=NOW)
    assert [d.service_code for d in result.joined] == ["thuong_tru_tre_em"]
    assert result.joined[0].code == "DLK-261120-00002"


def test_codes_are_sequential_per_day_under_concurrency(engine: Engine) -> None:
    day, codes, errors = dt.date(2026, 11, 20), [], []

    def take() -> None:
        try:
            with unit_of_work(engine) as s:
                codes.append(next_code(s, day))
        except Exception as exc:  # SQLite may report a busy writer; that is a failure here
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(codes) == [f"DLK-261120-{n:05d}" for n in range(1, 9)]


def test_only_own_dossiers_and_cancel_before_processing(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        owner = _tam_tru_citizen(s)
        other = factories.citizen(s, cccd="066190005678", phone="0912345678")
        draft = start_draft(s, catalogue, owner, "tam_tru_gia_han", "rest", "u1")
        code = submit_draft(s, catalogue, draft, EmbeddedGateway(), shown="", now=NOW).dossier.code
        assert own_dossier(s, other.id, code) is None
        dossier = own_dossier(s, owner.id, code.lower())
        assert dossier is not None
        dossier.status = "processing"
        assert not cancel(s, dossier)
        dossier.status = "received"
        assert cancel(s, dossier) and dossier.status == "cancelled"

"""The catalogue file: contract values, and precise errors for broken files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.catalogue.help import help_text
from bot.catalogue.model import SERVICE_CODES, Catalogue, CatalogueError, load_catalogue
from bot.core.config import PROJECT_ROOT

CATALOGUE = PROJECT_ROOT / "bot" / "catalogue" / "catalogue.yml"

# (level, remind days before, fee in VND or None) from shared/contracts.md.
CONTRACT = {
    "cccd_doi_the": (2, [60, 30, 7], 50_000),
    "tam_tru_gia_han": (3, [30, 20, 15], 15_000),
    "ho_chieu_cap_lai": (2, [180, 90, 30], 200_000),
    "gplx_doi": (3, [90, 30, 7], 135_000),
    "thuong_tru_tre_em": (4, [], 0),
    "khai_sinh": (3, [55, 30, 7], 0),
    "khai_tu": (3, [12, 5, 2], 0),
    "ly_lich_tu_phap": (2, [], 200_000),
    "gp_ban_le_ruou": (3, [60, 45, 30], 1_200_000),
    "gcn_ban_le_lpg": (2, [60, 45, 30], 600_000),
    "the_hdv_du_lich": (3, [90, 30, 7], 650_000),
    "hang_co_so_luu_tru": (2, [120, 90, 60], 1_500_000),
    "gp_buc_xa": (2, [90, 60, 30], 2_000_000),
    "kiem_dinh_phuong_tien_do": (1, [30, 14, 3], None),
    "gp_khai_thac_nuoc": (2, [120, 75, 45], 2_500_000),
    "gcn_attp_nong_san": (3, [210, 180, 150], 700_000),
}


def test_catalogue_has_the_16_contract_services(catalogue: Catalogue) -> None:
    assert [s.code for s in catalogue.services] == list(SERVICE_CODES)
    for service in catalogue.services:
        level, offsets, fee = CONTRACT[service.code]
        assert (service.level, service.remind_days_before, service.fee.amount) == (
            level,
            offsets,
            fee,
        ), service.code


def test_level_three_services_with_registry_data_need_no_question(catalogue: Catalogue) -> None:
    assert all(f.source != "ask" for f in catalogue.service("tam_tru_gia_han").fields)


def test_sms_reminder_texts_fit_one_unaccented_segment(catalogue: Catalogue) -> None:
    for service in catalogue.services:
        sms = service.texts.reminder_sms
        if sms is not None:
            assert sms.isascii(), service.code


def test_help_lists_every_service(catalogue: Catalogue) -> None:
    text = help_text(catalogue)
    assert all(s.short_name in text for s in catalogue.services)


def broken(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "catalogue.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def service(data: dict, code: str) -> dict:
    return next(s for s in data["services"] if s["code"] == code)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: service(d, "khai_sinh").pop("fee"), "service 'khai_sinh': field 'fee'"),
        (
            lambda d: service(d, "gplx_doi").update(colour="red"),
            "service 'gplx_doi': field 'colour': extra fields not permitted",
        ),
        (
            lambda d: service(d, "khai_tu").update(code="khai_tu_x"),
            "service 'khai_tu_x': field 'code'",
        ),
        (
            lambda d: service(d, "gp_buc_xa")["fee"].update(amount=-5),
            "service 'gp_buc_xa': field 'fee.amount'",
        ),
        (
            lambda d: service(d, "tam_tru_gia_han")["fields"][0].update(source="citizen.salary"),
            "service 'tam_tru_gia_han': field 'fields.0.source': unknown source",
        ),
        (
            lambda d: service(d, "cccd_doi_the")["texts"].update(reminder="Chào {ten}"),
            "service 'cccd_doi_the': field 'texts.reminder': unknown placeholder {ten}",
        ),
        (
            lambda d: service(d, "ho_chieu_cap_lai").update(remind_days_before=[30, 90]),
            "service 'ho_chieu_cap_lai': field 'remind_days_before'",
        ),
        (
            lambda d: service(d, "gplx_doi")["trigger"].update(rule="whenever"),
            "service 'gplx_doi': field 'trigger'",
        ),
        (
            lambda d: service(d, "gplx_doi")["trigger"].update(record_kind="bang_lai"),
            "service 'gplx_doi': trigger.record_kind 'bang_lai' is unknown",
        ),
        (lambda d: d["services"].pop(), "missing services: gcn_attp_nong_san"),
    ],
)
def test_broken_catalogue_names_file_service_and_field(
    tmp_path: Path, mutate, expected: str
) -> None:  # type: ignore[no-untyped-def]
    path = broken(tmp_path, mutate)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_unreadable_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("services: [unclosed", encoding="utf-8")
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(path)
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yml")

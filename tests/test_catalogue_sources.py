"""Answers with their source (issue 19, item 5): procedure code, portal page, legal basis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.catalogue.model import (
    Catalogue,
    CatalogueError,
    Service,
    is_official_url,
    load_catalogue,
)
from bot.catalogue.procedures import (
    QUESTION,
    answer,
    answer_body,
    source_line,
)
from bot.core.config import PROJECT_ROOT
from bot.delivery.sms import to_sms_text

CATALOGUE = PROJECT_ROOT / "bot" / "catalogue" / "catalogue.yml"
TOPICS = tuple(QUESTION)  # requirements, fee, processing_time, overview
ANY_CODE = re.compile(r"\b\d\.\d{6}\b")
PORTAL = "https://dichvucong.gov.vn/p/home/dvc-tthc-thu-tuc-hanh-chinh-chi-tiet.html?ma_thu_tuc=1"


def with_source(service: Service, code: str | None, url: str | None) -> Service:
    return service.copy(update={"procedure_code": code, "portal_url": url})


def broken(tmp_path: Path, code: str, **changes: Any) -> Path:
    data = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    next(s for s in data["services"] if s["code"] == code).update(changes)
    path = tmp_path / "catalogue.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_the_catalogue_loads_with_valid_sources(catalogue: Catalogue) -> None:
    assert load_catalogue(CATALOGUE).codes == catalogue.codes
    for service in catalogue.services:
        assert service.legal_basis, service.code
        code, url = service.procedure_code, service.portal_url
        assert code is None or re.fullmatch(r"[0-9]\.[0-9]{6}", code), service.code
        assert url is None or is_official_url(url), service.code


@pytest.mark.parametrize("topic", TOPICS)
def test_every_answer_ends_with_its_source_line(catalogue: Catalogue, topic: str) -> None:
    for service in catalogue.services:
        text = answer(service, topic)
        line = source_line(service)
        assert text == f"{answer_body(service, topic)}\n{line}", service.code
        assert text.splitlines()[-1] == line and text.count(line) == 1, service.code
        assert all(basis in line for basis in service.legal_basis), service.code


def test_the_source_line_says_what_is_known(catalogue: Catalogue) -> None:
    service = catalogue.service("ho_chieu_cap_lai")
    basis = "; ".join(service.legal_basis)

    national = "Nguồn: thủ tục 1.234567 trên Cổng Dịch vụ công quốc gia"
    both = source_line(with_source(service, "1.234567", PORTAL))
    assert both == f"{national}: {PORTAL}; căn cứ: {basis}."

    code_only = source_line(with_source(service, "1.234567", None))
    assert code_only == f"{national}; căn cứ: {basis}."

    other_portal = "https://dichvucong.daklak.gov.vn/thu-tuc/1"
    url_only = source_line(with_source(service, None, other_portal))
    assert url_only == f"Nguồn: cổng dịch vụ công: {other_portal}; căn cứ: {basis}."
    assert "quốc gia" not in url_only  # a provincial portal is not the national one

    neither = source_line(with_source(service, None, None))
    assert neither == f"Căn cứ pháp lý: {basis}."


def test_an_unknown_code_is_never_invented(catalogue: Catalogue) -> None:
    unknown = [s for s in catalogue.services if s.procedure_code is None]
    assert unknown, "the test needs a service without a confirmed code"
    for service in unknown:
        for topic in TOPICS:
            text = answer(service, topic)
            assert not ANY_CODE.search(source_line(service)), service.code
            assert "Nguồn: thủ tục" not in text, service.code
        if service.portal_url is None:
            assert source_line(service).startswith("Căn cứ pháp lý: "), service.code
            assert "http" not in answer(service, "overview"), service.code


def test_a_recorded_code_is_shown_and_its_source_is_named_in_the_catalogue(
    catalogue: Catalogue,
) -> None:
    text = CATALOGUE.read_text(encoding="utf-8")
    blocks = dict(re.findall(r"\n  - code: (\w+)\n(.*?)(?=\n  - code: |\Z)", text, re.S))
    for service in catalogue.services:
        if service.procedure_code:
            assert f"thủ tục {service.procedure_code}" in answer(service, "fee"), service.code
        if service.procedure_code or service.portal_url:
            # Official source named next to the value, as the header of the file asks.
            named = re.search(
                r"# Source \(official\):.*?https://\S+\.gov\.vn/", blocks[service.code], re.S
            )
            assert named, service.code


def test_the_source_is_last_so_an_sms_cut_keeps_the_answer(catalogue: Catalogue) -> None:
    for service in catalogue.services:
        fee = to_sms_text(answer_body(service, "fee"))
        assert to_sms_text(answer(service, "fee")).startswith(fee.removesuffix("...")), service.code


@pytest.mark.parametrize(
    "url",
    [
        "http://dichvucong.gov.vn/p/home/dvc-trang-chu.html",
        "https://example.com/dichvucong.gov.vn",
        "https://dichvucong.gov.vn.example.com/thu-tuc",
        "https://user@dichvucong.gov.vn/thu-tuc",
        "https://dichvucong.gov.vn:8443/thu-tuc",
        "https://gov.vn/thu-tuc",
        "https://dichvucong.gov.vn/thu tuc",
        "javascript:alert(1)//.gov.vn",
        "dichvucong.gov.vn/thu-tuc",
    ],
)
def test_validation_rejects_a_url_that_is_not_an_official_https_page(
    tmp_path: Path, url: str
) -> None:
    path = broken(tmp_path, "khai_sinh", portal_url=url)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert "service 'khai_sinh': field 'portal_url'" in str(info.value)
    assert "official .gov.vn" in str(info.value)


@pytest.mark.parametrize(
    "code",
    [
        "1001193",
        "1.00119",
        "1.0011934",
        "1.001193.000.00.00.H62",
        "x.001193",
        "1,001193",
        "١.001193",
        "1.001193\n",
        "",
    ],
)
def test_validation_rejects_a_malformed_procedure_code(tmp_path: Path, code: str) -> None:
    path = broken(tmp_path, "khai_sinh", procedure_code=code)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert "service 'khai_sinh': field 'procedure_code'" in str(info.value)


def test_validation_accepts_official_sources(tmp_path: Path) -> None:
    url = "https://dichvucong.example.gov.vn/thu-tuc?id=1"
    path = broken(tmp_path, "khai_sinh", procedure_code="1.234567", portal_url=url)
    service = load_catalogue(path).service("khai_sinh")
    assert (service.procedure_code, service.portal_url) == ("1.234567", url)
    expected = f"Nguồn: thủ tục 1.234567 trên cổng dịch vụ công: {url};"
    assert source_line(service).startswith(expected)

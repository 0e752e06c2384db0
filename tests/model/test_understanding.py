"""Messages as citizens write them, through a running server, to the right *answer*.

One test per kind of message the understanding issue names (abbreviations next to a verb, an
expiring document plus a wish to act, long names without diacritics, questions that name a
service, short colloquial turns). Each asserts what the citizen reads, not only the intent.
These sentences are the issue's own examples; the independent test set (bench/) stays unseen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalogue.model import get_catalogue
from bot.catalogue.procedures import answer_body
from bot.core.db import unit_of_work
from bot.core.models import Dossier, DossierDraft, Handoff, SatisfactionRating
from bot.identity.speaker import rest_sender
from bot.vietnamese.vn import format_date
from tests import factories
from tests.model.server import Servers, seeded_servers

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
LAN, MAI, NAM = "066190004444", "066190005555", "066090006666"
PHONES = {LAN: "0905444444", MAI: "0905555555", NAM: "0905666666"}
TODAY = dt.date.today()
LICENCE_UNTIL = TODAY + dt.timedelta(days=30)
PASSPORT_UNTIL = TODAY + dt.timedelta(days=400)
CATALOGUE = get_catalogue()


def seed(s: Session) -> None:
    for cccd, name in [(LAN, "Phạm Thị Lan"), (MAI, "Đỗ Thị Mai"), (NAM, "Vũ Văn Nam")]:
        person = factories.citizen(s, cccd=cccd, phone=PHONES[cccd], full_name=name)
        factories.record(
            s,
            person,
            "gplx",
            issued_on=LICENCE_UNTIL.replace(year=LICENCE_UNTIL.year - 10),
            valid_until=LICENCE_UNTIL,
            attributes={"hang": "B"},
        )
        factories.record(
            s,
            person,
            "ho_chieu",
            issued_on=PASSPORT_UNTIL.replace(year=PASSPORT_UNTIL.year - 10),
            valid_until=PASSPORT_UNTIL,
        )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Servers]:
    yield from seeded_servers(tmp_path_factory.mktemp("understanding"), sqlite_template, seed)


def link(servers: Servers, sender: str, cccd: str) -> None:
    assert "mã xác thực" in servers.say(sender, cccd)
    assert "Xác thực thành công" in servers.say(sender, servers.last_code(PHONES[cccd]))


def topic(code: str, name: str) -> str:
    return answer_body(CATALOGUE.service(code), name)


def drafts(servers: Servers, sender: str) -> list[str]:
    with unit_of_work(servers.engine) as s:
        rows = s.scalars(
            select(DossierDraft).where(DossierDraft.channel_user_id == rest_sender(sender))
        )
        return [d.service_code for d in rows]


def test_abbreviations_next_to_a_verb(servers: Servers) -> None:
    assert topic("ly_lich_tu_phap", "requirements") in servers.say("abbr-1", "xin lltp")
    assert topic("cccd_doi_the", "fee") in servers.say("abbr-2", "cấp đổi cmnd hết bao nhiêu")
    assert topic("the_hdv_du_lich", "requirements") in servers.say(
        "abbr-3", "thẻ hdv cần giấy tờ gì"
    )
    assert topic("gplx_doi", "requirements") in servers.say("abbr-4", "làm lại gp lái")


def test_an_expiring_document_with_a_wish_to_act_shows_the_deadline_then_prepares(
    servers: Servers,
) -> None:
    link(servers, "due-1", LAN)
    reply = servers.say("due-1", "bằng lái của tôi sắp hết hạn, cần làm lại")
    assert f"là ngày {format_date(LICENCE_UNTIL)} (còn 30 ngày)" in reply
    assert "điền sẵn" in reply and drafts(servers, "due-1") == ["gplx_doi"]


def test_asking_when_a_named_document_expires_answers_that_one_and_offers_it(
    servers: Servers,
) -> None:
    link(servers, "due-2", MAI)
    reply = servers.say("due-2", "hộ chiếu của tôi khi nào hết hạn")
    assert f"là ngày {format_date(PASSPORT_UNTIL)}" in reply
    assert "chuẩn bị sẵn hồ sơ" in reply and "bằng lái" not in reply
    assert "điền sẵn" in servers.say("due-2", "ok làm luôn đi")
    assert drafts(servers, "due-2") == ["ho_chieu_cap_lai"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("cap giay chung nhan du dieu kien an toan thuc pham", "gcn_attp_nong_san"),
        ("giay phep su dung thiet bi buc xa", "gp_buc_xa"),
        ("xep hang co so luu tru du lich", "hang_co_so_luu_tru"),
    ],
)
def test_long_official_names_typed_without_diacritics(
    servers: Servers, text: str, code: str
) -> None:
    reply = servers.say(f"long-{code}", text)
    assert CATALOGUE.service(code).name in reply and topic(code, "fee") in reply


def test_questions_that_name_a_service_are_answered_not_started(servers: Servers) -> None:
    link(servers, "ask-1", NAM)
    assert topic("khai_tu", "requirements") in servers.say("ask-1", "hồ sơ khai tử gồm những gì")
    assert topic("ho_chieu_cap_lai", "fee") in servers.say(
        "ask-1", "làm hộ chiếu tốn bao nhiêu tiền"
    )
    assert drafts(servers, "ask-1") == []


def test_short_colloquial_turns(servers: Servers) -> None:
    link(servers, "short-1", NAM)
    listed = servers.say("short-1", "lịch nhắc của tôi đâu")
    assert "sắp đến hạn" in listed and format_date(LICENCE_UNTIL) in listed
    _, shown = servers.remind("short-1", NAM, "gplx_doi")
    assert "giấy phép lái xe" in shown
    assert "nhắc lại" in servers.say("short-1", "để sau nhé")

    handed = servers.say("short-2", "cho gặp người thật")
    assert "cán bộ" in handed
    with unit_of_work(servers.engine) as s:
        assert s.scalar(select(Handoff).where(Handoff.sender_id == rest_sender("short-2")))

    link(servers, "short-3", MAI)
    servers.say("short-3", "tôi muốn đổi bằng lái")
    assert "đồng ý nộp" in servers.say("short-3", "1")  # receive the licence by post
    done = servers.say("short-3", "đồng ý nộp")
    assert "Mã hồ sơ: DLK-" in done
    code = done.split("Mã hồ sơ: ")[1].split(".")[0]
    assert code in servers.say("short-3", "khi nào xong hồ sơ")
    servers.say("short-3", "cho 4 sao")
    with unit_of_work(servers.engine) as s:
        assert s.scalar(select(Dossier.code).where(Dossier.code == code))
        rated = s.scalars(select(SatisfactionRating.rating)).all()
    assert 4 in rated

"""A parent acting for a minor child through a running Rasa server and action server: the
child's passport in "what is due", prepared and submitted for the child with consent on the
child's behalf; another linked adult learns nothing of the child, whatever they send."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.dossiers import child_payload
from bot.core.db import unit_of_work
from bot.core.models import Citizen, Consent, Dossier, DossierDraft, ParentChild
from bot.identity.speaker import rest_sender
from bot.vietnamese.vn import add_years, format_date
from tests import factories
from tests.model.server import Servers, seeded_servers

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
CHILD_BORN = add_years(dt.date.today(), -11)
MOTHER, OTHER = "066185001111", "066090003333"
CHILD = f"0662{CHILD_BORN.year % 100:02d}001234"
PHONES = {MOTHER: "0905111111", OTHER: "0905333333"}
CHILD_NAME = "Nguyễn Văn Bé"
PASSPORT_UNTIL = dt.date.today() + dt.timedelta(days=45)


def seed(s: Session) -> None:
    mother = factories.citizen(
        s,
        MOTHER,
        PHONES[MOTHER],
        full_name="Trần Thị Mai",
        sex="F",
        date_of_birth=dt.date(1985, 3, 2),
    )
    child = factories.citizen(s, CHILD, None, full_name=CHILD_NAME, date_of_birth=CHILD_BORN)
    factories.record(
        s,
        child,
        "ho_chieu",
        number="C1234567",
        issued_on=PASSPORT_UNTIL - dt.timedelta(days=5 * 365),
        valid_until=PASSPORT_UNTIL,
    )
    factories.citizen(s, OTHER, PHONES[OTHER], full_name="Lê Văn Khách")
    s.add(ParentChild(parent_id=mother.id, child_id=child.id, relation="me"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Servers]:
    yield from seeded_servers(tmp_path_factory.mktemp("family"), sqlite_template, seed)


def link(servers: Servers, sender: str, cccd: str) -> None:
    assert "mã xác thực" in servers.say(sender, cccd)
    assert "Xác thực thành công" in servers.say(sender, servers.last_code(PHONES[cccd]))


def child_id(servers: Servers) -> int:
    with unit_of_work(servers.engine) as s:
        return s.scalar(select(Citizen.id).where(Citizen.cccd == CHILD))


def test_a_parent_sees_prepares_and_submits_the_childs_passport(servers: Servers) -> None:
    link(servers, "me-1", MOTHER)
    listed = servers.say("me-1", "tôi có giấy tờ nào sắp hết hạn không")
    assert f"Con {CHILD_NAME} (sinh {CHILD_BORN.year}):" in listed
    assert f"Cấp lại hộ chiếu phổ thông: hạn {format_date(PASSPORT_UNTIL)}" in listed
    # The button under the list: the child named by an opaque id, never an ID number.
    child = child_id(servers)
    prepared = servers.say("me-1", child_payload("ho_chieu_cap_lai", child))
    assert f"hạn làm lại hộ chiếu của con {CHILD_NAME}" in prepared
    assert f"điền sẵn hồ sơ của con {CHILD_NAME}" in prepared
    servers.say("me-1", PHONES[MOTHER])  # the child has no phone of their own
    servers.say("me-1", "học sinh")
    review = servers.say("me-1", "1")
    assert CHILD_NAME in review and f"thay cho con {CHILD_NAME}" in review
    saved = servers.say("me-1", "1")
    assert "Đã lưu tờ khai làm lại hộ chiếu" in saved and "mã hồ sơ DLK-" in saved
    code = saved.split("mã hồ sơ ")[1].split(".")[0]
    servers.say("me-1", "không cần")
    with unit_of_work(servers.engine) as s:
        dossier = s.scalar(select(Dossier).where(Dossier.code == code))
        consent = s.scalar(select(Consent).where(Consent.dossier_id == dossier.id))
        mother = s.scalar(select(Citizen.id).where(Citizen.cccd == MOTHER))
        assert dossier.citizen_id == child and dossier.status == "prepared"
        assert dossier.fields["values"]["ho_ten"] == CHILD_NAME
        assert consent.citizen_id == mother and consent.acting_for_citizen_id == dossier.citizen_id
    assert code in servers.say("me-1", "hồ sơ của tôi đến đâu rồi")


def test_another_adult_learns_nothing_of_the_child(servers: Servers) -> None:
    link(servers, "other-1", OTHER)
    child = str(child_id(servers))
    replies = [
        servers.say("other-1", "tôi có giấy tờ nào sắp hết hạn không"),
        servers.say("other-1", f'/list_due{{"cccd": "{CHILD}"}}'),
        servers.say("other-1", child_payload("ho_chieu_cap_lai", int(child))),
        servers.say("other-1", f'/request_service{{"service": "khai_sinh", "child": "{child}"}}'),
    ]
    assert "không tìm thấy người con này" in replies[2]
    with unit_of_work(servers.engine) as s:
        code = s.scalar(select(Dossier.code).where(Dossier.service_code == "ho_chieu_cap_lai"))
    if code is not None:  # the parent's dossier, when the test before ran
        foreign = servers.say("other-1", f"hồ sơ {code} đến đâu rồi")
        wrong = servers.say("other-1", "hồ sơ DLK-200101-00999 đến đâu rồi")
        assert foreign.replace(code, "X") == wrong.replace("DLK-200101-00999", "X")
        replies.append(foreign)
    # Last, as it starts a form: an ID number in the payload chooses nobody's draft but one's own.
    replies.append(
        servers.say(
            "other-1", f'/request_service{{"service": "ho_chieu_cap_lai", "cccd": "{CHILD}"}}'
        )
    )
    assert "từ dữ liệu của Ông/Bà" in replies[-1]
    for reply in replies:
        assert CHILD_NAME not in reply and "C1234567" not in reply
        assert format_date(PASSPORT_UNTIL) not in reply and "066*******34" not in reply
    with unit_of_work(servers.engine) as s:
        drafts = s.scalars(
            select(DossierDraft).where(DossierDraft.channel_user_id == rest_sender("other-1"))
        ).all()
        assert [d.citizen_id for d in drafts] == [
            s.scalar(select(Citizen.id).where(Citizen.cccd == OTHER))
        ]

""" "Who has used my data?" through the running Rasa and action servers: a citizen links,
submits a dossier, an officer reveals it in the console (over HTTP), and the citizen's question
lists the pre-fill, where the dossier went and the officer's reveal (role and reason, never the
officer's name), newest first. A sender who is not linked learns nothing, whatever the payload
carries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Dossier
from tests import factories
from tests.console_support import add_officers, login, make_deps, start_client, tracker_engine
from tests.model.server import Servers, seeded_servers

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
MAI = ("066190006666", "0905666666")
AGENCY = "Công an cấp xã nơi đang đăng ký tạm trú"
REASON = "Đối chiếu địa chỉ tạm trú để xử lý hồ sơ"
HEADER = "Dữ liệu của Ông/Bà đã được sử dụng"


def seed(s: Session) -> None:
    person = factories.citizen(s, cccd=MAI[0], phone=MAI[1], full_name="Võ Thị Mai", sex="F")
    factories.record(
        s,
        person,
        "tam_tru",
        issued_on=dt.date(2024, 12, 1),
        valid_until=dt.date.today() + dt.timedelta(days=25),
        attributes={"dia_chi_tam_tru": "45 Phan Bội Châu, Buôn Ma Thuột"},
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Servers]:
    yield from seeded_servers(tmp_path_factory.mktemp("data-access"), sqlite_template, seed)


def link(servers: Servers, sender: str, cccd: str, phone: str) -> None:
    assert "mã xác thực" in servers.say(sender, cccd)
    assert "Xác thực thành công" in servers.say(sender, servers.last_code(phone))


async def test_a_linked_citizen_sees_who_used_their_data(
    servers: Servers, catalogue: Catalogue, tmp_path: Path
) -> None:
    link(servers, "mai-1", *MAI)
    assert "đồng ý nộp" in servers.say("mai-1", "tôi muốn gia hạn tạm trú")
    done = servers.say("mai-1", "đồng ý nộp")
    code = done.split("Mã hồ sơ: ")[1].split(".")[0]
    with unit_of_work(servers.engine) as s:
        dossier_id = s.scalar(select(Dossier.id).where(Dossier.code == code))

    tracker = tracker_engine(tmp_path)
    add_officers(servers.engine)
    console = await start_client(make_deps(servers.engine, tracker, catalogue))
    try:
        token = await login(console, "canbo")
        page = await console.post(
            f"/dossiers/{dossier_id}/reveal", data={"csrf_token": token, "reason": REASON}
        )
        assert "ghi nhật ký" in await page.text()
    finally:
        await console.close()
        tracker.dispose()

    said = servers.say("mai-1", "/show_data_access")
    assert said.startswith(HEADER)
    assert code in said and AGENCY in said and "Đăng ký tạm trú" in said
    assert "cán bộ xem đầy đủ" in said and REASON in said
    assert "canbo" not in said and MAI[0] not in said and MAI[1] not in said
    assert said.index(REASON) < said.index(AGENCY) < said.index("điền sẵn")  # newest first

    # Needs the model retrained with nlu/data_access.yml (`make train`):
    assert HEADER in servers.say("mai-1", "ai đã xem thông tin cá nhân của tôi vậy")


def test_a_sender_who_is_not_linked_learns_nothing(servers: Servers) -> None:
    for text in (
        "/show_data_access",
        f'/show_data_access{{"cccd": "{MAI[0]}"}}',
        '/show_data_access{"dossier_code": "DLK-261206-00001"}',
    ):
        reply = servers.say("stranger-1", text)
        assert "xác thực danh tính" in reply
        assert HEADER not in reply and "DLK-" not in reply and "Công an" not in reply
        assert "Mai" not in reply and "Phan Bội Châu" not in reply

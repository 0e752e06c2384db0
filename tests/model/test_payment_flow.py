"""A fee paid in the conversation, end to end over real sockets: a level-3 submission through
the REST channel of the running Rasa and action servers carries the payment request (text and
VietQR picture); the platform's signed callback reaches the officer console's endpoint; the
scheduler's payment notices deliver the receipt by SMS; "nộp phí" then answers from the paid
state. Forged, stale, wrong-amount and repeated callbacks change nothing."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.lifecycles import PaymentStatus
from bot.core.models import Payment, PaymentCallback
from bot.payments.vietqr import VietQR
from connectors.senders import open_deliverer
from console.views_payments import CALLBACK_PATH
from scheduler.notices import send_payment_notices
from tests import factories
from tests.console_support import add_officers, make_deps, start_client, tracker_engine
from tests.fake_payments import signed_callback
from tests.model.server import Servers, seeded_servers

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
LAN, KHOA = ("066190004444", "0905444444"), ("066190005555", "0905555555")
SECRET = "platform-secret"


def seed(s: Session) -> None:
    for cccd, phone in (LAN, KHOA):
        person = factories.citizen(s, cccd=cccd, phone=phone, full_name="Phạm Thị Lan", sex="F")
        factories.record(
            s,
            person,
            "gplx",
            issued_on=dt.date(2016, 12, 20),
            valid_until=dt.date.today() + dt.timedelta(days=20),
            attributes={"hang": "B2"},
        )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Servers]:
    yield from seeded_servers(tmp_path_factory.mktemp("payments"), sqlite_template, seed)


def messages(servers: Servers, sender: str, text: str) -> list[dict[str, Any]]:
    answer = servers.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    answer.raise_for_status()
    return answer.json()


def texts(found: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in found)


def link(servers: Servers, sender: str, cccd: str, phone: str) -> None:
    assert "mã xác thực" in servers.say(sender, cccd)
    assert "Xác thực thành công" in servers.say(sender, servers.last_code(phone))


def submit_gplx(servers: Servers, sender: str) -> list[dict[str, Any]]:
    asked = servers.say(sender, "tôi muốn đổi bằng lái xe")
    assert "nhận giấy phép lái xe mới bằng cách nào" in asked
    assert "đồng ý nộp" in servers.say(sender, "1")
    return messages(servers, sender, "đồng ý nộp")


def decoded_qr(found: list[dict[str, Any]]) -> VietQR:
    [image] = [m["image"] for m in found if m.get("image")]
    assert image.startswith("data:image/png;base64,")
    png = base64.b64decode(image.split(",", 1)[1])
    [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return VietQR.from_payload(code.text)


def payment_of(servers: Servers, code: str) -> tuple[str, str | None, int]:
    with unit_of_work(servers.engine) as s:
        payment = s.scalar(select(Payment).where(Payment.reference == code))
        return payment.status, payment.receipt_no, len(s.scalars(select(PaymentCallback)).all())


async def test_submission_payment_callback_receipt(
    servers: Servers, catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link(servers, "lan-1", *LAN)
    found = submit_gplx(servers, "lan-1")
    said = texts(found)
    code = said.split("Mã hồ sơ: ")[1].split(".")[0]
    assert f"Lệ phí hồ sơ {code}" in said and "135.000 đồng" in said
    assert (
        "Một trăm ba mươi lăm nghìn đồng" in said and f"nội dung ghi đúng mã hồ sơ {code}" in said
    )
    qr = decoded_qr(found)
    assert (qr.amount, qr.reference) == (135000, code)

    monkeypatch.setenv("PAYMENT_CALLBACK_SECRET", SECRET)
    monkeypatch.setenv("APP_VAR_DIR", str(servers.workdir))  # the SMS outbox of the servers
    tracker = tracker_engine(tmp_path)
    add_officers(servers.engine)
    console = await start_client(make_deps(servers.engine, tracker, catalogue))
    try:
        body = {"transaction_id": "FT-LAN-1", "reference": code, "amount": 135000}
        for forged in (
            signed_callback("guessed", body),
            signed_callback(SECRET, body, int(time.time()) - 3600),
        ):
            answer = await console.post(CALLBACK_PATH, data=forged[0], headers=forged[1])
            assert answer.status == 401
        low = signed_callback(SECRET, {**body, "transaction_id": "FT-LOW", "amount": 13500})
        answer = await console.post(CALLBACK_PATH, data=low[0], headers=low[1])
        assert (await answer.json()) == {"result": "mismatch"}
        assert payment_of(servers, code) == (PaymentStatus.REQUESTED, None, 1)

        raw, headers = signed_callback(SECRET, body)
        answer = await console.post(CALLBACK_PATH, data=raw, headers=headers)
        assert (await answer.json()) == {"result": "applied"}
        status, receipt, callbacks = payment_of(servers, code)
        assert (status, callbacks) == (PaymentStatus.PAID, 2) and receipt
        answer = await console.post(CALLBACK_PATH, data=raw, headers=headers)
        assert (await answer.json()) == {"result": "duplicate"}
        assert payment_of(servers, code) == (PaymentStatus.PAID, receipt, 2)
    finally:
        await console.close()
        tracker.dispose()

    async with open_deliverer(servers.engine, servers.env) as deliverer:
        assert await send_payment_notices(servers.engine, deliverer.deliver) == 1
        assert await send_payment_notices(servers.engine, deliverer.deliver) == 0  # once
    outbox = (servers.workdir / "sms_outbox.jsonl").read_text(encoding="utf-8").splitlines()
    receipts = [json.loads(line) for line in outbox if receipt in line]
    assert [r["to"] for r in receipts] == [LAN[1]]
    assert "Da nhan le phi" in receipts[0]["text"]

    paid = servers.say("lan-1", "tôi đã chuyển khoản phí rồi")
    assert receipt in paid and "135.000 đồng" in paid


def test_only_the_owner_sees_a_payment(servers: Servers) -> None:
    link(servers, "lan-2", *LAN)
    found = submit_gplx(servers, "lan-2")
    code = texts(found).split("Mã hồ sơ: ")[1].split(".")[0]
    link(servers, "khoa-1", *KHOA)
    foreign = servers.say("khoa-1", f"phí hồ sơ {code} bao nhiêu")
    unknown = servers.say("khoa-1", "phí hồ sơ DLK-200101-00999 bao nhiêu")
    assert foreign.replace(code, "X") == unknown.replace("DLK-200101-00999", "X")
    assert "135.000" not in foreign
    anonymous = servers.say("stranger-1", f"phí hồ sơ {code} bao nhiêu")
    assert "xác thực danh tính" in anonymous and "135.000" not in anonymous
    crafted = servers.say("stranger-1", f'/pay_fee{{"dossier_code": "{code}"}}')
    assert "135.000" not in crafted
    own = servers.say("lan-2", f"phí hồ sơ {code} bao nhiêu")
    assert "135.000 đồng" in own and code in own

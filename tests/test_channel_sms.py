"""SMS channel: inbound webhook over a real socket, outbound through eSMS on a fake gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from rasa.core.channels.channel import UserMessage
from sqlalchemy.engine import Engine

from bot.sending import SendError
from bot.sms import OutboxSmsGateway, default_gateway
from connectors.sms import SECRET_HEADER, SmsInput
from connectors.sms_providers import EsmsGateway, provider_from_env
from tests.fakes import FakeEsms, serve_channels, wait_for

SECRET = "sms-shared-secret"
BUTTONS = [
    {"title": "Đồng ý", "payload": "/affirm"},
    {"title": "Nhắc lại sau", "payload": '/postpone_reminder{"date": "2026-12-01"}'},
]


class Bot:
    def __init__(self) -> None:
        self.messages: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_response(
            message.sender_id,
            {
                "text": "Giấy phép lái xe của Ông/Bà sắp hết hạn ngày 20/12/2026. "
                "Ông/Bà có muốn đổi giấy phép không?",
                "buttons": BUTTONS,
            },
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeEsms]:
    api = await FakeEsms().start()
    yield api
    await api.stop()


@pytest.fixture
def gateway(fake: FakeEsms) -> Iterator[EsmsGateway]:
    esms = EsmsGateway("key", "secret", "DAKLAK", base_url=fake.url, timeout=0.5)
    yield esms
    esms.close()


async def post(client: httpx.AsyncClient, url: str, body: Any, secret: str | None = SECRET) -> Any:
    headers = {SECRET_HEADER: secret} if secret else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["content-type"] = "application/json"
    return await client.post(f"{url}/webhooks/sms/webhook", content=content, headers=headers)


async def test_reply_with_numbered_choices_and_number_maps_back(
    fake: FakeEsms, gateway: EsmsGateway, engine: Engine
) -> None:
    bot = Bot()
    channel = SmsInput(SECRET, gateway, engine)
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        first = await post(client, url, {"from": "84905123456", "text": "GPLX", "id": "a1"})
        assert first.status_code == 200
        await wait_for(lambda: len(fake.sent) == 1)
        assert bot.messages[0].sender_id == "sms:0905123456"
        sent = fake.sent[0]
        assert sent["Phone"] == "0905123456" and sent["IsUnicode"] == "0"
        assert sent["Content"].endswith("Tra loi 1 de dong y, 2 de nhac lai sau")
        assert sent["Content"].isascii() and len(sent["Content"]) <= 160
        assert sent["Content"].startswith("Giay phep lai xe cua Ong/Ba")

    restarted = SmsInput(SECRET, gateway, engine)  # the choice survives a restart
    async with serve_channels([restarted], bot) as url, httpx.AsyncClient() as client:
        query = {"secret": SECRET, "sender": "84905123456", "content": "2", "smsid": "a2"}
        answer = await client.get(f"{url}/webhooks/sms/webhook", params=query)
        assert answer.status_code == 200
        await wait_for(lambda: len(bot.messages) == 2)
    assert bot.messages[1].text == BUTTONS[1]["payload"]


async def test_secret_duplicates_and_bad_input(
    fake: FakeEsms, gateway: EsmsGateway, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    channel = SmsInput(SECRET, gateway, engine)
    body = {"from": "0905123456", "text": "xin chao", "id": "dup"}
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        wrong = await post(client, url, body, secret="guess")
        missing = await post(client, url, body, secret=None)
        once, again = await post(client, url, body), await post(client, url, body)
        huge = await post(client, url, b'{"text": "' + b"x" * 70_000 + b'"}')
        broken = await post(client, url, b"{nope")
        no_id = await post(client, url, {"from": "0905123456", "text": "hi"})
        foreign = await post(client, url, {"from": "+1 555 0100", "text": "hi", "id": "f"})
        long = await post(client, url, {"from": "0905123456", "text": "á" * 5000, "id": "l"})
        await wait_for(lambda: len(bot.messages) == 2)
    assert (wrong.status_code, missing.status_code) == (403, 401)
    assert (once.status_code, again.json()) == (200, {"status": "duplicate"})
    assert [huge.status_code, broken.status_code, no_id.status_code] == [413, 400, 400]
    assert (foreign.status_code, long.status_code) == (400, 200)
    assert "wrong shared secret" in caplog.text and "0905123456" not in caplog.text


async def test_esms_errors_are_classified(fake: FakeEsms, gateway: EsmsGateway) -> None:
    kinds = []
    for behaviour in ["500", "timeout", "429", "101", "146"]:
        fake.fail_next(behaviour)
        with pytest.raises(SendError) as caught:
            await asyncio.to_thread(gateway.send, "0905123456", "x", "r-1")
        kinds.append(caught.value.kind)
    assert kinds == ["retry", "retry", "retry", "permanent", "permanent"]
    send = asyncio.to_thread
    assert await send(gateway.send, "0905123456", "x", "r-2") == "s1"
    # CodeResult 124: this RequestId was already accepted, so the retry counts as sent
    assert await send(gateway.send, "0905123456", "x", "r-2") == "r-2"
    assert len(fake.sent) == 1


def test_outbox_is_the_default_and_esms_needs_its_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("SMS_PROVIDER", raising=False)
    monkeypatch.setenv("APP_VAR_DIR", str(tmp_path))
    assert isinstance(default_gateway(), OutboxSmsGateway)
    monkeypatch.delenv("ESMS_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="ESMS_API_KEY"):
        provider_from_env("esms")
    OutboxSmsGateway(tmp_path / "o.jsonl").send("0905123456", "Ma xac thuc 123456")
    line = json.loads((tmp_path / "o.jsonl").read_text())
    assert (line["to"], line["text"]) == ("0905123456", "Ma xac thuc 123456")


def test_inbound_off_without_secret_but_sending_works(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMS_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("SMS_PROVIDER", raising=False)
    with caplog.at_level("INFO"):
        channel = SmsInput.from_credentials(None)
    assert channel.secret is None and channel.get_output_channel() is not None
    assert caplog.text.count("inbound webhook disabled") == 1

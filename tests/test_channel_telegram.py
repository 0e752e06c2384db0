"""Telegram channel against a fake Bot API on 127.0.0.1, with webhooks over real sockets."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import segno
from rasa.core.channels.channel import UserMessage
from sqlalchemy.engine import Engine

from bot.identity.speaker import ENVELOPE, verified_facts
from connectors.telegram import (
    SECRET_HEADER,
    TelegramConfig,
    TelegramInput,
    TelegramOutput,
    split_text,
)
from tests.fakes import FakeTelegram, serve_channels, wait_for

SECRET = "s3cret-token_1"
CHAT = 5550001
LONG_PAYLOAD = '/request_service{"service": "Đăng ký khai sinh cho con, kèm đăng ký thường trú"}'
BUTTONS = [
    {"title": "Đồng ý", "payload": "/affirm"},
    {"title": "Khai sinh", "payload": LONG_PAYLOAD},
]


class Bot:
    """Stands in for Rasa: records user messages and answers through the output channel."""

    def __init__(self) -> None:
        self.messages: list[UserMessage] = []
        self.reply: dict[str, Any] = {"text": "Ông/Bà chọn thủ tục:", "buttons": BUTTONS}

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_response(message.sender_id, dict(self.reply))


def update(update_id: int, **fields: Any) -> dict[str, Any]:
    return {"update_id": update_id, **fields}


def message(text: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": 10,
        "date": 0,
        "chat": {"id": CHAT, "type": "private"},
        "from": {"id": CHAT, "is_bot": False, "first_name": "An"},
        **fields,
    }
    if text is not None:
        body["text"] = text
    return body


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    api = await FakeTelegram().start()
    yield api
    await api.stop()


@pytest.fixture
async def channel(fake: FakeTelegram, engine: Engine) -> AsyncIterator[TelegramInput]:
    config = TelegramConfig("123:TEST", SECRET, api_url=fake.url, timeout=0.5)
    input_channel = TelegramInput(config, engine)
    yield input_channel
    await input_channel.close()


async def post(
    client: httpx.AsyncClient, url: str, body: Any, secret: str | None = SECRET
) -> httpx.Response:
    headers = {SECRET_HEADER: secret} if secret else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(f"{url}/webhooks/telegram/webhook", content=content, headers=headers)


async def test_text_in_reply_out_with_inline_buttons_and_tap_back(
    fake: FakeTelegram, channel: TelegramInput
) -> None:
    bot = Bot()
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        answer = await post(client, url, update(1, message=message("xin chào")))
        assert answer.status_code == 200
        await wait_for(lambda: len(fake.sent) == 1)
        received = bot.messages[0]
        assert (received.text, received.sender_id, received.input_channel) == (
            "xin chào",
            f"telegram:{CHAT}",
            "telegram",
        )
        sent = fake.sent[0]
        assert sent["chat_id"] == str(CHAT) and sent["text"] == "Ông/Bà chọn thủ tục:"
        rows = sent["reply_markup"]["inline_keyboard"]
        assert [row[0]["text"] for row in rows] == ["Đồng ý", "Khai sinh"]
        data = [row[0]["callback_data"] for row in rows]
        assert len(LONG_PAYLOAD.encode()) > 64 and all(len(d.encode()) <= 64 for d in data)

        tap = {
            "id": "cq-1",
            "from": {"id": CHAT, "is_bot": False, "first_name": "An"},
            "chat_instance": "ci",
            "data": data[1],
            "message": {**message("Ông/Bà chọn thủ tục:"), "message_id": 11},
        }
        assert (await post(client, url, update(2, callback_query=tap))).status_code == 200
        await wait_for(lambda: len(bot.messages) == 2)
        assert bot.messages[1].text == LONG_PAYLOAD
        assert fake.answered == ["cq-1"]


async def test_wrong_or_missing_secret_is_refused(
    fake: FakeTelegram, channel: TelegramInput, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        with caplog.at_level(logging.WARNING):
            wrong = await post(client, url, update(1, message=message("hi")), secret="nope")
            missing = await post(client, url, update(2, message=message("hi")), secret=None)
    assert (wrong.status_code, missing.status_code) == (403, 403)
    assert bot.messages == [] and fake.calls == []
    assert "missing or wrong secret token" in caplog.text


async def test_duplicate_update_is_handled_once(fake: FakeTelegram, channel: TelegramInput) -> None:
    bot = Bot()
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        body = update(7, message=message("tôi muốn làm hộ chiếu"))
        first, second = await post(client, url, body), await post(client, url, body)
        await wait_for(lambda: len(fake.sent) >= 1)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json().get("duplicate") is True
    assert len(bot.messages) == 1 and len(fake.sent) == 1


async def test_share_contact_button_and_own_contact_only(
    fake: FakeTelegram, channel: TelegramInput
) -> None:
    bot = Bot()
    bot.reply = {
        "text": "Ông/Bà chia sẻ số điện thoại để xác thực:",
        "buttons": [
            {"title": "Chia sẻ số điện thoại", "payload": "/share_contact"},
            {"title": "Nhập số định danh", "payload": "/inform"},
        ],
    }
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        await post(client, url, update(1, message=message("xác thực")))
        await wait_for(lambda: len(fake.sent) == 2)
        keyboard = fake.sent[0]["reply_markup"]["keyboard"]
        assert keyboard[0][0] == {"text": "Chia sẻ số điện thoại", "request_contact": True}
        assert "inline_keyboard" in fake.sent[1]["reply_markup"]

        own = {"phone_number": "+84905123456", "first_name": "An", "user_id": CHAT}
        await post(client, url, update(2, message=message(contact=own)))
        await wait_for(lambda: len(bot.messages) == 2)
        linked = bot.messages[1]
        assert linked.text == "/link_account"
        # The phone arrives sealed for this chat (bot.identity.speaker), not as a plain metadata
        # value.
        assert set(linked.metadata) == {ENVELOPE}
        assert verified_facts(linked.metadata, linked.sender_id) == {"verified_phone": "0905123456"}
        assert verified_facts(linked.metadata, "telegram:1") == {}

        other = {"phone_number": "0912345678", "first_name": "Bình", "user_id": 999}
        await post(client, url, update(3, message=message(contact=other)))
        await wait_for(lambda: len(fake.sent) == 5)
    assert len(bot.messages) == 2  # someone else's contact never reaches Rasa
    assert "chính mình" in fake.sent[-1]["text"]


@pytest.mark.parametrize(
    "fields",
    [
        {"message": message(sticker={"file_id": "s", "file_unique_id": "u", "width": 1,
                                     "height": 1, "is_animated": False, "is_video": False,
                                     "type": "regular"})},
        {"message": message(photo=[{"file_id": "p", "file_unique_id": "u", "width": 1,
                                    "height": 1}])},
        {"edited_message": message("sửa lại", edit_date=1)},
    ],
    ids=["sticker", "photo", "edited"],
)  # fmt: skip
async def test_stickers_photos_and_edits_get_a_polite_answer(
    fake: FakeTelegram, channel: TelegramInput, fields: dict[str, Any]
) -> None:
    bot = Bot()
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        assert (await post(client, url, update(1, **fields))).status_code == 200
        await wait_for(lambda: len(fake.sent) == 1)
    assert bot.messages == []
    assert "Ông/Bà" in fake.sent[0]["text"]


async def test_hostile_input_never_crashes(
    fake: FakeTelegram, channel: TelegramInput, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        with caplog.at_level(logging.WARNING):
            huge = await post(client, url, b'{"update_id": 1, "x": "' + b"a" * 70_000 + b'"}')
            broken = await post(client, url, b"{not json")
            not_object = await post(client, url, b"[1, 2]")
        other = await post(client, url, update(2, my_chat_member={"garbage": True}))
        unknown = await post(client, url, update(3, poll_answer={"x": 1}))
        long_text = await post(client, url, update(4, message=message("thủ tục " * 700)))
        emoji = await post(client, url, update(5, message=message("🙏😀🇻🇳" * 300)))
        await wait_for(lambda: len(bot.messages) == 2)
        alive = await post(client, url, update(6, message=message("còn sống không")))
        await wait_for(lambda: len(bot.messages) == 3)
    assert (huge.status_code, broken.status_code, not_object.status_code) == (413, 400, 400)
    assert {other.status_code, unknown.status_code, long_text.status_code} == {200}
    assert (emoji.status_code, alive.status_code) == (200, 200)
    assert 4000 < len(bot.messages[0].text) <= 4096 and bot.messages[1].text.startswith("🙏")
    assert "body is not valid JSON" in caplog.text and "over 65536" in caplog.text
    assert "malformed" in caplog.text


def test_split_text_keeps_every_character_within_the_limit() -> None:
    text = "Một đoạn văn dài. " * 600
    parts = split_text(text)
    assert all(len(p) <= 4096 for p in parts) and len(parts) == 3
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")


def test_disabled_without_credentials(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    with caplog.at_level(logging.INFO):
        channel = TelegramInput.from_credentials(None)
    assert channel.get_output_channel() is None
    assert "telegram channel disabled" in caplog.text


async def test_operator_command_registers_the_webhook_with_its_secret(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from connectors.__main__ import telegram_webhook

    for name, value in {
        "TELEGRAM_BOT_TOKEN": "123:TEST",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_URL": fake.url,
        "TELEGRAM_WEBHOOK_URL": "https://bot.example.vn/webhooks/telegram/webhook",
    }.items():
        monkeypatch.setenv(name, value)
    assert await telegram_webhook() == 0
    assert fake.webhook["url"] == "https://bot.example.vn/webhooks/telegram/webhook"
    assert fake.webhook["secret_token"] == SECRET
    assert "webhook set to https://bot.example.vn" in capsys.readouterr().out


def qr_png() -> bytes:
    buffer = io.BytesIO()
    segno.make_qr("00020101021238570010A000000727").save(buffer, kind="png", scale=4)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def output_of(channel: TelegramInput) -> TelegramOutput:
    output = channel.get_output_channel()
    assert isinstance(output, TelegramOutput)
    return output


async def test_a_data_url_image_is_uploaded_as_a_photo(
    fake: FakeTelegram, channel: TelegramInput
) -> None:
    """The VietQR code (a PNG data URL from the actions) arrives as the uploaded photo's bytes."""
    png = qr_png()
    bot = Bot()
    bot.reply = {"text": "Ông/Bà quét mã VietQR để nộp lệ phí:", "image": data_url(png)}
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        assert (
            await post(client, url, update(1, message=message("nộp lệ phí")))
        ).status_code == 200
        await wait_for(lambda: len(fake.sent) == 2)
    text, photo = fake.sent
    assert (text["method"], photo["method"]) == ("sendMessage", "sendPhoto")
    assert photo["chat_id"] == str(CHAT)
    assert photo["photo"] == png
    assert all("base64" not in str(sent.get("text")) for sent in fake.sent)


async def test_an_http_image_url_is_passed_on_as_a_url(
    fake: FakeTelegram, channel: TelegramInput
) -> None:
    image = "https://dichvucong.example.vn/static/huong-dan.png"
    await output_of(channel).send_image_url(f"telegram:{CHAT}", image)
    assert [(s["method"], s["photo"]) for s in fake.sent] == [("sendPhoto", image)]


async def test_a_photo_upload_is_retried_after_a_server_error(
    fake: FakeTelegram, channel: TelegramInput
) -> None:
    png = qr_png()
    fake.fail_next("500")
    await output_of(channel).send_image_url(f"telegram:{CHAT}", data_url(png))
    assert [c[0] for c in fake.calls] == ["sendPhoto", "sendPhoto"]
    assert [s["photo"] for s in fake.sent] == [png]


@pytest.mark.parametrize(
    "image",
    [
        "data:image/png;base64,không phải base64",
        "data:image/png;base64,iVBORw0KGgo=!!",
        "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
        "data:image/png;base64," + base64.b64encode(b"<svg/>").decode(),
        "Mã VietQR",
    ],
    ids=["not-ascii", "bad-base64", "gif", "not-a-png", "plain-text"],
)
async def test_a_malformed_image_is_left_out_with_a_warning(
    fake: FakeTelegram,
    channel: TelegramInput,
    caplog: pytest.LogCaptureFixture,
    image: str,
) -> None:
    with caplog.at_level(logging.WARNING):
        await output_of(channel).send_image_url(f"telegram:{CHAT}", image)
    assert fake.calls == []
    assert f"telegram image to telegram:{'*' * 4}001 not sent" in caplog.text

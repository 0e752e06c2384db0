"""Zalo OA channel against a fake OA API / OAuth / ZNS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import segno
from rasa.core.channels.channel import UserMessage
from sqlalchemy.engine import Engine

from bot.core.db import make_engine, unit_of_work
from bot.core.models import ZaloToken
from bot.delivery.sending import SendError
from connectors import common
from connectors.zalo import SIGNATURE_HEADER, ZaloInput, ZaloOutput
from connectors.zalo_api import ZaloApi, ZaloConfig, ZaloTokenStore, ZnsTemplate, event_mac
from tests.fakes import FakeZalo, serve_channels, wait_for

APP_ID, OA_SECRET, USER = "2553928453557884079", "oa-secret", "6142494823000000001"


class Bot:
    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[UserMessage] = []
        self.delay = delay

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        await asyncio.sleep(self.delay)
        await message.output_channel.send_response(
            message.sender_id,
            {
                "text": "Ông/Bà có muốn gia hạn tạm trú không?",
                "buttons": [
                    {"title": "Đồng ý", "payload": "/affirm"},
                    {
                        "title": "Nhắc lại sau",
                        "payload": '/postpone_reminder{"date": "2026-12-01"}',
                    },
                ],
            },
        )


def config(fake: FakeZalo, **extra: Any) -> ZaloConfig:
    return ZaloConfig(
        APP_ID,
        "app-secret",
        OA_SECRET,
        api_url=fake.url,
        oauth_url=fake.url,
        zns_url=fake.url,
        timeout=0.5,
        **extra,
    )


def event(name: str = "user_send_text", msg_id: str = "m-1", **message: Any) -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "user_id_by_app": "979122185046046317",
        "event_name": name,
        "sender": {"id": USER},
        "recipient": {"id": "3662729599332560487"},
        "message": {"msg_id": msg_id, **message},
        "timestamp": str(int(time.time() * 1000)),
    }


def signed(body: dict[str, Any], secret: str = OA_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    return raw, {SIGNATURE_HEADER: "mac=" + event_mac(APP_ID, secret, raw, body["timestamp"])}


@pytest.fixture
async def fake() -> AsyncIterator[FakeZalo]:
    api = await FakeZalo().start()
    yield api
    await api.stop()


@pytest.fixture
async def channel(fake: FakeZalo, engine: Engine) -> AsyncIterator[ZaloInput]:
    cfg = config(fake)
    ZaloTokenStore(engine, cfg).save("access-0", "refresh-0", 90000)
    input_channel = ZaloInput(cfg, engine)
    yield input_channel
    await input_channel.close()


async def post(client: httpx.AsyncClient, url: str, raw: bytes, headers: dict[str, str]) -> Any:
    return await client.post(f"{url}/webhooks/zalo/webhook", content=raw, headers=headers)


async def test_message_in_reply_out_with_buttons_and_click_back(
    fake: FakeZalo, channel: ZaloInput
) -> None:
    bot = Bot()
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        answer = await post(client, url, *signed(event(text="gia hạn tạm trú")))
        assert answer.status_code == 200
        await wait_for(lambda: len(fake.sent) == 1)
        assert (bot.messages[0].text, bot.messages[0].sender_id) == (
            "gia hạn tạm trú",
            f"zalo:{USER}",
        )
        sent = fake.sent[0]
        assert sent["recipient"] == {"user_id": USER, "message_id": "m-1"}
        buttons = sent["message"]["attachment"]["payload"]["buttons"]
        assert [b["type"] for b in buttons] == ["oa.query.hide", "oa.query.hide"]
        assert [b["title"] for b in buttons] == ["Đồng ý", "Nhắc lại sau"]

        click = event(msg_id="m-2", text=buttons[1]["payload"])
        await post(client, url, *signed(click))
        await wait_for(lambda: len(bot.messages) == 2)
    assert bot.messages[1].text == '/postpone_reminder{"date": "2026-12-01"}'


async def test_forged_stale_or_foreign_events_are_refused(
    fake: FakeZalo, channel: ZaloInput
) -> None:
    bot = Bot()
    old = event(text="cũ")
    old["timestamp"] = str(int((time.time() - 600) * 1000))
    foreign = event(text="khác")
    foreign["app_id"] = "999"
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        raw, _ = signed(event(text="giả"))
        forged = await post(client, url, *signed(event(text="giả"), secret="guess"))
        missing = await post(client, url, raw, {})
        stale = await post(client, url, *signed(old))
        other_app = await post(client, url, *signed(foreign))
    assert [forged.status_code, missing.status_code, stale.status_code] == [401, 401, 401]
    assert other_app.status_code in (401, 403)
    assert bot.messages == [] and fake.calls == []


async def test_duplicate_event_once_and_ack_within_two_seconds(
    fake: FakeZalo, channel: ZaloInput
) -> None:
    bot = Bot(delay=2.5)  # Rasa busy with a slow action
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        raw, headers = signed(event(msg_id="dup-1", text="xin chào"))
        started = time.monotonic()
        first = await post(client, url, raw, headers)
        elapsed = time.monotonic() - started
        second = await post(client, url, raw, headers)
        await wait_for(lambda: len(fake.sent) == 1, timeout=6)
    assert elapsed < 1.0 and first.status_code == 200
    assert second.json() == {"status": "duplicate"}
    assert len(bot.messages) == 1


async def test_other_events_polite_or_ignored(fake: FakeZalo, channel: ZaloInput) -> None:
    bot = Bot()
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        sticker = await post(client, url, *signed(event("user_send_sticker", msg_id="s-1")))
        follow = dict(event("follow"), follower={"id": USER})
        ignored = await post(client, url, *signed(follow))
        echo = await post(client, url, *signed(event("oa_send_text", msg_id="e-1", text="x")))
        await wait_for(lambda: len(fake.sent) == 1)
        emoji = await post(client, url, *signed(event(msg_id="m-9", text="😀🙏" * 2500)))
        broken = await post(client, url, b"{oops", {SIGNATURE_HEADER: "mac=00"})
        await wait_for(lambda: len(bot.messages) == 1)
    assert [sticker.status_code, ignored.status_code, echo.status_code] == [200, 200, 200]
    assert ignored.json() == {"status": "ignored"} and emoji.status_code == 200
    assert broken.status_code == 400
    assert "chỉ đọc được tin nhắn dạng chữ" in fake.sent[0]["message"]["text"]
    assert len(bot.messages[0].text) == 4096


async def test_token_refresh_under_concurrency_spends_the_refresh_token_once(
    fake: FakeZalo, engine: Engine
) -> None:
    cfg = config(fake)
    ZaloTokenStore(engine, cfg).save("revoked-token", "refresh-0", 90000)
    workers = [ZaloApi(cfg, ZaloTokenStore(engine, cfg)) for _ in range(2)]
    try:
        await asyncio.gather(
            *(api.send_text(USER, f"tin {i}") for api in workers for i in range(4))
        )
    finally:
        for api in workers:
            await api.close()
    assert fake.refreshes == 1
    assert len(fake.sent) == 8
    with unit_of_work(engine) as session:
        row = session.get(ZaloToken, "oa")
        assert row is not None
        assert (row.access_token, row.refresh_token, row.refreshes) == ("access-1", "refresh-1", 1)


async def test_expired_token_is_refreshed_before_sending(fake: FakeZalo, engine: Engine) -> None:
    cfg = config(fake)
    ZaloTokenStore(engine, cfg).save("old", "refresh-0", 0)
    api = ZaloApi(cfg, ZaloTokenStore(engine, cfg))
    try:
        await api.send_text(USER, "xin chào")
    finally:
        await api.close()
    assert fake.refreshes == 1 and [c[0] for c in fake.calls] == ["oauth", "cs"]


async def test_error_codes_map_to_retry_fallback_or_give_up(fake: FakeZalo, engine: Engine) -> None:
    cfg = config(fake)
    ZaloTokenStore(engine, cfg).save("access-0", "refresh-0", 90000)
    api = ZaloApi(cfg, ZaloTokenStore(engine, cfg))
    kinds = []
    try:
        for behaviour in ["500", "timeout", "-32", "-230", "-232", "-224", "-201"]:
            fake.fail_next(behaviour)
            with pytest.raises(SendError) as caught:
                await api.send_text(USER, "x")
            kinds.append(caught.value.kind)
        fake.refresh.clear()  # the refresh token was revoked: an admin must authorise again
        fake.access.clear()
        with pytest.raises(SendError) as revoked:
            await api.send_text(USER, "x")
    finally:
        await api.close()
    assert kinds == ["retry", "retry", "retry", "fallback", "fallback", "fallback", "permanent"]
    assert revoked.value.kind == "permanent"


async def test_zns_template_message_by_phone(fake: FakeZalo, engine: Engine) -> None:
    template = ZnsTemplate("7895417a", {"ho_ten": "full_name", "han": "due_date"})
    cfg = config(fake, zns_templates={"EXTERNAL_reminder": template}, zns_mode="development")
    ZaloTokenStore(engine, cfg).save("access-0", "refresh-0", 90000)
    api = ZaloApi(cfg, ZaloTokenStore(engine, cfg))
    try:
        data = template.data_for({"full_name": "Nguyễn Văn An", "due_date": "20/12/2026"})
        msg_id = await api.send_zns("0905123456", template.template_id, data, "reminder-42")
    finally:
        await api.close()
    assert msg_id == "z1"
    assert fake.zns == [
        {
            "phone": "84905123456",
            "template_id": "7895417a",
            "template_data": {"ho_ten": "Nguyễn Văn An", "han": "20/12/2026"},
            "tracking_id": "reminder-42",
            "mode": "development",
        }
    ]


async def test_operator_command_stores_and_spends_the_first_refresh_token(
    fake: FakeZalo, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from connectors import __main__ as cli

    for name, value in {
        "ZALO_APP_ID": APP_ID,
        "ZALO_APP_SECRET": "app-secret",
        "ZALO_OA_SECRET": OA_SECRET,
        "ZALO_OAUTH_URL": fake.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "get_engine", lambda: engine)
    monkeypatch.setattr("sys.stdin", io.StringIO("refresh-0\n"))
    assert await asyncio.to_thread(cli.zalo_token) == 0
    with unit_of_work(engine) as session:
        row = session.get(ZaloToken, "oa")
        assert row is not None and (row.access_token, row.refresh_token) == (
            "access-1",
            "refresh-1",
        )


def test_disabled_without_credentials(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ZaloConfig.REQUIRED:
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level("INFO"):
        channel = ZaloInput.from_credentials(None)
    assert channel.get_output_channel() is None
    assert caplog.text.count("zalo channel disabled") == 1


async def test_a_failed_turn_asks_the_citizen_to_send_again(
    fake: FakeZalo, channel: ZaloInput
) -> None:
    """Zalo already has its 200 and will not resend: the citizen must hear about the failure."""

    async def broken(message: UserMessage) -> None:
        raise RuntimeError("tracker store unavailable")

    async with serve_channels([channel], broken) as url, httpx.AsyncClient() as client:
        answer = await post(client, url, *signed(event(text="hồ sơ của tôi")))
        assert answer.status_code == 200
        await wait_for(lambda: len(fake.sent) == 1)
    assert fake.sent[0]["message"]["text"] == common.TRY_AGAIN
    assert fake.sent[0]["recipient"]["user_id"] == USER


async def test_database_down_answers_503_so_zalo_retries(fake: FakeZalo) -> None:
    """Nothing was recorded (not even the duplicate check), so a retry is processed later."""
    unreachable = make_engine("postgresql://postgres@127.0.0.1:1/none")
    bot = Bot()
    channel = ZaloInput(config(fake), unreachable)
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        answer = await post(client, url, *signed(event(text="xin chào")))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert bot.messages == [] and fake.sent == []


def zalo_env(fake: FakeZalo, **extra: str) -> dict[str, str]:
    urls = {name: fake.url for name in ("ZALO_API_URL", "ZALO_OAUTH_URL", "ZALO_ZNS_URL")}
    keys = {"ZALO_APP_ID": APP_ID, "ZALO_APP_SECRET": "app-secret", "ZALO_OA_SECRET": OA_SECRET}
    return {**keys, **urls, "ZALO_TIMEOUT": "0.5", **extra}


async def test_max_event_age_comes_from_the_environment(fake: FakeZalo, engine: Engine) -> None:
    """ZALO_MAX_EVENT_AGE=30 refuses an event signed 60 s ago; the default (300 s) takes it."""
    strict = ZaloConfig.from_env(zalo_env(fake, ZALO_MAX_EVENT_AGE="30"))
    default = ZaloConfig.from_env(zalo_env(fake))
    assert strict is not None and default is not None
    assert (strict.max_event_age, default.max_event_age) == (30, 300)
    ZaloTokenStore(engine, default).save("access-0", "refresh-0", 90000)
    late = event(msg_id="late-1", text="xin chào")
    late["timestamp"] = str(int((time.time() - 60) * 1000))
    statuses = []
    for cfg in (strict, default):
        bot, channel = Bot(), ZaloInput(cfg, engine)
        async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
            statuses.append((await post(client, url, *signed(late))).status_code)
            await wait_for(lambda bot=bot: len(bot.messages) == (statuses[-1] == 200))
        await channel.close()
    assert statuses == [401, 200]


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon", ""])
def test_max_event_age_must_be_a_positive_number(value: str) -> None:
    env = zalo_env(FakeZalo(), ZALO_MAX_EVENT_AGE=value)
    if value == "":  # set but empty: the default, as for the other optional settings
        config = ZaloConfig.from_env(env)
        assert config is not None and config.max_event_age == 300
        return
    with pytest.raises(ValueError, match="ZALO_MAX_EVENT_AGE"):
        ZaloConfig.from_env(env)


def qr_png() -> bytes:
    buffer = io.BytesIO()
    segno.make_qr("00020101021238570010A000000727").save(buffer, kind="png", scale=4)
    return buffer.getvalue()


def data_url(png: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(png).decode("ascii")


def output_of(channel: ZaloInput) -> ZaloOutput:
    output = channel.get_output_channel()
    assert isinstance(output, ZaloOutput)
    return output


def media(**element: str) -> dict[str, Any]:
    """The attachment of a customer-service message showing one image."""
    payload = {"template_type": "media", "elements": [{"media_type": "image", **element}]}
    return {"type": "template", "payload": payload}


async def test_a_data_url_image_is_uploaded_then_shown_by_attachment_id(
    fake: FakeZalo, channel: ZaloInput
) -> None:
    """The VietQR code (a PNG data URL from the actions) is uploaded, then sent as a media
    message in reply to the citizen's message; the data URL never travels as text."""
    png = qr_png()
    image = data_url(png)

    async def bot(message: UserMessage) -> None:
        reply = {"text": "Ông/Bà quét mã VietQR để nộp lệ phí:", "image": image}
        await message.output_channel.send_response(message.sender_id, reply)

    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        answer = await post(client, url, *signed(event(msg_id="m-7", text="nộp lệ phí")))
        assert answer.status_code == 200
        await wait_for(lambda: len(fake.sent) == 2)
    assert fake.uploads == [png]
    assert [c[0] for c in fake.calls] == ["cs", "upload", "cs"]
    upload = fake.calls[1][1]
    assert (upload["filename"], upload["content_type"]) == ("image.png", "image/png")
    text, picture = fake.sent
    assert text["message"] == {"text": "Ông/Bà quét mã VietQR để nộp lệ phí:"}
    assert picture == {
        "recipient": {"user_id": USER, "message_id": "m-7"},
        "message": {"attachment": media(attachment_id="att-1")},
    }
    everything = json.dumps([c[1] for c in fake.calls])
    assert "base64" not in everything and image[22:80] not in everything


async def test_an_http_image_url_is_shown_by_url_without_upload(
    fake: FakeZalo, channel: ZaloInput
) -> None:
    image = "https://dichvucong.example.vn/static/huong-dan.png"
    await output_of(channel).send_image_url(f"zalo:{USER}", image)
    assert fake.uploads == []
    assert fake.sent == [
        {"recipient": {"user_id": USER}, "message": {"attachment": media(url=image)}}
    ]


async def test_upload_errors_are_classified_like_message_errors(
    fake: FakeZalo, engine: Engine
) -> None:
    cfg = config(fake)
    ZaloTokenStore(engine, cfg).save("access-0", "refresh-0", 90000)
    api = ZaloApi(cfg, ZaloTokenStore(engine, cfg))
    kinds = []
    try:
        for behaviour in ["500", "timeout", "-32", "-230", "-201"]:
            fake.fail_next(behaviour)
            with pytest.raises(SendError) as caught:
                await api.upload_image(qr_png())
            kinds.append(caught.value.kind)
    finally:
        await api.close()
    assert kinds == ["retry", "retry", "retry", "fallback", "permanent"]
    assert fake.uploads == []


async def test_an_upload_with_an_expired_token_refreshes_and_uploads_once(
    fake: FakeZalo, engine: Engine
) -> None:
    cfg = config(fake)
    ZaloTokenStore(engine, cfg).save("revoked-token", "refresh-0", 90000)
    api = ZaloApi(cfg, ZaloTokenStore(engine, cfg))
    png = qr_png()
    try:
        assert await api.upload_image(png) == "att-1"
    finally:
        await api.close()
    assert fake.refreshes == 1 and fake.uploads == [png]
    assert [c[0] for c in fake.calls] == ["upload", "oauth", "upload"]


async def test_a_failed_upload_is_retried_and_a_refused_one_raises_without_text(
    fake: FakeZalo, channel: ZaloInput
) -> None:
    """An upload goes through `with_retries` like a text: a 500 is tried again, a permanent
    error (-201) is raised to the caller; the image string is never sent instead."""
    png = qr_png()
    output = output_of(channel)
    fake.fail_next("500")
    await output.send_image_url(f"zalo:{USER}", data_url(png))
    assert fake.uploads == [png]
    assert [s["message"] for s in fake.sent] == [{"attachment": media(attachment_id="att-1")}]

    fake.fail_next("-201")
    with pytest.raises(SendError) as caught:
        await output.send_image_url(f"zalo:{USER}", data_url(png))
    assert caught.value.kind == "permanent"
    assert len(fake.sent) == 1 and fake.uploads == [png]


@pytest.mark.parametrize(
    "image",
    [
        "data:image/png;base64,iVBORw0KGgo=!!",
        "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
        "Mã VietQR",
    ],
    ids=["bad-base64", "gif", "plain-text"],
)
async def test_a_malformed_image_is_left_out_with_a_warning(
    fake: FakeZalo, channel: ZaloInput, caplog: pytest.LogCaptureFixture, image: str
) -> None:
    with caplog.at_level(logging.WARNING):
        await output_of(channel).send_image_url(f"zalo:{USER}", image)
    assert fake.calls == []
    assert "zalo image to zalo:" in caplog.text and "not sent" in caplog.text


async def test_send_image_wants_exactly_one_source(fake: FakeZalo, engine: Engine) -> None:
    api = ZaloApi(config(fake), ZaloTokenStore(engine, config(fake)))
    try:
        for sources in ({}, {"attachment_id": "att-1", "url": "https://example.vn/a.png"}):
            with pytest.raises(ValueError, match="exactly one"):
                await api.send_image(USER, **sources)
    finally:
        await api.close()
    assert fake.calls == []


def test_image_bytes_decodes_png_and_jpeg_data_urls() -> None:
    png = qr_png()
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 60
    assert common.image_bytes(data_url(png)) == png
    assert common.image_bytes(data_url(jpeg, "image/jpeg")) == jpeg
    assert common.image_bytes(data_url(png, "IMAGE/PNG").replace("data:", "DATA:")) == png


@pytest.mark.parametrize(
    "url", ["https://example.vn/qr.png", "http://example.vn/qr.png", "HTTPS://EXAMPLE.VN/Q"]
)
def test_image_bytes_leaves_http_urls_to_the_provider(url: str) -> None:
    assert common.image_bytes(url) is None


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("data:image/png;base64,iVBORw0KGgo=!!", "not valid base64"),
        ("data:image/png;base64,ảnh", "not valid base64"),
        ("data:image/png;base64,iVBORw0KGgo", "not valid base64"),  # missing padding
        ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "unsupported media type"),
        ("data:image/svg+xml;base64,PHN2Zy8+", "unsupported media type"),
        ("data:image/png,iVBORw0KGgo=", "not base64"),
        ("data:image/png;base64,", "is not image/png"),
        ("data:image/jpeg;base64,iVBORw0KGgoAAAAA", "is not image/jpeg"),
        ("data:image/png;base64" + "A" * 40, "not a data URL"),
        ("ftp://example.vn/qr.png", "not a data URL"),
        ("Mã VietQR", "not a data URL"),
    ],
)
def test_image_bytes_refuses_malformed_data_urls(image: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        common.image_bytes(image)


def test_image_bytes_refuses_too_big_images_before_decoding() -> None:
    png = qr_png()
    assert common.image_bytes(data_url(png), max_bytes=len(png)) == png
    with pytest.raises(ValueError, match="over"):
        common.image_bytes(data_url(png), max_bytes=len(png) - 3)
    huge = "data:image/png;base64," + "!" * 2_000_000  # invalid, but refused for its length
    with pytest.raises(ValueError, match="over 1000000 bytes"):
        common.image_bytes(huge)

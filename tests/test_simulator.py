"""The phone simulator and its provider stand-ins, over real sockets on 127.0.0.1 (no Rasa):
the real connectors pointed at the stand-ins by `local_env` are understood and recorded, the
webhooks `/sim/send` builds are accepted by the real channel inputs, linking and a simulated
day run through the real code, and nothing starts next to real channel secrets."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from rasa.core.channels.channel import UserMessage
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import ZaloToken
from bot.delivery.sending import SendError
from bot.identity.speaker import VERIFIED_PHONE, verified_facts
from connectors.sms import SmsInput
from connectors.sms_providers import EsmsGateway
from connectors.telegram import TelegramApi, TelegramConfig, TelegramInput
from connectors.zalo import ZaloInput
from connectors.zalo_api import ZaloApi, ZaloConfig, ZaloTokenStore
from simulator.app import LABEL, create_simulator
from simulator.people import telegram_chat_id, zalo_user_id
from simulator.standins import (
    LOCAL_CHANNEL_VARS,
    SIMULATOR_URL,
    local_env,
    real_channels_configured,
)
from tests import factories
from tests.fakes import serve_channels

CCCD, PHONE = "066190001234", "0905123456"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
DAY = dt.date(2031, 3, 10)


@pytest.fixture
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh var/ and an environment without any channel configuration."""
    folder = tmp_path / "var"
    monkeypatch.setenv("APP_VAR_DIR", str(folder))
    for name in (*LOCAL_CHANNEL_VARS, SIMULATOR_URL, "RASA_URL", "TELEGRAM_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    yield folder


@pytest.fixture
def citizen_id(engine: Engine, var: Path) -> int:
    with unit_of_work(engine) as session:
        person = factories.citizen(session, CCCD, PHONE, full_name="Trần Thị Bình")
        factories.record(
            session,
            person,
            "tam_tru",
            number="TT-1",
            issued_on=dt.date(2029, 1, 1),
            valid_until=DAY + dt.timedelta(days=30),  # the 30-day reminder is due on DAY
            attributes={"dia_chi_tam_tru": "45 Nguyễn Tất Thành, Buôn Ma Thuột"},
        )
        return person.id


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve(app: web.Application, sock: socket.socket) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


@dataclass
class Running:
    url: str
    env: dict[str, str]
    client: httpx.AsyncClient

    async def messages(self, citizen: int, channel: str) -> list[dict[str, Any]]:
        query = {"citizen_id": citizen, "channel": channel}
        answer = await self.client.get(f"{self.url}/sim/messages", params=query)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["messages"])


@asynccontextmanager
async def simulator(
    engine: Engine,
    catalogue: Catalogue,
    rasa_url: str = "http://127.0.0.1:9",
    sock: socket.socket | None = None,
    **options: Any,
) -> AsyncIterator[Running]:
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    app = create_simulator(engine, catalogue, port, rasa_url=rasa_url, **options)
    async with serve(app, sock) as url, httpx.AsyncClient(timeout=60) as client:
        yield Running(url, local_env(port), client)


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (background work after a webhook)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
    return found


# Environment and refusal --------------------------------------------------------------------


def test_local_env_configures_every_real_connector_with_owner_only_secrets(var: Path) -> None:
    env = local_env(8099)
    base = "http://127.0.0.1:8099"
    zalo = ZaloConfig.from_env(env)
    assert zalo is not None and zalo.refresh_token
    assert (zalo.api_url, zalo.oauth_url, zalo.zns_url) == (f"{base}/zalo",) * 3
    telegram = TelegramConfig.from_env(env)
    assert telegram is not None and telegram.api_url == f"{base}/telegram"
    assert re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]+", telegram.token)
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,256}", telegram.secret)
    gateway = EsmsGateway.from_env(env)
    assert str(gateway.client.base_url).rstrip("/") == f"{base}/esms"
    gateway.close()
    assert env["SMS_PROVIDER"] == "esms" and env["SMS_WEBHOOK_SECRET"]
    assert env[SIMULATOR_URL] == base
    assert local_env(8099) == env  # generated once, then read back
    secrets_made = sorted(var.glob("simulator_*"))
    assert len(secrets_made) == 6
    assert all(p.stat().st_mode & 0o077 == 0 for p in secrets_made)
    assert var.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("name", LOCAL_CHANNEL_VARS)
def test_any_real_channel_variable_refuses_the_simulator(
    name: str, var: Path, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not real_channels_configured(os.environ)
    monkeypatch.setenv(name, "a-real-value")
    assert real_channels_configured(os.environ)
    with pytest.raises(RuntimeError, match="Real channel secrets"):
        create_simulator(create_engine("sqlite://"), catalogue, 8099)


def test_only_the_standins_own_environment_is_not_real(var: Path) -> None:
    own = local_env(8099)
    assert not real_channels_configured(own)  # a child started with local_env
    assert real_channels_configured({k: v for k, v in own.items() if k != SIMULATOR_URL})
    assert real_channels_configured({**own, "ZALO_OA_SECRET": "the-real-oa-secret"})
    assert real_channels_configured({**own, "ESMS_API_KEY": "REALKEY"})


# The stand-ins and the real clients ---------------------------------------------------------


async def test_standins_record_what_the_real_clients_send(
    engine: Engine, catalogue: Catalogue, citizen_id: int
) -> None:
    async with simulator(engine, catalogue) as sim:
        env, user, chat = sim.env, zalo_user_id(citizen_id), telegram_chat_id(citizen_id)
        config = ZaloConfig.from_env(env)
        assert config is not None
        zalo = ZaloApi(config, ZaloTokenStore(engine, config))
        buttons = [{"title": "Đồng ý", "type": "oa.query.hide", "payload": "#b:abc"}]
        try:
            await zalo.send_text(user, "Xin chào Ông/Bà", buttons)
            await zalo.send_image(user, await zalo.upload_image(PNG))
        finally:
            await zalo.close()
        with unit_of_work(engine) as session:  # the refresh token was exchanged at the stand-in
            token = session.get(ZaloToken, "oa")
            assert token is not None and token.access_token.startswith("sim-access-")

        telegram_config = TelegramConfig.from_env(env)
        assert telegram_config is not None
        telegram = TelegramApi(telegram_config)
        try:
            assert (await telegram.bot.get_me()).username == "dvc_mo_phong_bot"
            keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Đồng ý", callback_data="b:x")]])
            await telegram.send_text(str(chat), "Chào Ông/Bà", keyboard)
            await telegram.call(lambda: telegram.bot.send_photo(chat, PNG, filename="qr.png"))
        finally:
            await telegram.close()

        gateway = EsmsGateway.from_env(env)
        sms_id = await asyncio.to_thread(gateway.send, PHONE, "Ma xac thuc la 123456")
        assert sms_id and sms_id.startswith("sms")
        gateway.close()

        zalo_messages = await sim.messages(citizen_id, "zalo")
        assert [m["text"] for m in zalo_messages] == ["Xin chào Ông/Bà", ""]
        assert zalo_messages[0]["choices"] == [{"index": 0, "title": "Đồng ý", "kind": "text"}]
        picture = await sim.client.get(sim.url + zalo_messages[1]["image"])
        assert (picture.content, picture.headers["Content-Type"]) == (PNG, "image/png")
        telegram_messages = await sim.messages(citizen_id, "telegram")
        assert telegram_messages[0]["text"] == "Chào Ông/Bà"
        assert telegram_messages[0]["choices"][0]["kind"] == "callback"
        assert telegram_messages[1]["image"].startswith("/sim/image/")
        sms = await sim.messages(citizen_id, "sms")
        assert [(m["from"], m["text"]) for m in sms] == [("bot", "Ma xac thuc la 123456")]


async def test_standins_refuse_callers_without_the_right_credentials(
    engine: Engine, catalogue: Catalogue, citizen_id: int
) -> None:
    async with simulator(engine, catalogue) as sim:
        forged = await sim.client.post(
            f"{sim.url}/zalo/v3.0/oa/message/cs",
            json={"recipient": {"user_id": "1"}, "message": {"text": "x"}},
            headers={"access_token": "sim-access-x.0000"},
        )
        assert forged.json()["error"] == -216
        oauth = await sim.client.post(
            f"{sim.url}/zalo/v4/oa/access_token",
            data={"refresh_token": "guess", "app_id": sim.env["ZALO_APP_ID"]},
            headers={"secret_key": sim.env["ZALO_APP_SECRET"]},
        )
        assert oauth.json()["error"] == -14014
        telegram = await sim.client.post(f"{sim.url}/telegram/bot1:wrong/sendMessage")
        assert telegram.status_code == 401
        wrong = EsmsGateway.from_env({**sim.env, "ESMS_SECRET_KEY": "guess"})
        with pytest.raises(SendError, match="101"):
            await asyncio.to_thread(wrong.send, PHONE, "x")
        wrong.close()
        assert await sim.messages(citizen_id, "sms") == []


# Webhooks into the real channel inputs ------------------------------------------------------


class Echo:
    """Stands in for Rasa: records each message and answers with a button."""

    def __init__(self) -> None:
        self.messages: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        reply = {
            "text": f"Trợ lý nhận: {message.text}",
            "buttons": [{"title": "Đồng ý", "payload": "/affirm"}],
        }
        await message.output_channel.send_response(message.sender_id, reply)


def channel_inputs(env: dict[str, str], engine: Engine) -> list[Any]:
    return [
        ZaloInput(ZaloConfig.from_env(env), engine),
        TelegramInput(TelegramConfig.from_env(env), engine),
        SmsInput(env["SMS_WEBHOOK_SECRET"], EsmsGateway.from_env(env), engine),
    ]


@asynccontextmanager
async def rasa_with_real_channels(
    engine: Engine, bot: Callable[[UserMessage], Awaitable[None]]
) -> AsyncIterator[tuple[str, socket.socket]]:
    """The real channel inputs built from `local_env` of the simulator's (reserved) port."""
    sock = free_socket()
    channels = channel_inputs(local_env(sock.getsockname()[1]), engine)
    try:
        async with serve_channels(channels, bot) as url:
            yield url, sock
    finally:
        for channel in channels[:2]:
            await channel.close()


@pytest.mark.parametrize("channel", ["zalo", "telegram", "sms"])
async def test_sent_messages_reach_the_real_channels_and_answers_come_back(
    channel: str, engine: Engine, catalogue: Catalogue, citizen_id: int
) -> None:
    bot = Echo()
    async with (
        rasa_with_real_channels(engine, bot) as (rasa_url, sock),
        simulator(engine, catalogue, rasa_url, sock) as sim,
    ):
        body = {"citizen_id": citizen_id, "channel": channel, "text": "xin chào"}
        answer = await sim.client.post(f"{sim.url}/sim/send", json=body)
        assert answer.status_code == 200, answer.text

        async def answered() -> list[dict[str, Any]]:
            found = await sim.messages(citizen_id, channel)
            return [m for m in found if m["from"] == "bot"]

        reply = (await until(answered))[0]
        assert reply["text"].startswith(("Trợ lý nhận: xin chào", "Tro ly nhan: xin chao"))
        native = {
            "zalo": zalo_user_id(citizen_id),
            "telegram": str(telegram_chat_id(citizen_id)),
            "sms": PHONE,
        }[channel]
        first = bot.messages[0]
        assert (first.sender_id, first.text) == (f"{channel}:{native}", "xin chào")
        if channel == "sms":  # the sending number arrives as a verified fact
            assert verified_facts(first.metadata, first.sender_id) == {VERIFIED_PHONE: PHONE}
            assert "1" in reply["text"] and reply["choices"] == []
            press: dict[str, Any] = {"text": "1"}
        else:
            assert [c["title"] for c in reply["choices"]] == ["Đồng ý"]
            press = {"button": {"message": reply["id"], "index": 0}}
        answer = await sim.client.post(
            f"{sim.url}/sim/send", json={"citizen_id": citizen_id, "channel": channel, **press}
        )
        assert answer.status_code == 200, answer.text

        async def pressed() -> bool:
            return len(bot.messages) == 2

        await until(pressed)
        assert bot.messages[1].text == "/affirm"
        mine = [m["text"] for m in await sim.messages(citizen_id, channel) if m["from"] == "me"]
        assert mine == ["xin chào", "1" if channel == "sms" else "Đồng ý"]


async def test_send_without_rasa_says_so(
    engine: Engine, catalogue: Catalogue, citizen_id: int
) -> None:
    async with simulator(engine, catalogue) as sim:  # nothing listens on the Rasa URL
        body = {"citizen_id": citizen_id, "channel": "zalo", "text": "xin chào"}
        answer = await sim.client.post(f"{sim.url}/sim/send", json=body)
        assert answer.status_code == 502 and "Rasa" in answer.json()["error"]


class Registry:
    """Stands in for Rasa and the linking action: an ID number → a code by SMS (through the
    eSMS gateway, as the action server sends it), the code → linked."""

    def __init__(self, gateway: EsmsGateway) -> None:
        self.gateway = gateway

    async def __call__(self, message: UserMessage) -> None:
        if message.text == CCCD:
            text = "Ma xac thuc cua Ong/Ba la 482913, co hieu luc 5 phut."
            await asyncio.to_thread(self.gateway.send, PHONE, text)
            reply = "Nếu số định danh này có trong hệ thống, mã xác thực đã được gửi."
        elif message.text == "482913":
            reply = "Xác thực thành công. Xin chào Ông/Bà Bình!"
        else:
            reply = "Ông/Bà vui lòng nhập số định danh."
        await message.output_channel.send_text_message(message.sender_id, reply)


@pytest.mark.parametrize("channel", ["zalo", "telegram"])
async def test_link_runs_the_code_conversation(
    channel: str, engine: Engine, catalogue: Catalogue, citizen_id: int
) -> None:
    sock = free_socket()
    gateway = EsmsGateway.from_env(local_env(sock.getsockname()[1]))
    channels = channel_inputs(local_env(sock.getsockname()[1]), engine)
    try:
        async with (
            serve_channels(channels, Registry(gateway)) as rasa_url,
            simulator(engine, catalogue, rasa_url, sock) as sim,
        ):
            body = {"citizen_id": citizen_id, "channel": channel}
            answer = await sim.client.post(f"{sim.url}/sim/link", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "linked" and answer.json()["code"] == "482913"
            mine = [m["text"] for m in await sim.messages(citizen_id, channel) if m["from"] == "me"]
            assert mine == [CCCD, "482913"]
            sms = await sim.client.post(
                f"{sim.url}/sim/link", json={"citizen_id": citizen_id, "channel": "sms"}
            )
            assert sms.json()["status"] == "not_needed"
    finally:
        gateway.close()
        for input_channel in channels[:2]:
            await input_channel.close()


# Demo citizens, a simulated day, the page ---------------------------------------------------


async def test_citizens_lists_demo_data_with_identities_and_dues(
    engine: Engine, catalogue: Catalogue, citizen_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("simulator.app.today", lambda: DAY)
    with unit_of_work(engine) as session:
        factories.citizen(session, "066190005678", "0905000111", full_name="Lê Văn Cường")
    async with simulator(engine, catalogue) as sim:
        citizens = (await sim.client.get(f"{sim.url}/sim/citizens")).json()["citizens"]
    first = citizens[0]
    assert (first["id"], first["cccd"], first["phone"]) == (citizen_id, CCCD, PHONE)
    assert "tam_tru_gia_han" in [d["service"] for d in first["dues"]]
    assert first["zalo_user_id"] == zalo_user_id(citizen_id)
    assert first["telegram_chat_id"] == telegram_chat_id(citizen_id)
    assert len(citizens) == 1  # only citizens with something due when there are such


async def test_run_day_scans_and_delivers_through_the_pipeline(
    engine: Engine, catalogue: Catalogue, citizen_id: int
) -> None:
    triggers: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    async def trigger_intent(request: web.Request) -> web.Response:
        body = await request.json()
        triggers.append((request.match_info["conversation"], dict(request.query), body))
        return web.json_response({"tracker": {}})

    rasa = web.Application()
    rasa.router.add_post("/conversations/{conversation}/trigger_intent", trigger_intent)
    async with (
        serve(rasa, free_socket()) as rasa_url,
        simulator(engine, catalogue, rasa_url) as sim,
    ):
        answer = await sim.client.post(f"{sim.url}/sim/run-day", json={"date": DAY.isoformat()})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["created_by_service"] == {"tam_tru_gia_han": 1}
        assert report["reminders"]["sent"] == 1 and report["errors"] == []
        again = await sim.client.post(f"{sim.url}/sim/run-day", json={"date": DAY.isoformat()})
        assert again.json()["created"] == 0 and again.json()["reminders"]["sent"] == 0
    conversation, query, body = triggers[0]
    assert len(triggers) == 1
    assert (conversation, query["output_channel"]) == (f"sms:{PHONE}", "sms")
    assert body["name"] == "EXTERNAL_reminder"


async def test_the_page_is_served_labelled_and_local_only(
    engine: Engine, catalogue: Catalogue, var: Path
) -> None:
    async with simulator(engine, catalogue) as sim:
        page = await sim.client.get(sim.url + "/")
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert f"<title>{LABEL}" in page.text and f'id="banner" role="note">{LABEL}' in page.text
        for ident in ("citizen", "channel", "link", "text", "send", "messages", "run-date"):
            assert f'id="{ident}"' in page.text
        assert 'id="run-day"' in page.text and "Chạy nhắc việc cho ngày này" in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        for asset in ("phone.js", "phone.css"):
            got = await sim.client.get(f"{sim.url}/static/{asset}")
            assert got.status_code == 200
            assert not re.search(r"https?://|//cdn", got.text)  # no external assets
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text)

        rebound = await sim.client.get(sim.url + "/", headers={"Host": "evil.example:80"})
        assert rebound.status_code == 421
        body = {"citizen_id": 1, "channel": "zalo", "text": "x"}
        plain = await sim.client.post(
            f"{sim.url}/sim/send", content=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert plain.status_code == 415
        other_site = await sim.client.post(
            f"{sim.url}/sim/send", json=body, headers={"Origin": "https://evil.example"}
        )
        assert other_site.status_code == 403

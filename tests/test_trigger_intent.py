"""`POST /conversations/{id}/trigger_intent?output_channel=<name>` on Rasa's own HTTP server
(`rasa.server.create_app`, channels mounted by `rasa.core.channels.channel.register`) reaches
the fake Telegram, Zalo and SMS APIs. The agent is a stub that answers every triggered intent
with one text and two buttons, so no trained model is needed; `tests/model/test_channels_rasa.py`
does the same against a real `rasa run`."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sanic import Sanic
from sqlalchemy.engine import Engine

from bot.core.db import unit_of_work
from bot.core.models import ChannelBinding, Citizen
from bot.delivery.deliverer import ChannelLimit, Deliverer, DeliveryConfig, Notice
from bot.delivery.sending import Backoff
from connectors.senders import ConversationSender, RasaTrigger, sms_direct
from connectors.sms import SmsInput
from connectors.sms_providers import EsmsGateway
from connectors.telegram import TelegramConfig, TelegramInput
from connectors.zalo import ZaloInput
from connectors.zalo_api import ZaloConfig, ZaloTokenStore
from tests.fakes import FakeEsms, FakeTelegram, FakeZalo, serve_app

rasa_server = pytest.importorskip("rasa.server")
from rasa.core.channels.channel import register  # noqa: E402
from rasa.core.lock_store import InMemoryLockStore  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

TOKEN = "test-token"
REPLY = {
    "text": "Giấy phép lái xe của Ông/Bà sắp hết hạn. Ông/Bà có muốn đổi không?",
    "buttons": [
        {"title": "Đồng ý", "payload": "/affirm"},
        {"title": "Nhắc lại sau", "payload": "/postpone_reminder"},
    ],
}


class StubAgent:
    """What the trigger_intent route uses of an Agent; answers with REPLY."""

    def __init__(self) -> None:
        self.lock_store = InMemoryLockStore()
        self.domain = SimpleNamespace(intents=["EXTERNAL_reminder", "greet"])
        self.processor = SimpleNamespace(fetch_tracker_and_update_session=self._tracker)
        self.triggered: list[tuple[str, str]] = []

    async def _tracker(self, sender_id: str) -> DialogueStateTracker:
        return DialogueStateTracker(sender_id, [])

    def is_ready(self) -> bool:
        return True

    async def trigger_intent(
        self, intent_name: str, entities: Any, output_channel: Any, tracker: Any
    ) -> None:
        self.triggered.append((tracker.sender_id, intent_name))
        await output_channel.send_response(tracker.sender_id, dict(REPLY))


class Stack:
    def __init__(self, url: str, telegram: FakeTelegram, zalo: FakeZalo, esms: FakeEsms) -> None:
        self.url, self.telegram, self.zalo, self.esms = url, telegram, zalo, esms


@pytest.fixture
async def stack(engine: Engine) -> AsyncIterator[Stack]:
    telegram, zalo, esms = FakeTelegram(), FakeZalo(), FakeEsms()
    for fake in (telegram, zalo, esms):
        await fake.start()
    zalo_config = ZaloConfig(
        "app", "app-secret", "oa-secret", api_url=zalo.url, oauth_url=zalo.url, timeout=0.5
    )
    ZaloTokenStore(engine, zalo_config).save("access-0", "refresh-0", 90000)
    gateway = EsmsGateway("k", "s", "DAKLAK", base_url=esms.url, timeout=0.5)
    channels = [
        TelegramInput(TelegramConfig("123:TEST", "secret", api_url=telegram.url), engine),
        ZaloInput(zalo_config, engine),
        SmsInput("sms-secret", gateway, engine),
    ]
    Sanic.test_mode = True
    app = rasa_server.create_app(agent=StubAgent(), auth_token=TOKEN)  # type: ignore[arg-type]
    register(channels, app, route="/webhooks/")
    async with serve_app(app) as url:
        yield Stack(url, telegram, zalo, esms)
    for channel in channels[:2]:
        await channel.close()  # type: ignore[attr-defined]
    gateway.close()
    for fake in (telegram, zalo, esms):
        await fake.stop()


async def trigger(url: str, conversation: str, channel: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{url}/conversations/{conversation}/trigger_intent",
            params={"output_channel": channel, "token": TOKEN},
            json={"name": "EXTERNAL_reminder", "entities": {"service": "gplx_doi"}},
        )


async def test_trigger_intent_reaches_every_channel(stack: Stack) -> None:
    telegram = await trigger(stack.url, "telegram:5550001", "telegram")
    zalo = await trigger(stack.url, "zalo:6142494823000000001", "zalo")
    sms = await trigger(stack.url, "sms:0905123456", "sms")
    assert [telegram.status_code, zalo.status_code, sms.status_code] == [200, 200, 200]
    assert "messages" not in telegram.json()  # delivered by the channel, not collected

    sent = stack.telegram.sent[0]
    assert sent["chat_id"] == "5550001" and sent["text"] == REPLY["text"]
    assert len(sent["reply_markup"]["inline_keyboard"]) == 2
    cs = stack.zalo.sent[0]
    assert cs["recipient"] == {"user_id": "6142494823000000001"}  # proactive: no message_id
    assert len(cs["message"]["attachment"]["payload"]["buttons"]) == 2
    sms_sent = stack.esms.sent[0]
    assert sms_sent["Phone"] == "0905123456"
    assert sms_sent["Content"].endswith("Tra loi 1 de dong y, 2 de nhac lai sau")


async def test_a_channel_failure_keeps_its_kind_through_rasa(stack: Stack, engine: Engine) -> None:
    """Telegram says 403 (bot blocked) inside Rasa: the pipeline must not retry, and falls back."""
    with unit_of_work(engine) as session:
        citizen = Citizen(
            cccd="066190001234",
            full_name="Nguyễn Văn An",
            date_of_birth=dt.date(1990, 1, 1),
            sex="M",
            phone="0905123456",
        )
        session.add(citizen)
        session.flush()
        session.add(
            ChannelBinding(channel="telegram", channel_user_id="telegram:77", citizen_id=citizen.id)
        )
        citizen_id = citizen.id
    rasa = RasaTrigger(stack.url, TOKEN, timeout=5)
    gateway = EsmsGateway("k", "s", "DAKLAK", base_url=stack.esms.url, timeout=0.5)
    senders = {
        "telegram": ConversationSender("telegram", rasa, sms_direct(gateway, 1)),
        "sms": ConversationSender("sms", rasa, sms_direct(gateway, 1)),
    }
    limits = {c: ChannelLimit(100) for c in senders}
    config = DeliveryConfig(max_attempts=3, backoff=Backoff(base=0.01, cap=0.05), limits=limits)
    stack.telegram.fail_next("403")
    deliverer = Deliverer(engine, senders, config)
    try:
        result = await deliverer.deliver(
            citizen_id, Notice(intent="EXTERNAL_reminder"), "reminder-403"
        )
    finally:
        await deliverer.aclose()
        await rasa.close()
        gateway.close()
    assert (result.status, result.channel, result.attempts) == ("sent", "sms", 2)
    assert len(stack.telegram.calls) == 1 and len(stack.esms.sent) == 1

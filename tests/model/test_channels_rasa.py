"""A real `rasa run` with the trained model and credentials.yml: trigger_intent with each
output_channel, and a Telegram webhook round trip, reach the fake APIs on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.core.config import PROJECT_ROOT
from bot.core.db import make_engine
from connectors.telegram import SECRET_HEADER
from connectors.zalo_api import ZaloConfig, ZaloTokenStore
from tests.fakes import FakeEsms, FakeTelegram, FakeZalo
from tests.model.server import TOKEN, Servers, copy_db

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
GREETING = "Xin chào Ông/Bà"


class Fakes:
    def __init__(self) -> None:
        self.telegram, self.zalo, self.esms = FakeTelegram(), FakeZalo(), FakeEsms()

    def all(self) -> tuple[FakeTelegram, FakeZalo, FakeEsms]:
        return self.telegram, self.zalo, self.esms


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    group = Fakes()
    for fake in group.all():
        await fake.start()
    yield group
    for fake in group.all():
        await fake.stop()


async def wait_until(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.2)):
        if predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("nothing arrived at the fake API")


async def test_trigger_intent_and_webhooks_through_a_real_rasa_server(
    fakes: Fakes, tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not list((PROJECT_ROOT / "models").glob("*.tar.gz")):
        pytest.fail("no trained model: run `make train` (make test does)")
    env = {
        "TELEGRAM_BOT_TOKEN": "123:TEST",
        "TELEGRAM_WEBHOOK_SECRET": "tg-secret",
        "TELEGRAM_API_URL": fakes.telegram.url,
        "ZALO_APP_ID": "app",
        "ZALO_APP_SECRET": "app-secret",
        "ZALO_OA_SECRET": "oa-secret",
        "ZALO_API_URL": fakes.zalo.url,
        "ZALO_OAUTH_URL": fakes.zalo.url,
        "SMS_PROVIDER": "esms",
        "ESMS_API_KEY": "k",
        "ESMS_SECRET_KEY": "s",
        "ESMS_BRANDNAME": "DAKLAK",
        "ESMS_BASE_URL": fakes.esms.url,
        "SMS_WEBHOOK_SECRET": "sms-secret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = copy_db(sqlite_template, tmp_path / "app.db")
    zalo_config = ZaloConfig.from_env()
    assert zalo_config is not None
    ZaloTokenStore(make_engine(url), zalo_config).save("access-0", "refresh-0", 90000)
    servers = await asyncio.to_thread(Servers, tmp_path, url)
    try:
        async with httpx.AsyncClient(base_url=servers.client.base_url, timeout=60) as client:
            for conversation, channel in [
                ("telegram:5550001", "telegram"),
                ("zalo:6142494823000000001", "zalo"),
                ("sms:0905123456", "sms"),
            ]:
                answer = await client.post(
                    f"/conversations/{conversation}/trigger_intent",
                    params={"output_channel": channel, "token": TOKEN},
                    json={"name": "greet", "entities": {}},
                )
                assert answer.status_code == 200, answer.text
                assert "messages" not in answer.json()
            await wait_until(lambda: fakes.telegram.sent and fakes.zalo.sent and fakes.esms.sent)
            assert fakes.telegram.sent[0]["text"].startswith(GREETING)
            assert fakes.telegram.sent[0]["chat_id"] == "5550001"
            assert fakes.zalo.sent[0]["message"]["text"].startswith(GREETING)
            assert fakes.esms.sent[0]["Content"].startswith("Xin chao Ong/Ba")

            update = {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": 42, "type": "private"},
                    "from": {"id": 42, "is_bot": False, "first_name": "An"},
                    "text": "xin chào",
                },
            }
            hook = await client.post(
                "/webhooks/telegram/webhook",
                content=json.dumps(update),
                headers={SECRET_HEADER: "tg-secret"},
            )
            assert hook.status_code == 200
            await wait_until(lambda: any(m["chat_id"] == "42" for m in fakes.telegram.sent))
    finally:
        await asyncio.to_thread(servers.stop)

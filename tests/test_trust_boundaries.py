"""Who is speaking (docs/security.md): only the connector that verified a sender says which
channel it speaks on and which facts are proven about it.

Findings of issue 15 reproduced here (each failed before the fix):
- 1: a REST body naming `input_channel`, a `telegram:`/`sms:` sender or `verified_phone`
  metadata linked the sender to a citizen (through a running Rasa server too:
  tests/model/test_api_security.py);
- 6: var/ and its data files were readable by every user of the machine;
- 8: no per-sender limit on any inbound channel (REST here; Zalo, Telegram and SMS below and in
  tests/test_security_channels.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rasa.core.channels.channel import UserMessage
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from actions.account import ActionCheckStatus
from actions.identity import ActionLinkAccount
from bot.core.config import private_file, secret, var_dir
from bot.core.db import get_engine, unit_of_work
from bot.core.models import ChannelBinding
from bot.delivery.sms import OutboxSmsGateway
from bot.identity.ratelimit import RATE_LIMITED, SenderRateLimit, Verdict
from bot.identity.speaker import ENVELOPE, channel_of, rest_sender, seal, verified_facts
from connectors.rest import RestInput
from connectors.telegram import TelegramConfig, TelegramInput
from connectors.zalo import ZaloInput
from tests import factories
from tests.fakes import FakeTelegram, serve_channels, wait_for

PHONE = "0905123456"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- bot.identity.speaker: the channel of a conversation and its sealed facts
# ----------------------------


def test_channel_comes_from_the_prefix_only_connectors_create() -> None:
    assert channel_of("telegram:123") == "telegram"
    assert channel_of("sms:0905123456") == "sms"
    assert channel_of("zalo:88") == "zalo"
    for other in ("rest:telegram:123", "default", "telegram", "Telegram:1", "email:x", ""):
        assert channel_of(other) == "rest"


def test_rest_senders_live_in_their_own_namespace() -> None:
    assert rest_sender("telegram:123") == "rest:telegram:123"
    assert rest_sender("sms:0905123456") == "rest:sms:0905123456"
    assert rest_sender("rest:abc") == "rest:abc"  # idempotent
    assert rest_sender(None) == "rest:default"
    assert channel_of(rest_sender("zalo:1")) == "rest"


def test_sealed_facts_hold_for_their_sender_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_SECRET_KEY", "k1")
    clock = Clock()
    token = seal("telegram", "telegram:42", {"verified_phone": PHONE}, clock)
    meta = {ENVELOPE: token}
    assert verified_facts(meta, "telegram:42", clock) == {"verified_phone": PHONE}
    assert verified_facts(meta, "telegram:43", clock) == {}  # another chat
    assert verified_facts(meta, "rest:telegram:42", clock) == {}  # a REST look-alike
    clock.now += 3600
    assert verified_facts(meta, "telegram:42", clock) == {}  # stale
    clock.now -= 3600
    monkeypatch.setenv("APP_SECRET_KEY", "another key")
    assert verified_facts(meta, "telegram:42", clock) == {}  # not sealed by our processes


def test_a_forged_or_plain_envelope_asserts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_SECRET_KEY", "k1")
    token = seal("sms", "sms:0905123456", {"verified_phone": PHONE})
    body, _, mac = token.rpartition(".")
    forged_body = body.replace(body[:8], body[:8][::-1]) if body[:8] != body[:8][::-1] else body
    for metadata in (
        {"verified_phone": PHONE},  # what a REST client could send before
        {ENVELOPE: {"verified_phone": PHONE}},
        {ENVELOPE: "x.y"},
        {ENVELOPE: forged_body + "." + mac},
        {ENVELOPE: body + "." + "0" * 64},
        {ENVELOPE: "!!!." + mac},
        {ENVELOPE: "a" * 5000},
        None,
    ):
        assert verified_facts(metadata, "sms:0905123456") == {}


def test_only_a_verified_channel_may_seal_only_known_facts() -> None:
    with pytest.raises(ValueError):
        seal("rest", "rest:1", {"verified_phone": PHONE})
    with pytest.raises(ValueError):
        seal("telegram", "sms:0905123456", {"verified_phone": PHONE})
    with pytest.raises(ValueError):
        seal("telegram", "telegram:1", {"citizen_id": "7"})


# --- the actions: identity from the binding and sealed facts only -------------------------------


@pytest.fixture
def app(actions_db: Path) -> Path:
    with unit_of_work() as s:
        factories.citizen(s, phone=PHONE, full_name="Nguyễn Văn An")
    return actions_db


def tracker(sender: str, text: str, intent: str, input_channel: str, metadata: Any) -> Tracker:
    message = {"text": text, "intent": {"name": intent}, "entities": [], "metadata": metadata}
    events = [
        {
            "event": "user",
            "text": text,
            "input_channel": input_channel,
            "parse_data": message,
            "metadata": metadata,
        }
    ]
    return Tracker(sender, {}, message, events, False, None, None, "action_listen")


def run(action: Any, t: Tracker) -> str:
    dispatcher = CollectingDispatcher()
    action.run(dispatcher, t, {})
    return "\n".join(m.get("text") or "" for m in dispatcher.messages)


def bindings() -> int:
    with unit_of_work() as s:
        return s.scalar(select(func.count()).select_from(ChannelBinding))


@pytest.mark.parametrize(
    "sender, input_channel",
    [
        ("rest:telegram:777", "telegram"),  # what the REST channel makes of `telegram:777`
        ("rest:sms:0905123456", "sms"),
        ("telegram:777", "rest"),  # even an unprefixed id and a lying input channel
    ],
)
def test_plain_metadata_never_links(app: Path, sender: str, input_channel: str) -> None:
    spoof = {"verified_phone": PHONE}
    answer = run(
        ActionLinkAccount(), tracker(sender, "/link_account", "link_account", input_channel, spoof)
    )
    assert "Xác thực thành công" not in answer and "An" not in answer
    answer = run(
        ActionCheckStatus(), tracker(sender, "hồ sơ", "check_status", input_channel, spoof)
    )
    assert "xác thực danh tính" in answer
    assert bindings() == 0


def test_sealed_phone_links_its_own_sender(app: Path) -> None:
    sms = "sms:0905123456"
    sealed = {ENVELOPE: seal("sms", sms, {"verified_phone": PHONE})}
    stolen = tracker("sms:0912000000", "hồ sơ", "check_status", "sms", sealed)
    assert "xác thực danh tính" in run(ActionCheckStatus(), stolen)  # replayed elsewhere: nothing
    assert bindings() == 0
    assert "xác thực danh tính" not in run(
        ActionCheckStatus(), tracker(sms, "hồ sơ", "check_status", "sms", sealed)
    )
    tg = "telegram:777"
    sealed = {ENVELOPE: seal("telegram", tg, {"verified_phone": PHONE})}
    answer = run(
        ActionLinkAccount(), tracker(tg, "/link_account", "link_account", "telegram", sealed)
    )
    assert "Xác thực thành công" in answer
    assert bindings() == 2


# --- the REST channel over a socket -------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.messages: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id, "ok")


async def test_rest_speaks_as_rest_whatever_the_body_says() -> None:
    bot = Recorder()
    channel = RestInput(SenderRateLimit(per_minute=0))
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        body = {
            "sender": "telegram:123",
            "message": "/link_account",
            "input_channel": "telegram",
            "metadata": {
                "verified_phone": PHONE,
                ENVELOPE: "forged",
                "is_external": True,
                "client": "cổng tích hợp",
                "locale": "x" * 100,
            },
        }
        answer = await client.post(f"{url}/webhooks/rest/webhook", json=body)
        assert answer.status_code == 200
        assert answer.json() == [{"recipient_id": "rest:telegram:123", "text": "ok"}]
        await client.post(f"{url}/webhooks/rest/webhook", json={"message": "chào"})
    first, second = bot.messages
    assert (first.sender_id, first.input_channel) == ("rest:telegram:123", "rest")
    assert first.metadata == {"client": "cổng tích hợp"}  # allow-listed, short strings only
    assert (second.sender_id, second.metadata) == ("rest:default", None)


async def test_rest_refuses_a_flooding_sender_politely_and_serves_the_others() -> None:
    bot = Recorder()
    channel = RestInput(SenderRateLimit(per_minute=1, burst=3))
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        answers = [
            await client.post(f"{url}/webhooks/rest/webhook", json={"sender": "a", "message": "x"})
            for _ in range(5)
        ]
        other = await client.post(
            f"{url}/webhooks/rest/webhook", json={"sender": "b", "message": "x"}
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[3].json() == [{"recipient_id": "rest:a", "text": RATE_LIMITED}]
    assert int(answers[3].headers["Retry-After"]) == 60
    assert other.status_code == 200
    assert [m.sender_id for m in bot.messages] == ["rest:a"] * 3 + ["rest:b"]


# --- Telegram and Zalo: told once, then quiet ---------------------------------------------------


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    api = await FakeTelegram().start()
    yield api
    await api.stop()


async def test_telegram_flood_is_told_once_and_dropped(
    fake_telegram: FakeTelegram, engine: Engine
) -> None:
    bot = Recorder()
    config = TelegramConfig("123:TEST", "tg-secret", api_url=fake_telegram.url, timeout=0.5)
    channel = TelegramInput(config, engine, rate_limit=SenderRateLimit(per_minute=1, burst=2))
    headers = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        for n in range(6):
            update = {
                "update_id": 900 + n,
                "message": {
                    "message_id": n,
                    "date": 1_700_000_000,
                    "chat": {"id": 55, "type": "private"},
                    "from": {"id": 55, "is_bot": False, "first_name": "A"},
                    "text": f"tin {n}",
                },
            }
            assert (
                await client.post(f"{url}/webhooks/telegram/webhook", json=update, headers=headers)
            ).status_code == 200
        await wait_for(lambda: len(fake_telegram.sent) >= 3)
        await asyncio.sleep(0.2)
    await channel.close()
    assert sorted(m.text for m in bot.messages) == ["tin 0", "tin 1"]  # background hand-offs
    texts = [m["text"] for m in fake_telegram.sent]
    assert texts.count(RATE_LIMITED) == 1 and texts.count("ok") == 2


def test_rate_limit_refills_and_forgets_old_senders() -> None:
    clock = Clock()
    limit = SenderRateLimit(per_minute=6, burst=2, max_senders=2, clock=clock)
    assert [limit.check("a") for _ in range(4)] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.TELL,
        Verdict.DROP,
    ]
    clock.now += 10  # one token back (6 a minute)
    assert [limit.check("a"), limit.check("a")] == [Verdict.ALLOW, Verdict.TELL]
    limit.check("b")
    limit.check("c")  # "a" is the least recently seen: forgotten
    assert limit.check("a") is Verdict.ALLOW
    assert SenderRateLimit(per_minute=0).check("x") is Verdict.ALLOW
    assert ZaloInput(None).rate_limit.per_second > 0  # on by default


# --- var/: owner-only -----------------------------------------------------------------------------


def test_var_and_its_secrets_and_outbox_are_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("APP_SECRET_KEY", raising=False)
    old = os.umask(0o022)  # the usual umask: new files 0644, folders 0755
    try:
        folder = var_dir()
        key = secret("APP_SECRET_KEY", "app_secret_key")
        assert key == secret("APP_SECRET_KEY", "app_secret_key")  # generated once
        OutboxSmsGateway().send(PHONE, "Ma xac thuc 123456")
        db = get_engine(f"sqlite:///{folder / 'app.db'}")
        with db.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        db.dispose()
        loose = folder / "loose.txt"
        loose.write_text("x")
        private_file(loose)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("app_secret_key", "sms_outbox.jsonl", "app.db", "loose.txt"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert json.loads((folder / "sms_outbox.jsonl").read_text())["to"] == PHONE
    folder.chmod(0o755)  # an older version's folder is tightened when next used
    var_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

"""SMS channel: inbound webhook over a real socket, outbound through eSMS on a fake gateway."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from rasa.core.channels.channel import UserMessage
from sqlalchemy.engine import Engine

from bot.delivery.sending import SendError
from bot.delivery.sms import OutboxSmsGateway, to_sms_text
from bot.identity.ratelimit import RATE_LIMITED, SenderRateLimit
from bot.identity.speaker import verified_facts
from connectors.sms import SECRET_HEADER, SmsInput
from connectors.sms_providers import EsmsGateway, default_gateway
from tests.fakes import FakeEsms, serve_channels, wait_for

SECRET = "sms-shared-secret"
SIGNING_KEY = "sms-signing-key"
PHONE, OTHER_PHONE = "0905123456", "0912345678"
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


@pytest.fixture(autouse=True)
def app_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inbound SMS are sealed (bot.identity.speaker) under this key, not one generated under
    var/."""
    monkeypatch.setenv("APP_SECRET_KEY", "test-app-secret")


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
        query = {"sender": "84905123456", "content": "2", "smsid": "a2"}
        answer = await client.get(
            f"{url}/webhooks/sms/webhook", params=query, headers={SECRET_HEADER: SECRET}
        )
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
    monkeypatch.setenv("SMS_PROVIDER", "esms")
    with pytest.raises(RuntimeError, match="ESMS_API_KEY"):
        default_gateway()
    monkeypatch.setenv("SMS_PROVIDER", "pigeon")
    with pytest.raises(RuntimeError, match="unknown SMS_PROVIDER"):
        default_gateway()
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


# --- webhook authentication: header-only secret, signature, source addresses -----------------


def signature(payload: bytes, key: str = SIGNING_KEY, at: float | None = None) -> dict[str, str]:
    """The signature headers a gateway (or its relay) adds: HMAC-SHA256 of `<ts>.` + payload."""
    timestamp = str(int(time.time() if at is None else at))
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": mac.hexdigest()}


def sms(ident: str, phone: str = PHONE, text: str = "xin chao") -> dict[str, str]:
    return {"from": phone, "text": text, "id": ident}


async def test_secret_in_the_query_is_refused_and_not_logged(
    fake: FakeEsms, gateway: EsmsGateway, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A secret in the URL ends up in access logs: only the header is accepted."""
    bot = Bot()
    channel = SmsInput(SECRET, gateway, engine)
    query = {"secret": SECRET, "sender": PHONE, "content": "GPLX", "smsid": "q1"}
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        in_query = await client.get(f"{url}/webhooks/sms/webhook", params=query)
        form = urllib.parse.urlencode({**sms("q2"), "secret": SECRET})
        in_form = await client.post(
            f"{url}/webhooks/sms/webhook",
            content=form.encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert (in_query.status_code, in_form.status_code) == (401, 401)
    assert in_query.json() == {"error": "shared secret must be sent in the X-Webhook-Secret header"}
    assert "shared secret must be sent in the X-Webhook-Secret header" in caplog.text
    assert SECRET not in caplog.text and bot.messages == []


async def test_signed_requests_with_a_fresh_timestamp_only(
    fake: FakeEsms, gateway: EsmsGateway, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    channel = SmsInput(SECRET, gateway, engine, signing_key=SIGNING_KEY)
    webhook = "/webhooks/sms/webhook"
    json_type = {"content-type": "application/json"}

    def body(ident: str) -> bytes:
        return json.dumps(sms(ident)).encode()

    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:

        async def send(raw: bytes, headers: dict[str, str], secret: bool = True) -> int:
            extra = {SECRET_HEADER: SECRET} if secret else {}
            answer = await client.post(
                url + webhook, content=raw, headers={**json_type, **extra, **headers}
            )
            return answer.status_code

        good = await send(body("s1"), signature(body("s1")))
        query = urllib.parse.urlencode({"sender": PHONE, "content": "GPLX", "smsid": "s2"})
        signed_get = await client.get(
            f"{url}{webhook}?{query}", headers={SECRET_HEADER: SECRET, **signature(query.encode())}
        )
        # The query string of a POST is not signed: a replayed body cannot get another sender.
        aliased = json.dumps({"sender": PHONE, "content": "x", "smsid": "s3"}).encode()
        smuggled = await client.post(
            f"{url}{webhook}?from={OTHER_PHONE}",
            content=aliased,
            headers={**json_type, SECRET_HEADER: SECRET, **signature(aliased)},
        )
        refused = [
            await send(body("r1"), {}),  # unsigned
            await send(body("r2"), signature(body("r2"), key="guess")),
            await send(body("r3"), signature(body("r3-tampered"))),
            await send(body("r4"), signature(body("r4"), at=time.time() - 600)),  # replayed
            await send(body("r5"), signature(body("r5"), at=time.time() + 600)),
            await send(body("r6"), {**signature(body("r6")), "X-Webhook-Timestamp": "soon"}),
            await send(body("r7"), signature(body("r7")), secret=False),
        ]
        await wait_for(lambda: len(bot.messages) == 3)
    assert (good, signed_get.status_code, smuggled.status_code) == (200, 200, 200)
    assert refused == [401] * 7
    # Handed to the bot in background tasks: which arrived matters, not their order.
    assert sorted(m.message_id for m in bot.messages) == ["s1", "s2", "s3"]
    assert {m.sender_id for m in bot.messages} == {f"sms:{PHONE}"}
    assert SIGNING_KEY not in caplog.text


async def test_source_address_allow_list_believes_only_trusted_proxies(
    fake: FakeEsms, gateway: EsmsGateway, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The test client connects from 127.0.0.1; X-Real-IP counts only from a trusted proxy."""
    gateways = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.1.7")]
    cases = [  # (allowed, trusted proxies, X-Real-IP, expected status)
        (gateways, None, None, 403),
        (gateways, None, "10.1.2.3", 403),  # a client cannot choose its address
        (gateways, frozenset({"127.0.0.1"}), "10.1.2.3", 200),
        (gateways, frozenset({"127.0.0.1"}), "172.16.0.1", 403),
        ([ipaddress.ip_network("127.0.0.0/8")], None, None, 200),
    ]
    statuses = []
    for i, (allowed, trusted, real_ip, _) in enumerate(cases):
        bot = Bot()
        channel = SmsInput(SECRET, gateway, engine, allowed_ips=allowed, trusted_proxies=trusted)
        headers = {"X-Real-IP": real_ip} if real_ip else {}
        async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
            answer = await client.post(
                f"{url}/webhooks/sms/webhook",
                json=sms(f"ip{i}"),
                headers={SECRET_HEADER: SECRET, **headers},
            )
            statuses.append(answer.status_code)
    assert statuses == [expected for *_, expected in cases]
    assert "source address 127.0.0.1 is not allowed" in caplog.text
    assert "source address 172.16.0.1 is not allowed" in caplog.text


def test_webhook_security_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SMS_WEBHOOK_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("SMS_WEBHOOK_MAX_AGE", "60")
    monkeypatch.setenv("SMS_WEBHOOK_ALLOWED_IPS", " 10.0.0.0/8, 192.168.1.7,,2001:db8::1/64 ")
    monkeypatch.setenv("RASA_TRUSTED_PROXIES", "127.0.0.1")
    monkeypatch.setenv("INBOUND_RATE_PER_MINUTE", "30")
    monkeypatch.setenv("INBOUND_BURST", "4")
    channel = SmsInput.from_credentials(None)
    assert (channel.signing_key, channel.max_age) == (SIGNING_KEY, 60)
    assert channel.allowed_ips == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("2001:db8::/64"),
    )
    assert channel.trusted_proxies == frozenset({"127.0.0.1"})
    assert (channel.rate_limit.per_second, channel.rate_limit.burst) == (0.5, 4)

    for name in ("SMS_WEBHOOK_SIGNING_KEY", "SMS_WEBHOOK_MAX_AGE", "SMS_WEBHOOK_ALLOWED_IPS"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("RASA_TRUSTED_PROXIES")
    defaults = SmsInput.from_credentials(None)
    assert (defaults.signing_key, defaults.max_age, defaults.allowed_ips) == (None, 300, None)
    assert defaults.trusted_proxies == frozenset()

    for name, value in [
        ("SMS_WEBHOOK_MAX_AGE", "0"),
        ("SMS_WEBHOOK_MAX_AGE", "soon"),
        ("SMS_WEBHOOK_ALLOWED_IPS", "10.0.0.0/8, gateway.esms.vn"),
    ]:
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(ValueError, match=name):
                SmsInput.from_credentials(None)


# --- what reaches the bot: the verified phone, and not a flood --------------------------------


async def test_the_message_carries_the_phone_as_a_verified_fact(
    fake: FakeEsms, gateway: EsmsGateway, engine: Engine
) -> None:
    bot = Bot()
    channel = SmsInput(SECRET, gateway, engine)
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        await post(client, url, sms("v1", phone="84905123456"))
        await wait_for(lambda: len(bot.messages) == 1)
    message = bot.messages[0]
    assert verified_facts(message.metadata, f"sms:{PHONE}") == {"verified_phone": PHONE}
    assert verified_facts(message.metadata, f"sms:{OTHER_PHONE}") == {}


async def test_a_flood_from_one_number_is_told_once_then_dropped(
    fake: FakeEsms, gateway: EsmsGateway, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="connectors")
    bot = Bot()
    frozen = SenderRateLimit(per_minute=60, burst=3, clock=lambda: 1000.0)
    channel = SmsInput(SECRET, gateway, engine, rate_limit=frozen)
    async with serve_channels([channel], bot) as url, httpx.AsyncClient() as client:
        flood = [await post(client, url, sms(f"f{i}", text=f"tin {i}")) for i in range(6)]
        other = await post(client, url, sms("o1", phone=OTHER_PHONE))
        await wait_for(lambda: len(bot.messages) == 4)
    assert [a.status_code for a in [*flood, other]] == [200] * 7  # the gateway must not retry
    senders = sorted(m.sender_id for m in bot.messages)  # background hand-offs: order is free
    assert senders == sorted([f"sms:{PHONE}"] * 3 + [f"sms:{OTHER_PHONE}"])
    notice = to_sms_text(RATE_LIMITED)
    told = [s["Phone"] for s in fake.sent if s["Content"] == notice]
    assert told == [PHONE]
    assert len(fake.sent) == 5  # 4 answers and the one notice
    assert "sms:*******456" in caplog.text and PHONE not in caplog.text

"""HTTP payment platform client against the fake platform on 127.0.0.1 (a real socket).

The client is synchronous (httpx.Client), so each call runs in a thread (`asyncio.to_thread`)
while the aiohttp fake serves on the test's event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest

from bot.payments.platform import PayLink, PayLinkRequest, PlatformError
from connectors.payment_platform import HttpPaymentPlatform, payment_platform_from_env
from connectors.signed_http import sign
from tests.fake_payments import SECRET, FakePaymentPlatform, signed_callback

CALLBACK = "https://dvc.example.vn/payments/callback"


@pytest.fixture
async def fake() -> AsyncIterator[FakePaymentPlatform]:
    platform = FakePaymentPlatform(hang_delay=1.0)
    await platform.start()
    yield platform
    await platform.stop()


def client(fake: FakePaymentPlatform, secret: str = SECRET) -> HttpPaymentPlatform:
    return HttpPaymentPlatform(
        fake.url, secret, callback_url=CALLBACK, timeout=0.2, attempts=3, backoff=0.01
    )


def pay_request(reference: str = "DLK-261120-00001") -> PayLinkRequest:
    return PayLinkRequest(
        reference=reference,
        amount=50_000,
        description="Le phi gia han tam tru",
        expires_at=dt.datetime(2026, 11, 27, 2, 0, 0),
    )


async def create(platform: HttpPaymentPlatform, request: PayLinkRequest) -> PayLink:
    try:
        return await asyncio.to_thread(platform.create_link, request)
    finally:
        platform.close()


async def test_link_is_created_with_a_signed_body_and_idempotency_key(
    fake: FakePaymentPlatform,
) -> None:
    link = await create(client(fake), pay_request())
    assert link == PayLink(url=f"{fake.url}/pay/pay-1", platform_id="pay-1")
    [call] = fake.requests
    assert call.body == {
        "reference": "DLK-261120-00001",
        "amount": 50_000,
        "currency": "VND",
        "description": "Le phi gia han tam tru",
        "expires_at": "2026-11-27T02:00:00Z",
        "callback_url": CALLBACK,
    }
    assert call.raw == json.dumps(call.body, ensure_ascii=False, sort_keys=True).encode()
    headers = call.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "DLK-261120-00001"
    assert abs(int(headers["X-Timestamp"]) - time.time()) < 5
    assert headers["X-Signature"] == sign(SECRET, headers["X-Timestamp"], call.raw)


async def test_same_reference_twice_gives_the_same_link_and_one_payment(
    fake: FakePaymentPlatform,
) -> None:
    platform = client(fake)
    first = await asyncio.to_thread(platform.create_link, pay_request())
    second = await create(platform, pay_request())
    assert first == second
    assert len(fake.requests) == 2 and list(fake.payments) == ["DLK-261120-00001"]


async def test_503_then_success_gives_the_link_after_a_retry(
    fake: FakePaymentPlatform, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(1, status=503)
    with caplog.at_level(logging.WARNING, logger="connectors.signed_http"):
        link = await create(client(fake), pay_request())
    assert link.platform_id == "pay-1"
    assert len(fake.requests) == 2 and len(fake.payments) == 1
    assert "attempt 1/3 failed: HTTP 503" in caplog.text
    assert SECRET not in caplog.text and "sha256=" not in caplog.text


async def test_a_4xx_is_final_without_retry(fake: FakePaymentPlatform) -> None:
    fake.fail_next(1, status=400)
    with pytest.raises(PlatformError, match="400"):
        await create(client(fake), pay_request())
    assert len(fake.requests) == 1 and fake.payments == {}


async def test_a_wrong_secret_is_refused_by_the_platform(fake: FakePaymentPlatform) -> None:
    with pytest.raises(PlatformError, match="401"):
        await create(client(fake, secret="wrong"), pay_request())
    assert len(fake.requests) == 1 and fake.payments == {}


async def test_timeouts_exhausted_raise_platform_error(fake: FakePaymentPlatform) -> None:
    fake.hang_next(3)
    with pytest.raises(PlatformError, match="3 attempts"):
        await create(client(fake), pay_request())
    assert len(fake.requests) == 3


async def test_a_timeout_then_success_opens_one_payment(fake: FakePaymentPlatform) -> None:
    fake.hang_next(1)
    link = await create(client(fake), pay_request())
    assert link.platform_id == "pay-1" and len(fake.requests) == 2


@pytest.mark.parametrize(
    "pay_url",
    [
        "javascript:alert(1)",
        "http://pay.example.vn/pay/1",
        "http://127.0.0.1.evil.example/pay/1",
        "http://127.0.0.1@evil.example/pay/1",
        "https://",
        "https://pay.example.vn/\npay",
    ],
)
async def test_an_unsafe_pay_url_is_refused(fake: FakePaymentPlatform, pay_url: str) -> None:
    fake.pay_url_override = pay_url
    with pytest.raises(PlatformError, match="pay_url"):
        await create(client(fake), pay_request())
    assert len(fake.requests) == 1


async def test_an_https_pay_url_is_accepted(fake: FakePaymentPlatform) -> None:
    fake.pay_url_override = "https://pay.example.vn/p/1"
    link = await create(client(fake), pay_request())
    assert link.url == "https://pay.example.vn/p/1"


def test_from_env_without_url_is_none() -> None:
    assert payment_platform_from_env({}) is None
    assert payment_platform_from_env({"PAYMENT_PLATFORM_SECRET": "s"}) is None


def test_from_env_url_without_secret_names_the_variable() -> None:
    with pytest.raises(RuntimeError, match="PAYMENT_PLATFORM_SECRET"):
        payment_platform_from_env({"PAYMENT_PLATFORM_URL": "https://pay.example.vn"})


def test_from_env_configures_the_client() -> None:
    env = {
        "PAYMENT_PLATFORM_URL": "https://pay.example.vn/api/",
        "PAYMENT_PLATFORM_SECRET": "s",
        "PAYMENT_CALLBACK_URL": CALLBACK,
        "PAYMENT_PLATFORM_TIMEOUT": "2.5",
    }
    platform = payment_platform_from_env(env)
    assert isinstance(platform, HttpPaymentPlatform)
    try:
        assert platform.url == "https://pay.example.vn/api/payments"
        assert platform.callback_url == CALLBACK
        assert platform.client.timeout.read == 2.5
    finally:
        platform.close()
    with pytest.raises(RuntimeError, match="PAYMENT_PLATFORM_TIMEOUT"):
        payment_platform_from_env({**env, "PAYMENT_PLATFORM_TIMEOUT": "soon"})


def test_signed_callback_is_verifiable() -> None:
    raw, headers = signed_callback(SECRET, {"payment_id": "pay-1", "status": "paid"}, 1_700_000_000)
    assert json.loads(raw) == {"payment_id": "pay-1", "status": "paid"}
    assert headers["X-Timestamp"] == "1700000000"
    assert headers["X-Signature"] == sign(SECRET, "1700000000", raw)

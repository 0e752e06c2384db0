"""The payment callback endpoint and the officers' payment pages, over HTTP on a real socket."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.core.db import unit_of_work
from bot.core.lifecycles import PaymentStatus
from bot.core.models import Dossier, Payment, PaymentCallback
from bot.dossiers.submission import cancel
from connectors.payment_platform import HttpPaymentPlatform
from console.views_payments import CALLBACK_PATH
from console.web import Deps
from tests.console_support import (
    csrf_of,
    login,
)
from tests.fake_payments import SECRET as PLATFORM_SECRET
from tests.fake_payments import FakePaymentPlatform, signed_callback
from tests.test_payments import submitted

SECRET = "platform-shared-secret"


@pytest.fixture(autouse=True)
def callback_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_CALLBACK_SECRET", SECRET)


def new_payment(deps: Deps) -> tuple[int, str, int]:
    with unit_of_work(deps.engine) as s:
        payment = submitted(s, deps.catalogue)
        assert payment is not None
        return payment.id, payment.reference, payment.amount


def state(deps: Deps, payment_id: int) -> tuple[str, str | None]:
    with unit_of_work(deps.engine) as s:
        payment = s.get(Payment, payment_id)
        return payment.status, payment.transaction_id


async def post(client: TestClient, body: dict, secret: str = SECRET, at: int | None = None):  # type: ignore[no-untyped-def]
    raw, headers = signed_callback(secret, body, at)
    return await client.post(CALLBACK_PATH, data=raw, headers=headers)


async def test_a_signed_callback_pays_once(console: tuple[TestClient, Deps]) -> None:
    client, deps = console
    payment_id, reference, amount = new_payment(deps)
    body = {"transaction_id": "FT26120100001", "reference": reference, "amount": amount}
    first = await post(client, body)
    assert first.status == 200 and (await first.json()) == {"result": "applied"}
    assert state(deps, payment_id) == (PaymentStatus.PAID, "FT26120100001")
    again = await post(client, body)
    assert again.status == 200 and (await again.json()) == {"result": "duplicate"}
    with unit_of_work(deps.engine) as s:
        assert s.scalar(select(func.count()).select_from(PaymentCallback)) == 1


async def test_forged_stale_and_malformed_callbacks_change_nothing(
    console: tuple[TestClient, Deps],
) -> None:
    client, deps = console
    payment_id, reference, amount = new_payment(deps)
    body = {"transaction_id": "FT-X", "reference": reference, "amount": amount}
    forged = await post(client, body, secret="guessed")
    stale = await post(client, body, at=int(time.time()) - 3600)
    unsigned = await client.post(CALLBACK_PATH, json=body)
    raw, headers = signed_callback(SECRET, {"transaction_id": "FT-X", "amount": amount})
    malformed = await client.post(CALLBACK_PATH, data=raw, headers=headers)
    huge = await client.post(CALLBACK_PATH, data=b"x" * 20000, headers=headers)
    assert [forged.status, stale.status, unsigned.status] == [401, 401, 401]
    assert (malformed.status, huge.status) == (400, 413)
    assert state(deps, payment_id) == (PaymentStatus.REQUESTED, None)
    with unit_of_work(deps.engine) as s:
        assert s.scalar(select(func.count()).select_from(PaymentCallback)) == 0


async def test_a_wrong_amount_waits_for_a_supervisor(console: tuple[TestClient, Deps]) -> None:
    client, deps = console
    payment_id, reference, amount = new_payment(deps)
    body = {"transaction_id": "FT-LOW", "reference": reference, "amount": amount - 1000}
    answer = await post(client, body)
    assert (await answer.json()) == {"result": "mismatch"}
    assert state(deps, payment_id) == (PaymentStatus.REQUESTED, None)
    await login(client, "canbo")
    page = await (await client.get("/payments/mismatches")).text()
    assert "FT-LOW" in page and reference in page and "Chờ lãnh đạo xử lý" in page
    token = csrf_of(await (await client.get("/dossiers")).text())
    with unit_of_work(deps.engine) as s:
        callback_id = s.scalar(select(PaymentCallback.id))
    url = f"/payments/mismatches/{callback_id}/resolve"
    refused = await client.post(url, data={"csrf_token": token, "note": "Đã hoàn tiền"})
    assert refused.status == 403
    await client.post("/logout", data={"csrf_token": token})
    await login(client, "giamsat")
    token = csrf_of(await (await client.get("/payments/mismatches")).text())
    done = await client.post(
        url, data={"csrf_token": token, "note": "Đã hoàn 134.000 đồng cho công dân"}
    )
    assert done.status == 200
    page = await (await client.get("/payments/mismatches")).text()
    assert "Không có giao dịch nào cần đối soát" in page and "giamsat" in page


async def test_dossier_list_filters_by_payment_and_dashboard_shows_the_rate(
    console: tuple[TestClient, Deps],
) -> None:
    client, deps = console
    paid_id, paid_ref, amount = new_payment(deps)
    _, unpaid_ref, _ = new_payment(deps)
    await post(client, {"transaction_id": "FT-1", "reference": paid_ref, "amount": amount})
    await login(client, "canbo")
    paid = await (await client.get("/dossiers?status=all&payment=paid")).text()
    unpaid = await (await client.get("/dossiers?status=all&payment=requested")).text()
    assert paid_ref in paid and unpaid_ref not in paid
    assert unpaid_ref in unpaid and paid_ref not in unpaid
    with unit_of_work(deps.engine) as s:
        dossier_id = s.get(Payment, paid_id).dossier_id
    detail = await (await client.get(f"/dossiers/{dossier_id}")).text()
    assert "Đã nộp lệ phí" in detail and "BL-" in detail
    dashboard = await (await client.get("/dashboard?from=2026-11-01&to=2026-12-31")).text()
    assert "Thanh toán trực tuyến" in dashboard and "1 / 2 hồ sơ có lệ phí" in dashboard
    assert "mục tiêu ≥ 50.0 %" in dashboard and "mục tiêu ≥ 30.0 %" in dashboard


async def test_the_platform_links_then_settles_over_http(
    console: tuple[TestClient, Deps],
) -> None:
    """Pay link from the fake platform at submission; the platform's own callbacks then reach
    the console: paid, a repeat changes nothing, money after a cancellation is kept apart."""
    client, deps = console
    fake = await FakePaymentPlatform().start()
    callback_url = str(client.make_url(CALLBACK_PATH))
    platform = HttpPaymentPlatform(fake.url, PLATFORM_SECRET, callback_url=callback_url)

    def submit_two() -> list[tuple[int, str, str | None]]:
        with unit_of_work(deps.engine) as s:
            made = [submitted(s, deps.catalogue, platform) for _ in range(2)]
            return [(p.id, p.reference, p.pay_url) for p in made if p is not None]

    try:
        (paid_id, paid_ref, link), (late_id, late_ref, _) = await asyncio.to_thread(submit_two)
        assert link == fake.payments[paid_ref].pay_url and link.startswith(fake.url)
        assert await fake.settle(paid_ref, SECRET) == (200, {"result": "applied"})
        assert await fake.settle(paid_ref, SECRET) == (200, {"result": "duplicate"})
        assert state(deps, paid_id) == (PaymentStatus.PAID, f"TX-{paid_ref}")
        with unit_of_work(deps.engine) as s:
            assert cancel(s, s.get(Dossier, s.get(Payment, late_id).dossier_id))
        assert await fake.settle(late_ref, SECRET) == (200, {"result": "mismatch"})
        assert await fake.settle(late_ref, "not-the-secret", tx="TX-2") == (
            401,
            {"error": "signature"},
        )
        assert state(deps, late_id) == (PaymentStatus.VOID, None)
    finally:
        platform.close()
        await fake.stop()

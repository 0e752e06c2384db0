"""The delivery pipeline against fake Telegram, Zalo/ZNS, eSMS and SMTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.core.clock import to_local, utcnow
from bot.core.db import unit_of_work
from bot.core.models import ChannelActivity, ChannelBinding, Citizen, Delivery, DeliveryAttempt
from bot.delivery.deliverer import (
    ChannelLimit,
    Contacts,
    Deliverer,
    DeliveryConfig,
    Notice,
    Route,
    plan_routes,
)
from bot.delivery.sending import Backoff, SendError, TokenBucket
from connectors.senders import build_senders
from connectors.sms_providers import EsmsGateway
from connectors.smtp import SmtpConfig, SmtpMailer
from connectors.zalo_api import ZaloConfig, ZaloTokenStore
from tests.fakes import FakeEsms, FakeSmtp, FakeTelegram, FakeZalo

CHAT, ZALO_USER, PHONE = "5550001", "6142494823000000001", "0905123456"
FAST = {c: ChannelLimit(1000) for c in ("telegram", "zalo", "zns", "sms", "email")}
NOW = dt.datetime(2026, 11, 23, 9, 0)


@dataclass
class World:
    telegram: FakeTelegram
    zalo: FakeZalo
    esms: FakeEsms
    smtp: FakeSmtp
    deliverer: Deliverer
    citizen_id: int
    engine: Engine


def add_citizen(engine: Engine, bindings: dict[str, str], wrote_ago: dt.timedelta | None) -> int:
    with unit_of_work(engine) as session:
        citizen = Citizen(
            cccd="066190001234",
            full_name="Nguyễn Văn An",
            date_of_birth=dt.date(1990, 1, 1),
            sex="M",
            phone=PHONE,
            email="an@example.vn",
        )
        session.add(citizen)
        session.flush()
        for channel, sender in bindings.items():
            session.add(
                ChannelBinding(channel=channel, channel_user_id=sender, citizen_id=citizen.id)
            )
            if channel == "zalo" and wrote_ago is not None:
                session.add(
                    ChannelActivity(
                        sender_id=sender, channel="zalo", last_inbound_at=utcnow() - wrote_ago
                    )
                )
        return citizen.id


Bindings = tuple[dict[str, str], dt.timedelta | None]


@pytest.fixture
def bindings() -> Bindings:
    """The citizen's channel bindings and how long ago they wrote on Zalo (tests override)."""
    return {"telegram": f"telegram:{CHAT}"}, None


@pytest.fixture
def template_env() -> dict[str, str]:
    """Extra Zalo template settings (quota, customer-care hours; tests override)."""
    return {}


@pytest.fixture
async def world(
    engine: Engine, tmp_path: Path, bindings: Bindings, template_env: dict[str, str]
) -> AsyncIterator[World]:
    fakes = [FakeTelegram(), FakeZalo(), FakeEsms()]
    for fake in fakes:
        await fake.start()
    telegram, zalo, esms = fakes
    smtp = await FakeSmtp().start()
    templates = tmp_path / "zns.yml"
    templates.write_text(
        "EXTERNAL_reminder:\n  template_id: '7895417a'\n"
        "  params: {ho_ten: full_name, ten_thu_tuc: service_name}\n"
        "satisfaction:\n  template_id: 'rate01'\n  tag: 2\n  params: {ma_ho_so: dossier_code}\n"
        "long_notice:\n  template_id: 'long01'\n  fixed_chars: 390\n"
        "  params: {ten_thu_tuc: service_name}\n"
    )
    env = {
        "TELEGRAM_BOT_TOKEN": "123:TEST",
        "TELEGRAM_WEBHOOK_SECRET": "secret",
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_TIMEOUT": "0.5",
        "ZALO_APP_ID": "app",
        "ZALO_APP_SECRET": "app-secret",
        "ZALO_OA_SECRET": "oa-secret",
        "ZALO_API_URL": zalo.url,
        "ZALO_OAUTH_URL": zalo.url,
        "ZALO_ZNS_URL": zalo.url,
        "ZALO_ZNS_TEMPLATES": str(templates),
        "ZALO_TIMEOUT": "0.5",
        "RASA_URL": "http://127.0.0.1:9",
        "RASA_AUTH_TOKEN": "t",
        **template_env,
    }
    zalo_config = ZaloConfig.from_env(env)
    assert zalo_config is not None
    ZaloTokenStore(engine, zalo_config).save("access-0", "refresh-0", 90000)
    gateway = EsmsGateway("k", "s", "DAKLAK", base_url=esms.url, timeout=0.5)
    mailer = SmtpMailer(SmtpConfig("127.0.0.1", smtp.port, security="none", timeout=2))
    senders, kinds, close = build_senders(engine, env, sms_gateway=gateway, mailer=mailer)
    config = DeliveryConfig(max_attempts=3, backoff=Backoff(base=0.05, cap=0.2), limits=FAST)
    citizen_id = add_citizen(engine, *bindings)
    deliverer = Deliverer(engine, senders, config, kinds)
    yield World(telegram, zalo, esms, smtp, deliverer, citizen_id, engine)
    await deliverer.aclose()
    await close()
    gateway.close()
    for fake in fakes:
        await fake.stop()
    await smtp.stop()


def rows(engine: Engine, key: str) -> list[tuple[str, str, list[str]]]:
    """(channel, status, attempt outcomes) per delivery of the key, in creation order."""
    with unit_of_work(engine) as session:
        deliveries = session.scalars(
            select(Delivery).where(Delivery.idempotency_key == key).order_by(Delivery.id)
        ).all()
        return [
            (
                d.channel,
                d.status,
                list(
                    session.scalars(
                        select(DeliveryAttempt.outcome)
                        .where(DeliveryAttempt.delivery_id == d.id)
                        .order_by(DeliveryAttempt.number)
                    )
                ),
            )
            for d in deliveries
        ]


TEXT = Notice(text="Hồ sơ DLK-261120-00042 của Ông/Bà đã có kết quả.", subject="Kết quả hồ sơ")


async def test_500_then_timeout_then_success_is_delivered_once(world: World) -> None:
    world.telegram.fail_next("500", "timeout")
    result = await world.deliverer.deliver(world.citizen_id, TEXT, "dossier-42-result")
    again = await world.deliverer.deliver(world.citizen_id, TEXT, "dossier-42-result")
    assert (result.status, result.channel, result.attempts) == ("sent", "telegram", 3)
    assert (again.status, again.channel) == ("duplicate", "telegram")
    assert [m["text"] for m in world.telegram.sent] == [TEXT.text]
    assert rows(world.engine, "dossier-42-result") == [
        ("telegram", "sent", ["retry", "retry", "sent"])
    ]


async def test_4xx_is_never_retried_and_falls_back_to_sms(world: World) -> None:
    world.telegram.fail_next("403")
    result = await world.deliverer.deliver(world.citizen_id, TEXT, "k-403")
    assert (result.status, result.channel) == ("sent", "sms")
    assert len(world.telegram.calls) == 1
    assert world.esms.sent[0]["Phone"] == PHONE and world.esms.sent[0]["RequestId"] == "k-403"
    assert world.esms.sent[0]["Content"].startswith("Ho so DLK-261120-00042 cua Ong/Ba")
    assert rows(world.engine, "k-403") == [
        ("telegram", "failed", ["permanent"]),
        ("sms", "sent", ["sent"]),
    ]


async def test_429_backs_off_before_retrying(world: World) -> None:
    world.telegram.fail_next("429")
    started = time.monotonic()
    result = await world.deliverer.deliver(world.citizen_id, TEXT, "k-429")
    assert result.status == "sent" and time.monotonic() - started >= 1.0  # retry_after: 1
    assert rows(world.engine, "k-429") == [("telegram", "sent", ["retry", "sent"])]


async def test_exhausted_retries_fall_back_to_the_next_channels(world: World) -> None:
    world.telegram.fail_next("500", "500", "500")
    world.esms.fail_next("500", "timeout", "500")
    result = await world.deliverer.deliver(world.citizen_id, TEXT, "k-mail")
    assert (result.status, result.channel, result.attempts) == ("sent", "email", 7)
    mail = world.smtp.messages[0]
    assert mail["To"] == "an@example.vn" and mail["Subject"] == "Kết quả hồ sơ"
    assert "DLK-261120-00042" in mail.get_content()


@pytest.mark.parametrize("bindings", [({"zalo": f"zalo:{ZALO_USER}"}, dt.timedelta(hours=3))])
async def test_zalo_chat_inside_the_window(world: World) -> None:
    result = await world.deliverer.deliver(world.citizen_id, TEXT, "k-zalo")
    assert (result.status, result.channel) == ("sent", "zalo")
    assert world.zalo.sent[0]["recipient"] == {"user_id": ZALO_USER}


REMINDER = Notice(
    intent="EXTERNAL_reminder",
    entities={"service": "gplx_doi"},
    values={"full_name": "Nguyễn Văn An", "service_name": "Đổi giấy phép lái xe"},
)


@pytest.mark.parametrize("bindings", [({"zalo": f"zalo:{ZALO_USER}"}, dt.timedelta(days=3))])
async def test_outside_the_window_a_template_goes_to_the_follower_by_user_id(
    world: World,
) -> None:
    result = await world.deliverer.deliver(world.citizen_id, REMINDER, "reminder-7")
    assert (result.status, result.channel) == ("sent", "zns")
    assert world.zalo.zns[0]["user_id"] == ZALO_USER and "phone" not in world.zalo.zns[0]
    assert world.zalo.zns[0]["tracking_id"] == "reminder-7"
    assert world.zalo.zns[0]["template_data"]["ten_thu_tuc"] == "Đổi giấy phép lái xe"


@pytest.mark.parametrize("bindings", [({"zalo": f"zalo:{ZALO_USER}"}, dt.timedelta(hours=3))])
async def test_closed_window_error_falls_back_to_zns_then_no_template_to_sms(world: World) -> None:
    world.zalo.fail_next("-230")  # the user has not interacted recently enough after all
    reminder = Notice(text="Nhắc hạn", kind="EXTERNAL_reminder", values=REMINDER.values)
    result = await world.deliverer.deliver(world.citizen_id, reminder, "reminder-8")
    assert (result.status, result.channel) == ("sent", "zns")
    world.zalo.fail_next("-230")
    untemplated = Notice(text="Nhắc hạn", kind="no_template_for_this")
    other = await world.deliverer.deliver(world.citizen_id, untemplated, "reminder-9")
    assert (other.status, other.channel) == ("sent", "sms")  # no ZNS template: next channel
    assert len(world.zalo.zns) == 1
    assert rows(world.engine, "reminder-9") == [
        ("zalo", "failed", ["fallback"]),
        ("sms", "sent", ["sent"]),
    ]


async def test_the_same_key_concurrently_is_sent_once(world: World) -> None:
    results = await asyncio.gather(
        *(world.deliverer.deliver(world.citizen_id, TEXT, "k-race") for _ in range(4))
    )
    assert sorted(r.status for r in results) == ["duplicate"] * 3 + ["sent"]
    assert len(world.telegram.sent) == 1


async def test_preferred_channels_and_unknown_citizen(world: World) -> None:
    sms_first = await world.deliverer.deliver(world.citizen_id, TEXT, "k-pref", ["sms"])
    assert sms_first.channel == "sms" and world.telegram.sent == []
    nobody = await world.deliverer.deliver(999_999, TEXT, "k-nobody")
    assert nobody.status == "unreachable"


async def test_the_attempt_is_recorded_before_the_request_leaves(engine: Engine) -> None:
    citizen_id = add_citizen(engine, {"telegram": "telegram:1"}, None)
    seen: list[list[str]] = []

    class Spy:
        async def send(self, route: Route, notice: Notice, key: str) -> str | None:
            with unit_of_work(engine) as session:
                seen.append(list(session.scalars(select(DeliveryAttempt.outcome))))
            raise SendError("telegram", "permanent", "stop here", 400)

    deliverer = Deliverer(engine, {"telegram": Spy()}, DeliveryConfig(limits=FAST))
    result = await deliverer.deliver(citizen_id, TEXT, "k-spy")
    await deliverer.aclose()
    assert seen == [["started"]] and result.status == "failed"
    assert rows(engine, "k-spy") == [("telegram", "failed", ["permanent"])]


def test_plan_routes_follows_the_window_the_templates_and_preferences() -> None:
    contacts = Contacts(
        1,
        PHONE,
        "an@example.vn",
        {"zalo:1": NOW - dt.timedelta(hours=50), "zalo:2": NOW - dt.timedelta(hours=2)},
        ["telegram:9"],
    )
    everything = ("zalo", "zns", "telegram", "sms", "email")
    window = dt.timedelta(hours=48)

    def plan(notice: Notice, **kw: object) -> list[str]:
        routes = plan_routes(contacts, notice, everything, {"EXTERNAL_reminder"}, NOW, window, **kw)
        return [f"{r.channel}>{r.recipient}" for r in routes]

    assert plan(REMINDER) == [
        "zalo>zalo:2",
        "zns>zalo:2",  # a follower gets templates by user id
        "telegram>telegram:9",
        f"sms>sms:{PHONE}",
    ]
    assert plan(TEXT)[-1] == "email>an@example.vn" and f"zns>{PHONE}" not in plan(TEXT)
    assert plan(TEXT, preferred=["sms"])[0] == f"sms>sms:{PHONE}"
    assert plan(TEXT, preferred=["email"], only=True) == ["email>an@example.vn"]
    closed = Contacts(1, None, None, {"zalo:1": NOW - dt.timedelta(hours=50)}, [])
    routes = plan_routes(closed, REMINDER, everything, {"EXTERNAL_reminder"}, NOW, window)
    assert [(r.channel, r.recipient) for r in routes] == [("zns", "zalo:1")]
    no_zalo = Contacts(1, PHONE, None, {}, [])
    routes = plan_routes(no_zalo, REMINDER, everything, {"EXTERNAL_reminder"}, NOW, window)
    assert (routes[0].channel, routes[0].recipient) == ("zns", PHONE)  # else by phone


def test_token_bucket_spaces_sends_and_pauses_on_429() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=1, clock=lambda: now[0])
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.take() == 0.0
    bucket.pause(3)
    assert bucket.take() == pytest.approx(3.0)
    now[0] = 4.0
    assert bucket.take() == 0.0


async def test_one_message_per_second_per_telegram_chat(engine: Engine) -> None:
    citizen_id = add_citizen(engine, {"telegram": "telegram:1"}, None)
    stamps: list[float] = []

    class Clock:
        async def send(self, route: Route, notice: Notice, key: str) -> str | None:
            stamps.append(time.monotonic())
            return None

    limits = {"telegram": ChannelLimit(1000, per_recipient=4)}
    deliverer = Deliverer(engine, {"telegram": Clock()}, DeliveryConfig(limits=limits))
    for i in range(3):
        await deliverer.deliver(citizen_id, TEXT, f"k-chat-{i}")
    await deliverer.aclose()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.24 for gap in gaps)


FOLLOWER_AWAY = [({"zalo": f"zalo:{ZALO_USER}"}, dt.timedelta(days=3))]


@pytest.mark.parametrize("bindings", FOLLOWER_AWAY)
@pytest.mark.parametrize("template_env", [{"ZALO_TEMPLATE_DAILY_QUOTA": "1"}])
async def test_a_spent_daily_quota_falls_back_to_sms(world: World) -> None:
    first = await world.deliverer.deliver(world.citizen_id, REMINDER_TEXT, "quota-1")
    second = await world.deliverer.deliver(world.citizen_id, REMINDER_TEXT, "quota-2")
    assert [(r.status, r.channel) for r in (first, second)] == [("sent", "zns"), ("sent", "sms")]
    assert len(world.zalo.zns) == 1  # the spent quota is not asked again
    assert rows(world.engine, "quota-2") == [
        ("zns", "failed", ["fallback"]),
        ("sms", "sent", ["sent"]),
    ]


@pytest.mark.parametrize("bindings", FOLLOWER_AWAY)
async def test_zalos_out_of_quota_answer_falls_back_to_sms(world: World) -> None:
    world.zalo.fail_next("-211")
    result = await world.deliverer.deliver(world.citizen_id, REMINDER_TEXT, "quota-3")
    assert (result.status, result.channel) == ("sent", "sms")
    assert rows(world.engine, "quota-3")[0] == ("zns", "failed", ["fallback"])


def _hours_excluding_now() -> str:
    hour = to_local(utcnow()).hour
    return "13:00-14:00" if hour < 12 else "01:00-02:00"


def _hours_including_now() -> str:
    return "00:00-23:59:59"


@pytest.mark.parametrize("bindings", FOLLOWER_AWAY)
@pytest.mark.parametrize(
    ("template_env", "channel"),
    [
        ({"ZALO_CARE_HOURS": _hours_including_now()}, "zns"),
        ({"ZALO_CARE_HOURS": _hours_excluding_now()}, "sms"),
    ],
)
async def test_customer_care_templates_keep_their_hours(world: World, channel: str) -> None:
    survey = Notice(text="Xin chấm 1-5", kind="satisfaction", values={"dossier_code": "DLK-1"})
    result = await world.deliverer.deliver(world.citizen_id, survey, "care-1")
    assert (result.status, result.channel) == ("sent", channel)


@pytest.mark.parametrize("bindings", FOLLOWER_AWAY)
async def test_a_template_message_over_400_characters_is_not_sent(world: World) -> None:
    long = Notice(text="Thông báo", kind="long_notice", values={"service_name": "x" * 20})
    result = await world.deliverer.deliver(world.citizen_id, long, "long-1")
    assert (result.status, result.channel) == ("sent", "sms") and world.zalo.zns == []


REMINDER_TEXT = Notice(text="Nhắc hạn", kind="EXTERNAL_reminder", values=REMINDER.values)

"""E-mail result notices over SMTP, against a local SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.delivery.mailer import OutboxMailer, result_notice
from bot.delivery.sending import SendError
from connectors.smtp import SmtpConfig, SmtpMailer, default_mailer
from tests.fakes import FakeSmtp


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    server = await FakeSmtp(username="bot", password="pw").start()
    yield server
    await server.stop()


def mailer(smtp: FakeSmtp, password: str = "pw") -> SmtpMailer:
    config = SmtpConfig(
        "127.0.0.1", smtp.port, security="none", username="bot", password=password, timeout=2
    )
    return SmtpMailer(config)


async def test_result_notice_is_sent_over_smtp_in_vietnamese(smtp: FakeSmtp) -> None:
    subject, body = result_notice(
        "Nguyễn Văn An", "DLK-261120-00042", "Đăng ký khai sinh", "đã giải quyết xong"
    )
    message_id = await asyncio.to_thread(mailer(smtp).send, "an@example.vn", subject, body)
    mail = smtp.messages[0]
    assert smtp.envelopes[0][1] == ["an@example.vn"]
    assert mail["Subject"] == "Kết quả hồ sơ DLK-261120-00042 – Đăng ký khai sinh"
    assert mail["Message-ID"] == message_id
    content = mail.get_content()
    assert content.startswith("Kính gửi Ông/Bà Nguyễn Văn An,")
    assert "đã có kết quả: đã giải quyết xong." in content


async def test_refusals_are_permanent_and_a_dead_server_is_retried(smtp: FakeSmtp) -> None:
    with pytest.raises(SendError) as login:
        await asyncio.to_thread(mailer(smtp, password="wrong").send, "a@b.vn", "s", "t")
    smtp.refuse_recipients = True
    with pytest.raises(SendError) as refused:
        await asyncio.to_thread(mailer(smtp).send, "nobody@b.vn", "s", "t")
    await smtp.stop()
    with pytest.raises(SendError) as down:
        await asyncio.to_thread(mailer(smtp).send, "a@b.vn", "s", "t")
    assert [login.value.kind, refused.value.kind, down.value.kind] == [
        "permanent",
        "permanent",
        "retry",
    ]


def test_without_smtp_host_mails_go_to_the_outbox(tmp_path: Path) -> None:
    assert isinstance(default_mailer({}), OutboxMailer)
    OutboxMailer(tmp_path / "mail.jsonl").send("an@example.vn", "Kết quả", "Nội dung")
    line = json.loads((tmp_path / "mail.jsonl").read_text(encoding="utf-8"))
    assert (line["to"], line["subject"]) == ("an@example.vn", "Kết quả")

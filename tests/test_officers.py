from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.core.db import unit_of_work
from bot.core.models import AuditEntry, Officer
from bot.identity.officers import add_officer, hash_password, verify_password
from tests.test_importer import run_cli


def test_password_hash_round_trip() -> None:
    stored = hash_password("mật khẩu đủ dài")
    assert stored.startswith("scrypt$") and "mật" not in stored
    assert verify_password("mật khẩu đủ dài", stored)
    assert not verify_password("sai mật khẩu", stored)
    assert hash_password("x" * 12) != hash_password("x" * 12)  # salted
    assert not verify_password("x", "garbage")


def test_add_officer_validates_and_audits(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        add_officer(session, "nguyen.van.a", "correct horse battery", "supervisor")
    for username, password, role, reason in [
        ("nguyen.van.a", "correct horse battery", "officer", "đã tồn tại"),
        ("b", "short", "officer", "ít nhất"),
        ("c", "long enough pass", "root", "vai trò"),
        ("đ", "long enough pass", "officer", "không dấu"),
    ]:
        with pytest.raises(ValueError, match=reason), unit_of_work(engine) as session:
            add_officer(session, username, password, role)
    with unit_of_work(engine) as session:
        officer = session.scalars(select(Officer)).one()
        assert officer.role == "supervisor"
        assert session.scalars(select(AuditEntry.action)).all() == ["officer.create"]


def test_cli_reads_password_from_stdin(db_url: str) -> None:
    result = run_cli(
        db_url, "officer", "add", "le.thi.b", "--role", "officer", stdin="mật-khẩu-dài-12\n"
    )
    assert result.returncode == 0, result.stderr
    result = run_cli(
        db_url, "officer", "add", "le.thi.b", "--role", "officer", stdin="mật-khẩu-dài-12\n"
    )
    assert result.returncode == 1 and "đã tồn tại" in result.stderr

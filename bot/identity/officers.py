"""Officer accounts: creation and password hashing with scrypt (a memory-hard KDF)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import Officer
from bot.governance import audit

ROLES = ("officer", "supervisor", "admin")
_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def add_officer(session: Session, username: str, password: str, role: str) -> Officer:
    """Create an account; raises ValueError with a Vietnamese reason for bad input."""
    if role not in ROLES:
        raise ValueError(f"vai trò phải là một trong: {', '.join(ROLES)}")
    if not username.isascii() or not username.replace(".", "").replace("_", "").isalnum():
        raise ValueError("tên đăng nhập chỉ gồm chữ không dấu, số, dấu chấm và gạch dưới")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"mật khẩu cần ít nhất {MIN_PASSWORD} ký tự")
    if session.scalar(select(Officer.id).where(Officer.username == username)) is not None:
        raise ValueError(f"tài khoản '{username}' đã tồn tại")
    officer = Officer(username=username, password_hash=hash_password(password), role=role)
    session.add(officer)
    audit.record(
        session,
        "cli",
        "officer.create",
        target_type="officer",
        target_id=username,
        detail={"role": role},
    )
    return officer

"""Console settings from the environment, with embedded defaults for a development machine."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.config import var_dir


def _secret_file(name: str) -> str:
    """A random secret generated once into var/ (readable only by the owner)."""
    path = var_dir() / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def tracker_db_url(env: Mapping[str, str] = os.environ) -> str:
    """Rasa's SQL tracker store, as configured in endpoints.yml (same default as erasure)."""
    return env.get("TRACKER_DB_URL", f"sqlite:///{var_dir() / 'tracker.db'}")


def rasa_token(env: Mapping[str, str] = os.environ) -> str | None:
    if env.get("RASA_AUTH_TOKEN"):
        return env["RASA_AUTH_TOKEN"]
    path = Path(env.get("APP_VAR_DIR", var_dir())) / "rasa_auth_token"
    return path.read_text().strip() if path.exists() else None


@dataclass(frozen=True)
class ConsoleSettings:
    secret_key: str
    host: str = "127.0.0.1"
    port: int = 8000
    session_idle_minutes: int = 30
    session_max_hours: int = 10
    secure_cookies: bool = False
    reveal_minutes: int = 15
    low_confidence: float = 0.6
    login_max_failures: int = 5
    login_ip_max_failures: int = 20
    login_window_minutes: int = 15
    retention_anonymous_days: int = 90
    retention_linked_days: int = 365
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: str | None = None
    page_size: int = 50
    # Addresses whose X-Real-IP header names the client (the nginx of deploy/): behind a proxy
    # every officer would otherwise share its address, and one throttled IP lock out everyone.
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ConsoleSettings:
        """CONSOLE_* variables (README, "Officer console"); the secret is generated if unset."""

        def num(name: str, default: float) -> float:
            return float(env.get(name, default))

        return cls(
            secret_key=env.get("CONSOLE_SECRET_KEY") or _secret_file("console_secret_key"),
            host=env.get("CONSOLE_HOST", cls.host),
            port=int(env.get("CONSOLE_PORT", cls.port)),
            session_idle_minutes=int(num("CONSOLE_SESSION_IDLE_MINUTES", cls.session_idle_minutes)),
            session_max_hours=int(num("CONSOLE_SESSION_MAX_HOURS", cls.session_max_hours)),
            secure_cookies=env.get("CONSOLE_SECURE_COOKIES", "") in ("1", "true", "yes"),
            low_confidence=num("CONSOLE_LOW_CONFIDENCE", cls.low_confidence),
            retention_anonymous_days=int(
                num("RETENTION_ANONYMOUS_DAYS", cls.retention_anonymous_days)
            ),
            retention_linked_days=int(num("RETENTION_LINKED_DAYS", cls.retention_linked_days)),
            rasa_url=env.get("RASA_URL", cls.rasa_url).rstrip("/"),
            rasa_token=rasa_token(env),
            trusted_proxies=frozenset(
                p.strip() for p in env.get("CONSOLE_TRUSTED_PROXIES", "127.0.0.1,::1").split(",")
            )
            - {""},
        )

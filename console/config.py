"""Console settings from the environment, with embedded defaults for a development machine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.config import rasa_auth_token, secret, var_dir
from bot.identity.proxies import parse_trusted


def tracker_db_url(env: Mapping[str, str] = os.environ) -> str:
    """Rasa's SQL tracker store, as configured in endpoints.yml (same default as erasure)."""
    return env.get("TRACKER_DB_URL", f"sqlite:///{var_dir() / 'tracker.db'}")


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
    # Addresses whose X-Real-IP header names the client (bot/identity/proxies.py). None by default,
    # so a
    # local client cannot choose its address; deploy/env.example names the local nginx (behind
    # it every officer would otherwise share its address, and one throttled IP lock out all).
    trusted_proxies: frozenset[str] = frozenset()
    # The phone simulator of a local `make run` (never set next to real channels): linked
    # from the console's menu.
    simulator_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ConsoleSettings:
        """CONSOLE_* variables (README, "Officer console"); the secret is generated if unset."""

        def num(name: str, default: float) -> float:
            return float(env.get(name, default))

        return cls(
            secret_key=env.get("CONSOLE_SECRET_KEY")
            or secret("CONSOLE_SECRET_KEY", "console_secret_key").decode(),
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
            rasa_token=env.get("RASA_AUTH_TOKEN") or rasa_auth_token(),
            trusted_proxies=parse_trusted(env.get("CONSOLE_TRUSTED_PROXIES")),
            simulator_url=local_simulator(env.get("SIMULATOR_URL")),
        )


def local_simulator(url: str | None) -> str | None:
    """The simulator's address, only if it is on this machine (it is a local tool)."""
    if url and url.startswith(("http://127.0.0.1:", "http://localhost:")):
        return url.rstrip("/")
    return None

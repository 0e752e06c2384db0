"""Settings read from environment variables, with embedded defaults for a development machine."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def var_dir() -> Path:
    """Runtime files (databases, logs, outboxes, one-time codes, generated secrets) live here;
    git ignores it. Only the owner may enter it: what it holds is personal data."""
    path = Path(os.environ.get("APP_VAR_DIR", PROJECT_ROOT / "var"))
    if not path.is_dir():
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """Create `path` (if missing) readable and writable by the owner only, before anything is
    written to it, and tighten an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def secret(env_var: str, file_name: str) -> bytes:
    """A secret from `env_var`, or one generated once into var/`file_name` (owner-only).

    Every process of one machine reads the same file, so `make run` needs no configuration;
    a deployment sets the variable (deploy/env.example)."""
    value = os.environ.get(env_var)
    if value:
        return value.encode()
    path = var_dir() / file_name
    if not path.exists() or not path.read_text().strip():
        tmp = private_file(path.with_name(f".{file_name}.{os.getpid()}"))
        tmp.write_text(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # first writer wins; a racing process reads the winner's
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Settings:
    database_url: str
    catalogue_path: Path


def load_settings() -> Settings:
    default_db = f"sqlite:///{var_dir() / 'app.db'}"
    return Settings(
        database_url=os.environ.get("DATABASE_URL", default_db),
        catalogue_path=Path(
            os.environ.get("CATALOGUE_PATH", PROJECT_ROOT / "bot" / "catalogue" / "catalogue.yml")
        ),
    )


def rasa_auth_token() -> str:
    """Token of the Rasa HTTP API, shared by the server and its callers (scheduler, console)."""
    return secret("RASA_AUTH_TOKEN", "rasa_auth_token").decode()

"""Settings read from environment variables, with embedded defaults for a development machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Runtime files (databases, logs, outboxes) live here; git ignores it."""
    path = Path(os.environ.get("APP_VAR_DIR", PROJECT_ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Settings:
    database_url: str
    catalogue_path: Path


def load_settings() -> Settings:
    default_db = f"sqlite:///{var_dir() / 'app.db'}"
    return Settings(
        database_url=os.environ.get("DATABASE_URL", default_db),
        catalogue_path=Path(
            os.environ.get("CATALOGUE_PATH", PROJECT_ROOT / "bot" / "catalogue.yml")
        ),
    )

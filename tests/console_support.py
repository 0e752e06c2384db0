"""Helpers for the officer console tests: a tracker store written the way Rasa writes it,
fake Rasa API and channel, officer accounts and a signed-in test client."""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import make_engine, unit_of_work
from bot.core.models import Officer
from bot.identity.officers import hash_password
from console.channels import ChannelError
from console.config import ConsoleSettings
from console.tracker import ensure_events_table, events
from console.web import Deps, create_app

PASSWORD = "mat-khau-rat-dai-123"


def tracker_engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    ensure_events_table(engine)
    return engine


class Conversation:
    """Appends events for one sender, as Rasa's SQLTrackerStore.save() stores them."""

    def __init__(self, tracker: Engine, sender_id: str, channel: str, start: float | None = None):
        self.tracker, self.sender_id, self.channel = tracker, sender_id, channel
        self.clock = start if start is not None else time.time() - 600

    def _add(self, event: Event) -> int:
        self.clock += 2
        event.timestamp = self.clock
        data = event.as_dict()
        with self.tracker.begin() as conn:
            result = conn.execute(
                insert(events).values(
                    sender_id=self.sender_id,
                    type_name=event.type_name,
                    timestamp=data.get("timestamp"),
                    intent_name=data.get("parse_data", {}).get("intent", {}).get("name"),
                    action_name=data.get("name"),
                    data=json.dumps(data),
                )
            )
        return result.inserted_primary_key[0]

    def session(self) -> int:
        self._add(ActionExecuted("action_session_start"))
        return self._add(SessionStarted())

    def user(self, text: str, intent: str, confidence: float = 0.95, **entities: str) -> int:
        ents = [{"entity": k, "value": v, "start": 0, "end": 1} for k, v in entities.items()]
        event_id = self._add(
            UserUttered(
                text,
                intent={"name": intent, "confidence": confidence},
                entities=ents,
                input_channel=self.channel,
            )
        )
        self._add(ActionExecuted("action_listen"))
        return event_id

    def bot(self, text: str, action: str = "utter_greet", **meta: Any) -> int:
        self._add(ActionExecuted(action))
        return self._add(BotUttered(text, metadata=meta))

    def slot(self, name: str, value: Any) -> int:
        return self._add(SlotSet(name, value))

    def pause(self) -> int:
        self._add(ActionExecuted("action_handoff"))
        return self._add(ConversationPaused())

    def resume(self) -> int:
        return self._add(ConversationResumed())


@dataclass
class FakeRasa:
    resumed: list[str] = field(default_factory=list)
    appended: list[tuple[str, str, str]] = field(default_factory=list)
    fail: bool = False

    async def resume(self, conversation_id: str) -> None:
        if self.fail:
            raise ChannelError("Không kết nối được máy chủ trợ lý (ConnectError).")
        self.resumed.append(conversation_id)

    async def append_bot(self, conversation_id: str, text: str, officer: str) -> None:
        self.appended.append((conversation_id, text, officer))


@dataclass
class FakeReplies:
    sent: list[tuple[str, str, str, str]] = field(default_factory=list)
    fail: bool = False

    async def send(self, channel: str, conversation_id: str, text: str, key: str) -> None:
        if self.fail:
            raise ChannelError(f"Kênh {channel} từ chối tin nhắn: 403")
        self.sent.append((channel, conversation_id, text, key))


def settings(**overrides: Any) -> ConsoleSettings:
    return ConsoleSettings(secret_key="test-secret", **overrides)


@functools.lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)  # scrypt is slow on purpose: hash once per test run


def add_officers(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        for name, role in (("canbo", "officer"), ("giamsat", "supervisor"), ("quantri", "admin")):
            session.add(Officer(username=name, password_hash=_password_hash(), role=role))


def make_deps(engine: Engine, tracker: Engine, catalogue: Catalogue, **overrides: Any) -> Deps:
    return Deps(
        engine,
        tracker,
        overrides.pop("settings", None) or settings(),
        catalogue,
        overrides.pop("rasa", None) or FakeRasa(),
        overrides.pop("replies", None) or FakeReplies(),
    )


async def start_client(deps: Deps) -> TestClient:
    client = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    return client


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in; returns the session's CSRF token (from the next page)."""
    page = await client.get("/login")
    token = csrf_of(await page.text())
    answer = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        allow_redirects=False,
    )
    assert answer.status == 303, await answer.text()
    home = await client.get("/conversations")
    return csrf_of(await home.text())

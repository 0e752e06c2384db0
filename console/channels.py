"""How the console talks to the outside: Rasa's HTTP API and the citizens' channels.

Both are protocols so tests and the browser run can use fakes; the real ones sit on httpx and
on the channel senders of `connectors/senders.py` (the same code proactive notices use).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


class ChannelError(Exception):
    """A call that did not go through; the message is shown to the officer (Vietnamese)."""


class RasaApi(Protocol):
    async def resume(self, conversation_id: str) -> None: ...

    async def append_bot(self, conversation_id: str, text: str, officer: str) -> None: ...


class ReplySender(Protocol):
    async def send(self, channel: str, conversation_id: str, text: str, key: str) -> None: ...


class HttpRasaApi:
    """`POST /conversations/{id}/tracker/events` with the server's token."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        self.url, self.token = url.rstrip("/"), token
        self.client = httpx.AsyncClient(timeout=timeout)

    async def _append(self, conversation_id: str, event: dict[str, Any]) -> None:
        params = {"include_events": "NONE", **({"token": self.token} if self.token else {})}
        url = f"{self.url}/conversations/{quote(conversation_id, safe=':')}/tracker/events"
        try:
            answer = await self.client.post(url, params=params, json=event)
        except httpx.HTTPError as exc:
            raise ChannelError(
                f"Không kết nối được máy chủ trợ lý ({type(exc).__name__})."
            ) from exc
        if answer.status_code >= 300:
            raise ChannelError(f"Máy chủ trợ lý trả lỗi {answer.status_code}.")

    async def resume(self, conversation_id: str) -> None:
        """Give the conversation back to the bot (it was paused by the hand-off action)."""
        await self._append(conversation_id, {"event": "resume", "timestamp": time.time()})

    async def append_bot(self, conversation_id: str, text: str, officer: str) -> None:
        """Record the officer's reply in the conversation, so transcripts show it."""
        event = {"event": "bot", "text": text, "metadata": {"officer": officer}}
        await self._append(conversation_id, {**event, "timestamp": time.time()})

    async def close(self) -> None:
        await self.client.aclose()


class ChannelReplySender:
    """Sends an officer's text straight to the conversation's channel API.

    Built on first use: the channel modules import Rasa, which takes seconds.
    """

    def __init__(self, engine: Engine, env: Mapping[str, str] = os.environ) -> None:
        self.engine, self.env = engine, env
        self._senders: dict[str, Any] | None = None
        self._close: Callable[[], Awaitable[None]] | None = None

    async def send(self, channel: str, conversation_id: str, text: str, key: str) -> None:
        from bot.delivery.deliverer import Notice, Route
        from bot.delivery.sending import SendError

        if self._senders is None:
            from connectors.senders import build_senders

            self._senders, _, self._close = build_senders(self.engine, self.env)
        sender = self._senders.get(channel) if channel != "email" else None
        if sender is None:
            raise ChannelError(f"Kênh «{channel}» không gửi được tin nhắn từ cán bộ.")
        try:
            await sender.send(Route(channel, conversation_id), Notice(text=text), key)
        except SendError as exc:
            raise ChannelError(f"Kênh {channel} từ chối tin nhắn: {exc.reason[:120]}") from exc

    async def close(self) -> None:
        if self._close is not None:
            await self._close()

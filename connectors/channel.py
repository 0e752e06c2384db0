"""What the citizen channels (Telegram, Zalo, SMS) share: naming, the engine, the per-sender
admission of an inbound message, the webhook blueprint and the lazily built provider API."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from rasa.core.channels.channel import InputChannel, OutputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.engine import Engine

from bot.core.db import get_engine
from bot.delivery.channel_state import touch_activity
from bot.identity.ratelimit import SenderRateLimit
from connectors import common

Receive = Callable[[Request], Awaitable[HTTPResponse]]


class ChannelOutput(OutputChannel):
    """An output channel called NAME whose texts all go out through `_send`."""

    NAME: ClassVar[str]

    @classmethod
    def name(cls) -> str:
        return cls.NAME

    async def _send(self, recipient_id: str, text: str) -> None:
        raise NotImplementedError

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._send(recipient_id, text)

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        if json_message.get("text"):
            await self.send_text_message(recipient_id, str(json_message["text"]))


class ChannelInput(InputChannel):
    """An input channel called NAME, with a rate limit per sender."""

    NAME: ClassVar[str]
    _engine: Engine | None
    rate_limit: SenderRateLimit

    @classmethod
    def name(cls) -> str:
        return cls.NAME

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    async def admit(self, sender: str, output: OutputChannel) -> bool:
        """Whether the sender's message may go on (told through `output` when over the rate
        limit); an admitted sender's activity is recorded."""
        tell = functools.partial(output.send_text_message, sender)
        if not await common.admitted(self.rate_limit, sender, tell):
            return False
        await asyncio.to_thread(touch_activity, self.engine, sender, self.NAME)
        return True

    def webhook_blueprint(
        self, module: str, handler: Receive, methods: Sequence[str] = ("POST",)
    ) -> Blueprint:
        """A health answer on `/` and `handler` on `/webhook`, behind the body size limit and
        with a database outage answered 503 (`common.db_outage_503`)."""
        bp = Blueprint(f"{self.NAME}_webhook", module)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=list(methods))
        @common.db_outage_503(self.NAME)
        async def receive(request: Request) -> HTTPResponse:
            if (refused := common.too_large(request, self.NAME)) is not None:
                return refused
            return await handler(request)

        return bp


class ClosableApi(Protocol):
    async def close(self) -> None: ...


ConfigT = TypeVar("ConfigT")
ApiT = TypeVar("ApiT", bound=ClosableApi)


class ApiChannelInput(ChannelInput, Generic[ConfigT, ApiT]):
    """A channel that is off without its configuration and talks to its provider through an
    API client built on first use."""

    def __init__(
        self,
        config: ConfigT | None,
        engine: Engine | None = None,
        rate_limit: SenderRateLimit | None = None,
    ) -> None:
        self.config, self._engine = config, engine
        self._api: ApiT | None = None
        self.rate_limit = rate_limit or SenderRateLimit.from_env()

    # The provider's configuration class: `from_env()` gives None when the channel is not set up.
    config_type: ClassVar[Any]

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        """Rasa builds channels from credentials.yml; ours read secrets from the environment."""
        return cls(cls.config_type.from_env())

    def _connect(self, config: ConfigT) -> ApiT:
        raise NotImplementedError

    def _output(self) -> OutputChannel:
        raise NotImplementedError

    @property
    def api(self) -> ApiT:
        assert self.config is not None
        if self._api is None:
            self._api = self._connect(self.config)
        return self._api

    def get_output_channel(self) -> OutputChannel | None:
        return self._output() if self.config else None

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()

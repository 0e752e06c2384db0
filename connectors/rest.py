"""Rasa's REST channel (same name, URL `/webhooks/rest/webhook` and answer), failing cleanly.

Rasa's own `RestInput` logs a failed message and answers `[]`: the citizen sees nothing. Here a
message that could not be handled (tracker store unreachable, any other error) is answered
with TRY_AGAIN, and the cause is logged. Messages a half-done turn had already collected are
dropped: that turn was not stored, so the citizen sends the message again.

The answer stays HTTP 200 with the message list: that is the channel's contract, chat front
ends show the list, and a non-2xx answer is something they may retry on their own (repeating a
message whose turn partly ran) or show as a bare error. Operators see the failure in the log.

Who is speaking (docs/security.md): this channel authenticates nobody, so it asserts nothing.
Every sender it is given lives under `rest:` (a body saying `"sender": "telegram:123"` speaks
as `rest:telegram:123`, never in chat 123's conversation or binding), the input channel is
always `rest` whatever the body says, and of the client's metadata only REST_METADATA_KEYS
(short strings that name nothing about the sender) reach the tracker. One sender gets at most
INBOUND_RATE_PER_MINUTE messages (`bot.identity.ratelimit`); past it the answer is 429 with
the polite text and Retry-After.

credentials.yml names `connectors.rest.RestInput` instead of `rest`. The Rasa patches this
project needs are installed by the process entry point (`connectors.patches`), not here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import QueueOutputChannel
from rasa.core.channels.rest import RestInput as RasaRestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.identity.ratelimit import RATE_LIMITED, SenderRateLimit, Verdict
from bot.identity.speaker import REST, rest_sender
from bot.vietnamese.text import clean_text
from connectors import common, rasa_speedups
from connectors.common import TRY_AGAIN, describe, mask_sender

logger = logging.getLogger(__name__)

# Client metadata that may reach the tracker: labels of the integration, never identity.
REST_METADATA_KEYS = frozenset({"client", "locale"})
MAX_METADATA_VALUE = 64


def answering_try_again(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
) -> Callable[[UserMessage], Awaitable[None]]:
    """`on_new_message` that turns a failure into TRY_AGAIN on the message's output channel."""

    async def handle(message: UserMessage) -> None:
        try:
            await on_new_message(message)
        except Exception as exc:
            logger.error(
                "rest message from %s not handled, answered 'please try again': %s",
                mask_sender(message.sender_id or ""),
                describe(exc),
            )
            output = message.output_channel
            if isinstance(output, CollectingOutputChannel) and not isinstance(
                output, QueueOutputChannel
            ):
                output.messages.clear()  # (a stream has already sent them)
            await output.send_text_message(message.sender_id, TRY_AGAIN)

    return handle


class RestInput(RasaRestInput):
    def __init__(self, rate_limit: SenderRateLimit | None = None) -> None:
        self.rate_limit = rate_limit or SenderRateLimit.from_env()

    @classmethod
    def name(cls) -> str:
        return REST

    async def _extract_sender(self, req: Request) -> str:
        return rest_sender(req.json.get("sender"))

    def _extract_input_channel(self, req: Request) -> str:
        return REST

    def get_metadata(self, request: Request) -> dict[str, Any] | None:
        given = request.json.get("metadata") or {}
        kept = {
            k: v
            for k, v in given.items()
            if k in REST_METADATA_KEYS and isinstance(v, str) and len(v) <= MAX_METADATA_VALUE
        }
        return kept or None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        bp = super().blueprint(answering_try_again(on_new_message))

        @bp.listener("before_server_stop")
        async def close_kept_sessions(*_: object) -> None:
            await rasa_speedups.close_sessions()

        @bp.middleware("request")
        async def well_formed(request: Request) -> HTTPResponse | None:
            """Refuse what Rasa's own `receive` would crash on; clean the text it will read."""
            if request.method != "POST" or not request.path.endswith("/webhook"):
                return None
            if (refused := common.too_large(request, "rest")) is not None:
                return refused
            body = common.json_body(request, "rest")
            if isinstance(body, HTTPResponse):
                return body
            for key in ("sender", "message", "input_channel"):
                if body.get(key) is not None and not isinstance(body[key], str):
                    return common.reject("rest", 400, f"{key} is not a string")
            if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
                return common.reject("rest", 400, "metadata is not an object")
            cleaned = {k: clean_text(body[k]) for k in ("sender", "message") if body.get(k)}
            parsed = {**body, **cleaned}
            # Sanic types `parsed_json` as None (its __init__ sets None, no annotation).
            cast(Any, request).parsed_json = parsed
            sender = rest_sender(parsed.get("sender"))
            verdict = self.rate_limit.check(sender)
            if verdict is Verdict.ALLOW:
                return None
            logger.info("rest %s over the inbound rate limit (%s)", mask_sender(sender), verdict)
            return response.json(
                [{"recipient_id": sender, "text": RATE_LIMITED}],
                status=429,
                headers={"Retry-After": str(self.rate_limit.retry_after)},
            )

        return bp

"""Webhook plumbing shared by the channels: size and JSON checks, logged rejections, background
processing that cannot crash the server, masked ids in logs, the polite fixed answers, and what
a webhook answers while the database is down (503, so the provider retries), and the bytes of
a picture that the actions hand over as a data URL."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.delivery.sending import SendError
from bot.identity.ratelimit import RATE_LIMITED, SenderRateLimit, Verdict

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_INBOUND_TEXT = 4096

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

TEXT_ONLY = (
    "Xin lỗi Ông/Bà, hiện tôi chỉ đọc được tin nhắn dạng chữ. "
    "Ông/Bà vui lòng nhập nội dung cần hỗ trợ."
)
EDITED = (
    "Tôi chưa xử lý được tin nhắn đã sửa. "
    "Ông/Bà vui lòng gửi lại nội dung dưới dạng một tin nhắn mới."
)
EXPIRED_CHOICE = "Lựa chọn này không còn hiệu lực. Ông/Bà vui lòng nhập lại yêu cầu."
# Said once when a turn could not be completed (action server or database unreachable).
TRY_AGAIN = (
    "Xin lỗi Ông/Bà, hệ thống đang tạm gián đoạn. Ông/Bà vui lòng gửi lại tin nhắn sau ít phút."
)
RETRY_AFTER_SECONDS = 30
# In the text of the Rasa server's errors when its action server or tracker store is down
# (connectors/guard.py), so that the delivery pipeline's trigger_intent can tell "our own
# service is down: wait" from a failure of the conversation itself (connectors/senders.py).
SERVICE_UNAVAILABLE = "service-unavailable"

_tasks: set[asyncio.Task] = set()

# What each accepted media type's bytes start with: a data URL whose content is not the picture
# it claims to be is refused here rather than by the provider after an upload.
IMAGE_SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


def image_bytes(image: str, max_bytes: int = 1_000_000) -> bytes | None:
    """The picture of a `data:image/png;base64,…` (or image/jpeg) URL, or None for an http(s) URL.

    The actions make pictures (the VietQR code) as data URLs so that no public image host is
    needed; the channels that show pictures upload these bytes, and must never pass the string on
    as text. Raises ValueError for anything else: a malformed data URL, another media type, bytes
    that are not the declared image, or more than `max_bytes` (Zalo takes 1 MB). The base64 text
    is measured before it is decoded, so an oversized string costs no decoding.
    """
    if image[:8].lower().startswith(("http://", "https://")):
        return None
    head, comma, data = image.partition(",")
    if not comma or head[:5].lower() != "data:":
        raise ValueError("not a data URL nor an http(s) URL")
    media_type, _, encoding = head[5:].partition(";")
    media_type = media_type.strip().lower()
    if encoding.strip().lower() != "base64":
        raise ValueError("data URL is not base64")
    if media_type not in IMAGE_SIGNATURES:
        raise ValueError(f"unsupported media type {media_type[:40]!r}")
    if len(data) > 4 * -(-max_bytes // 3):  # the base64 length of max_bytes bytes
        raise ValueError(f"image of over {max_bytes} bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:  # non-ASCII text is a plain ValueError
        raise ValueError("data URL is not valid base64") from exc
    if len(raw) > max_bytes:
        raise ValueError(f"image of over {max_bytes} bytes")
    if not raw.startswith(IMAGE_SIGNATURES[media_type]):
        raise ValueError(f"data URL content is not {media_type}")
    return raw


def mask_sender(sender: str) -> str:
    """`telegram:123456789` → `telegram:*******789`: channel user ids are personal data too."""
    channel, _, ident = sender.rpartition(":")
    hidden = "*" * max(len(ident) - 3, 0) + ident[-3:]
    return f"{channel}:{hidden}" if channel else hidden


def secrets_equal(given: str | None, expected: str) -> bool:
    if not given:
        return False
    # Sanic hands undecodable header bytes over as lone surrogates: compare them, don't crash.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def positive_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A duration setting: a finite number of seconds above zero; unset or blank: `default`."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a number of seconds above 0, not {raw[:20]!r}")
    return value


async def admitted(
    limit: SenderRateLimit, sender: str, tell: Callable[[str], Awaitable[Any]]
) -> bool:
    """Whether this sender's message may go on (`bot.identity.ratelimit`). A refused sender is
    told once per burst through `tell`; a failure to tell is logged, never retried (a flood)."""
    verdict = limit.check(sender)
    if verdict is Verdict.ALLOW:
        return True
    if verdict is Verdict.DROP:
        logger.debug("%s dropped: over the inbound rate limit", mask_sender(sender))
        return False
    logger.info("%s over the inbound rate limit: told to wait", mask_sender(sender))
    try:
        await tell(RATE_LIMITED)
    except SendError as exc:
        logger.warning("rate-limit notice to %s not sent: %s", mask_sender(sender), exc.reason)
    return False


def reject(channel: str, status: int, reason: str) -> HTTPResponse:
    """Refuse a webhook call with a logged reason (never the body: it holds personal data)."""
    logger.warning("%s webhook rejected (%d): %s", channel, status, reason)
    return response.json({"error": reason}, status=status)


def too_large(request: Request, channel: str) -> HTTPResponse | None:
    declared = request.headers.get("content-length", "0")
    size = max(int(declared) if declared.isdigit() else 0, len(request.body or b""))
    if size > MAX_BODY:
        return reject(channel, 413, f"body of {size} bytes is over {MAX_BODY}")
    return None


def json_body(request: Request, channel: str) -> dict[str, Any] | HTTPResponse:
    """The body as a JSON object, or a 400 answer."""
    try:
        data = json.loads(request.body or b"")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; deep nesting
        return reject(channel, 400, "body is not valid JSON")
    if not isinstance(data, dict):
        return reject(channel, 400, "body is not a JSON object")
    return data


def clip(text: str) -> str:
    """Very long messages are cut (with a log line) rather than fed whole to the NLU."""
    if len(text) > MAX_INBOUND_TEXT:
        logger.info("inbound text of %d characters cut to %d", len(text), MAX_INBOUND_TEXT)
        return text[:MAX_INBOUND_TEXT]
    return text


def spawn(
    coro: Coroutine[Any, Any, Any],
    what: str,
    on_failure: Callable[[Exception], Awaitable[Any]] | None = None,
) -> asyncio.Task:
    """Process after answering the webhook; an exception is logged, never propagated.

    The provider already has its 200 and will not send the message again, so `on_failure`
    (e.g. sending TRY_AGAIN through the channel's API) is how the citizen learns to resend.
    """

    async def guarded() -> None:
        try:
            await coro
        except Exception as exc:  # the server must survive any one message
            logger.error("%s failed: %s", what, describe(exc))
            if on_failure is not None:
                try:
                    await on_failure(exc)
                except Exception as again:
                    logger.error("%s: telling the citizen failed too: %s", what, describe(again))

    task = asyncio.get_running_loop().create_task(guarded())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def drain() -> None:
    """Wait for the background work started so far (tests, shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


def disabled_blueprint(name: str, reason: str) -> Blueprint:
    """What a channel without credentials serves: a health answer and 503 on the webhook."""
    bp = Blueprint(f"{name}_disabled")

    @bp.route("/", methods=["GET"])
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "disabled", "reason": reason})

    @bp.route("/webhook", methods=["GET", "POST"])
    async def webhook(_: Request) -> HTTPResponse:
        return reject(name, 503, "channel disabled")

    return bp


def log_disabled(name: str, missing: list[str]) -> None:
    logger.info("%s channel disabled: set %s to enable it", name, ", ".join(missing))


def describe(exc: BaseException) -> str:
    """`Type: message` on one line, cut short: for logs (driver messages can span lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def is_db_outage(exc: BaseException) -> bool:
    """True when the database could not be reached (refused, cut, timed out, pool exhausted),
    as opposed to a bug or bad data. Follows the cause chain, so an error raised while
    handling a dropped connection counts too."""
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        if isinstance(current, sa_exc.TimeoutError):  # no pooled connection came free
            return True
        current = cause_of(current)
    return False


def cause_of(exc: BaseException) -> BaseException | None:
    """The exception `exc` was raised from or while handling, as Python's traceback shows it."""
    if exc.__cause__ is not None or exc.__suppress_context__:
        return exc.__cause__
    return exc.__context__


def unavailable(channel: str, exc: BaseException) -> HTTPResponse:
    """503 with Retry-After for a webhook that could not reach the database: nothing was
    recorded, so the provider's retry (Telegram and Zalo retry non-2xx answers) is processed
    normally once the database is back."""
    logger.error("%s webhook answered 503, database unavailable: %s", channel, describe(exc))
    return response.json(
        {"error": "temporarily unavailable"},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[HTTPResponse]])


def db_outage_503(channel: str) -> Callable[[Handler], Handler]:
    """Decorator for a webhook route: a database outage inside the handler (the duplicate
    check, a button lookup) becomes a logged 503 JSON answer; any other error propagates.

        @bp.route("/webhook", methods=["POST"])
        @common.db_outage_503(NAME)
        async def receive(request: Request) -> HTTPResponse: ...
    """

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            try:
                return await handler(request, *args, **kwargs)
            except Exception as exc:
                if not is_db_outage(exc):
                    raise
                return unavailable(channel, exc)

        return guarded  # type: ignore[return-value]

    return wrap

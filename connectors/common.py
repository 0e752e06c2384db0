"""Webhook plumbing shared by the channels: size and JSON checks, logged rejections, background
processing that cannot crash the server, masked ids in logs, and the polite fixed answers."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

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

_tasks: set[asyncio.Task] = set()


def mask_sender(sender: str) -> str:
    """`telegram:123456789` → `telegram:*******789`: channel user ids are personal data too."""
    channel, _, ident = sender.rpartition(":")
    hidden = "*" * max(len(ident) - 3, 0) + ident[-3:]
    return f"{channel}:{hidden}" if channel else hidden


def secrets_equal(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


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
    except (ValueError, UnicodeDecodeError):
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


def spawn(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task:
    """Process after answering the webhook; an exception is logged, never propagated."""

    async def guarded() -> None:
        try:
            await coro
        except Exception as exc:  # the server must survive any one message
            logger.error("%s failed: %s: %s", what, type(exc).__name__, exc)

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

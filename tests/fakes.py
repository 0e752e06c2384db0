"""Local fake servers on 127.0.0.1 (random ports) for the APIs the channels call, and a Sanic
server that mounts channels the way Rasa does. Each fake records what it received and can be
told to misbehave for the next calls: `"500"`, `"timeout"`, `"429"`, `"403"`, or a Zalo code."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from email.message import Message
from typing import Any

from aiohttp import web
from sanic import Sanic

from connectors.common import drain
from connectors.zalo import SIGNATURE_HEADER
from connectors.zalo_api import event_mac


def file_bytes(field: web.FileField) -> bytes:
    """An uploaded file's bytes; aiohttp spools each one to a temporary file, closed here."""
    with field.file:
        return field.file.read()


class FakeApi:
    """An aiohttp app on a free port; `fail_next` queues misbehaviours for the next calls."""

    timeout_delay = 1.5

    def __init__(self) -> None:
        self.app = web.Application()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each accepted message
        self._script: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def fail_next(self, *behaviours: str) -> None:
        self._script.extend(behaviours)

    async def misbehave(self) -> str | None:
        """Pop the next queued behaviour; sleeps first for a timeout."""
        if not self._script:
            return None
        behaviour = self._script.pop(0)
        if behaviour == "timeout":
            await asyncio.sleep(self.timeout_delay)
        return behaviour

    async def start(self) -> FakeApi:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakeTelegram(FakeApi):
    """Bot API: sendMessage, sendPhoto, answerCallbackQuery (form-encoded, as PTB posts; multipart
    when a file is uploaded: the file's field then holds its bytes)."""

    def __init__(self, token: str = "123:TEST") -> None:
        super().__init__()
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.answered: list[str] = []
        self.webhook: dict[str, Any] = {}
        self.app.router.add_post("/bot{token}/{method}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = {
            key: file_bytes(value) if isinstance(value, web.FileField) else value
            for key, value in (await request.post()).items()
        }
        if "reply_markup" in params:
            params["reply_markup"] = json.loads(params["reply_markup"])
        self.calls.append((method, params))
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        behaviour = await self.misbehave()
        if behaviour == "500":
            return web.json_response({"ok": False, "description": "Internal"}, status=500)
        if behaviour == "429":
            body = {
                "ok": False,
                "description": "Too Many Requests",
                "parameters": {"retry_after": 1},
            }
            return web.json_response(body, status=429)
        if behaviour == "403":
            body = {"ok": False, "description": "Forbidden: bot was blocked by the user"}
            return web.json_response(body, status=403)
        if method == "setWebhook":
            self.webhook = params
            return web.json_response({"ok": True, "result": True})
        if method == "getWebhookInfo":
            info = {"url": self.webhook.get("url", ""), "has_custom_certificate": False}
            return web.json_response({"ok": True, "result": {**info, "pending_update_count": 0}})
        if method == "answerCallbackQuery":
            self.answered.append(params["callback_query_id"])
            return web.json_response({"ok": True, "result": True})
        self.sent.append({"method": method, **params})
        self.arrivals.append(time.monotonic())
        chat = {"id": int(params["chat_id"]), "type": "private"}
        result = {"message_id": len(self.sent), "date": 0, "chat": chat, "text": params.get("text")}
        return web.json_response({"ok": True, "result": result})


def zalo_text_event(
    app_id: str, oa_secret: str, user: str, text: str, msg_id: str, oa_id: str = "366272"
) -> tuple[bytes, dict[str, str]]:
    """A follower's `user_send_text` webhook, body and headers, signed as Zalo signs it."""
    body = {
        "app_id": app_id,
        "event_name": "user_send_text",
        "sender": {"id": user},
        "recipient": {"id": oa_id},
        "message": {"msg_id": msg_id, "text": text},
        "timestamp": str(int(time.time() * 1000)),
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    mac = event_mac(app_id, oa_secret, raw, body["timestamp"])
    return raw, {SIGNATURE_HEADER: "mac=" + mac, "Content-Type": "application/json"}


class FakeZalo(FakeApi):
    """OA API (/v3.0/oa/message/cs, image uploads at /v2.0/oa/upload/image), ZNS
    (/message/template) and OAuth (/v4/oa/access_token) on one server. Refresh tokens are
    single-use, as on Zalo."""

    def __init__(self, app_secret: str = "app-secret") -> None:
        super().__init__()
        self.app_secret = app_secret
        self.access = {"access-0"}
        self.refresh = {"refresh-0"}
        self.refreshes = 0
        self.refresh_delay = 0.2
        self.sent: list[dict[str, Any]] = []
        self.zns: list[dict[str, Any]] = []
        self.uploads: list[bytes] = []
        self.app.router.add_post("/v3.0/oa/message/cs", self.message)
        self.app.router.add_post("/v2.0/oa/upload/image", self.upload)
        self.app.router.add_post("/message/template", self.template)
        self.app.router.add_post("/v4/oa/access_token", self.token)

    async def _common(self, request: web.Request, path: str) -> web.Response | dict[str, Any]:
        return await self._checked(request, path, await request.json())

    async def _checked(
        self, request: web.Request, path: str, body: dict[str, Any]
    ) -> web.Response | dict[str, Any]:
        """Record the call, play the scripted misbehaviour, check the access token."""
        self.calls.append((path, body))
        behaviour = await self.misbehave()
        if behaviour == "500":
            return web.json_response({"error": -1}, status=500)
        if behaviour and behaviour.startswith("-"):
            return web.json_response({"error": int(behaviour), "message": "scripted"})
        if request.headers.get("access_token") not in self.access:
            return web.json_response({"error": -216, "message": "Access token is invalid"})
        return body

    async def message(self, request: web.Request) -> web.Response:
        body = await self._common(request, "cs")
        if isinstance(body, web.Response):
            return body
        self.sent.append(body)
        self.arrivals.append(time.monotonic())
        return web.json_response({"error": 0, "data": {"message_id": f"m{len(self.sent)}"}})

    async def upload(self, request: web.Request) -> web.Response:
        """Multipart with the image in `file`; answers attachment ids att-1, att-2, …"""
        field = (await request.post()).get("file")
        data = file_bytes(field) if isinstance(field, web.FileField) else None
        summary = {
            "filename": getattr(field, "filename", None),
            "content_type": getattr(field, "content_type", None),
            "size": None if data is None else len(data),
        }
        checked = await self._checked(request, "upload", summary)
        if isinstance(checked, web.Response):
            return checked
        if data is None:
            return web.json_response({"error": -201, "message": "file is missing"})
        self.uploads.append(data)
        attachment = {"attachment_id": f"att-{len(self.uploads)}"}
        return web.json_response({"error": 0, "message": "Success", "data": attachment})

    async def template(self, request: web.Request) -> web.Response:
        body = await self._common(request, "zns")
        if isinstance(body, web.Response):
            return body
        self.zns.append(body)
        return web.json_response({"error": 0, "data": {"msg_id": f"z{len(self.zns)}"}})

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.calls.append(("oauth", form))
        await asyncio.sleep(self.refresh_delay)
        if request.headers.get("secret_key") != self.app_secret:
            return web.json_response({"error": -14002, "error_name": "Invalid secret key"})
        if form.get("refresh_token") not in self.refresh:
            return web.json_response({"error": -14014, "error_name": "Invalid refresh token"})
        self.refresh.discard(form["refresh_token"])
        self.refreshes += 1
        access, refresh = f"access-{self.refreshes}", f"refresh-{self.refreshes}"
        self.access, self.refresh = {access}, {refresh}
        return web.json_response(
            {"access_token": access, "refresh_token": refresh, "expires_in": "90000"}
        )


class FakeEsms(FakeApi):
    """eSMS SendMultipleMessage_V4_post_json; a repeated RequestId answers CodeResult 124."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self.request_ids: set[str] = set()
        self.app.router.add_post(
            "/MainService.svc/json/SendMultipleMessage_V4_post_json/", self.handle
        )

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("send", body))
        behaviour = await self.misbehave()
        if behaviour == "500":
            return web.Response(status=500, text="oops")
        if behaviour == "429":
            return web.Response(status=429, text="slow down")
        if behaviour and behaviour.isdigit():
            return web.json_response({"CodeResult": behaviour})
        if body.get("RequestId") in self.request_ids:
            return web.json_response({"CodeResult": "124"})
        if body.get("RequestId"):
            self.request_ids.add(body["RequestId"])
        self.sent.append(body)
        self.arrivals.append(time.monotonic())
        return web.json_response({"CodeResult": "100", "SMSID": f"s{len(self.sent)}"})


class FakeSmtp:
    """A minimal SMTP server (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) keeping the mails."""

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username, self.password = username, password
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse_recipients = False
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> FakeSmtp:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write((line + "\r\n").encode())

        say("220 fake ESMTP")
        sender, rcpts = "", []
        try:
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    say("250-fake")
                    say("250 AUTH PLAIN")
                elif verb == "AUTH":
                    creds = base64.b64decode(line.split()[-1]).split(b"\0")
                    ok = [c.decode() for c in creds[1:]] == [self.username, self.password]
                    say("235 ok" if ok else "535 authentication failed")
                elif verb == "MAIL":
                    sender, rcpts = line[10:].strip("<> "), []
                    say("250 ok")
                elif verb == "RCPT":
                    if self.refuse_recipients:
                        say("550 no such user")
                    else:
                        rcpts.append(line[8:].strip("<> "))
                        say("250 ok")
                elif verb == "DATA":
                    say("354 go ahead")
                    await writer.drain()
                    data = b""
                    while (chunk := await reader.readline()) != b".\r\n":
                        data += chunk
                    self.messages.append(
                        email.message_from_bytes(data, policy=email.policy.default)
                    )
                    self.envelopes.append((sender, rcpts))
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    await writer.drain()
                    break
                else:
                    say("250 ok")
                await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def serve_app(app: Sanic) -> AsyncIterator[str]:
    """Run a Sanic app on a free port of 127.0.0.1 inside the test's event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await drain()
        await server.before_stop()
        await server.close()
        await server.after_stop()
        sock.close()


@asynccontextmanager
async def serve_channels(
    channels: list[Any], on_message: Callable[[Any], Awaitable[None]]
) -> AsyncIterator[str]:
    """Mount the channels' blueprints at /webhooks/<name>/ on a real Sanic server, as
    `rasa.core.channels.channel.register` does; yields the base URL."""
    Sanic.test_mode = True
    app = Sanic(f"t{uuid.uuid4().hex[:8]}", configure_logging=False)
    for channel in channels:
        app.blueprint(channel.blueprint(on_message), url_prefix=f"/webhooks/{channel.name()}")
    app.ctx.input_channels = channels
    async with serve_app(app) as url:
        yield url


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until `predicate()` holds (background processing after a webhook's 200)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
    await drain()

"""The phone simulator: a page where a tester plays a demo citizen on Zalo, Telegram or SMS,
and its HTTP API, on the same 127.0.0.1 server as the provider stand-ins (`standins.py`).

What the citizen "sends" becomes the webhook the real provider would send (signed, with the
channel's secret), posted to the Rasa server's `/webhooks/<channel>/webhook`; what the bot
answers reaches the stand-ins through the real connectors and is shown as chat bubbles. The
proactive side runs through the real pipeline too: `/sim/run-day` scans a day and delivers what
is due as the scheduler would.

Routes: `GET /` (the page), `GET /sim/citizens`, `POST /sim/send`, `POST /sim/link`,
`GET /sim/messages`, `POST /sim/run-day`, `GET /sim/image/<id>`, `/static/…`, and the
stand-ins' provider routes under `/zalo`, `/telegram`, `/esms`. Only requests addressed to
127.0.0.1/localhost on our port are served (a page of another site, or a DNS-rebinding name,
cannot drive it), and the simulator API takes JSON only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Awaitable, Callable, Mapping, MutableSequence
from typing import Any, cast
from urllib.parse import urlparse

from aiohttp import web
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.clock import today
from simulator.people import (
    CHANNELS,
    CSP,
    DEFAULT_RASA_URL,
    LABEL,
    LINK_TIMEOUT,
    STATIC,
    Handler,
    SimulatorError,
    demo_citizens,
)
from simulator.session import Simulator
from simulator.standins import (
    MAX_IMAGE_BYTES,
    Inbox,
    StandinConfig,
    StandIns,
    local_env,
    real_channels_configured,
)

# HTTP --------------------------------------------------------------------------------------


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _local_only(port: int) -> Any:
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.host not in hosts:
            return _error(421, "Trình mô phỏng chỉ phục vụ địa chỉ 127.0.0.1.")
        if request.method == "POST" and request.path.startswith("/sim/"):
            origin = request.headers.get("Origin")
            if origin and urlparse(origin).netloc not in hosts:
                return _error(403, "Yêu cầu từ trang khác bị từ chối.")
            if request.content_type != "application/json":
                return _error(415, "Cần gửi JSON.")
        try:
            response = await handler(request)
        except SimulatorError as exc:
            response = _error(exc.status, exc.message)
        except web.HTTPException as exc:
            response = exc
        if not request.path.startswith(("/zalo/", "/telegram/", "/esms/")):
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers.setdefault("Cache-Control", "no-store")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    return middleware


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise SimulatorError(400, "Nội dung không phải JSON hợp lệ.") from exc
    if not isinstance(body, dict):
        raise SimulatorError(400, "Nội dung phải là một đối tượng JSON.")
    return body


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise SimulatorError(400, f"Thiếu hoặc sai {name}.")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SimulatorError(400, f"Thiếu hoặc sai {name}.") from exc


def _channel(value: Any) -> str:
    if value not in CHANNELS:
        raise SimulatorError(400, "Kênh phải là zalo, telegram hoặc sms.")
    return str(value)


def create_simulator(
    engine: Engine,
    catalogue: Catalogue,
    port: int,
    *,
    rasa_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
    link_timeout: float = LINK_TIMEOUT,
) -> web.Application:
    """The simulator and the stand-ins as one aiohttp application, to be served on
    127.0.0.1:`port`. Refuses (RuntimeError) when `environ` holds real channel secrets."""
    if real_channels_configured(environ):
        raise RuntimeError(
            "Real channel secrets are configured (ZALO_*, TELEGRAM_BOT_TOKEN, SMS_*/ESMS_*): "
            "the simulator's provider stand-ins would stand in for real providers. Unset them "
            "to run the simulator."
        )
    env = local_env(port)
    inbox = Inbox()
    standins = StandIns(StandinConfig.from_env(env), inbox)
    rasa = rasa_url or environ.get("RASA_URL") or DEFAULT_RASA_URL
    sim = Simulator(engine, catalogue, env, rasa, inbox, standins, link_timeout)

    async def page(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "phone.html", headers={"Cache-Control": "no-store"})

    async def citizens(_: web.Request) -> web.Response:
        found = await asyncio.to_thread(demo_citizens, engine, catalogue, today())
        return web.json_response({"label": LABEL, "citizens": found, "channels": CHANNELS})

    async def send(request: web.Request) -> web.Response:
        body = await _json(request)
        person = await sim.person(_int(body.get("citizen_id"), "citizen_id"))
        channel = _channel(body.get("channel"))
        if body.get("button") is not None:
            entry, choice = sim.find_choice(person, channel, body["button"])
            sent = await sim.send(person, channel, pressed=(entry, choice))
        else:
            text = body.get("text")
            if not isinstance(text, str):
                raise SimulatorError(400, "Cần gửi text hoặc button.")
            sent = await sim.send(person, channel, text[:4000])
        return web.json_response({"status": "sent", "message": sent.as_json()})

    async def link(request: web.Request) -> web.Response:
        body = await _json(request)
        person = await sim.person(_int(body.get("citizen_id"), "citizen_id"))
        return web.json_response(await sim.link(person, _channel(body.get("channel"))))

    async def messages(request: web.Request) -> web.Response:
        person = await sim.person(_int(request.query.get("citizen_id"), "citizen_id"))
        channel = _channel(request.query.get("channel"))
        after = _int(request.query.get("after", "0"), "after")
        entries = inbox.entries(person.conversations(channel), after)
        return web.json_response({"messages": [e.as_json() for e in entries], "last": inbox.last})

    async def run_day(request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            day = dt.date.fromisoformat(str(body.get("date")))
        except ValueError as exc:
            raise SimulatorError(400, "Ngày phải có dạng YYYY-MM-DD.") from exc
        return web.json_response(await sim.run_day(day))

    async def image(request: web.Request) -> web.Response:
        found = inbox.image(request.match_info["ident"])
        if found is None:
            raise web.HTTPNotFound()
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    app = web.Application(middlewares=[_local_only(port)], client_max_size=2 * MAX_IMAGE_BYTES)
    standins.install(app)
    app.router.add_get("/", page)
    app.router.add_get("/sim/citizens", citizens)
    app.router.add_post("/sim/send", send)
    app.router.add_post("/sim/link", link)
    app.router.add_get("/sim/messages", messages)
    app.router.add_post("/sim/run-day", run_day)
    app.router.add_get("/sim/image/{ident}", image)
    app.router.add_static("/static/", STATIC, append_version=False)
    # aiohttp 3.9 declares its signals for aiosignal < 1.4 (see console/__main__.py).
    cleanup = cast("MutableSequence[Callable[[web.Application], Awaitable[None]]]", app.on_cleanup)
    cleanup.append(sim.close)
    return app

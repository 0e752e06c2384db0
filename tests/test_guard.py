"""The Rasa-process guards (connectors/guard.py), the REST channel that installs them
(connectors/rest.py) and the webhook outage helpers (connectors/common.py), against Rasa's own
processor and tracker store classes and real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from rasa.core.actions.action import Action, RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    BotUttered,
    FollowupAction,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import ClientResponseError, EndpointConfig
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.core.db import make_engine
from bot.delivery.channel_state import first_time
from connectors import common, guard
from connectors.common import TRY_AGAIN
from connectors.rest import RestInput, answering_try_again
from tests.fakes import serve_channels
from tests.model.server import free_port

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet, check_status, EXTERNAL_reminder]
actions: [action_check_status, validate_some_form, action_reminder, some_form]
"""
)


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    guard.install()
    yield
    guard.uninstall()


class ActionServer:
    """A fake action server: answers every call with `status` and `body`."""

    def __init__(self, status: int = 200, body: dict[str, Any] | None = None) -> None:
        self.status, self.body = status, body or {"events": [], "responses": []}
        self.calls: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((await request.json())["next_action"])
        return web.json_response(self.body, status=self.status)


@pytest.fixture
async def action_server() -> AsyncIterator[tuple[ActionServer, EndpointConfig]]:
    fake = ActionServer()
    app = web.Application()
    app.router.add_post("/webhook", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, EndpointConfig(f"http://127.0.0.1:{port}/webhook")
    await runner.cleanup()


DOWN = EndpointConfig(f"http://127.0.0.1:{free_port()}/webhook")  # nothing listens there


def processor() -> MessageProcessor:
    """Rasa's processor with only what `_run_action` uses (no model needed)."""
    proc = MessageProcessor.__new__(MessageProcessor)
    proc.domain = DOMAIN
    return proc


def tracker(external: bool = False) -> DialogueStateTracker:
    message = (
        UserUttered.create_external("EXTERNAL_reminder", [])
        if external
        else UserUttered("hồ sơ của tôi", {"name": "check_status"})
    )
    return DialogueStateTracker.from_events(
        "zalo:61424948", [ActionExecuted("action_listen"), message], slots=DOMAIN.slots
    )


async def run(action: Action, state: DialogueStateTracker) -> tuple[bool, list[dict[str, Any]]]:
    output = CollectingOutputChannel()
    prediction = PolicyPrediction.for_action_name(DOMAIN, action.name())
    again = await processor()._run_action(action, state, output, None, prediction)
    return again, output.messages


def after_user(state: DialogueStateTracker) -> list[Any]:
    return list(state.events)[2:]


class FormLike(Action):
    """Calls the action server the way FormAction does (validation inside the loop action)."""

    def __init__(self, endpoint: EndpointConfig) -> None:
        self.endpoint = endpoint

    def name(self) -> str:
        return "some_form"

    async def run(self, output_channel, nlg, tracker, domain):  # type: ignore[no-untyped-def]
        validate = RemoteAction("validate_some_form", self.endpoint)
        events = await validate.run(output_channel, nlg, tracker, domain)
        ask = RemoteAction("action_check_status", self.endpoint)
        return [*events, *await ask.run(output_channel, nlg, tracker, domain), SlotSet("note", "x")]


async def test_action_server_down_ends_the_turn_with_one_try_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = tracker()
    with caplog.at_level(logging.ERROR, logger="connectors.guard"):
        again, said = await run(RemoteAction("action_check_status", DOWN), state)
    assert [m["text"] for m in said] == [TRY_AGAIN]
    events = after_user(state)
    assert [type(e) for e in events] == [ActionExecuted, BotUttered, FollowupAction]
    assert events[1].text == TRY_AGAIN and state.followup_action == "action_listen"
    assert again  # so the processor runs the follow-up action_listen and the turn ends
    assert "action_check_status" in caplog.text and "Connect" in caplog.text
    assert "61424948" not in caplog.text  # the sender is masked


async def test_5xx_counts_as_down_400_rejection_and_other_errors_do_not(
    action_server: tuple[ActionServer, EndpointConfig],
) -> None:
    fake, endpoint = action_server
    fake.status, fake.body = 503, {"error": "proxy"}
    state = tracker()
    _, said = await run(RemoteAction("action_check_status", endpoint), state)
    assert [m["text"] for m in said] == [TRY_AGAIN]

    fake.status, fake.body = 400, {"action_name": "validate_some_form", "error": "nothing"}
    state = tracker()
    _, said = await run(RemoteAction("validate_some_form", endpoint), state)
    assert said == [] and [type(e) for e in after_user(state)] == [ActionExecutionRejected]

    fake.status, fake.body = 404, {"error": "no such action"}
    state = tracker()
    _, said = await run(RemoteAction("action_check_status", endpoint), state)
    assert said == []  # not an outage: Rasa's own handling (a deployment error to fix)


async def test_inside_a_form_the_loop_stops_once_and_keeps_its_state() -> None:
    state = tracker()
    _, said = await run(FormLike(DOWN), state)
    assert [m["text"] for m in said] == [TRY_AGAIN]  # once, though two calls would have failed
    events = after_user(state)  # the form's own events (its SlotSet) were not applied
    assert [type(e) for e in events] == [ActionExecuted, BotUttered, FollowupAction]


async def test_the_form_still_sees_rejections(
    action_server: tuple[ActionServer, EndpointConfig],
) -> None:
    fake, endpoint = action_server
    fake.status, fake.body = 400, {"action_name": "validate_some_form", "error": "nothing"}
    with pytest.raises(Exception) as raised:
        await FormLike(endpoint).run(CollectingOutputChannel(), None, tracker(), DOMAIN)
    assert type(raised.value).__name__ == "ActionExecutionRejection"


async def test_a_trigger_intent_turn_fails_so_the_reminder_is_retried() -> None:
    state = tracker(external=True)
    output = CollectingOutputChannel()
    prediction = PolicyPrediction.for_action_name(DOMAIN, "action_reminder")
    with pytest.raises(guard.ActionServerUnavailable) as raised:
        await processor()._run_action(
            RemoteAction("action_reminder", DOWN), state, output, None, prediction
        )
    assert common.SERVICE_UNAVAILABLE in str(raised.value) and output.messages == []


async def test_a_working_action_server_is_untouched(
    action_server: tuple[ActionServer, EndpointConfig],
) -> None:
    fake, endpoint = action_server
    fake.body = {"events": [], "responses": [{"text": "Hồ sơ DLK-1: đã tiếp nhận"}]}
    state = tracker()
    _, said = await run(RemoteAction("action_check_status", endpoint), state)
    assert [m["text"] for m in said] == ["Hồ sơ DLK-1: đã tiếp nhận"]
    assert state.followup_action is None


def test_unavailable_cause() -> None:
    assert guard.unavailable_cause(asyncio.TimeoutError()) == "TimeoutError"
    assert guard.unavailable_cause(ClientResponseError(502, "Bad Gateway", "")) == "HTTP 502"
    assert guard.unavailable_cause(ClientResponseError(404, "Not Found", "")) is None
    assert guard.unavailable_cause(ValueError("bug")) is None
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError:
            import aiohttp

            raise aiohttp.ServerDisconnectedError() from None
    except Exception as exc:  # the chain Rasa builds: RasaException with the aiohttp error inside
        wrapped = RuntimeError("Failed to execute custom action")
        wrapped.__context__ = exc
        assert guard.unavailable_cause(wrapped) is not None


class BrokenStore(InMemoryTrackerStore):
    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        raise OperationalError("SELECT", {}, ConnectionRefusedError("refused"))

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        return await self.retrieve(sender_id)

    async def save(self, tracker: DialogueStateTracker) -> None:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("refused"))


async def test_tracker_store_outage_raises_instead_of_forgetting_the_conversation() -> None:
    store = FailSafeTrackerStore(BrokenStore(DOMAIN))
    with pytest.raises(guard.TrackerStoreUnavailable):
        await store.get_or_create_tracker("zalo:1")  # Rasa would start a blank conversation
    with pytest.raises(guard.TrackerStoreUnavailable):
        await store.save(tracker())  # Rasa would keep it in memory, lost for good
    seen: list[Exception] = []
    with_callback = FailSafeTrackerStore(BrokenStore(DOMAIN), on_tracker_store_error=seen.append)
    assert await with_callback.retrieve("zalo:1") is None and len(seen) == 1


def test_postgres_tracker_store_gets_pre_ping_and_a_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rasa.core import tracker_store
    from sqlalchemy.engine import make_url

    monkeypatch.setenv("DATABASE_CONNECT_TIMEOUT", "3")
    kwargs = tracker_store.create_engine_kwargs(make_url("postgresql://u@db:5432/rasa"))
    assert kwargs["pool_pre_ping"] is True and kwargs["connect_args"]["connect_timeout"] == 3
    assert "pool_size" in kwargs  # Rasa's own settings are kept
    assert tracker_store.create_engine_kwargs(make_url("sqlite:///x.db")) == {}


# --- the REST channel ----------------------------------------------------------------------


async def test_rest_channel_answers_try_again_when_a_message_cannot_be_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id, "half a turn")
        raise guard.TrackerStoreUnavailable("OperationalError: connection refused")

    with caplog.at_level(logging.ERROR, logger="connectors.rest"):
        async with serve_channels([RestInput()], failing) as url, httpx.AsyncClient() as client:
            answer = await client.post(
                f"{url}/webhooks/rest/webhook", json={"sender": "c-1", "message": "xin chào"}
            )
            streamed = await client.post(
                f"{url}/webhooks/rest/webhook?stream=true",
                json={"sender": "c-1", "message": "xin chào"},
            )
    assert answer.status_code == 200
    assert answer.json() == [{"recipient_id": "rest:c-1", "text": TRY_AGAIN}]
    # A stream has already sent what the turn said before failing; TRY_AGAIN follows it.
    assert [json.loads(line)["text"] for line in streamed.text.splitlines()] == [
        "half a turn",
        TRY_AGAIN,
    ]
    assert "tracker store unavailable" in caplog.text


async def test_rest_channel_passes_answers_through() -> None:
    async def greeting(message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id, "Xin chào Ông/Bà")

    assert RestInput.name() == "rest"
    async with serve_channels([RestInput()], greeting) as url, httpx.AsyncClient() as client:
        answer = await client.post(
            f"{url}/webhooks/rest/webhook", json={"sender": "c-2", "message": "xin chào"}
        )
    assert [m["text"] for m in answer.json()] == ["Xin chào Ông/Bà"]


async def test_answering_try_again_wraps_any_output_channel() -> None:
    async def failing(message: UserMessage) -> None:
        raise RuntimeError("boom")

    output = CollectingOutputChannel()
    await answering_try_again(failing)(UserMessage("x", output, "s"))
    assert [m["text"] for m in output.messages] == [TRY_AGAIN]


# --- the webhook helpers of connectors/common.py -------------------------------------------


class OutageChannel:
    """A channel whose webhook records the event id first, as zalo/telegram/sms do."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    @classmethod
    def name(cls) -> str:
        return "zalo"

    def blueprint(self, on_new_message: Any) -> Blueprint:
        bp = Blueprint("outage_test")

        @bp.route("/webhook", methods=["POST"])
        @common.db_outage_503("zalo")
        async def receive(request: Request) -> HTTPResponse:
            if request.json.get("bug"):
                raise ValueError("a bug, not an outage")
            first_time(self.engine, "zalo", request.json["id"])
            return response.json({"status": "ok"})

        return bp


async def test_webhook_answers_503_with_retry_after_while_the_database_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = OutageChannel(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")

    async def ignore(_: UserMessage) -> None:
        pass

    with caplog.at_level(logging.ERROR, logger="connectors.common"):
        async with serve_channels([channel], ignore) as url, httpx.AsyncClient() as client:
            down = await client.post(f"{url}/webhooks/zalo/webhook", json={"id": "m-1"})
            bug = await client.post(f"{url}/webhooks/zalo/webhook", json={"bug": 1})
    channel.engine.dispose()
    assert (down.status_code, down.json()) == (503, {"error": "temporarily unavailable"})
    assert down.headers["Retry-After"] == str(common.RETRY_AFTER_SECONDS)
    assert "zalo webhook answered 503, database unavailable: OperationalError" in caplog.text
    assert bug.status_code == 500


def test_is_db_outage() -> None:
    assert common.is_db_outage(OperationalError("SELECT 1", {}, Exception("refused")))
    assert not common.is_db_outage(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not common.is_db_outage(ValueError("bad"))
    try:
        try:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        except OperationalError:
            raise RuntimeError("while handling") from None
    except RuntimeError as exc:
        assert not common.is_db_outage(exc)  # `from None`: the cause was deliberately dropped
    wrapped = RuntimeError("retrieve failed")
    wrapped.__cause__ = OperationalError("SELECT 1", {}, Exception("refused"))
    assert common.is_db_outage(wrapped)


async def test_spawn_tells_the_citizen_when_background_processing_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told: list[str] = []

    async def processing() -> None:
        raise guard.TrackerStoreUnavailable("OperationalError: refused")

    async def tell(exc: Exception) -> None:
        told.append(type(exc).__name__)

    with caplog.at_level(logging.ERROR, logger="connectors.common"):
        common.spawn(processing(), "zalo event user_send_text", on_failure=tell)
        await common.drain()
    assert told == ["TrackerStoreUnavailable"]
    assert "zalo event user_send_text failed: TrackerStoreUnavailable" in caplog.text

"""The action-response validator accepts and refuses exactly what Rasa's does; messages
are understood on the NLU threads, not on the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig

from connectors import rasa_speedups

USER = {
    "event": "user",
    "text": "đổi bằng lái",
    "parse_data": {
        "intent": {"name": "request_service", "confidence": 0.9},
        "entities": [{"entity": "service", "value": "gplx_doi", "start": 0, "end": 3}],
        "intent_ranking": [{"name": "request_service", "confidence": 0.9}],
    },
}
GOOD: list[dict[str, Any]] = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "x", "value": "y", "timestamp": None}]},
    {"responses": [{"text": "Xin chào Ông/Bà"}]},
    {
        "events": [
            {"event": "active_loop", "name": "dossier_form", "timestamp": 1.5},
            {"event": "slot", "name": "requested_slot", "value": None, "metadata": {}},
            {"event": "action", "name": "action_x", "policy": None, "hide_rule_turn": True},
            {"event": "followup", "name": "action_y"},
            {"event": "bot", "text": "Dạ", "data": {"buttons": []}},
            USER,
        ],
        "responses": [{"text": "Dạ", "buttons": [{"title": "Có", "payload": "/affirm"}]}],
        "other": "keys are allowed",
    },
]
BAD: list[Any] = [
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    {"events": [{"event": "slot", "name": "x"}]},  # no value
    {"events": [{"event": "slot", "name": 3, "value": 1}]},
    {"events": [{"name": "x", "value": 1}]},  # no event
    {"events": [{"event": 5}]},
    {"events": [{"event": ["slot"]}]},
    {"events": [{"event": "slot", "name": "x", "value": 1, "timestamp": "now"}]},
    {"events": [{"event": "entities"}]},
    {"events": [{"event": "action", "name": "x", "hide_rule_turn": "yes"}]},
    {"events": [{**USER, "parse_data": {"intent": {"name": 7}}}]},
    {"events": [{"event": "slot", "name": "x", "value": 1}, "not an object"]},
    ["not an object"],
]


@pytest.fixture
def action() -> Iterator[RemoteAction]:
    yield RemoteAction("action_x", EndpointConfig("http://127.0.0.1:1/webhook"))
    rasa_speedups.uninstall()


@pytest.mark.parametrize("result", GOOD)
def test_valid_answers_pass_as_with_rasa(action: RemoteAction, result: dict[str, Any]) -> None:
    assert action._validate_action_result(result)
    rasa_speedups.install()
    assert action._validate_action_result(result)


@pytest.mark.parametrize("result", BAD)
def test_invalid_answers_fail_as_with_rasa(action: RemoteAction, result: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as rasa_error:
        action._validate_action_result(result)
    rasa_speedups.install()
    with pytest.raises(ValidationError) as ours:
        action._validate_action_result(result)
    assert ours.value.message == rasa_error.value.message
    assert "Failed to validate Action server response" in ours.value.message


def test_the_one_alternative_check_decides_usual_answers() -> None:
    """The shortcut is taken for valid answers (or the tests above would not reach it) and never
    for invalid ones."""
    assert all(rasa_speedups._surely_valid(result) for result in GOOD)
    assert not any(rasa_speedups._surely_valid(result) for result in BAD)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
EVENT_NAMES = st.sampled_from(["user", "action", "slot", "entities", "bot", "followup", "nope"])
FIELDS = st.sampled_from(
    ["name", "value", "timestamp", "metadata", "entities", "parse_data", "policy", "text"]
)
EVENTS = st.lists(
    st.builds(
        lambda name, fields: {"event": name, **fields},
        EVENT_NAMES,
        st.dictionaries(FIELDS, JSON, max_size=4),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(events=EVENTS)
def test_the_shortcut_agrees_with_rasa_on_random_events(events: list[dict[str, Any]]) -> None:
    result = {"events": events}
    try:
        rasa_speedups._original_validate(RemoteAction("action_x", None), result)  # Rasa's
        valid = True
    except ValidationError:
        valid = False
    assert rasa_speedups._surely_valid(result) == valid  # the narrowing is exact


class Processor:
    """What `parse_message` reads of Rasa's MessageProcessor."""

    def __init__(self, http_interpreter: Any = None) -> None:
        self.http_interpreter = http_interpreter


async def test_messages_are_understood_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    both_inside = threading.Barrier(2, timeout=10)  # two messages understood side by side
    loop_was_free = threading.Event()  # set by the loop while the parses block

    async def blocking_parse(self: Any, message: Any, tracker: Any, only_output: bool) -> dict:
        both_inside.wait()
        assert loop_was_free.wait(10), "the event loop was blocked while parsing"
        return {"text": message, "thread": threading.current_thread().name}

    async def on_the_loop() -> None:
        await asyncio.sleep(0.05)
        loop_was_free.set()

    monkeypatch.setattr(rasa_speedups, "_original_parse", blocking_parse)
    first, second, _ = await asyncio.gather(
        rasa_speedups._parse_message(Processor(), "xin chào"),
        rasa_speedups._parse_message(Processor(), "196202"),
        on_the_loop(),
    )
    assert first["text"] == "xin chào" and second["text"] == "196202"
    assert first["thread"].startswith("nlu") and second["thread"].startswith("nlu")

    loop_was_free.set()
    both_inside = threading.Barrier(1)
    remote = await rasa_speedups._parse_message(Processor(http_interpreter=object()), "x")
    assert remote["thread"] == threading.current_thread().name  # Rasa's remote NLU: unchanged


async def test_action_calls_reuse_one_connection() -> None:
    """Rasa opens a TCP connection per action call; installed, calls share a kept one."""
    peers: list[tuple[str, int]] = []

    async def webhook(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"events": [], "responses": [await request.json()]})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
    try:
        rasa_speedups.uninstall()
        for n in range(3):
            assert await endpoint.request(json={"n": n}) == {"events": [], "responses": [{"n": n}]}
        assert len(set(peers)) == 3  # Rasa's own: one connection per call
        peers.clear()
        rasa_speedups.install()
        for n in range(3):
            assert await endpoint.request(json={"n": n}) == {"events": [], "responses": [{"n": n}]}
        assert len(set(peers)) == 1
    finally:
        await rasa_speedups.close_sessions()
        rasa_speedups.uninstall()
        await runner.cleanup()

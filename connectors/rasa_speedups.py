"""Three costs Rasa 3.6 puts on its single event loop, moved or removed (`install()`).

1. Checking a constant schema. `RemoteAction._validate_action_result` calls
   `jsonschema.validate(result, spec)` on every action server answer; `validate` first checks
   the spec against the JSON Schema meta-schema, ~45 ms of CPU here, and then checks every
   event against all 23 alternatives of the event schema's `oneOf` (~2 ms for an answer of 8
   events). Here the validators are built once, and each event is first checked against the
   one alternative whose `event` constant it names: the others cannot match it, so it is valid
   exactly when that one matches. Only an answer failing this goes through the whole schema,
   which gives Rasa's error; what is accepted and the error raised are Rasa's.
2. Understanding a message. `MessageProcessor.parse_message` runs the NLU graph synchronously
   inside the loop: about two thirds of the loop's busy time under load (py-spy, bench/README.md
   "Conversations under load"), during which no other citizen's action answer, reply or database
   result is handled. It runs on a small thread pool instead (`NLU_THREADS`, default 2): the
   e5 encoder is C code that releases the GIL, so two messages are understood on two cores
   while the loop goes on. The graph's components keep no per-message state (the encoder
   allocates its buffers per call). With an HTTP interpreter (Rasa's remote NLU) it is unchanged.

3. A new HTTP connection per custom action. `EndpointConfig.request` opens (and closes) an
   aiohttp ClientSession, so a TCP connection, for every call to the action server. The
   session is shared instead, one per event loop and endpoint settings, with aiohttp's
   keep-alive pool (15 s idle; the action server keeps its side 75 s, SANIC_KEEP_ALIVE_TIMEOUT,
   so the client always closes first). Requests, timeouts and errors are Rasa's.

Installed with the guards by the process entry point (`connectors.patches`), so every Rasa
server of the project, the load benchmark's bare baseline included, runs with both.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
from jsonschema import validators
from jsonschema.exceptions import best_match
from rasa.core.actions.action import RemoteAction
from rasa.core.processor import MessageProcessor
from rasa.shared.constants import DOCS_BASE_URL
from rasa.utils.endpoints import EndpointConfig

T = TypeVar("T")
_original_validate = RemoteAction._validate_action_result
_original_parse = MessageProcessor.parse_message
_original_session = EndpointConfig.session
_sessions: dict[tuple[int, str], aiohttp.ClientSession] = {}


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never awaits (Rasa's async-in-name-only methods) synchronously."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the coroutine awaited something; run it on the event loop")


def _validator(schema: dict[str, Any]) -> Any:
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@functools.lru_cache(maxsize=1)
def _response_validator() -> Any:
    return _validator(RemoteAction.action_response_format_spec())


@functools.lru_cache(maxsize=1)
def _event_validators() -> dict[str, Any]:
    """Per event name, a validator of the event schema with `oneOf` narrowed to that name's
    alternative; empty when Rasa's schema is not shaped so (each alternative one constant)."""
    spec = RemoteAction.action_response_format_spec()
    item = spec.get("properties", {}).get("events", {}).get("items", {})
    alternatives = item.get("oneOf", [])
    common = {key: value for key, value in item.items() if key != "oneOf"}
    narrowed: dict[str, Any] = {}
    for alternative in alternatives:
        name = alternative.get("properties", {}).get("event", {}).get("const")
        if not isinstance(name, str) or name in narrowed:
            return {}
        narrowed[name] = _validator({**common, "allOf": [alternative]})
    return narrowed


def _surely_valid(result: Any) -> bool:
    """True only for an answer the whole schema accepts (see the module's docstring)."""
    by_name = _event_validators()
    if not by_name or not isinstance(result, dict):
        return False
    events, responses = result.get("events", []), result.get("responses", [])
    if not isinstance(events, list) or not isinstance(responses, list):
        return False
    if not all(isinstance(response, dict) for response in responses):
        return False
    for event in events:
        name = event.get("event") if isinstance(event, dict) else None
        validator = by_name.get(name) if isinstance(name, str) else None
        if validator is None or not validator.is_valid(event):
            return False
    return True


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    if _surely_valid(result):
        return True
    error = best_match(_response_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from "
        f"the Action endpoint is valid. For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


@functools.lru_cache(maxsize=1)
def _nlu_pool() -> ThreadPoolExecutor:
    threads = max(1, int(os.environ.get("NLU_THREADS", "2")))
    return ThreadPoolExecutor(threads, thread_name_prefix="nlu")


async def _parse_message(
    self: MessageProcessor, message: Any, tracker: Any = None, only_output_properties: bool = True
) -> dict[str, Any]:
    if self.http_interpreter is not None:
        return await _original_parse(self, message, tracker, only_output_properties)
    return await asyncio.get_running_loop().run_in_executor(
        _nlu_pool(),
        lambda: run_to_end(_original_parse(self, message, tracker, only_output_properties)),
    )


class _Shared:
    """`async with endpoint.session() as session:` yielding a kept session, left open."""

    def __init__(self, endpoint: EndpointConfig) -> None:
        self.endpoint = endpoint

    async def __aenter__(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        key = (id(loop), repr((self.endpoint.headers, self.endpoint.basic_auth)))
        session = _sessions.get(key)
        if session is None or session.closed or session.loop is not loop:
            session = _sessions[key] = _original_session(self.endpoint)
        return session

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _shared_session(self: EndpointConfig) -> Any:
    return _Shared(self)


async def close_sessions() -> None:
    """Close this loop's kept sessions (the server's shutdown)."""
    loop = asyncio.get_running_loop()
    for key, session in list(_sessions.items()):
        if key[0] == id(loop):
            del _sessions[key]
            await session.close()


def install() -> None:
    """Idempotent."""
    RemoteAction._validate_action_result = _validate_action_result
    MessageProcessor.parse_message = _parse_message
    EndpointConfig.session = _shared_session


def uninstall() -> None:
    RemoteAction._validate_action_result = _original_validate
    MessageProcessor.parse_message = _original_parse
    EndpointConfig.session = _original_session

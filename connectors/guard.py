"""What the Rasa server does when the action server or the tracker store cannot be reached.

Rasa 3.6 has no hook for either, so `install()` (called by the process entry point through
`connectors.patches`) wraps three of its functions, explicitly and once:

- `RemoteAction.run`: a connection error, timeout or HTTP 5xx from the action server is
  logged with its cause and recorded for the turn. Everything else passes through untouched,
  in particular `ActionExecutionRejection` (HTTP 400), on which forms rely.
- `MessageProcessor._run_action`: a turn whose action server call failed ends with TRY_AGAIN,
  said once, and `action_listen` (Rasa itself would log "Bot will continue, but the actions
  events are lost", say nothing, and let the policies predict further actions). A
  `trigger_intent` turn (a reminder) fails instead: the HTTP 500 carries `SERVICE_UNAVAILABLE`,
  the tracker is not saved, and the delivery pipeline retries later rather than recording a
  reminder the citizen never saw.
- `FailSafeTrackerStore`: Rasa answers a failed tracker read with a brand-new tracker and keeps
  a failed write in memory, so during a database outage the citizen is answered as a stranger
  and the turn is forgotten once the database is back. Here both raise `TrackerStoreUnavailable`;
  the REST channel answers TRY_AGAIN, trigger_intent answers 500 (retried later).

The SQL tracker store on PostgreSQL also gets `pool_pre_ping` and a connect timeout
(`rasa.core.tracker_store.create_engine_kwargs`): a connection cut while idle is replaced
instead of failing the next message, and an unreachable server fails in seconds instead of
blocking Rasa's event loop (the store's queries are synchronous).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from rasa.core import tracker_store
from rasa.core.actions.action import Action, ActionExecutionRejection, RemoteAction
from rasa.core.processor import MessageProcessor
from rasa.shared.core.constants import ACTION_LISTEN_NAME, EXTERNAL_MESSAGE_PREFIX, IS_EXTERNAL
from rasa.shared.core.events import BotUttered, FollowupAction
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa.utils.endpoints import ClientResponseError

from bot.core.db import connect_timeout
from connectors.common import SERVICE_UNAVAILABLE, TRY_AGAIN, cause_of, describe, mask_sender

logger = logging.getLogger(__name__)


class ActionServerUnavailable(RasaException):
    def __init__(self, action: str, cause: str) -> None:
        self.action, self.cause = action, cause
        super().__init__(f"{SERVICE_UNAVAILABLE}: action server could not run {action} ({cause})")


class TrackerStoreUnavailable(RasaException):
    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"{SERVICE_UNAVAILABLE}: tracker store unavailable ({cause})")


@dataclass
class _Turn:
    """One action the processor runs, and the first action server failure during it."""

    action: Action
    failure: str | None = None


_current: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar(
    "action_guard_turn", default=None
)


def unavailable_cause(exc: BaseException) -> str | None:
    """Why the action server did not answer (refused, reset, timed out, HTTP 5xx), or None for
    any other failure, which Rasa keeps handling as before."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ActionExecutionRejection):
            return None
        if isinstance(current, ClientResponseError):
            return f"HTTP {current.status}" if current.status >= 500 else None
        if isinstance(current, (aiohttp.ClientConnectionError, asyncio.TimeoutError)):
            return describe(current)
        current = cause_of(current)
    return None


def is_external(tracker: DialogueStateTracker) -> bool:
    """The turn was started by trigger_intent (a reminder, a status notice), not by a citizen."""
    message = tracker.latest_message
    if message is None:
        return False
    return bool((message.metadata or {}).get(IS_EXTERNAL)) or (message.text or "").startswith(
        EXTERNAL_MESSAGE_PREFIX
    )


_original_run = RemoteAction.run
_original_run_action = MessageProcessor._run_action
_original_engine_kwargs = tracker_store.create_engine_kwargs
_original_store_error = tracker_store.FailSafeTrackerStore.on_tracker_store_error
_original_retrieve_error = tracker_store.FailSafeTrackerStore.on_tracker_store_retrieve_error
_installed = False


async def _guarded_run(
    self: RemoteAction, output_channel: Any, nlg: Any, tracker: DialogueStateTracker, domain: Any
) -> list[Any]:
    try:
        return await _original_run(self, output_channel, nlg, tracker, domain)
    except Exception as exc:
        cause = unavailable_cause(exc)
        if cause is None:
            raise
        logger.error(
            "action server unavailable: %s for %s failed (%s)",
            self.name(),
            mask_sender(tracker.sender_id),
            cause,
        )
        turn = _current.get()
        if turn is not None:
            turn.failure = turn.failure or cause
            if turn.action is self:
                return []  # the processor's own action: the turn is ended below, no traceback
        # Inside a form (validation, asking the next slot): stop the form, keeping its state.
        raise ActionServerUnavailable(self.name(), cause) from exc


async def _guarded_run_action(
    self: MessageProcessor,
    action: Action,
    tracker: DialogueStateTracker,
    output_channel: Any,
    nlg: Any,
    prediction: Any,
) -> bool:
    turn = _Turn(action)
    token = _current.set(turn)
    try:
        should_continue = await _original_run_action(
            self, action, tracker, output_channel, nlg, prediction
        )
    finally:
        _current.reset(token)
    if turn.failure is None:
        return should_continue
    if is_external(tracker):
        raise ActionServerUnavailable(action.name(), turn.failure)
    events = [BotUttered(TRY_AGAIN), FollowupAction(ACTION_LISTEN_NAME)]
    tracker.update_with_events(events, self.domain)
    await self.execute_side_effects(events, tracker, output_channel)
    return True  # the follow-up makes the next prediction action_listen: the turn ends


def _strict_error(self: tracker_store.FailSafeTrackerStore, error: Exception) -> None:
    """Replaces FailSafeTrackerStore's fall-back-to-memory (reads and writes)."""
    if self._on_tracker_store_error is not None:
        self._on_tracker_store_error(error)
        return
    logger.error("tracker store unavailable: %s", describe(error))
    raise TrackerStoreUnavailable(describe(error)) from error


def _engine_kwargs(url: Any) -> dict[str, Any]:
    kwargs = dict(_original_engine_kwargs(url))
    if tracker_store.is_postgresql_url(url):
        kwargs.setdefault("pool_pre_ping", True)
        connect_args = dict(kwargs.get("connect_args") or {})
        connect_args.setdefault("connect_timeout", connect_timeout())
        kwargs["connect_args"] = connect_args
    return kwargs


_fail_safe = tracker_store.FailSafeTrackerStore
# (where, attribute, Rasa's own, the guarded one): what install() sets and uninstall() restores.
_PATCHES: tuple[tuple[Any, str, Any, Any], ...] = (
    (RemoteAction, "run", _original_run, _guarded_run),
    (MessageProcessor, "_run_action", _original_run_action, _guarded_run_action),
    (_fail_safe, "on_tracker_store_error", _original_store_error, _strict_error),
    (_fail_safe, "on_tracker_store_retrieve_error", _original_retrieve_error, _strict_error),
    (tracker_store, "create_engine_kwargs", _original_engine_kwargs, _engine_kwargs),
)


def install() -> None:
    """Wrap Rasa's functions (idempotent). Must run before the agent is loaded for the tracker
    store settings to apply (`connectors.patches.install_rasa_server`)."""
    global _installed
    if _installed:
        return
    for owner, attribute, _rasa, guarded in _PATCHES:
        setattr(owner, attribute, guarded)
    _installed = True
    logger.debug("action server and tracker store guards installed")


def uninstall() -> None:
    """Restore Rasa's own functions (tests)."""
    global _installed
    for owner, attribute, rasa, _guarded in _PATCHES:
        setattr(owner, attribute, rasa)
    _installed = False
